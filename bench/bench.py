#!/usr/bin/env python3
"""Trellis benchmarks: Trellis side by side with its peers, on loopback only.

Run through `make bench` (or bench/run.sh), which installs the tools and builds what is needed.
Scenarios (docs/BENCHMARKS.md explains the method):

  http       HTTP routing in the walkthrough's shape (two path rules, a 20/10 weighted default
             action, two hello-instance backends): Trellis vs nginx vs HAProxy, plus the backend
             directly as the ceiling; HTTP/1.1, h2c (prior knowledge), HTTPS/1.1 and HTTPS/h2.
  wasm       the same wasi:http component (hello-http.wasm) in Trellis and in `wasmtime serve`,
             plus the Lattice-event path (hello-wasm.wasm behind a LAMBDA target group).
  functions  Lambda custom runtimes (hello-lambda, the lambda_runtime crate) as a process function
             and as a FROM scratch container function: warm invocations at client concurrency 1,
             8 and 64, cold starts (first request after `trellis up`, first request to a new
             environment). Published figures of SAM CLI local and LocalStack are quoted, not run.
  auth       the HTTP scenario's service twice in one Trellis, authType NONE and AWS_IAM with a
             10-statement policy; requests to the latter SigV4-signed by botocore (re-signed before
             every run); HTTP/1.1.
  api        the AWS API (issue 16): write calls per second through boto3 against Trellis (durable
             store: fsync per acknowledged write) and moto's server (moto[server], in memory, routes
             nothing) for the operations both implement; and, Trellis only, the time from
             RegisterTargets' answer to the first request the new target serves.
  internals  the criterion micro-benchmarks (rule matching over 100 rules, the event codec, SigV4
             verification and auth policies), run with cargo bench; their estimates are read from
             target/criterion.
  footprint  Trellis's idle and peak RSS, start-up time to the first served request with a cold
             and a warm compile cache, and with a generated config of 100 services / 1000 targets.

Every measurement is bounded in time (oha -z) and every wait has a deadline. Latency is measured
open loop at a fixed rate below the knee (oha -q with --latency-correction), throughput closed loop
at fixed concurrency. The sides of a scenario run at the same time and are measured alternately
(A B C A B C ...) after a warm-up; each row reports the median over the rounds. A run fails (exit
status 1) when any response had a wrong status or body, and stops before measuring when the
Trellis binary was built from another commit than the checkout's (`trellis --version`; set
TRELLIS_REV to measure another tree's binary on purpose).
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
TOOLS = os.path.join(BENCH, ".tools", "bin")
OHA = os.environ.get("OHA", os.path.join(TOOLS, "oha"))
WASMTIME = os.environ.get("WASMTIME", os.path.join(TOOLS, "wasmtime"))
TRELLIS = os.environ.get("TRELLIS", os.path.join(ROOT, "target", "release", "trellis"))
DIST = os.path.join(ROOT, "sample-functions", "dist")
HELLO_INSTANCE = os.path.join(DIST, "hello-instance")
HELLO_HTTP = os.path.join(DIST, "hello-http.wasm")
HELLO_WASM = os.path.join(DIST, "hello-wasm.wasm")
HELLO_LAMBDA = os.path.join(DIST, "hello-lambda")
# The same program linked statically (musl) for the FROM scratch container image; bench/run.sh
# builds it when the Docker engine is reachable.
HELLO_LAMBDA_MUSL = os.environ.get("HELLO_LAMBDA_MUSL", os.path.join(
    os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "sample-functions", "target"),
    "x86_64-unknown-linux-musl", "release", "hello-lambda"))
CARGO = os.environ.get("CARGO", "cargo")
NGINX = shutil.which("nginx", path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", "")) or "nginx"
HAPROXY = shutil.which("haproxy", path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", "")) or "haproxy"

HOST = "lattice-svc.trellis.localhost"  # resolved by nobody: clients connect to 127.0.0.1
LOOPBACK = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A failure that must stop the run loudly (wrong answers, a server that did not start)."""


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Processes: start, wait, CPU time and RSS of a process tree, stop.
# --------------------------------------------------------------------------------------------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _children():
    """parent pid -> [child pids], from /proc."""
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid):
    kids = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pid):
    """utime+stime of the process tree rooted at pid (all threads; plus reaped children)."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is state (field 3); utime=14, stime=15, cutime=16, cstime=17 (1-based)
        total += sum(int(x) for x in fields[11:15])
    return total / CLK_TCK


def machine_busy_seconds():
    """CPU seconds that processes of the whole machine ran (every core), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: user+nice+system is what processes'
    # utime+stime add up to (interrupt time, e.g. loopback packets, is charged to no process)
    return sum(fields[:3]) / CLK_TCK


def status_kb(pid, key):
    """Sum of /proc/<p>/status KEY (kB) over the process tree."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


# Servers run with the caller's environment minus the variables that change how Rust programs
# behave per request: RUST_BACKTRACE=1 (set on many developer machines) makes every error that
# wasmtime constructs capture a backtrace, including one it builds and drops on every wasi:http
# request, and RUST_LOG would add per-request logging.
SERVER_ENV = {k: v for k, v in os.environ.items()
              if k not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE", "RUST_LOG")}


class Server:
    """One server process (its whole tree is measured)."""

    def __init__(self, name, argv, workdir, cwd=None, env=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.cwd = cwd or workdir
        self.env = env if env is not None else SERVER_ENV
        self.proc = None
        self.started_at = None

    def start(self):
        logf = open(self.log_path, "ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.cwd, env=self.env,
                                     start_new_session=True)
        logf.close()
        RUNNING.append(self)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cpu(self):
        return cpu_seconds(self.pid)

    def rss_kb(self):
        return status_kb(self.pid, "VmRSS")

    def hwm_kb(self):
        return status_kb(self.pid, "VmHWM")

    def nprocs(self):
        return len(process_tree(self.pid))

    def log_tail(self, n=12):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self in RUNNING:
            RUNNING.remove(self)


RUNNING = []


def stop_all():
    for s in list(reversed(RUNNING)):
        try:
            s.stop()
        except Exception as e:  # best effort at exit
            log(f"stopping {s.name}: {e}")


def http_get(port, path, host=HOST, timeout=2.0):
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def wait_http(server, port, path, deadline_s=60.0, want=200, host=HOST):
    """Polls GET path until it answers `want`; returns seconds since the server was started."""
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        if not server.alive():
            raise BenchError(f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            status, _ = http_get(port, path, host=host, timeout=1.0)
            if status == want:
                return time.monotonic() - server.started_at
            last = f"status {status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.002)
    raise BenchError(f"{server.name}: GET {path} on port {port} did not answer {want} within "
                     f"{deadline_s}s (last: {last}):\n{server.log_tail()}")


# --------------------------------------------------------------------------------------------
# Load (oha) and correctness (a Python HTTP/1.1 and h2 client)
# --------------------------------------------------------------------------------------------

OHA_HELP = None


def oha_has(flag):
    global OHA_HELP
    if OHA_HELP is None:
        OHA_HELP = subprocess.run([OHA, "--help"], capture_output=True, text=True, timeout=30).stdout
    return flag in OHA_HELP


def url_for(target):
    scheme = "https" if target["tls"] else "http"
    return f"{scheme}://{target.get('host', HOST)}:{target['port']}{target['path']}"


def oha_argv(target, seconds, concurrency, rate=None):
    argv = [OHA, "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-c", str(concurrency),
            "--wait-ongoing-requests-after-deadline",
            # oha never resolves the name: every connection goes to loopback
            "--connect-to", f"{target.get('host', HOST)}:{target['port']}:{LOOPBACK}:{target['port']}"]
    if target["proto"] == "h2":
        argv.append("--http2")
    if target["tls"]:
        argv.append("--insecure")
    if rate:
        argv += ["-q", str(rate), "--latency-correction"]
    # fixed request headers (the auth scenario's signature), sent as given with every request
    for name, value in target.get("headers", {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url_for(target))
    return argv


def run_oha(target, seconds, concurrency, rate=None, servers=()):
    argv = oha_argv(target, seconds, concurrency, rate)
    cpu0 = {s.name: s.cpu() for s in servers}
    ours0, busy0 = cpu_seconds(os.getpid()), machine_busy_seconds()
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    wall = time.monotonic() - t0
    cpu1 = {s.name: s.cpu() for s in servers}
    # CPU that processes other than this benchmark's used meanwhile (builds, other services), as a
    # share of the machine: the measurement's noise floor.
    ours = cpu_seconds(os.getpid()) - ours0
    # ... and the measured processes that are not this process's descendants (containers, dockerd)
    ours += sum(cpu1[s.name] - cpu0[s.name] for s in servers if getattr(s, "outside_tree", False))
    foreign = max(0.0, machine_busy_seconds() - busy0 - ours) / (wall * (os.cpu_count() or 1))
    if p.returncode != 0:
        raise BenchError(f"oha failed ({p.returncode}): {' '.join(argv)}\n{p.stderr[-2000:]}")
    data = json.loads(p.stdout)
    summary = data.get("summary", {})
    statuses = {str(k): int(v) for k, v in (data.get("statusCodeDistribution") or {}).items()}
    errors = {str(k): int(v) for k, v in (data.get("errorDistribution") or {}).items()}
    ok = statuses.get("200", 0)
    total = sum(statuses.values())
    # Requests that oha itself cancels when -z runs out (HTTP/2 ignores -w) are not the server's
    # errors: they are counted apart. Every other error fails the run.
    aborted = errors.pop("aborted due to deadline", 0)
    bad = total - ok + sum(errors.values())
    pct = data.get("latencyPercentiles") or {}
    ms = lambda v: None if v is None else v * 1000.0
    size = summary.get("sizePerRequest")
    res = {
        "argv": argv,
        "wall_s": wall,
        "requests": total,
        "ok": ok,
        "bad": bad,
        "status": statuses,
        "errors": errors,
        "aborted_at_deadline": aborted,
        "rps": summary.get("requestsPerSec"),
        "ok_rps": ok / summary["total"] if summary.get("total") else None,
        "size_per_request": size,
        "p50_ms": ms(pct.get("p50")),
        "p90_ms": ms(pct.get("p90")),
        "p99_ms": ms(pct.get("p99")),
        "p999_ms": ms(pct.get("p99.9")),
        "max_ms": ms(summary.get("slowest")),
        "cpu_s": {k: cpu1[k] - cpu0[k] for k in cpu0},
        "foreign_cpu_share": foreign,
    }
    if bad:
        raise BenchError(f"{url_for(target)}: {bad} of {total} responses were not 200 "
                         f"(status {statuses}, errors {errors})\n{' '.join(argv)}")
    if target.get("body_len") is not None and size is not None and round(size) != target["body_len"]:
        raise BenchError(f"{url_for(target)}: mean body size {size}, expected {target['body_len']} "
                         f"bytes\n{' '.join(argv)}")
    return res


def _connect(target, alpn):
    """A socket to 127.0.0.1:port, TLS-wrapped (SNI = the service's host name, certificate not
    verified: it is self-signed) when the target is TLS; returns (socket, negotiated ALPN)."""
    sock = socket.create_connection((LOOPBACK, target["port"]), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not target["tls"]:
        return sock, None
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols([alpn])
    tls = ctx.wrap_socket(sock, server_hostname=target.get("host", HOST))
    return tls, tls.selected_alpn_protocol()


def _get_h1(target, n):
    """n GETs over one HTTP/1.1 keep-alive connection; returns [(status, version, body)]."""
    conn = http.client.HTTPConnection(LOOPBACK, target["port"], timeout=10)
    sock, alpn = _connect(target, "http/1.1")
    if target["tls"] and alpn not in (None, "http/1.1"):
        raise BenchError(f"correctness: {url_for(target)}: ALPN chose {alpn}, asked for http/1.1")
    conn.sock = sock
    out = []
    # host_header: the Host a signed request was signed with (host:port, as oha sends it)
    headers = {"Host": target.get("host_header", target.get("host", HOST)), **target.get("headers", {})}
    try:
        for _ in range(n):
            conn.request("GET", target["path"], headers=headers)
            r = conn.getresponse()
            body = r.read()
            out.append((r.status, "1.1" if r.version == 11 else str(r.version), body))
    finally:
        conn.close()
    return out


def _get_h2(target, n):
    """n GETs, one after the other, as streams of one HTTP/2 connection (h2c prior knowledge on
    a clear port, ALPN h2 with TLS); returns [(status, "2", body)]."""
    import h2.config
    import h2.connection
    import h2.events
    sock, alpn = _connect(target, "h2")
    if target["tls"] and alpn != "h2":
        raise BenchError(f"correctness: {url_for(target)}: ALPN chose {alpn!r}, asked for h2")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    out = []
    try:
        for _ in range(n):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":scheme", "https" if target["tls"] else "http"),
                                    (":authority", f"{target.get('host', HOST)}:{target['port']}"),
                                    (":path", target["path"])], end_stream=True)
            sock.sendall(conn.data_to_send())
            status, body, done = None, b"", False
            while not done:
                data = sock.recv(65536)
                if not data:
                    raise BenchError(f"correctness: {url_for(target)}: connection closed mid-stream")
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                        status = int(dict(ev.headers)[":status"])
                    elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                        body += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                    elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                        done = True
                    elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                        raise BenchError(f"correctness: {url_for(target)}: {ev}")
                pending = conn.data_to_send()
                if pending:
                    sock.sendall(pending)
            out.append((status, "2", body))
    finally:
        sock.close()
    return out


def check_answers(target, n):
    """n requests over one connection (HTTP/1.1 or h2 as the target says, clear or TLS): every
    status must be 200, every body one of target['bodies'], and weighted bodies in the expected
    proportions (within 5 points). Returns counts per body."""
    url = url_for(target)
    try:
        answers = (_get_h2 if target["proto"] == "h2" else _get_h1)(target, n)
    except (OSError, http.client.HTTPException) as e:
        raise BenchError(f"correctness: {url}: {e!r}")
    want_version = "2" if target["proto"] == "h2" else "1.1"
    counts = {}
    for status, version, body in answers:
        body = body.decode(errors="replace")
        if status != 200 or version != want_version or body not in target["bodies"]:
            raise BenchError(f"correctness: {url}: got status {status}, HTTP/{version}, body {body!r}; "
                             f"expected 200, HTTP/{want_version}, one of {list(target['bodies'])}")
        counts[body] = counts.get(body, 0) + 1
    for body, share in target["bodies"].items():
        got = counts.get(body, 0) / n
        if abs(got - share) > 0.05:
            raise BenchError(f"correctness: {url}: {body!r} was {got:.0%} of {n} answers, "
                             f"expected {share:.0%} (weights)")
    return counts


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------

def tls_material(workdir):
    """A self-signed certificate for HOST (one for every side), and HAProxy's combined PEM."""
    cert = os.path.join(workdir, "cert.pem")
    key = os.path.join(workdir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    combined = os.path.join(workdir, "combined.pem")
    with open(combined, "w") as out:
        out.write(open(cert).read() + open(key).read())
    return cert, key, combined


def trellis_http_yaml(p, a_port, b_port, cert, key):
    return f"""# The walkthrough's shape (examples/walkthrough.yaml) with two hello-instance target groups,
# no access logs and no health checks.
region: us-west-2
vpcs:
  - name: client-vpc
    cidrs: [127.0.0.0/8]
serviceNetworks:
  - name: bench-network
    services: [lattice-svc]
    vpcs: [client-vpc]
services:
  - name: lattice-svc
    listeners:
      - name: http
        protocol: HTTP
        port: {p['h1']}
        defaultAction: &weighted
          forward:
            targetGroups:
              - {{targetGroupIdentifier: instance-tg, weight: 20}}
              - {{targetGroupIdentifier: second-tg, weight: 10}}
        rules: &rules
          - name: to-instance
            priority: 10
            match: {{httpMatch: {{pathMatch: {{match: {{exact: /to-instance}}}}}}}}
            action: {{forward: {{targetGroups: [{{targetGroupIdentifier: instance-tg}}]}}}}
          - name: to-function
            priority: 20
            match: {{httpMatch: {{pathMatch: {{match: {{exact: /to-function}}}}}}}}
            action: {{forward: {{targetGroups: [{{targetGroupIdentifier: second-tg}}]}}}}
      - name: https
        protocol: HTTPS
        port: {p['tls']}
        tls: {{certificate: {cert}, key: {key}}}
        defaultAction: *weighted
        rules: *rules
targetGroups:
  - name: instance-tg
    type: INSTANCE
    config: {{port: {a_port}, protocol: HTTP, protocolVersion: HTTP1, healthCheck: {{enabled: false}}}}
    targets: [{{id: 127.0.0.1}}]
  - name: second-tg
    type: INSTANCE
    config: {{port: {b_port}, protocol: HTTP, protocolVersion: HTTP1, healthCheck: {{enabled: false}}}}
    targets: [{{id: 127.0.0.1}}]
"""


def nginx_conf(workdir, p, a_port, b_port, cert, key):
    return f"""# nginx equivalent of the Trellis config: same rules (case-insensitive exact paths), 20/10
# weighted round robin, keep-alive upstream pools, the same forwarded headers, no access log.
worker_processes auto;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/nginx-body;
    proxy_temp_path {workdir}/nginx-proxy;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream weighted {{ server 127.0.0.1:{a_port} weight=20; server 127.0.0.1:{b_port} weight=10;
                        keepalive 128; keepalive_requests 1000000; }}
    upstream instance_tg {{ server 127.0.0.1:{a_port}; keepalive 64; keepalive_requests 1000000; }}
    upstream second_tg {{ server 127.0.0.1:{b_port}; keepalive 64; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{p['h1']};
        listen 127.0.0.1:{p['h2c']} http2;
        listen 127.0.0.1:{p['tls']} ssl http2;
        server_name {HOST};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Port $server_port;
        proxy_set_header x-amzn-requestid $request_id;
        add_header x-amzn-requestid $request_id always;
        location ~* ^/to-instance$ {{ proxy_pass http://instance_tg; }}
        location ~* ^/to-function$ {{ proxy_pass http://second_tg; }}
        location / {{ proxy_pass http://weighted; }}
    }}
}}
"""


def haproxy_cfg(workdir, p, a_port, b_port, combined):
    return f"""# HAProxy equivalent of the Trellis config: same rules (case-insensitive exact paths), 20/10
# weighted round robin, keep-alive server connections shared between clients, the same forwarded
# headers, no health checks, no logging.
global
    maxconn 4000
    nbthread 2
    tune.ssl.default-dh-param 2048
defaults
    mode http
    timeout connect 5s
    timeout client 75s
    timeout server 75s
    timeout http-keep-alive 75s
    http-reuse always
frontend lattice_svc
    bind 127.0.0.1:{p['h1']}
    bind 127.0.0.1:{p['h2c']} proto h2
    bind 127.0.0.1:{p['tls']} ssl crt {combined} alpn h2,http/1.1
    unique-id-format %[uuid()]
    option forwardfor
    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
    http-request set-header X-Forwarded-Proto http unless {{ ssl_fc }}
    http-request set-header X-Forwarded-Port %[dst_port]
    http-request set-header x-amzn-requestid %[unique-id]
    http-after-response set-header x-amzn-requestid %[unique-id]
    acl to_instance path -i /to-instance
    acl to_function path -i /to-function
    use_backend instance_tg if to_instance
    use_backend second_tg if to_function
    default_backend weighted
backend weighted
    balance roundrobin
    server a 127.0.0.1:{a_port} weight 20
    server b 127.0.0.1:{b_port} weight 10
backend instance_tg
    server a 127.0.0.1:{a_port}
backend second_tg
    server b 127.0.0.1:{b_port}
"""


def trellis_wasm_yaml(port):
    return f"""# examples/functions.yaml without the process function: the wasi:http component on /http,
# the WASI command module behind a LAMBDA target group (V2 events) on /wasm.
region: us-west-2
services:
  - name: functions
    listeners:
      - name: http
        protocol: HTTP
        port: {port}
        defaultAction: {{fixedResponse: {{statusCode: 404}}}}
        rules:
          - name: wasm
            priority: 10
            match: {{httpMatch: {{pathMatch: {{match: {{prefix: /wasm}}}}}}}}
            action: {{forward: {{targetGroups: [{{targetGroupIdentifier: wasm-tg}}]}}}}
          - name: http
            priority: 20
            match: {{httpMatch: {{pathMatch: {{match: {{prefix: /http}}}}}}}}
            action: {{forward: {{targetGroups: [{{targetGroupIdentifier: http-tg}}]}}}}
targetGroups:
  - {{name: wasm-tg, type: LAMBDA, config: {{lambdaEventStructureVersion: V2}}, targets: [{{id: hello-wasm}}]}}
  - {{name: http-tg, type: LAMBDA, targets: [{{id: hello-http}}]}}
functions:
  - name: hello-wasm
    runtime: wasm
    code: {HELLO_WASM}
    environment: {{GREETING: hello}}
  - name: hello-http
    runtime: wasm
    code: {HELLO_HTTP}
"""


def generated_yaml(port, backend_ports, services=100, targets_per_group=10):
    """services x 1 listener (all on one port, picked by host) x 1 rule, one target group each of
    targets_per_group targets spread over the backend ports: services*targets_per_group targets."""
    lines = ["# Generated: %d services, %d target groups, %d targets; no health checks." %
             (services, services, services * targets_per_group),
             "region: us-west-2", "services:"]
    for i in range(services):
        lines += [f"  - name: bench-{i:03d}",
                  "    listeners:",
                  "      - name: http",
                  "        protocol: HTTP",
                  f"        port: {port}",
                  f"        defaultAction: {{forward: {{targetGroups: [{{targetGroupIdentifier: bench-{i:03d}-tg}}]}}}}",
                  "        rules:",
                  "          - name: health",
                  "            priority: 1",
                  "            match: {httpMatch: {pathMatch: {match: {exact: /health}}}}",
                  "            action: {fixedResponse: {statusCode: 204}}"]
    lines.append("targetGroups:")
    for i in range(services):
        lines += [f"  - name: bench-{i:03d}-tg",
                  "    type: INSTANCE",
                  "    config: {port: %d, healthCheck: {enabled: false}}" % backend_ports[0],
                  "    targets:"]
        for t in range(targets_per_group):
            lines.append("      - {id: 127.0.0.1, port: %d}" % backend_ports[(i + t) % len(backend_ports)])
    return "\n".join(lines) + "\n"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


# --------------------------------------------------------------------------------------------
# Measurement loop shared by the side-by-side scenarios
# --------------------------------------------------------------------------------------------

def nice_rate(x):
    """Rounds down to 1, 2 or 5 times a power of ten."""
    if x < 1:
        return 1
    p = 10 ** int(len(str(int(x))) - 1)
    for m in (5, 2, 1):
        if x >= m * p:
            return m * p
    return p


# The open-loop rate: this fraction of the slowest (non-ceiling) side's median closed-loop
# throughput, rounded down to 1/2/5 x 10^n.
RATE_FRACTION = 0.3


def fresh(side):
    """The side's target after its `refresh` (when it has one) ran: the auth scenario signs its
    request anew before every run, since a signature is valid for 5 minutes only."""
    if side.get("refresh"):
        side["refresh"]()
    return side["target"]


def measure_variant(args, variant, sides, record):
    """sides: list of dicts {name, server, target[, refresh]}. Runs warm-up, then rounds of
    closed-loop throughput and open-loop latency, alternating sides. Appends to record['variants']."""
    q = args.quick
    secs = args.seconds or (2 if q else 10)
    rounds = args.rounds or (1 if q else 3)
    conc = args.concurrency
    log(f"[{record['scenario']}/{variant}] correctness and warm-up: " + ", ".join(s["name"] for s in sides))
    correctness = {}
    warm = {}
    # a side's "accounts": more CPU measured per run besides its server (e.g. function
    # environments that are not in the server's process tree)
    probes = lambda s: [s["server"]] + s.get("accounts", [])
    for s in sides:
        correctness[s["name"]] = check_answers(fresh(s), 30 if q else 300)
        r = run_oha(fresh(s), 1 if q else 3, conc, servers=probes(s))
        warm[s["name"]] = r["rps"]
    log(f"[{record['scenario']}/{variant}] warm-up rps {({k: round(v) for k, v in warm.items()})}")
    runs = {s["name"]: {"throughput": [], "latency": []} for s in sides}
    # 1. throughput, closed loop: A B C, A B C, ...
    for rnd in range(rounds):
        for s in sides:
            r = run_oha(fresh(s), secs, conc, servers=probes(s))
            runs[s["name"]]["throughput"].append(r)
            log(f"  round {rnd + 1}/{rounds} {s['name']:>18} closed c={conc}: {r['rps']:9.0f} req/s, "
                f"cpu {r['cpu_s'][s['server'].name]:.2f}s")
    # 2. latency, open loop at one rate for every side, well below the slowest side's knee
    slowest = min(statistics.median(r["rps"] for r in runs[s["name"]]["throughput"])
                  for s in sides if not s.get("ceiling"))
    rate = args.rate or nice_rate(RATE_FRACTION * slowest)
    for rnd in range(rounds):
        for s in sides:
            r = run_oha(fresh(s), secs, conc, rate=rate, servers=probes(s))
            runs[s["name"]]["latency"].append(r)
            log(f"  round {rnd + 1}/{rounds} {s['name']:>18} open {rate}/s: p50 {r['p50_ms']:.3f} "
                f"p99 {r['p99_ms']:.3f} p99.9 {r['p999_ms']:.3f} ms")
    # the answers must still be right after the load
    for s in sides:
        check_answers(fresh(s), 30 if q else 300)
    rows = []
    for s in sides:
        tp, lat = runs[s["name"]]["throughput"], runs[s["name"]]["latency"]
        med = lambda xs: statistics.median(xs) if xs else None
        cpu_per_10k = [r["cpu_s"][s["server"].name] / r["requests"] * 10000 for r in tp if r["requests"]]
        lat_cpu_per_10k = [r["cpu_s"][s["server"].name] / r["requests"] * 10000 for r in lat if r["requests"]]
        rows.append({
            "side": s["name"],
            "ceiling": bool(s.get("ceiling")),
            "rps": med([r["rps"] for r in tp]),
            "rps_runs": [r["rps"] for r in tp],
            "p50_ms": med([r["p50_ms"] for r in lat]),
            "p99_ms": med([r["p99_ms"] for r in lat]),
            "p999_ms": med([r["p999_ms"] for r in lat]),
            "p99_runs": [r["p99_ms"] for r in lat],
            "closed_p50_ms": med([r["p50_ms"] for r in tp]),
            "closed_p99_ms": med([r["p99_ms"] for r in tp]),
            "closed_p999_ms": med([r["p999_ms"] for r in tp]),
            "cpu_s_per_10k": med(cpu_per_10k),
            "cpu_s_per_10k_by": {a.name: med([r["cpu_s"][a.name] / r["requests"] * 10000
                                              for r in tp if r["requests"]])
                                 for a in s.get("accounts", [])},
            "cpu_s_per_10k_at_rate": med(lat_cpu_per_10k),
            "requests": sum(r["requests"] for r in tp + lat),
            "errors": sum(r["bad"] for r in tp + lat),
            "correctness": correctness[s["name"]],
        })
    foreign = [r["foreign_cpu_share"] for rs in runs.values() for r in rs["throughput"] + rs["latency"]]
    record["variants"].append({
        "variant": variant,
        "foreign_cpu_share": {"median": statistics.median(foreign), "max": max(foreign)},
        "seconds": secs, "rounds": rounds, "concurrency": conc, "rate": rate,
        "warmup_rps": warm,
        # shell-quoted: the auth scenario's headers have spaces
        "commands": {s["name"]: {"throughput": shlex.join(oha_argv(s["target"], secs, conc)),
                                 "latency": shlex.join(oha_argv(s["target"], secs, conc, rate))}
                     for s in sides},
        "rows": rows,
        "runs": runs,
    })


def merge_variants(rec, path):
    """A run of some variants only (--variants) replaces those variants in the stored results of
    its scenario and keeps the others; peak RSS is the larger of the two runs'."""
    if rec["scenario"] != "http" or not os.path.exists(path):
        return rec
    old = json.load(open(path))
    names = [v["variant"] for v in rec["variants"]]
    if {v["variant"] for v in old.get("variants", [])} <= set(names) or old.get("quick") != rec["quick"]:
        return rec
    new_by_name = {v["variant"]: v for v in rec["variants"]}
    merged = [new_by_name.pop(v["variant"], v) for v in old["variants"]] + list(new_by_name.values())
    for name, srv in old.get("servers", {}).items():
        if name in rec.get("servers", {}):
            rec["servers"][name]["peak_rss_kb"] = max(srv["peak_rss_kb"], rec["servers"][name]["peak_rss_kb"])
    rec["variants"] = merged
    rec["rerun_variants"] = names
    rec["duration_s"] += old.get("duration_s", 0)
    return rec


def server_info(servers):
    return {s.name: {"argv": s.argv, "peak_rss_kb": s.hwm_kb(), "rss_kb": s.rss_kb(),
                     "processes": s.nprocs()} for s in servers}


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------

def start_backends(workdir, names):
    out = []
    for name in names:
        port = free_port()
        s = Server(f"hello-{name}", [HELLO_INSTANCE, "--port", str(port), "--bind", LOOPBACK,
                                     "--name", name], workdir).start()
        out.append((s, port))
    for s, port in out:
        wait_http(s, port, "/", host="localhost", deadline_s=20)
    return out


def scenario_http(args, workdir, cfgdir):
    record = {"scenario": "http", "variants": []}
    (a_srv, a_port), (b_srv, b_port) = start_backends(workdir, ["instance-a", "instance-b"])
    body_a, body_b = "Hello from the instance-a\n", "Hello from the instance-b\n"
    cert, key, combined = tls_material(workdir)
    names = ("trellis", "nginx", "haproxy") + (("trellis-baseline",) if args.baseline else ())
    ports = {name: {"h1": free_port(), "h2c": free_port(), "tls": free_port()} for name in names}
    for name in ("trellis", "trellis-baseline"):
        if name in ports:
            ports[name]["h2c"] = ports[name]["h1"]  # Trellis serves h1 and h2c on one port

    tcfg = write(os.path.join(cfgdir, "trellis-http.yaml"),
                 trellis_http_yaml(ports["trellis"], a_port, b_port, cert, key))
    ncfg = write(os.path.join(cfgdir, "nginx.conf"),
                 nginx_conf(workdir, ports["nginx"], a_port, b_port, cert, key))
    hcfg = write(os.path.join(cfgdir, "haproxy.cfg"),
                 haproxy_cfg(workdir, ports["haproxy"], a_port, b_port, combined))
    for d in ("nginx-body", "nginx-proxy"):
        os.makedirs(os.path.join(workdir, d), exist_ok=True)

    trellis = Server("trellis", [TRELLIS, "up", "-f", tcfg, "--bind", LOOPBACK, "--drain-timeout", "1",
                                 "--state-dir", os.path.join(workdir, "state-http")], workdir).start()
    nginx = Server("nginx", [NGINX, "-c", ncfg, "-p", workdir, "-e", os.path.join(workdir, "nginx-error.log"),
                             "-g", "daemon off; master_process on;"], workdir).start()
    haproxy = Server("haproxy", [HAPROXY, "-f", hcfg, "-db"], workdir).start()
    servers = {"trellis": trellis, "nginx": nginx, "haproxy": haproxy}
    if args.baseline:
        # --baseline: another build of Trellis (e.g. the commit before a change), same config
        record["baseline"] = {"binary": args.baseline, "built_from": built_from(args.baseline)}
        log(f"[http] baseline {args.baseline}, built from {record['baseline']['built_from'] or '? (no commit in --version)'}")
        bcfg = write(os.path.join(workdir, "trellis-baseline-http.yaml"),
                     trellis_http_yaml(ports["trellis-baseline"], a_port, b_port, cert, key))
        servers["trellis baseline"] = Server(
            "trellis-baseline", [args.baseline, "up", "-f", bcfg, "--bind", LOOPBACK, "--drain-timeout", "1",
                                 "--state-dir", os.path.join(workdir, "state-http-baseline")], workdir).start()
    startup = {}
    for srv in servers.values():
        startup[srv.name] = wait_http(srv, ports[srv.name]["h1"], "/to-instance", deadline_s=60)
    time.sleep(1.0)
    idle = {s.name: s.rss_kb() for s in list(servers.values()) + [a_srv, b_srv]}
    record["idle_rss_kb"] = idle
    record["startup_s"] = startup

    weighted = {body_a: 2 / 3, body_b: 1 / 3}
    variants = [("HTTP/1.1", "h1", False, "h1"), ("h2c", "h2", False, "h2c"),
                ("HTTPS HTTP/1.1", "h1", True, "tls"), ("HTTPS h2", "h2", True, "tls")]
    if args.variants:
        variants = [v for v in variants if v[0] in args.variants or v[3] in args.variants]
    for label, proto, tls, key_ in variants:
        # rules first: every side must route the path rules right, in every variant
        for name, srv in servers.items():
            for path, body in (("/to-instance", 'Hello from the instance-a at path "/to-instance"\n'),
                               ("/TO-FUNCTION", 'Hello from the instance-b at path "/TO-FUNCTION"\n')):
                check_answers({"port": ports[srv.name][key_], "path": path, "proto": proto, "tls": tls,
                            "bodies": {body: 1.0}}, 3)
        sides = [{"name": name, "server": srv,
                  "target": {"port": ports[srv.name][key_], "path": "/", "proto": proto, "tls": tls,
                             "bodies": weighted, "body_len": len(body_a)}}
                 for name, srv in servers.items()]
        if not tls:
            sides.append({"name": "backend direct", "server": a_srv, "ceiling": True,
                          "target": {"port": a_port, "path": "/", "proto": proto, "tls": False,
                                     "bodies": {body_a: 1.0}, "body_len": len(body_a)}})
        measure_variant(args, label, sides, record)
    record["servers"] = server_info(list(servers.values()) + [a_srv, b_srv])
    record["backend_cpu_s"] = {s.name: s.cpu() for s in (a_srv, b_srv)}
    for s in list(servers.values()) + [a_srv, b_srv]:
        s.stop()
    return record


def scenario_wasm(args, workdir, cfgdir):
    record = {"scenario": "wasm", "variants": []}
    tport, wport = free_port(), free_port()
    tcfg = write(os.path.join(cfgdir, "trellis-wasm.yaml"), trellis_wasm_yaml(tport))
    trellis = Server("trellis", [TRELLIS, "up", "-f", tcfg, "--bind", LOOPBACK, "--drain-timeout", "1",
                                 "--state-dir", os.path.join(workdir, "state-wasm")], workdir).start()
    # -Scli: the component (Rust std for wasm32-wasip2) imports wasi:cli, as Trellis links it too;
    # the pooling allocator, as Trellis uses it.
    wasmtime = Server("wasmtime-serve", [WASMTIME, "serve", "--addr", f"{LOOPBACK}:{wport}", "-Scli",
                                         "-O", "pooling-allocator=y", HELLO_HTTP], workdir).start()
    startup = {"trellis": wait_http(trellis, tport, "/http/hi", host="functions.trellis.localhost"),
               "wasmtime-serve": wait_http(wasmtime, wport, "/http/hi", host="localhost")}
    time.sleep(1.0)
    record["idle_rss_kb"] = {s.name: s.rss_kb() for s in (trellis, wasmtime)}
    record["startup_s"] = startup
    fh = "functions.trellis.localhost"
    http_body = 'Hello from the wasi:http function at path "/http/hi"\n'
    event_body = 'Hello from the function at path "/wasm/hi" (method GET)\n'
    sides = [
        {"name": "trellis wasi:http", "server": trellis,
         "target": {"host": fh, "port": tport, "path": "/http/hi", "proto": "h1", "tls": False,
                    "bodies": {http_body: 1.0}, "body_len": len(http_body)}},
        {"name": "wasmtime serve", "server": wasmtime,
         "target": {"host": fh, "port": wport, "path": "/http/hi", "proto": "h1", "tls": False,
                    "bodies": {http_body: 1.0}, "body_len": len(http_body)}},
        {"name": "trellis event", "server": trellis,
         "target": {"host": fh, "port": tport, "path": "/wasm/hi", "proto": "h1", "tls": False,
                    "bodies": {event_body: 1.0}, "body_len": len(event_body)}},
    ]
    measure_variant(args, "HTTP/1.1", sides, record)
    record["servers"] = server_info([trellis, wasmtime])
    for s in (trellis, wasmtime):
        s.stop()
    return record


# --------------------------------------------------------------------------------------------
# Process and container functions (scenario 3)
# --------------------------------------------------------------------------------------------

FN_HOST = "functions.trellis.localhost"
FN_IMAGE = "trellis-bench-hello-lambda:latest"
# The function names are also the containers' trellis.function label: names of the benchmark's
# own, so that containers of another Trellis on the same engine (tests) are never counted.
FN_NAMES = {"process": "bench-process", "container": "bench-container"}
# Environments per function in the warm measurements, all provisioned at start-up (so no warm
# measurement pays a cold start): at client concurrency 64, 8 invocations run and the others wait
# in Trellis's queue (Lambda would throttle them with 429 beyond the function's concurrency).
# 8 environments are already 4 per core on the 2-core machine this was written on.
FN_ENVIRONMENTS = 8
FN_CONCURRENCIES = (1, 8, 64)


def fn_body(kind):
    return f'Hello from the function at path "/{kind}/hi" (method GET)\n'


def trellis_functions_yaml(port, kinds, environments, provisioned, idle_timeout=600):
    """hello-lambda (V2 events) behind one path rule per kind: /process/... runs the native
    binary as a process function, /container/... the FROM scratch image as a container one."""
    lines = ["# hello-lambda (the lambda_runtime crate) as a process and as a container function.",
             "region: us-west-2", "services:", "  - name: functions", "    listeners:",
             "      - name: http", "        protocol: HTTP", f"        port: {port}",
             "        defaultAction: {fixedResponse: {statusCode: 404}}", "        rules:"]
    for i, kind in enumerate(kinds):
        lines += [f"          - name: {kind}", f"            priority: {10 * (i + 1)}",
                  f"            match: {{httpMatch: {{pathMatch: {{match: {{prefix: /{kind}}}}}}}}}",
                  f"            action: {{forward: {{targetGroups: [{{targetGroupIdentifier: {kind}-tg}}]}}}}"]
    lines.append("targetGroups:")
    for kind in kinds:
        lines.append(f"  - {{name: {kind}-tg, type: LAMBDA, config: {{lambdaEventStructureVersion: V2}}, "
                     f"targets: [{{id: {FN_NAMES[kind]}}}]}}")
    lines.append("functions:")
    for kind in kinds:
        lines += [f"  - name: {FN_NAMES[kind]}", f"    runtime: {kind}",
                  f"    command: [{HELLO_LAMBDA}]" if kind == "process" else f"    image: {FN_IMAGE}",
                  # 10 s rather than Lambda's 3 s: an invocation queued at c=64 on a busy machine
                  # must not become a 504 that fails the run
                  "    timeout: 10", f"    concurrency: {environments}",
                  f"    provisioned: {provisioned}", f"    idleTimeout: {idle_timeout}"]
    return "\n".join(lines) + "\n"


def docker(*argv, timeout=120):
    return subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=timeout)


def container_skip_reason():
    """None when the container half can run, else why not (it is skipped, the process half runs)."""
    if not shutil.which("docker"):
        return "the docker CLI is not installed"
    try:
        p = docker("info", "--format", "{{.ServerVersion}}", timeout=30)
    except subprocess.TimeoutExpired:
        return "docker info did not answer within 30 s"
    if p.returncode != 0:
        return "the Docker engine is not reachable (docker info: " + \
            (p.stderr.strip().splitlines() or ["?"])[-1] + ")"
    if not os.access(HELLO_LAMBDA_MUSL, os.X_OK):
        return f"{HELLO_LAMBDA_MUSL} is missing (bench/run.sh builds it with the x86_64-unknown-linux-musl target)"
    return None


def build_function_image(workdir):
    """The container function's image: the static hello-lambda as /var/task/bootstrap, FROM
    scratch, built by the local engine (no registry), as tests/containers.rs builds it."""
    ctx = os.path.join(workdir, "image-hello-lambda")
    os.makedirs(ctx, exist_ok=True)
    shutil.copy(HELLO_LAMBDA_MUSL, os.path.join(ctx, "bootstrap"))
    write(os.path.join(ctx, "Dockerfile"),
          'FROM scratch\nCOPY bootstrap /var/task/bootstrap\nENTRYPOINT ["/var/task/bootstrap"]\n')
    p = docker("build", "-q", "--label", "trellis.bench=true", "-t", FN_IMAGE, ctx, timeout=300)
    if p.returncode != 0:
        raise BenchError(f"docker build of {FN_IMAGE} failed:\n{p.stderr[-2000:]}")
    size = docker("image", "inspect", "--format", "{{.Size}}", FN_IMAGE).stdout.strip()
    return {"tag": FN_IMAGE, "id": p.stdout.strip(), "size_bytes": int(size) if size.isdigit() else None,
            "dockerfile": open(os.path.join(ctx, "Dockerfile")).read()}


def trellis_containers(function, all_states=False):
    """[(container id, trellis.owner label)] of the function's containers on the engine."""
    p = docker("ps", *(["-a"] if all_states else []), "--no-trunc", "--filter",
               f"label=trellis.function={function}", "--format", '{{.ID}} {{.Label "trellis.owner"}}')
    return [tuple((line.split(" ", 1) + [""])[:2]) for line in p.stdout.split("\n") if line.strip()]


def container_pids(function, owner_pid):
    """Host pids of the main processes of the function's running containers started by the
    Trellis with pid owner_pid (its trellis.owner label is host:pid:start-time). Only the
    entrypoint runs in a FROM scratch image, so that process is the whole environment."""
    pids = []
    for cid, owner in trellis_containers(function):
        if f":{owner_pid}:" not in f"{owner}:":
            continue
        pid = docker("inspect", "--format", "{{.State.Pid}}", cid).stdout.strip()
        if pid.isdigit() and int(pid) > 0 and _comm(int(pid)) == "bootstrap":
            pids.append(int(pid))
    return pids


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None  # gone, or in another pid namespace (a remote engine)


def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def engine_daemons():
    """dockerd and containerd: with each container's containerd-shim, the engine processes a
    container function's traffic goes through (its stdout/stderr are streamed to Trellis, and
    logged by dockerd). They serve every container of the engine, not only the benchmark's."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and _comm(int(e)) in ("dockerd", "containerd")]


def pid_cpu_seconds(pid):
    """utime+stime (and reaped children's) of one process, all its threads; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def pids_status_kb(pids, key):
    """Sum of /proc/<p>/status KEY (kB) over the given processes (each alone, not its tree)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith(key + ":")), 0)
        except OSError:
            continue
    return total


class Account:
    """CPU measured like a Server's (a name and cpu()) over given processes, each counted alone:
    Trellis without its children, a function's environments, the Docker engine."""

    def __init__(self, name, pids, outside_tree=False):
        self.name = name
        self.pids = pids  # () -> [pid]
        self.outside_tree = outside_tree  # not descendants of this benchmark (containers, dockerd)

    def cpu(self):
        return sum(pid_cpu_seconds(p) for p in self.pids())


def scrape(admin_port):
    """Trellis's /metrics as {(metric, function label): value}, histogram buckets left out and
    other labels summed over (e.g. every outcome of trellis_function_invocations_total)."""
    status, body = http_get(admin_port, "/metrics", host=f"{LOOPBACK}:{admin_port}", timeout=5)
    if status != 200:
        raise BenchError(f"GET /metrics on the admin port {admin_port} answered {status}")
    out = {}
    for line in body.decode(errors="replace").splitlines():
        m = re.match(r'([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)', line)
        if not m or line.startswith("#"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if "le" in labels:
            continue
        key = (m.group(1), labels.get("function"))
        out[key] = out.get(key, 0.0) + float(m.group(3))
    return out


def wait_metric(server, admin_port, metric, function, pred, deadline_s=60.0):
    """Polls /metrics until pred(value of metric{function}) holds; returns the value."""
    end = time.monotonic() + deadline_s
    value = None
    while time.monotonic() < end:
        if not server.alive():
            raise BenchError(f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            value = scrape(admin_port).get((metric, function), 0.0)
            if pred(value):
                return value
        except OSError:
            pass
        time.sleep(0.02)
    raise BenchError(f"{server.name}: {metric}{{function={function}}} was {value} after {deadline_s} s\n"
                     f"{server.log_tail()}")


def wait_log(server, text, deadline_s=60.0):
    """Polls the server's log (every millisecond) until it holds `text`; returns the seconds since
    the server was started. Each Server needs its own name: the log file is appended to."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with open(server.log_path, errors="replace") as f:
                if text in f.read():
                    return time.monotonic() - server.started_at
        except OSError:
            pass
        if not server.alive():
            raise BenchError(f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}")
        time.sleep(0.001)
    raise BenchError(f"{server.name}: no {text!r} in its log within {deadline_s} s:\n{server.log_tail()}")


def get_function(port, kind, timeout=30.0):
    """One GET of the function's route, checked (status and body); returns its duration in s."""
    t0 = time.monotonic()
    try:
        status, body = http_get(port, f"/{kind}/hi", host=FN_HOST, timeout=timeout)
    except OSError as e:
        raise BenchError(f"correctness: GET /{kind}/hi on port {port}: {e!r}")
    took = time.monotonic() - t0
    if status != 200 or body.decode(errors="replace") != fn_body(kind):
        raise BenchError(f"correctness: GET /{kind}/hi: status {status}, body {body[:200]!r}; expected 200, "
                         f"{fn_body(kind)!r}")
    return took


def trellis_up(name, cfg, workdir, admin_port):
    return Server(name, [TRELLIS, "up", "-f", cfg, "--bind", LOOPBACK, "--drain-timeout", "1",
                         "--admin", f"{LOOPBACK}:{admin_port}",
                         "--state-dir", os.path.join(workdir, f"state-{name}")], workdir).start()


def timed_stop(server):
    t0 = time.monotonic()
    server.stop()
    return time.monotonic() - t0


def functions_warm(args, workdir, cfgdir, kinds, record):
    """Warm invocations at client concurrency 1, 8 and 64 (closed loop, plus open loop at 30 % of
    the slower function's throughput), both functions in one Trellis, measured alternately."""
    port, admin = free_port(), free_port()
    cfg = write(os.path.join(cfgdir, "trellis-functions.yaml"),
                trellis_functions_yaml(port, kinds, FN_ENVIRONMENTS, FN_ENVIRONMENTS))
    trellis = trellis_up("trellis-functions", cfg, workdir, admin)
    wait_log(trellis, "trellis: ready")
    for kind in kinds:  # every provisioned environment has asked for work
        wait_metric(trellis, admin, "trellis_function_init_duration_seconds_count", FN_NAMES[kind],
                    lambda v: v >= FN_ENVIRONMENTS, deadline_s=120)
    time.sleep(1.0)
    envs = {"process": [p for p in process_tree(trellis.pid) if _comm(p) == "hello-lambda"]}
    if "container" in kinds:
        envs["container"] = container_pids(FN_NAMES["container"], trellis.pid)
    if len(envs["process"]) != FN_ENVIRONMENTS:
        raise BenchError(f"[functions] expected {FN_ENVIRONMENTS} process environments, found pids {envs['process']}")
    if "container" in envs and len(envs["container"]) != FN_ENVIRONMENTS:
        # e.g. an engine on another machine (DOCKER_HOST): its processes are not in this /proc
        record["container_cpu_unmeasured"] = (f"{len(envs['container'])} of the {FN_ENVIRONMENTS} containers' "
                                              f"processes are visible in this machine's /proc")
        log(f"[functions] note: container CPU and RSS not measured: {record['container_cpu_unmeasured']}")
        del envs["container"]
    shims = [p for p in (_ppid(c) for c in envs.get("container", [])) if p]
    engine = engine_daemons() + shims if shims else []
    record["idle_rss_kb"] = {"trellis": pids_status_kb([trellis.pid], "VmRSS"),
                             **{f"{k} environments": pids_status_kb(v, "VmRSS") for k, v in envs.items()}}
    sides = []
    for kind in kinds:
        accounts = [Account("trellis only", lambda: [trellis.pid])]
        if kind in envs:
            accounts.append(Account(f"{kind} environments", lambda k=kind: envs[k], outside_tree=kind == "container"))
        if kind == "container" and engine:
            accounts.append(Account("docker engine", lambda: engine, outside_tree=True))
        sides.append({"name": kind, "server": trellis, "accounts": accounts,
                      "target": {"host": FN_HOST, "port": port, "path": f"/{kind}/hi", "proto": "h1",
                                 "tls": False, "bodies": {fn_body(kind): 1.0}, "body_len": len(fn_body(kind))}})
    before = scrape(admin)
    for c in FN_CONCURRENCIES:
        sub = argparse.Namespace(**vars(args))
        sub.concurrency = c
        # shorter than the other scenarios' measurements: 3 concurrencies x 2 functions
        sub.seconds = args.seconds or (1 if args.quick else 5)
        sub.rounds = args.rounds or (1 if args.quick else 2)
        measure_variant(sub, f"c={c}", sides, record)
    after = scrape(admin)
    for kind in kinds:
        fn = FN_NAMES[kind]
        cold = after.get(("trellis_function_cold_starts_total", fn), 0) - before.get(("trellis_function_cold_starts_total", fn), 0)
        if cold:  # every environment was provisioned: a cold start means one was replaced
            log(f"[functions] note: {cold:.0f} {kind} invocations had a cold start during the warm runs")
        record.setdefault("warm_cold_starts", {})[kind] = cold
    now = {"process": [p for p in process_tree(trellis.pid) if _comm(p) == "hello-lambda"]}
    if "container" in envs:
        now["container"] = container_pids(FN_NAMES["container"], trellis.pid)
    record["environments_replaced"] = {k: len(set(envs[k]) - set(now[k])) for k in envs}
    record["peak_rss_kb"] = {"trellis": pids_status_kb([trellis.pid], "VmHWM"),
                             **{f"{k} environments": pids_status_kb(v, "VmHWM") for k, v in envs.items()}}
    if shims:
        record["peak_rss_kb"]["containerd-shim"] = pids_status_kb(shims, "VmHWM")
    record["servers"] = {"trellis": {"argv": trellis.argv, "peak_rss_kb": record["peak_rss_kb"]["trellis"],
                                     "rss_kb": pids_status_kb([trellis.pid], "VmRSS"), "processes": trellis.nprocs()}}
    record["stop_s"] = timed_stop(trellis)
    log(f"[functions] Trellis with {FN_ENVIRONMENTS} environments per function stopped in {record['stop_s']:.2f} s")


def functions_cold_after_up(args, workdir, cfgdir, kinds):
    """`trellis up` with one function and no provisioned environment; after the "ready" banner,
    one request: its duration is the cold start a user sees. Repeated on a fresh Trellis."""
    reps = 2 if args.quick else 5
    out = {k: [] for k in kinds}
    for i in range(reps):
        for kind in kinds:
            port, admin = free_port(), free_port()
            cfg = write(os.path.join(cfgdir, f"trellis-cold-{kind}.yaml"),
                        trellis_functions_yaml(port, [kind], FN_ENVIRONMENTS, 0))
            s = trellis_up(f"trellis-cold-{kind}-{i}", cfg, workdir, admin)
            try:
                ready = wait_log(s, "trellis: ready")
                t0 = time.monotonic()
                first = get_function(port, kind)
                m = scrape(admin)
            finally:
                stop = timed_stop(s)
            fn = FN_NAMES[kind]
            out[kind].append({"ready_s": ready, "first_request_s": first,
                              "to_first_response_s": t0 + first - s.started_at,
                              "init_s": m.get(("trellis_function_init_duration_seconds_sum", fn)),
                              "cold_starts": m.get(("trellis_function_cold_starts_total", fn)),
                              "stop_s": stop})
            log(f"[functions] cold {kind} {i + 1}/{reps}: ready {ready * 1000:.0f} ms, first request "
                f"{first * 1000:.1f} ms (init {out[kind][-1]['init_s'] * 1000:.1f} ms), stop {stop:.2f} s")
    return out


def cold_rounds(args, workdir, name, cfg_path, kinds, environments, provisioned, settled, label, request):
    """One Trellis with idleTimeout 1 s. Before each measured request, waits (on /metrics) until
    `settled` environments are left, the others stopped for idleness; then times `request(port,
    kind)` and records the cold starts and init time /metrics counted meanwhile. The first round
    (the first environments after start-up) is not counted."""
    reps = 2 if args.quick else 5
    port, admin = free_port(), free_port()
    write(cfg_path, trellis_functions_yaml(port, kinds, environments, provisioned, idle_timeout=1))
    s = trellis_up(name, cfg_path, workdir, admin)
    out = {k: [] for k in kinds}
    try:
        wait_log(s, "trellis: ready")
        for i in range(reps + 1):
            for kind in kinds:
                fn = FN_NAMES[kind]
                t_idle = time.monotonic()
                wait_metric(s, admin, "trellis_function_environments", fn, lambda v: v == settled, deadline_s=60)
                reaped = time.monotonic() - t_idle
                before = scrape(admin)
                took = request(port, kind)
                after = scrape(admin)
                delta = lambda key: after.get((key, fn), 0.0) - before.get((key, fn), 0.0)
                if i:
                    out[kind].append({"request_s": took, "cold_starts": delta("trellis_function_cold_starts_total"),
                                      "init_s": delta("trellis_function_init_duration_seconds_sum"),
                                      "waited_for_reaping_s": reaped})
                    log(f"[functions] {label} {kind} {i}/{reps}: {took * 1000:.1f} ms "
                        f"(init {out[kind][-1]['init_s'] * 1000:.1f} ms)")
    finally:
        timed_stop(s)
    return out


def functions_cold_new_environment(args, workdir, cfgdir, kinds):
    """The first request to a new environment of a running Trellis: the one environment is
    stopped for idleness before each request, so each request starts a fresh one."""
    return cold_rounds(args, workdir, "trellis-idle", os.path.join(cfgdir, "trellis-idle.yaml"), kinds,
                       environments=1, provisioned=0, settled=0, label="new environment",
                       request=get_function)


def functions_cold_burst(args, workdir, cfgdir, kinds):
    """The first request to a new environment when a burst needs one more: the provisioned
    environment (of at most 2) is kept busy by a request to /hold (hello-lambda holds it 1 s),
    and a second request meanwhile has to start a new one, which is stopped for idleness again
    before the next burst."""
    def burst(port, kind):
        held = {}

        def hold():
            try:
                held["answer"] = http_get(port, f"/{kind}/hold", host=FN_HOST, timeout=30)
            except OSError as e:
                held["answer"] = (None, repr(e).encode())
        holder = threading.Thread(target=hold)
        holder.start()
        time.sleep(0.2)  # the /hold request has the provisioned environment by now
        took = get_function(port, kind)
        holder.join(timeout=30)
        want = f'Hello from the function at path "/{kind}/hold" (method GET)\n'.encode()
        if held.get("answer") != (200, want):
            raise BenchError(f"correctness: GET /{kind}/hold: {held.get('answer')!r}; expected (200, {want!r})")
        return took
    return cold_rounds(args, workdir, "trellis-burst", os.path.join(cfgdir, "trellis-burst.yaml"), kinds,
                       environments=2, provisioned=1, settled=1, label="burst", request=burst)


def remove_leftover_containers():
    """Containers of the benchmark's functions still on the engine after every Trellis stopped
    (Trellis removes its own at shutdown: any left is a finding). Removed, and returned."""
    left = [cid for fn in FN_NAMES.values() for cid, _ in trellis_containers(fn, all_states=True)]
    if left:
        docker("rm", "-f", *left)
    return left


def scenario_functions(args, workdir, cfgdir):
    record = {"scenario": "functions", "variants": [], "environments": FN_ENVIRONMENTS,
              "published": PUBLISHED, "configs_dir": cfgdir}
    kinds = ["process"]
    why = container_skip_reason()
    if why:
        log(f"[functions] container functions SKIPPED: {why}")
        record["container_skipped"] = why
    else:
        record["image"] = build_function_image(workdir)
        record["docker"] = docker_version()
        kinds.append("container")
    record["kinds"] = kinds
    try:
        functions_warm(args, workdir, cfgdir, kinds, record)
        record["cold_after_up"] = functions_cold_after_up(args, workdir, cfgdir, kinds)
        record["cold_new_environment"] = functions_cold_new_environment(args, workdir, cfgdir, kinds)
        record["cold_burst"] = functions_cold_burst(args, workdir, cfgdir, kinds)
    finally:
        stop_all()  # before looking for leftovers: a running Trellis still owns its containers
        if "container" in kinds:
            record["left_behind"] = remove_leftover_containers()
            docker("rmi", FN_IMAGE)  # rebuilt by the next run in seconds (the engine caches layers)
    if record.get("left_behind"):
        raise BenchError(f"[functions] containers left behind after Trellis stopped (removed now): "
                         f"{record['left_behind']}")
    return record


# Published figures of the local Lambda emulators people use instead (not run here: they need
# other runtimes and images from registries); quoted in the report with their sources.
PUBLISHED = [
    {"tool": "SAM CLI local (`sam local start-api`, 2018, a new container per request)",
     "warm": "none: every request ≈ 1 s", "cold": "≈ 1 s",
     "source": "https://github.com/aws/aws-sam-cli/issues/362",
     "note": "\"requests consistently take around 1 second\"; --warm-containers came later (#239)"},
    {"tool": "SAM CLI local (`sam local start-lambda --warm-containers EAGER`, Linux x86)",
     "warm": "< 50 ms per invoke", "cold": "–",
     "source": "https://github.com/aws/aws-sam-cli/issues/6173",
     "note": "invoked through the Lambda API from a test suite; over 1 s each on an M1 Mac"},
    {"tool": "LocalStack Lambda (performance tests, 2023)",
     "warm": "17 ms min – 77 ms p99 (macOS; \"even faster on Linux\")",
     "cold": "0.70 s min / 0.76 s median / 0.87 s p99 (Linux, host mode, 100 runs)",
     "source": "https://github.com/localstack/localstack/pull/8137",
     "note": "invocations through LocalStack's Lambda API; macOS with Docker: 3.3-7.5 s cold"},
]


# --------------------------------------------------------------------------------------------
# Auth: the same service with authType NONE and with AWS_IAM, signed requests (issue 14)
# --------------------------------------------------------------------------------------------

SIGN_PY = os.path.join(ROOT, "tests", "oracles", "sign.py")
AUTH_REGION = "us-west-2"
# side -> service name (host <name>.trellis.localhost); the side names are the report's rows
AUTH_SERVICES = {"NONE": "open-svc", "AWS_IAM (signed)": "iam-svc"}
# A third side: the NONE service sent requests of the signed ones' size and header count (the
# signed headers, the Authorization scheme renamed so that Trellis sees no signature). The load
# generator and the backends share the two cores with Trellis, and a signed request costs them
# more bytes to write and read; against this side, what differs is only Trellis's auth work.
AUTH_SAME_BYTES = "NONE (signed-size headers)"
# Rounds of the auth scenario unless --rounds says: its sides differ by a few per cent, less
# than one round's noise, so it takes more of them than the other scenarios.
AUTH_ROUNDS = 5
# With no identities in the config, test/test signs as arn:aws:iam::<accountId>:user/test.
AUTH_KEY, AUTH_SECRET = "test", "test"


def auth_policy():
    """The criterion benchmark's policy (auth/benches/auth.rs) as an authPolicy: nine statements
    about other principals, paths, methods, a header and a source range (three of them Deny),
    none of which matches the benchmark's caller, so all are evaluated; the tenth is the
    console's "authenticated only" template, which allows it."""
    statements = [{
        "Sid": f"Other{i}",
        "Effect": "Deny" if i % 3 == 0 else "Allow",
        "Principal": {"AWS": [f"arn:aws:iam::{100_000_000_000 + i:012}:role/team-{i}"]},
        "Action": "vpc-lattice-svcs:Invoke",
        "Resource": f"*/team-{i}/*",
        "Condition": {
            "StringEquals": {"vpc-lattice-svcs:RequestMethod": ["GET", "POST"]},
            "StringLike": {"vpc-lattice-svcs:RequestHeader/x-tenant": f"tenant-{i}-*"},
            "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
        },
    } for i in range(9)]
    statements.append({
        "Sid": "AuthenticatedOnly", "Effect": "Allow", "Principal": "*",
        "Action": "vpc-lattice-svcs:Invoke", "Resource": "*",
        "Condition": {"StringNotEqualsIgnoreCase": {"aws:PrincipalType": "anonymous"}},
    })
    return {"Version": "2012-10-17", "Statement": statements}


def trellis_auth_yaml(port, a_port, b_port):
    """The HTTP scenario's service (two path rules, a 20/10 weighted default action over the two
    hello-instance backends) twice on one listener port, told apart by host: authType NONE and
    AWS_IAM with auth_policy(). Each has its own target groups, of the same two backends; the
    network is NONE, so the service's auth is the only difference."""
    def service(name, auth):
        policy = ""
        if auth == "AWS_IAM":
            text = json.dumps(auth_policy(), indent=2)
            policy = "    authPolicy: |\n" + "\n".join("      " + line for line in text.splitlines()) + "\n"
        return f"""  - name: {name}
    authType: {auth}
{policy}    listeners:
      - name: http
        protocol: HTTP
        port: {port}
        defaultAction:
          forward:
            targetGroups:
              - {{targetGroupIdentifier: {name}-a, weight: 20}}
              - {{targetGroupIdentifier: {name}-b, weight: 10}}
        rules:
          - name: to-instance
            priority: 10
            match: {{httpMatch: {{pathMatch: {{match: {{exact: /to-instance}}}}}}}}
            action: {{forward: {{targetGroups: [{{targetGroupIdentifier: {name}-a}}]}}}}
          - name: to-function
            priority: 20
            match: {{httpMatch: {{pathMatch: {{match: {{exact: /to-function}}}}}}}}
            action: {{forward: {{targetGroups: [{{targetGroupIdentifier: {name}-b}}]}}}}
"""

    def groups(name):
        return "".join(f"""  - name: {name}-{s}
    type: INSTANCE
    config: {{port: {p}, protocol: HTTP, protocolVersion: HTTP1, healthCheck: {{enabled: false}}}}
    targets: [{{id: 127.0.0.1}}]
""" for s, p in (("a", a_port), ("b", b_port)))

    none, iam = AUTH_SERVICES.values()
    return f"""# The HTTP scenario's service twice: authType NONE and AWS_IAM with a 10-statement policy
# (requests signed by the default identity, test/test); no access logs, no health checks.
region: {AUTH_REGION}
vpcs:
  - name: client-vpc
    cidrs: [127.0.0.0/8]
serviceNetworks:
  - name: bench-network
    services: [{none}, {iam}]
    vpcs: [client-vpc]
services:
{service(none, "NONE")}{service(iam, "AWS_IAM")}targetGroups:
{groups(none)}{groups(iam)}"""


def signer_python():
    """The Python with botocore that tests/oracles/sign.py needs: SIGNER_PYTHON (bench/run.sh
    exports it), else what scripts/pyenv.sh prints (it installs botocore on first use)."""
    if os.environ.get("SIGNER_PYTHON"):
        return os.environ["SIGNER_PYTHON"]
    p = subprocess.run([os.path.join(ROOT, "scripts", "pyenv.sh")], capture_output=True, text=True,
                       timeout=900)
    if p.returncode != 0:
        raise BenchError(f"scripts/pyenv.sh failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return p.stdout.strip()


def sign(python, url, secret=AUTH_SECRET):
    """botocore's SigV4 headers for a GET of url, signed now in the Authorization header
    (tests/oracles/sign.py): Authorization, X-Amz-Date, X-Amz-Content-SHA256: UNSIGNED-PAYLOAD.
    The signed host is the URL's, port included, as oha and _get_h1 send it."""
    spec = {"mode": "sigv4", "method": "GET", "url": url, "key": AUTH_KEY, "secret": secret,
            "region": AUTH_REGION}
    p = subprocess.run([python, SIGN_PY], input=json.dumps(spec), capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        raise BenchError(f"signing {url} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return json.loads(p.stdout)["headers"]


def scenario_auth(args, workdir, cfgdir):
    record = {"scenario": "auth", "variants": []}
    python = signer_python()
    record["signer"] = subprocess.run([python, "-c", "import botocore; print(botocore.__version__)"],
                                      capture_output=True, text=True, timeout=60).stdout.strip()
    (a_srv, a_port), (b_srv, b_port) = start_backends(workdir, ["instance-a", "instance-b"])
    body_a, body_b = "Hello from the instance-a\n", "Hello from the instance-b\n"
    port = free_port()
    tcfg = write(os.path.join(cfgdir, "trellis-auth.yaml"), trellis_auth_yaml(port, a_port, b_port))
    trellis = Server("trellis", [TRELLIS, "up", "-f", tcfg, "--bind", LOOPBACK, "--drain-timeout", "1",
                                 "--state-dir", os.path.join(workdir, "state-auth")], workdir).start()
    none_host, iam_host = (f"{name}.trellis.localhost" for name in AUTH_SERVICES.values())
    record["startup_s"] = {"trellis": wait_http(trellis, port, "/to-instance", host=none_host)}
    time.sleep(1.0)
    record["idle_rss_kb"] = {"trellis": trellis.rss_kb()}

    def target(host, path="/", bodies=None):
        # host_header: host:port, what oha sends and the signature covers
        return {"host": host, "host_header": f"{host}:{port}", "port": port, "path": path,
                "proto": "h1", "tls": False, "body_len": len(body_a),
                "bodies": bodies or {body_a: 2 / 3, body_b: 1 / 3}}

    # The policy is in force and signatures are checked: anonymous and badly signed requests to
    # the AWS_IAM service are refused, before anything is measured.
    probe = target(iam_host)
    refusals = {}
    for label, headers in (("unsigned", {}),
                           ("signed with a wrong secret", sign(python, url_for(probe), secret="wrong"))):
        try:
            ((status, _, body),) = _get_h1({**probe, "headers": headers}, 1)
        except (OSError, http.client.HTTPException) as e:
            raise BenchError(f"correctness: {url_for(probe)} ({label}): {e!r}")
        if status != 403:
            raise BenchError(f"correctness: {url_for(probe)} ({label}): got status {status}, expected 403 "
                             f"(body {body[:200]!r})")
        refusals[label] = {"status": status, "body": body.decode(errors="replace")[:200]}
    record["refusals"] = refusals
    # the path rules on both services (signed for AWS_IAM)
    for host in (none_host, iam_host):
        for path, body in (("/to-instance", 'Hello from the instance-a at path "/to-instance"\n'),
                           ("/TO-FUNCTION", 'Hello from the instance-b at path "/TO-FUNCTION"\n')):
            t = target(host, path, {body: 1.0})
            if host == iam_host:
                t["headers"] = sign(python, url_for(t))
            check_answers(t, 3)

    iam = target(iam_host)
    same_bytes = target(none_host)

    def resign():
        iam["headers"] = sign(python, url_for(iam))

    def same_size():
        # a fresh signature's headers, `AWS4-…` renamed `XWS4-…`: not a signature any more
        # (Trellis authenticates only AWS4 schemes), the same bytes on the wire
        headers = sign(python, url_for(iam))
        same_bytes["headers"] = {k: ("X" + v[1:] if k.lower() == "authorization" else v)
                                 for k, v in headers.items()}

    none_side, iam_side = AUTH_SERVICES
    sides = [{"name": none_side, "server": trellis, "target": target(none_host)},
             {"name": AUTH_SAME_BYTES, "server": trellis, "target": same_bytes, "refresh": same_size},
             {"name": iam_side, "server": trellis, "target": iam, "refresh": resign}]
    if not args.rounds and not args.quick:
        args = argparse.Namespace(**{**vars(args), "rounds": AUTH_ROUNDS})
    measure_variant(args, "HTTP/1.1", sides, record)
    record["servers"] = server_info([trellis, a_srv, b_srv])
    for s in (trellis, a_srv, b_srv):
        s.stop()
    return record


# --------------------------------------------------------------------------------------------
# The AWS API (issue 16): writes per second (Trellis vs moto), registration to first request
# --------------------------------------------------------------------------------------------

API_LOAD_PY = os.path.join(BENCH, "api_load.py")
API_REGION = "us-west-2"
API_WRITES = ("CreateService", "CreateTargetGroup", "TagResource")


def fs_type(path):
    """The file system type of `path` (from /proc/mounts, the longest mount point above it)."""
    best, kind = "", "?"
    path = os.path.realpath(path)
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mnt, typ = parts[1], parts[2]
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                    best, kind = mnt, typ
    except OSError:
        pass
    return kind


def api_load(python, *argv, timeout=600):
    p = subprocess.run([python, API_LOAD_PY, *map(str, argv)], capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise BenchError(f"api_load.py {' '.join(map(str, argv[:1]))} failed ({p.returncode}):\n"
                         f"{(p.stdout + p.stderr)[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def wait_tcp(server, port, deadline_s=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s:
        if not server.alive():
            raise BenchError(f"{server.name} exited:\n{server.log_tail()}")
        try:
            socket.create_connection((LOOPBACK, port), timeout=1).close()
            return time.monotonic() - t0
        except OSError:
            time.sleep(0.02)
    raise BenchError(f"{server.name} did not listen on {port} within {deadline_s} s")


def scenario_api(args, workdir, cfgdir):
    record = {"scenario": "api"}
    python = signer_python()
    versions = subprocess.run(
        [python, "-c", "import boto3, moto; print(boto3.__version__, moto.__version__)"],
        capture_output=True, text=True, timeout=60)
    if versions.returncode != 0:
        raise BenchError("the virtualenv has no boto3 and moto (bench/run.sh installs moto[server]): "
                         + versions.stderr[-500:])
    record["boto3"], record["moto"] = versions.stdout.split()
    n = 20 if args.quick else 200
    rounds = args.rounds or (1 if args.quick else 3)
    tries = 10 if args.quick else 100
    record.update({"calls": n, "rounds": rounds, "tries": tries})

    (a_srv, a_port), (b_srv, b_port) = start_backends(workdir, ["instance-a", "instance-b"])
    port = free_port()
    # A placeholder service of the file listens on the port: the API's service shares it (a port
    # serves several services, told apart by host).
    tcfg = write(os.path.join(cfgdir, "trellis-api.yaml"),
                 f"# bench/bench.py api scenario: the API builds the rest\nregion: {API_REGION}\n"
                 f"services:\n  - name: placeholder\n    listeners:\n      - {{name: http, protocol: HTTP, "
                 f"port: {port}, defaultAction: {{fixedResponse: {{statusCode: 404}}}}}}\n")
    # The store on a disk, not on the tmpfs of the work directory: fsync must mean something.
    state = tempfile.mkdtemp(prefix="trellis-bench-api-state-", dir=os.path.join(BENCH, "results"))
    record["store_fs"] = fs_type(state)
    tadmin, mport = free_port(), free_port()
    trellis = Server("trellis", [TRELLIS, "up", "-f", tcfg, "--bind", LOOPBACK, "--drain-timeout", "1",
                                 "--admin", f"{LOOPBACK}:{tadmin}", "--state-dir", state], workdir).start()
    moto = Server("moto", [python, "-m", "moto.server", "-H", LOOPBACK, "-p", str(mport)], workdir).start()
    try:
        record["startup_s"] = {"trellis": wait_tcp(trellis, tadmin), "moto": wait_tcp(moto, mport)}
        endpoints = {"trellis": f"http://{LOOPBACK}:{tadmin}", "moto": f"http://{LOOPBACK}:{mport}"}
        runs = {"trellis": [], "moto": []}
        for r in range(rounds):
            for side in ("trellis", "moto"):
                out = api_load(python, "writes", endpoints[side], API_REGION, f"r{r}-", n)
                runs[side].append(out)
                log(f"[api] round {r + 1} {side}: " + ", ".join(
                    f"{op} {out[op]['per_s']:.0f}/s" for op in API_WRITES))
        record["writes"] = {side: {op: {
            "per_s": statistics.median(run[op]["per_s"] for run in rs),
            "median_ms": statistics.median(run[op]["median_ms"] for run in rs),
            "p99_ms": statistics.median(run[op]["p99_ms"] for run in rs),
            "rounds_per_s": [run[op]["per_s"] for run in rs]} for op in API_WRITES}
            for side, rs in runs.items()}
        record["store_kb"] = os.path.getsize(os.path.join(state, "api", "store.json")) / 1024
        reg = api_load(python, "register", endpoints["trellis"], API_REGION, port, a_port, b_port, tries)
        record["register"] = reg
        log(f"[api] RegisterTargets to first request: median {reg['median_ms']:.2f} ms, "
            f"p99 {reg['p99_ms']:.2f} ms over {tries} tries")
        record["servers"] = server_info([trellis, moto, a_srv, b_srv])
    finally:
        for srv in (trellis, moto, a_srv, b_srv):
            srv.stop()
        shutil.rmtree(state, ignore_errors=True)
    return record


# --------------------------------------------------------------------------------------------
# Internals: the criterion micro-benchmarks (scenario 6)
# --------------------------------------------------------------------------------------------

# (package, bench target): `cargo bench -p PACKAGE --bench TARGET`
CRITERION_BENCHES = [("trellis-router", "rules"), ("trellis-runtime", "event"), ("trellis-auth", "auth")]
# What each benchmark measures, in the report's words (criterion id -> text).
CRITERION_WHAT = {
    "route_100_rules/find_service": "find the service by host and port",
    "route_100_rules/first_rule_matches": "100 rules (method, path prefix, header), the first matches",
    "route_100_rules/last_rule_matches": "100 rules, the last matches",
    "route_100_rules/no_rule_matches_default_action": "100 rules, none matches (default action)",
    "lattice_event/encode_v2": "encode a V2 event (10 headers, 1 KB JSON body, query)",
    "lattice_event/encode_v1": "encode the same as V1",
    "lattice_event/decode_response": "decode a function's response (JSON body, 2 headers)",
    "auth/verify_sigv4_cached_key": "verify a SigV4 signature (botocore's GET), signing key cached",
    "auth/verify_sigv4a": "verify a SigV4A signature (awscrt's, ECDSA P-256)",
    "auth/authorize_10_statements": "evaluate a 10-statement auth policy (the last one allows)",
    "auth/verify_and_authorize": "both per request, as the router runs them (SigV4, cached key)",
}
# Issue 14's target for verify + authorize per request, in ns.
AUTH_TARGET_NS = 5000


def cargo_target_dir():
    """The workspace's target directory as cargo sees it (CARGO_TARGET_DIR honoured)."""
    p = subprocess.run([CARGO, "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise BenchError(f"cargo metadata failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout)["target_directory"]


def criterion_estimates(criterion_dir, since):
    """The benchmarks criterion measured since `since` (epoch s), in the order they ran: its
    <group>/<function>/new/{benchmark,estimates}.json (times in ns)."""
    found = []
    for dirpath, _dirs, files in os.walk(criterion_dir):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        path = os.path.join(dirpath, "estimates.json")
        mtime = os.path.getmtime(path)
        if mtime < since:
            continue  # from an earlier run (or a benchmark that no longer exists)
        est = json.load(open(path))
        meta = json.load(open(os.path.join(dirpath, "benchmark.json")))
        ci = lambda e: [e["confidence_interval"]["lower_bound"], e["confidence_interval"]["upper_bound"]]
        found.append((mtime, {
            "id": meta.get("full_id") or meta.get("title"),
            "group": meta.get("group_id"), "function": meta.get("function_id"),
            "median_ns": est["median"]["point_estimate"], "median_ci_ns": ci(est["median"]),
            "mean_ns": est["mean"]["point_estimate"], "mean_ci_ns": ci(est["mean"]),
            "confidence_level": est["median"]["confidence_interval"].get("confidence_level"),
            "std_dev_ns": est.get("std_dev", {}).get("point_estimate"),
        }))
    return [b for _, b in sorted(found, key=lambda x: x[0])]


def scenario_internals(args, workdir, cfgdir):
    """cargo bench for each criterion target: built first (timed apart), then run; criterion's
    own defaults in a full run (3 s warm-up, 5 s measurement, 100 samples), short in QUICK."""
    record = {"scenario": "internals", "benches": [], "runs": []}
    crit_args = ["--noplot"] + (["--warm-up-time", "1", "--measurement-time", "2"] if args.quick else [])
    target_dir = cargo_target_dir()
    criterion_dir = os.environ.get("CRITERION_HOME") or os.path.join(target_dir, "criterion")
    record["criterion_dir"] = criterion_dir
    for pkg, bench in CRITERION_BENCHES:
        base = [CARGO, "bench", "-p", pkg, "--bench", bench]
        t0 = time.time()
        # cargo's and criterion's output go to stderr as they come (a first build takes minutes)
        p = subprocess.run(base + ["--no-run"], cwd=ROOT, env=SERVER_ENV, stdout=sys.stderr,
                           stderr=sys.stderr, timeout=3600)
        if p.returncode != 0:
            raise BenchError(f"{' '.join(base)} --no-run failed ({p.returncode}): see cargo's output above")
        built = time.time() - t0
        argv = base + ["--"] + crit_args
        since = time.time()
        ours0, busy0, t1 = cpu_seconds(os.getpid()), machine_busy_seconds(), time.monotonic()
        p = subprocess.run(argv, cwd=ROOT, env=SERVER_ENV, stdout=sys.stderr, stderr=sys.stderr, timeout=1800)
        wall = time.monotonic() - t1
        # cpu_seconds counts this process and its reaped children (cargo, the bench binary)
        ours = cpu_seconds(os.getpid()) - ours0
        foreign = max(0.0, machine_busy_seconds() - busy0 - ours) / (wall * (os.cpu_count() or 1))
        if p.returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed ({p.returncode}): see its output above")
        benches = criterion_estimates(criterion_dir, since)
        if not benches:
            raise BenchError(f"{' '.join(argv)}: criterion wrote no estimates under {criterion_dir}")
        for b in benches:
            b.update({"package": pkg, "bench": bench, "what": CRITERION_WHAT.get(b["id"])})
            log(f"[internals] {b['id']}: median {fmt_ns(b['median_ns'])} "
                f"[{fmt_ns(b['median_ci_ns'][0])} {fmt_ns(b['median_ci_ns'][1])}]")
        record["benches"] += benches
        record["runs"].append({"command": " ".join(argv), "build_s": built, "run_s": wall,
                               "foreign_cpu_share": foreign})
    return record


def fmt_ns(ns):
    if ns is None:
        return "–"
    if ns < 1000:
        return f"{ns:.0f} ns" if ns >= 100 else f"{ns:.1f} ns"
    if ns < 1e6:
        return f"{ns / 1000:.2f} µs"
    return f"{ns / 1e6:.2f} ms"


def startup_once(name, argv, workdir, port, path, host, deadline_s=120):
    s = Server(name, argv, workdir).start()
    try:
        t = wait_http(s, port, path, host=host, deadline_s=deadline_s)
        time.sleep(0.5)
        rss = s.rss_kb()
    finally:
        s.stop()
    return t, rss


def scenario_footprint(args, workdir, cfgdir):
    record = {"scenario": "footprint"}
    reps = 1 if args.quick else 3
    # 1. start-up of the wasm config: cold (empty state dir) and warm (the same state dir again)
    tport = free_port()
    tcfg = write(os.path.join(cfgdir, "trellis-footprint-wasm.yaml"), trellis_wasm_yaml(tport))
    fh = "functions.trellis.localhost"
    cold, warm = [], []
    for i in range(reps):
        state = os.path.join(workdir, f"state-footprint-{i}")
        argv = [TRELLIS, "up", "-f", tcfg, "--bind", LOOPBACK, "--drain-timeout", "1", "--state-dir", state]
        cold.append(startup_once("trellis-cold", argv, workdir, tport, "/wasm/hi", fh))
        warm.append(startup_once("trellis-warm", argv, workdir, tport, "/wasm/hi", fh))
        log(f"[footprint] wasm config start-up: cold {cold[-1][0] * 1000:.0f} ms, warm {warm[-1][0] * 1000:.0f} ms")
    record["wasm_startup_cold_s"] = [t for t, _ in cold]
    record["wasm_startup_warm_s"] = [t for t, _ in warm]
    record["wasm_idle_rss_kb"] = [r for _, r in warm]
    record["wasm_idle_rss_cold_kb"] = [r for _, r in cold]

    # 2. the HTTP config (walkthrough shape) and the generated 100 services / 1000 targets
    backends = start_backends(workdir, [f"instance-{i}" for i in range(10)])
    bports = [p for _, p in backends]
    cert, key, _ = tls_material(workdir)
    p = {"h1": free_port(), "tls": free_port()}
    small = write(os.path.join(cfgdir, "trellis-footprint-http.yaml"),
                  trellis_http_yaml(p, bports[0], bports[1], cert, key))
    gport = free_port()
    big = write(os.path.join(cfgdir, "trellis-generated-100x1000.yaml"), generated_yaml(gport, bports))
    res = {}
    for label, cfg, port, path, host in (
            ("walkthrough shape", small, p["h1"], "/to-instance", HOST),
            ("100 services / 1000 targets", big, gport, "/", "bench-099.trellis.localhost")):
        ts, rss = [], []
        for i in range(reps):
            argv = [TRELLIS, "up", "-f", cfg, "--bind", LOOPBACK, "--drain-timeout", "1",
                    "--state-dir", os.path.join(workdir, f"state-{gport}-{i}")]
            t, r = startup_once("trellis-startup", argv, workdir, port, path, host)
            ts.append(t)
            rss.append(r)
        res[label] = {"startup_s": ts, "idle_rss_kb": rss}
        log(f"[footprint] {label}: start-up {statistics.median(ts) * 1000:.0f} ms, idle RSS "
            f"{statistics.median(rss) / 1024:.1f} MiB")

    # 3. load on the generated config: peak RSS and throughput against service 99 of 100
    argv = [TRELLIS, "up", "-f", big, "--bind", LOOPBACK, "--drain-timeout", "1",
            "--state-dir", os.path.join(workdir, "state-big-load")]
    s = Server("trellis-generated", argv, workdir).start()
    wait_http(s, gport, "/", host="bench-099.trellis.localhost")
    bodies = {f"Hello from the instance-{i}\n": 0.1 for i in range(10)}
    target = {"host": "bench-099.trellis.localhost", "port": gport, "path": "/", "proto": "h1",
              "tls": False, "bodies": bodies, "body_len": len("Hello from the instance-0\n")}
    check_answers(target, 100)
    secs = args.seconds or (2 if args.quick else 10)
    r = run_oha(target, secs, args.concurrency, servers=[s])
    res["100 services / 1000 targets"]["load"] = {
        "rps": r["rps"], "cpu_s_per_10k": r["cpu_s"][s.name] / r["requests"] * 10000,
        "peak_rss_kb": s.hwm_kb(), "command": " ".join(r["argv"])}
    check_answers(target, 100)
    s.stop()
    log(f"[footprint] generated config under load: {r['rps']:.0f} req/s, peak RSS {s_hwm_mib(res)} MiB")
    record["configs"] = res
    for b, _ in backends:
        b.stop()
    return record


def s_hwm_mib(res):
    return f"{res['100 services / 1000 targets']['load']['peak_rss_kb'] / 1024:.1f}"


# --------------------------------------------------------------------------------------------
# Report: docs/BENCHMARKS.md (the generated part), charts
# --------------------------------------------------------------------------------------------

def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass

    def version(argv, pattern=None):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            text = (p.stdout + p.stderr).strip()
            if pattern:
                m = re.search(pattern, text)
                return m.group(0) if m else text.splitlines()[0]
            return text.splitlines()[0] if text else "?"
        except (OSError, subprocess.TimeoutExpired):
            return "not found"

    rev = os.environ.get("TRELLIS_REV")  # set when TRELLIS is a build of another tree
    try:
        if rev:
            raise OSError
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        rev += " (with uncommitted changes)" if dirty else ""
    except OSError:
        rev = rev or "?"
    distro = ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {
        "cores": os.cpu_count(), "model": model, "memory": mem, "kernel": platform.release(),
        "os": distro, "trellis": f"{version([TRELLIS, '--version'])}, git {rev}",
        "nginx": version([NGINX, "-v"], r"nginx/[\d.]+"),
        "haproxy": version([HAPROXY, "-v"], r"HAProxy version [\w.\-+~]+"),
        "oha": version([OHA, "--version"]), "wasmtime": version([WASMTIME, "--version"]),
        "docker": docker_version(),
    }


def built_from(binary):
    """The commit a Trellis binary says it was built from (`trellis --version`, stamped by
    build.rs): a short hash, `-modified` appended for a tree with uncommitted changes; None when
    it says nothing."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    m = re.search(r"\(([0-9a-f]{7,40}(?:-modified)?)\)", out)
    return m.group(1) if m else None


def check_binary_is_checkout():
    """Stops the run when TRELLIS was built from another commit than the checkout's: a cargo
    build can keep a stale binary (a second tree built into the same CARGO_TARGET_DIR counts as
    fresh), and a run would then measure other code than it reports. TRELLIS_REV names the tree
    of a binary measured on purpose and skips the check."""
    if os.environ.get("TRELLIS_REV"):
        return
    built = built_from(TRELLIS)
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except OSError:
        head = ""
    if not built or not head:
        log(f"cannot tell which commit {TRELLIS} was built from (built from {built or '?'}, "
            f"checkout {head or '?'})")
        return
    if built.removesuffix("-modified") != head:
        sys.exit(f"bench: {TRELLIS} was built from {built}, but the checkout is at {head}: rebuild it "
                 f"(make bench does), or set TRELLIS_REV to measure another tree's binary on purpose")
    if built.endswith("-modified"):
        log(f"{TRELLIS} was built from {head} with uncommitted changes, which this check cannot "
            f"compare with the working tree: build it from the tree you measure (make bench does)")


def docker_version():
    """The engine's version, None when there is no reachable engine."""
    try:
        p = docker("version", "--format", "{{.Server.Version}}", timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else None


def short(cmd, workdir=None):
    """A command line as shown in the report: paths relative to the repository, the run's
    temporary directory as $WORK."""
    text = " ".join(cmd) if isinstance(cmd, list) else cmd
    text = re.sub(r"/(?:dev/shm|tmp)/trellis-bench-[\w]+", "$WORK", text)
    return text.replace(ROOT + "/", "")


def fmt(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def ratio(num, den, invert=False):
    if not num or not den:
        return "–"
    return f"{(den / num) if invert else (num / den):.2f}×"


def round_ratios(row, base):
    """A side's throughput over the base side's, round by round: the two ran next to each other
    in each round, so these pairs show how much of a ratio is the machine's drift."""
    a, b = row.get("rps_runs") or [], base.get("rps_runs") or []
    if row is base or not a or len(a) != len(b) or not all(b):
        return "–"
    return " / ".join(f"{x / y:.2f}" for x, y in zip(a, b))


def variant_table(v, base_name, servers):
    rows = v["rows"]
    base = next((r for r in rows if r["side"] == base_name), rows[0])
    out = ["| side | req/s (c=%d) | ÷ %s | by round | p50 ms | p99 ms | p99.9 ms | p99 ÷ %s | CPU s / 10k req | peak RSS MiB | errors |"
           % (v["concurrency"], base["side"], base["side"]),
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        srv = servers.get(r.get("server_name", ""), {})
        rss = r.get("peak_rss_kb")
        out.append("| {side} | {rps} | {rr} | {byround} | {p50} | {p99} | {p999} | {lr} | {cpu} | {rss} | {err} |".format(
            side=r["side"] + (" (ceiling)" if r["ceiling"] else ""),
            rps=fmt(r["rps"]), rr=ratio(r["rps"], base["rps"]), byround=round_ratios(r, base),
            p50=fmt(r["p50_ms"], 3), p99=fmt(r["p99_ms"], 3), p999=fmt(r["p999_ms"], 3),
            lr=ratio(r["p99_ms"], base["p99_ms"]),
            cpu=fmt(r["cpu_s_per_10k"], 2),
            rss=fmt(rss / 1024, 1) if rss else "–", err=r["errors"]))
    return out


def charts(results, outdir, prefix):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is missing: no charts")
        return {}
    os.makedirs(outdir, exist_ok=True)
    made = {}
    for rec in results:
        if "variants" not in rec:
            continue
        name = rec["scenario"]
        variants = rec["variants"]
        sides = []
        for v in variants:
            for r in v["rows"]:
                if r["side"] not in sides:
                    sides.append(r["side"])
        # throughput: grouped bars per variant
        fig, ax = plt.subplots(figsize=(8, 4.2))
        width = 0.8 / max(1, len(sides))
        for i, side in enumerate(sides):
            xs, ys = [], []
            for j, v in enumerate(variants):
                row = next((r for r in v["rows"] if r["side"] == side), None)
                if row and row["rps"]:
                    xs.append(j + i * width)
                    ys.append(row["rps"])
            bars = ax.bar(xs, ys, width, label=side)
            ax.bar_label(bars, labels=[f"{y / 1000:.1f}k" for y in ys], fontsize=7)
        ax.set_xticks([j + width * (len(sides) - 1) / 2 for j in range(len(variants))])
        ax.set_xticklabels([v["variant"] for v in variants])
        concs = {v["concurrency"] for v in variants}
        ax.set_ylabel("requests/s (closed loop, c=%d)" % variants[0]["concurrency"] if len(concs) == 1
                      else "requests/s (closed loop)")
        ax.set_title(f"{name}: throughput (higher is better)")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = os.path.join(outdir, f"{prefix}{name}-throughput.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made[f"{name}-throughput"] = path
        # latency: p50 / p99 / p99.9 per side, one panel per variant
        fig, axes = plt.subplots(1, len(variants), figsize=(4 * len(variants), 4.2), squeeze=False)
        for ax, v in zip(axes[0], variants):
            labels = [r["side"] for r in v["rows"]]
            for k, (key, lab) in enumerate((("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9"))):
                vals = [r[key] or 0 for r in v["rows"]]
                ax.bar([i + k * 0.27 for i in range(len(labels))], vals, 0.27, label=lab)
            ax.set_xticks([i + 0.27 for i in range(len(labels))])
            ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
            ax.set_yscale("log")
            ax.set_title(f"{v['variant']} at {v['rate']:,} req/s", fontsize=9)
            ax.grid(axis="y", alpha=0.3, which="both")
        axes[0][0].set_ylabel("latency ms (open loop, log scale)")
        axes[0][0].legend(fontsize=8)
        fig.suptitle(f"{name}: latency (lower is better)")
        fig.tight_layout()
        path = os.path.join(outdir, f"{prefix}{name}-latency.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made[f"{name}-latency"] = path
    return made


BEGIN = "<!-- BEGIN GENERATED by bench/bench.py: do not edit by hand -->"
END = "<!-- END GENERATED -->"


def spread(xs, scale=1000.0):
    """min / median / max of seconds, in ms: 0.1 ms resolution below 10 ms."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    f = lambda v: f"{v * scale:.1f}" if v * scale < 10 else f"{v * scale:,.0f}"
    return " / ".join(f(v) for v in (min(xs), statistics.median(xs), max(xs)))


def report_functions(rec, chart_paths, doc_dir):
    kinds = rec.get("kinds", ["process"])
    n = rec.get("environments")
    L = ["### Process and container functions (Lambda Runtime API)", ""]
    img = rec.get("image") or {}
    L += [f"`hello-lambda` (the official `lambda_runtime` crate, V2 events) as a `process` function "
          f"(the native binary) and as a `container` function (the same program linked statically "
          f"with musl, `FROM scratch`, {img.get('size_bytes', 0) / 1e6:.1f} MB, Docker "
          f"{rec.get('docker', '?')}), one path rule each in one Trellis; {n} environments per "
          f"function, all provisioned at start-up, so no warm run pays a cold start; at client "
          f"concurrency 64, {n} invocations run at a time and the others wait in Trellis's queue."
          if "container" in kinds else
          f"`hello-lambda` as a `process` function, {n} environments provisioned at start-up."]
    if rec.get("container_skipped"):
        L += ["", f"**Container functions skipped**: {rec['container_skipped']}."]
    if rec.get("container_cpu_unmeasured"):
        L += ["", f"Container CPU and memory not measured: {rec['container_cpu_unmeasured']}."]
    L.append("")
    v0 = rec["variants"][0] if rec["variants"] else None
    if v0:
        L += [f"Warm invocations — throughput and latency closed loop (each connection sends its next "
              f"request when the answer arrived; what a client at that concurrency sees), median of "
              f"{v0['rounds']} × {v0['seconds']} s{', the two functions alternating' if len(kinds) > 1 else ''}; "
              f"open loop: at a fixed rate (30 % of the slower function's closed-loop rate at that concurrency) with latency "
              f"correction. CPU per 10k requests: Trellis's own process; the function's {n} "
              f"environments (processes: Trellis's children; containers: each container's process, "
              f"read through its host pid); the Docker engine (dockerd, containerd and the "
              f"containers' shims: they carry each container's stdout/stderr to Trellis).", "",
              "| function | clients | req/s | p50 ms | p99 ms | p99.9 ms | open loop: rate, p50 / p99 ms "
              "| CPU s / 10k req: Trellis | environments | Docker engine | errors |",
              "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for v in rec["variants"]:
            for r in v["rows"]:
                by = r.get("cpu_s_per_10k_by", {})
                L.append(f"| {r['side']} | {v['concurrency']} | {fmt(r['rps'])} | {fmt(r['closed_p50_ms'], 3)} | "
                         f"{fmt(r['closed_p99_ms'], 3)} | {fmt(r.get('closed_p999_ms'), 3)} | "
                         f"{v['rate']:,}/s: {fmt(r['p50_ms'], 3)} / {fmt(r['p99_ms'], 3)} | "
                         f"{fmt(by.get('trellis only'), 2)} | {fmt(by.get(r['side'] + ' environments'), 2)} | "
                         f"{fmt(by.get('docker engine'), 2) if r['side'] == 'container' else '–'} | {r['errors']} |")
        fc = [v.get("foreign_cpu_share", {}).get("max", 0) for v in rec["variants"]]
        L += ["", f"Other processes on the machine (not this benchmark) used at most {max(fc):.0%} of its "
                  f"CPU during these measurements (dockerd and containerd count as the benchmark's "
                  f"when they serve its containers)."]
    pk, idle = rec.get("peak_rss_kb", {}), rec.get("idle_rss_kb", {})
    mib = lambda kb: f"{kb / 1024:.1f} MiB" if kb else "–"
    parts = [f"Trellis {mib(pk.get('trellis'))} (idle {mib(idle.get('trellis'))})"]
    for kind in kinds:
        parts.append(f"the {n} {kind} environments together {mib(pk.get(kind + ' environments'))} "
                     f"(idle {mib(idle.get(kind + ' environments'))})")
    if pk.get("containerd-shim"):
        parts.append(f"their {n} containerd-shim processes {mib(pk['containerd-shim'])}")
    L += ["", "Peak RSS (VmHWM, at the end of the warm runs): " + "; ".join(parts) +
          ". dockerd and containerd are not counted (shared by every container)."]
    replaced = {k: v for k, v in rec.get("environments_replaced", {}).items() if v}
    if replaced or any(rec.get("warm_cold_starts", {}).values()):
        L += ["", f"During the warm runs, environments replaced: {replaced or 0}; invocations with a cold "
                  f"start: {rec.get('warm_cold_starts')}."]
    L.append("")
    for key in ("functions-throughput", "functions-latency"):
        if key in chart_paths:
            L.append(f"![{key}]({os.path.relpath(chart_paths[key], doc_dir)})")
    L.append("")
    up, new = rec.get("cold_after_up", {}), rec.get("cold_new_environment", {})
    burst = rec.get("cold_burst", {})
    reps = max([len(x) for x in list(up.values()) + list(new.values())] or [0])
    L += [f"Cold starts, min / median / max of {reps} runs, ms. After `trellis up`: a fresh Trellis "
          f"(empty state directory, no provisioned environment) per run; \"ready\" is the time from "
          f"spawning it to its `trellis: ready` line, then one request is sent: its duration is the "
          f"cold start a user sees. New environment: one running Trellis with `idleTimeout: 1`; "
          f"before each request the previous environment was stopped (waited for on `/metrics`), so "
          f"each request starts a new one. Burst: one provisioned environment of at most 2 is kept busy "
          f"by a request to `/hold` (hello-lambda holds it 1 s) and a second request meanwhile needs a "
          f"new one; its duration is the column. Init Duration is Trellis's "
          f"`trellis_function_init_duration_seconds` (launch → the runtime's first `/next`).", "",
          "| function | spawn → ready | first request after ready | spawn → first response | its Init Duration "
          "| first request to a new environment | its Init Duration | burst: request that needs one more "
          "environment | its Init Duration |",
          "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for kind in kinds:
        a, b, c = up.get(kind, []), new.get(kind, []), burst.get(kind, [])
        L.append(f"| {kind} | {spread([r['ready_s'] for r in a])} | {spread([r['first_request_s'] for r in a])} | "
                 f"{spread([r['to_first_response_s'] for r in a])} | {spread([r['init_s'] for r in a])} | "
                 f"{spread([r['request_s'] for r in b])} | {spread([r['init_s'] for r in b])} | "
                 f"{spread([r['request_s'] for r in c])} | {spread([r['init_s'] for r in c])} |")
    warm_cold = [r for k in ("container", "process") for r in new.get(k, []) + burst.get(k, [])
                 if r.get("cold_starts") != 1]
    if warm_cold:
        L += ["", f"{len(warm_cold)} of the new-environment and burst requests did not count exactly one cold start "
                  f"on `/metrics`: {warm_cold}"]
    # the issue's targets, held against this run
    row = lambda kind, c: next((r for v in rec["variants"] if v["concurrency"] == c
                                for r in v["rows"] if r["side"] == kind), None)
    checks = []
    warm = row("container", 1)
    if warm:
        ok = warm["closed_p50_ms"] < 2
        checks.append(f"warm container invocation p50 under 2 ms end to end: {warm['closed_p50_ms']:.2f} ms "
                      f"at 1 client ({'met' if ok else 'NOT met'})")
    if up.get("container"):
        med = statistics.median(r["first_request_s"] for r in up["container"]) * 1000
        checks.append(f"cold start of a FROM scratch container function under 500 ms: {med:.0f} ms median, "
                      f"first request after `trellis up` ({'met' if med < 500 else 'NOT met'})")
    if checks:
        L += ["", "Targets (issue 5): " + "; ".join(checks) + "."]
    L += ["", "Published figures of the local Lambda emulators people use instead — **quoted, not run "
              "here** (other machines, Python/Node.js handlers, invoked through the Lambda API rather "
              "than HTTP), for the order of magnitude only:", "",
          "| tool | warm invocation | cold start | source |", "|---|---|---|---|"]
    for kind in kinds:
        w, a = row(kind, 1), up.get(kind, [])
        L.append(f"| Trellis {kind} function (this run) | p50 {fmt(w['closed_p50_ms'], 2) if w else '–'} ms, "
                 f"p99 {fmt(w['closed_p99_ms'], 2) if w else '–'} ms (1 client) | "
                 f"{spread([r['first_request_s'] for r in a])} ms (min / median / max) | this page |")
    for p in rec.get("published", PUBLISHED):
        L.append(f"| {p['tool']} | {p['warm']} | {p['cold']} | [{p['source'].split('github.com/')[1]}]"
                 f"({p['source']}): {p['note']} |")
    L += ["", "<details><summary>Exact commands and configs</summary>", "", "```sh",
          short(rec["servers"]["trellis"]["argv"]) if rec.get("servers") else ""]
    for v in rec["variants"]:
        for side, cmds in v["commands"].items():
            L += [f"# {v['variant']} — {side}", short(cmds["throughput"]), short(cmds["latency"])]
    if img.get("dockerfile"):
        L += [f"# the image ({FN_IMAGE}): docker build -t {FN_IMAGE} DIR, DIR/bootstrap being the musl hello-lambda"]
        L += ["#   " + line for line in img["dockerfile"].splitlines()]
    cfgs = short(rec.get("configs_dir", "bench/results/configs"))
    L += ["```", "", f"Configs in `{cfgs}/`: `trellis-functions.yaml` (warm), `trellis-cold-process.yaml` and "
              f"`trellis-cold-container.yaml` (after `trellis up`), `trellis-idle.yaml` (new environment), `trellis-burst.yaml` (burst).",
          "", "</details>", ""]
    return L


def report_auth(rec, chart_paths, doc_dir):
    L = ["### Auth: AWS_IAM with signed requests vs NONE", ""]
    servers = rec.get("servers", {})
    refused = "; ".join(f"{label}: {r['status']} `{r['body'].strip()[:60]}`"
                        for label, r in rec.get("refusals", {}).items())
    L += [f"One Trellis serves the HTTP scenario's service twice on one port, told apart by host "
          f"(`bench/results/configs/trellis-auth.yaml`): `authType: NONE`, and `authType: AWS_IAM` with a "
          f"10-statement auth policy (the criterion benchmark's: nine statements about other principals, "
          f"paths, methods, a header and a source range, none matching, then \"authenticated only\"), over "
          f"the same two `hello-instance` backends. Requests to the AWS_IAM service carry a SigV4 "
          f"signature (header, `test`/`test`, the default identity) made by botocore "
          f"{rec.get('signer', '?')} (`tests/oracles/sign.py`) just before each run and sent unchanged "
          f"with every request of the run (SigV4 has no replay protection; a signature is valid for "
          f"5 minutes); requests to the NONE one are unsigned: plain (`NONE`), and with the signed "
          f"requests' headers, their `Authorization` scheme renamed `XWS4-…` so that they are no "
          f"signature (`{AUTH_SAME_BYTES}`: the same bytes for the load generator to write and the "
          f"backends to read, so Trellis's auth work is the one difference). Before measuring, the AWS_IAM service "
          f"refused — {refused}. Both rows are the same Trellis process: one peak RSS. Run "
          f"{rec.get('finished', '?')}, {rec.get('machine', {}).get('trellis', '?')}.", ""]
    for v in rec["variants"]:
        for r in v["rows"]:
            r["server_name"] = "trellis"
            r["peak_rss_kb"] = servers.get("trellis", {}).get("peak_rss_kb")
        L += [f"**{v['variant']}** — throughput: closed loop, {v['concurrency']} connections, "
              f"median of {v['rounds']} × {v['seconds']} s; latency: open loop at "
              f"{v['rate']:,} req/s with latency correction, median of {v['rounds']} × {v['seconds']} s.", ""]
        none_side, iam_side = AUTH_SERVICES
        L += variant_table(v, none_side, servers)
        fc = v.get("foreign_cpu_share")
        if fc:
            L += ["", f"Other processes on the machine (not this benchmark) used a median {fc['median']:.0%} "
                      f"(at most {fc['max']:.0%}) of its CPU during these measurements."]
        rows = {r["side"]: r for r in v["rows"]}
        none, same, iam = rows.get(none_side), rows.get(AUTH_SAME_BYTES), rows.get(iam_side)
        if same and iam and same["rps"] and iam["rps"] and none and none["rps"]:
            r = iam["rps"] / same["rps"]
            paired = statistics.median(a / b for a, b in zip(iam["rps_runs"], same["rps_runs"]))
            plain = iam["rps"] / none["rps"]
            L += ["", f"Target (issue 14): the AWS_IAM service's throughput with signed requests within "
                      f"10 % of the same service with NONE. Against NONE sent requests of the same size "
                      f"(the side whose only difference is Trellis's auth work): {r:.2f}× (median of the "
                      f"rounds' ratios {paired:.2f}×) — {'met' if min(r, paired) >= 0.9 else 'NOT met'}. "
                      f"Against NONE with plain unsigned requests, which also costs the load generator "
                      f"and the backends on the same two cores the signed requests' extra ≈ 300 bytes: "
                      f"{plain:.2f}×."]
        elif none and iam and none["rps"] and iam["rps"]:
            r = iam["rps"] / none["rps"]
            L += ["", f"Target (issue 14): the AWS_IAM service's throughput with signed requests within "
                      f"10 % of the same service with NONE: {r:.2f}× ({'met' if r >= 0.9 else 'NOT met'})."]
        L.append("")
    for key in ("auth-throughput", "auth-latency"):
        if key in chart_paths:
            L.append(f"![{key}]({os.path.relpath(chart_paths[key], doc_dir)})")
    L += ["", "<details><summary>Exact commands</summary>", "", "```sh"]
    for name, srv in servers.items():
        L += [f"# {name}", short(srv["argv"])]
    for v in rec["variants"]:
        for side, cmds in v["commands"].items():
            signed = (" (with the last run's signature)" if side == list(AUTH_SERVICES)[1]
                      else " (with the last run's headers)" if side == AUTH_SAME_BYTES else "")
            L += [f"# {v['variant']} — {side}{signed}", short(cmds["throughput"]), short(cmds["latency"])]
    L += ["```", "", "</details>", ""]
    return L


def report_api(rec):
    L = ["### The AWS API: writes per second (Trellis vs moto), RegisterTargets to first request", ""]
    servers = rec.get("servers", {})
    L += [f"boto3 {rec.get('boto3', '?')} against one Trellis (`bench/results/configs/trellis-api.yaml`, "
          f"its API store on {rec.get('store_fs', '?')}: every acknowledged write rewrites `store.json` "
          f"and fsyncs it and its directory) and, as the peer, moto {rec.get('moto', '?')}'s server "
          f"(`moto[server]`, the only other local Lattice API: objects in memory, nothing routed). "
          f"{rec['calls']} calls of each operation both implement, one after the other on one client "
          f"(each waits for the previous answer), median of {rec['rounds']} rounds. The store held "
          f"{rec.get('store_kb', 0):.0f} KB at the end (each round deletes what it made; the answers to the last 1,000 creates stay, for their clientToken). Run "
          f"{rec.get('finished', '?')}, {rec.get('machine', {}).get('trellis', '?')}.", "",
          "| operation | Trellis calls/s | Trellis median / p99 ms | moto calls/s | moto median / p99 ms |",
          "|---|--:|--:|--:|--:|"]
    w = rec.get("writes", {})
    for op in API_WRITES:
        t, m = w.get("trellis", {}).get(op), w.get("moto", {}).get(op)
        cell = lambda r: (f"{r['per_s']:.0f}", f"{r['median_ms']:.1f} / {r['p99_ms']:.1f}") if r else ("–", "–")
        (tr, tl), (mr, ml) = cell(t), cell(m)
        L.append(f"| {op} | {tr} | {tl} | {mr} | {ml} |")
    reg = rec.get("register")
    if reg:
        L += ["", f"RegisterTargets to the first request served by the new target (Trellis; moto routes "
                  f"nothing): median {reg['median_ms']:.2f} ms, p99 {reg['p99_ms']:.2f} ms over "
                  f"{len(reg['samples_ms'])} tries. Each try registers `hello-instance` B beside A in a "
                  f"group without health checks (in service at once) behind the API's listener, then sends "
                  f"requests one after the other from the answer until B answers one (round robin: "
                  f"{statistics.median(reg['requests_until_served']):.0f} requests, median), then "
                  f"deregisters B and waits until B gets nothing."]
    L += ["", "<details><summary>Exact commands</summary>", "", "```sh"]
    for name, srv in servers.items():
        L += [f"# {name}", short(srv["argv"])]
    L += [f"# load (the virtualenv's Python): bench/api_load.py writes ENDPOINT {API_REGION} rN- {rec['calls']}",
          f"# bench/api_load.py register ENDPOINT {API_REGION} PORT A_PORT B_PORT {rec['tries']}",
          "```", "", "</details>", ""]
    return L


def report_internals(rec):
    L = ["### Internals: criterion micro-benchmarks", ""]
    runs = rec.get("runs", [])
    L += ["`cargo bench` of each criterion target, release profile; the estimates are criterion's "
          "(bootstrap over the samples), read from its `new/estimates.json`: the median time per "
          "iteration with its confidence interval, and the mean.", "",
          f"| micro-benchmark | criterion id | median | {int((rec['benches'][0].get('confidence_level') or 0.95) * 100) if rec.get('benches') else 95} % CI of the median | mean |",
          "|---|---|--:|--:|--:|"]
    for b in rec.get("benches", []):
        L.append(f"| {b.get('what') or b['id']} | `{b['id']}` | {fmt_ns(b['median_ns'])} | "
                 f"{fmt_ns(b['median_ci_ns'][0])} – {fmt_ns(b['median_ci_ns'][1])} | {fmt_ns(b['mean_ns'])} |")
    both = next((b for b in rec.get("benches", []) if b["id"] == "auth/verify_and_authorize"), None)
    if both:
        met = both["median_ci_ns"][1] < AUTH_TARGET_NS
        L += ["", f"Target (issue 14): verify + authorize per request under {fmt_ns(AUTH_TARGET_NS)} with a "
                  f"cached signing key and a 10-statement policy: {fmt_ns(both['median_ns'])} median, "
                  f"{fmt_ns(both['median_ci_ns'][1])} at the top of its confidence interval "
                  f"({'met' if met else 'NOT met'})."]
    if runs:
        fc = max(r.get("foreign_cpu_share", 0) for r in runs)
        L += ["", f"Other processes used at most {fc:.0%} of the machine's CPU during these runs. Commands "
                  f"(`CARGO_TARGET_DIR` honoured; results in `{short(rec.get('criterion_dir', ''))}`):", "",
              "```sh"] + [short(r["command"]) for r in runs] + ["```"]
    L.append("")
    return L


def report(results, meta, doc_path, chart_paths, quick):
    doc_dir = os.path.dirname(doc_path)
    L = []
    L.append(f"Generated {meta['finished']} by `{meta['command']}` ({meta['duration_s'] / 60:.1f} min of scenarios)"
             + (" — **QUICK smoke run: numbers are not meaningful**" if quick else "") + ".")
    L.append("")
    m = meta["machine"]
    L += ["### Machine", "",
          f"- {m['cores']} cores, {m['model']}, {m['memory']} RAM; {m['os']}, Linux {m['kernel']}",
          f"- {m['trellis']}",
          f"- {m['nginx']}; {m['haproxy']}; {m['oha']}; {m['wasmtime']}"
          + (f"; Docker {m['docker']}" if m.get("docker") else ""),
          "- Load generator, servers and backends share the same cores (loopback only).", ""]
    for rec in results:
        sc = rec["scenario"]
        if sc in ("http", "wasm"):
            title = {"http": "HTTP routing: Trellis vs nginx vs HAProxy",
                     "wasm": "Wasm functions: Trellis vs wasmtime serve"}[sc]
            L += [f"### {title}", ""]
            if rec.get("rerun_variants"):
                L += ["Variants " + ", ".join(rec["rerun_variants"]) + " are from a later run "
                      "(`bench/run.sh --only http --variants …`) than the others.", ""]
            servers = rec.get("servers", {})
            base = "trellis" if sc == "http" else "trellis wasi:http"
            for v in rec["variants"]:
                for r in v["rows"]:
                    srvname = {"trellis": "trellis", "nginx": "nginx", "haproxy": "haproxy",
                               "trellis baseline": "trellis-baseline",
                               "backend direct": "hello-instance-a", "trellis wasi:http": "trellis",
                               "wasmtime serve": "wasmtime-serve", "trellis event": "trellis"}.get(r["side"])
                    r["server_name"] = srvname
                    r["peak_rss_kb"] = servers.get(srvname, {}).get("peak_rss_kb")
                L += [f"**{v['variant']}** — throughput: closed loop, {v['concurrency']} connections, "
                      f"median of {v['rounds']} × {v['seconds']} s; latency: open loop at "
                      f"{v['rate']:,} req/s with latency correction, median of {v['rounds']} × {v['seconds']} s.", ""]
                L += variant_table(v, base, servers)
                fc = v.get("foreign_cpu_share")
                if fc:
                    L.append("")
                    L.append(f"Other processes on the machine (not this benchmark) used a median "
                             f"{fc['median']:.0%} (at most {fc['max']:.0%}) of its CPU during these "
                             f"measurements.")
                L.append("")
            idle = rec.get("idle_rss_kb", {})
            if sc == "http":
                L.append("Idle RSS one second after start-up: " +
                         ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in idle.items()) +
                         ". Peak RSS is VmHWM over the whole scenario (all four variants), summed "
                         "over the process tree (nginx: master + 2 workers).")
            else:
                L.append("Idle RSS one second after start-up: " +
                         ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in idle.items()) +
                         " (Trellis compiled both functions at start-up: its state directory was "
                         "empty). The two Trellis rows are one Trellis process serving both paths, "
                         "so they share one peak RSS. Both servers write one line per request to "
                         "stderr (the component's `eprintln!`; Trellis adds its START/END/REPORT "
                         "function-log lines), redirected to a file on tmpfs.")
            if sc == "http":
                bc = rec.get("backend_cpu_s", {})
                L.append("")
                L.append("Ceiling: `hello-instance` answering directly (no proxy, one backend). "
                         "Backend CPU over the whole scenario: " +
                         ", ".join(f"{k} {v:.1f} s" for k, v in bc.items()) + ".")
            L.append("")
            for key in (f"{sc}-throughput", f"{sc}-latency"):
                if key in chart_paths:
                    rel = os.path.relpath(chart_paths[key], doc_dir)
                    L.append(f"![{key}]({rel})")
            L.append("")
            L += ["<details><summary>Exact commands</summary>", "", "```sh"]
            for name, srv in servers.items():
                L.append(f"# {name}")
                L.append(short(srv["argv"]).replace("daemon off; master_process on;",
                                                    "'daemon off; master_process on;'"))
            v0 = rec["variants"][0] if rec["variants"] else None
            for v in rec["variants"]:
                for side, cmds in v["commands"].items():
                    L.append(f"# {v['variant']} — {side}")
                    L.append(short(cmds["throughput"]))
                    L.append(short(cmds["latency"]))
            L += ["```", "", "</details>", ""]
        elif sc == "functions":
            L += report_functions(rec, chart_paths, doc_dir)
        elif sc == "auth":
            L += report_auth(rec, chart_paths, doc_dir)
        elif sc == "api":
            L += report_api(rec)
        elif sc == "internals":
            L += report_internals(rec)
        elif sc == "footprint":
            L += ["### Footprint: Trellis start-up and memory", ""]
            med = statistics.median
            L += ["| config | start-up to first served request (ms) | idle RSS MiB |", "|---|--:|--:|"]
            cold_rss = rec.get("wasm_idle_rss_cold_kb")
            L.append(f"| wasm functions (hello-wasm + hello-http), cold compile cache | "
                     f"{med(rec['wasm_startup_cold_s']) * 1000:.0f} | "
                     f"{fmt(med(cold_rss) / 1024, 1) if cold_rss else '–'} |")
            L.append(f"| wasm functions, warm compile cache (same `--state-dir`) | "
                     f"{med(rec['wasm_startup_warm_s']) * 1000:.0f} | {med(rec['wasm_idle_rss_kb']) / 1024:.1f} |")
            for label, r in rec["configs"].items():
                L.append(f"| {label} | {med(r['startup_s']) * 1000:.0f} | {med(r['idle_rss_kb']) / 1024:.1f} |")
            peaks = []
            for other in results:
                srv = other.get("servers", {}).get("trellis")
                if srv:
                    peaks.append(f"{srv['peak_rss_kb'] / 1024:.1f} MiB over the {other['scenario']} scenario")
            if peaks:
                L += ["", "Trellis's peak RSS under load: " + "; ".join(peaks) + " (tables above)."]
            load = rec["configs"]["100 services / 1000 targets"]["load"]
            L += ["", f"Under load (closed loop, service 100 of 100, round robin over 10 targets): "
                      f"{load['rps']:,.0f} req/s, {load['cpu_s_per_10k']:.2f} CPU s / 10k requests, "
                      f"peak RSS {load['peak_rss_kb'] / 1024:.1f} MiB. Start-up is the time from "
                      f"spawning `trellis up` to the first 200 answer (polled every 2 ms), median of "
                      f"{len(rec['wasm_startup_cold_s'])} runs.", ""]
    generated = "\n".join(L)
    head = DEFAULT_HEAD
    tail = ""
    if os.path.exists(doc_path):
        text = open(doc_path).read()
        if BEGIN in text and END in text:
            head = text.split(BEGIN)[0]
            tail = text.split(END, 1)[1]
    os.makedirs(doc_dir, exist_ok=True)
    with open(doc_path, "w") as f:
        f.write(head + BEGIN + "\n\n" + generated + "\n" + END + tail)


DEFAULT_HEAD = """# Benchmarks

`make bench` regenerates the part of this page between the markers below (bench/bench.py).

"""


# --------------------------------------------------------------------------------------------

# In the issues' order (issue 14's auth after the functions, issue 16's API after it), which is
# the order they run and are reported in.
SCENARIOS = ["http", "wasm", "functions", "auth", "api", "internals", "footprint"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: ~2 s per measurement, 1 round")
    ap.add_argument("--only", action="append", choices=SCENARIOS,
                    help="run only this scenario (repeatable)")
    ap.add_argument("--variants", action="append", help="http scenario: only these variants (h1, h2c, tls)")
    ap.add_argument("--seconds", type=int, help="seconds per measurement")
    ap.add_argument("--rounds", type=int, help="alternation rounds")
    ap.add_argument("--concurrency", type=int, default=50, help="connections (default 50)")
    ap.add_argument("--rate", type=int, help="open-loop rate (default: 30%% of the slowest side's closed-loop rps)")
    ap.add_argument("--baseline", metavar="BIN",
                    help="http scenario: also measure this trellis binary (e.g. a build of the commit "
                         "before a change) as the side 'trellis baseline'")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--report", action="store_true",
                    help="run nothing: rewrite the report and charts from the stored results")
    args = ap.parse_args()

    for tool in (OHA, TRELLIS, HELLO_INSTANCE):
        if not os.access(tool, os.X_OK):
            sys.exit(f"bench: {tool} is missing (run bench/run.sh or make bench)")
    if not args.report:
        check_binary_is_checkout()
    scenarios = [] if args.report else [sc for sc in SCENARIOS if sc in (args.only or SCENARIOS)]
    if "functions" in scenarios and not os.access(HELLO_LAMBDA, os.X_OK):
        sys.exit(f"bench: {HELLO_LAMBDA} is missing (run make sample-functions)")
    if args.quick:
        results_dir = os.path.join(BENCH, "results", "quick")
        doc_path = os.path.join(results_dir, "BENCHMARKS.md")
        chart_dir = results_dir
    else:
        results_dir = os.path.join(BENCH, "results")
        doc_path = os.path.join(ROOT, "docs", "BENCHMARKS.md")
        chart_dir = os.path.join(ROOT, "docs", "bench")
    cfgdir = os.path.join(results_dir, "configs")
    os.makedirs(cfgdir, exist_ok=True)
    base_tmp = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    workdir = tempfile.mkdtemp(prefix="trellis-bench-", dir=base_tmp)
    log(f"work directory {workdir}; results in {os.path.relpath(results_dir, ROOT)}")

    def on_signal(signum, _frame):
        stop_all()
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    started = time.time()
    machine = machine_info()
    results, failed = [], None
    try:
        for sc in scenarios:
            t0 = time.time()
            rec = {"http": scenario_http, "wasm": scenario_wasm, "functions": scenario_functions,
                   "auth": scenario_auth, "api": scenario_api, "internals": scenario_internals,
                   "footprint": scenario_footprint}[sc](args, workdir, cfgdir)
            rec["duration_s"] = time.time() - t0
            rec["quick"] = args.quick
            rec["machine"] = machine
            rec["finished"] = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
            rec["command"] = "make bench" + (" QUICK=1" if args.quick else "")
            rec = merge_variants(rec, os.path.join(results_dir, f"{sc}.json"))
            with open(os.path.join(results_dir, f"{sc}.json"), "w") as f:
                json.dump(rec, f, indent=1, default=str)
            results.append(rec)
            log(f"[{sc}] done in {rec['duration_s']:.0f} s")
    except BenchError as e:
        failed = e
    finally:
        stop_all()
    if failed:
        log("FAILED: " + str(failed))
        log(f"logs kept in {workdir}")
        sys.exit(1)
    argv_text = "make bench" + (" QUICK=1" if args.quick else "")
    if True:
        # a partial run regenerates the report from the stored results of the other scenarios
        all_results = []
        for sc in SCENARIOS:
            path = os.path.join(results_dir, f"{sc}.json")
            if os.path.exists(path):
                all_results.append(json.load(open(path)))
        if not all_results:
            sys.exit("bench: no stored results to report")
        meta = {"finished": max(r.get("finished", "?") for r in all_results),
                "command": all_results[-1].get("command", argv_text),
                "duration_s": sum(r.get("duration_s", 0) for r in all_results),
                "machine": all_results[-1].get("machine", machine)}
        made = charts(all_results, chart_dir, "")
        report(all_results, meta, doc_path, made, args.quick)
        log(f"wrote {os.path.relpath(doc_path, ROOT)} and {len(made)} charts in {os.path.relpath(chart_dir, ROOT)}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    if scenarios:
        log(f"all answers were right; {time.time() - started:.0f} s in all")


if __name__ == "__main__":
    main()
