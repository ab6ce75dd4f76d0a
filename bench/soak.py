#!/usr/bin/env python3
"""Trellis soak: long, loaded runs that must lose nothing (issue 15), on loopback only.

Run through `make soak` (which builds the release binary and the sample functions and installs
oha). Three phases, each bounded in time:

  steady   60 s at 256 connections across the walkthrough's rules (an instance target group of
           two hello-instance backends, and a LAMBDA target group running hello-wasm): 0 errors,
           and Trellis's RSS flat (the peak of the last 20 s within 10 % of the peak of the
           20 s after warm-up).
  kill     20 s at 64 connections on a group of two instance targets, one of them killed 5 s
           in: errors only until passive ejection takes it out (the count is reported; a
           request already sent on a connection the kill broke cannot be retried).
  reload   30 s at 64 connections while the config is rewritten (atomically, by rename) every
           second, alternating the weights: 0 errors, and every reload applied.

Prints a report and writes it as JSON (--out); exit status 1 when a phase fails its bound.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the Server, oha and process helpers)

from bench import (BenchError, Server, free_port, log, oha_argv, start_backends,  # noqa: E402
                   stop_all, wait_http, HELLO_WASM, TRELLIS)

HOST = bench.HOST


def config(port, a_port, b_port, weights=(20, 10), checks=True):
    hc = ("{enabled: true, path: /, healthCheckIntervalSeconds: 5, healthyThresholdCount: 2, "
          "unhealthyThresholdCount: 2}" if checks else "{enabled: false}")
    return f"""region: us-west-2
services:
  - name: lattice-svc
    listeners:
      - name: http
        protocol: HTTP
        port: {port}
        defaultAction:
          forward:
            targetGroups:
              - {{targetGroupIdentifier: instance-tg, weight: {weights[0]}}}
              - {{targetGroupIdentifier: function-tg, weight: {weights[1]}}}
        rules:
          - name: to-instance
            priority: 10
            match: {{httpMatch: {{pathMatch: {{match: {{exact: /to-instance}}}}}}}}
            action: {{forward: {{targetGroups: [{{targetGroupIdentifier: instance-tg}}]}}}}
          - name: to-function
            priority: 20
            match: {{httpMatch: {{pathMatch: {{match: {{exact: /to-function}}}}}}}}
            action: {{forward: {{targetGroups: [{{targetGroupIdentifier: function-tg}}]}}}}
targetGroups:
  - name: instance-tg
    type: INSTANCE
    config: {{port: 80, protocol: HTTP, healthCheck: {hc}}}
    targets: [{{id: 127.0.0.1, port: {a_port}}}, {{id: 127.0.0.1, port: {b_port}}}]
  - name: function-tg
    type: LAMBDA
    config: {{lambdaEventStructureVersion: V2}}
    targets: [{{id: hello-function}}]
functions:
  - name: hello-function
    runtime: wasm
    code: {HELLO_WASM}
    timeout: 10
"""


def write_atomically(path, text):
    """Writes `text` to `path` the way the README says a config should be written: a temporary
    file in the same directory, renamed over the config."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def oha(path, seconds, concurrency, port):
    """Runs oha; returns (status counts, error counts, requests per second)."""
    target = {"port": port, "path": path, "tls": False, "proto": "h1", "host": HOST}
    argv = oha_argv(target, seconds, concurrency)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if p.returncode != 0:
        raise BenchError(f"oha failed: {' '.join(argv)}\n{p.stderr[-2000:]}")
    data = json.loads(p.stdout)
    statuses = {str(k): int(v) for k, v in (data.get("statusCodeDistribution") or {}).items()}
    errors = {str(k): int(v) for k, v in (data.get("errorDistribution") or {}).items()}
    errors.pop("aborted due to deadline", None)
    return statuses, errors, (data.get("summary") or {}).get("requestsPerSec")


def bad_count(statuses, errors):
    return sum(v for k, v in statuses.items() if k != "200") + sum(errors.values())


def in_parallel(jobs):
    """Runs each (name, fn) in a thread; returns {name: result}, re-raising the first error."""
    results, failures = {}, []

    def run(name, fn):
        try:
            results[name] = fn()
        except Exception as e:  # reported below
            failures.append(e)

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    return results


def start(workdir, text, port):
    cfg = os.path.join(workdir, "trellis.yaml")
    write_atomically(cfg, text)
    server = Server("trellis", [TRELLIS, "up", "-f", cfg, "--admin", "off",
                                "--state-dir", os.path.join(workdir, "state")], workdir).start()
    wait_http(server, port, "/to-instance", deadline_s=120)
    wait_http(server, port, "/to-function", deadline_s=120)
    return server, cfg


def phase_steady(args, workdir):
    port = free_port()
    (sa, a), (sb, b) = start_backends(workdir, ["a", "b"])
    backends = [sa, sb]
    server, _ = start(workdir, config(port, a, b), port)
    samples, stop = [], threading.Event()

    def sample():
        t0 = time.monotonic()
        while not stop.wait(1.0):
            samples.append((time.monotonic() - t0, server.rss_kb()))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        per = args.connections // 4
        results = in_parallel([
            (path, lambda path=path: oha(path, args.seconds, per, port))
            for path in ("/", "/to-instance", "/to-function")
        ] + [("/ again", lambda: oha("/", args.seconds, per, port))])
    finally:
        stop.set()
        sampler.join()
    server.stop()
    for s in backends:
        s.stop()
    bad = sum(bad_count(st, er) for st, er, _ in results.values())
    total = sum(sum(st.values()) for st, _, _ in results.values())
    warm = [kb for t, kb in samples if 10 <= t < 30]
    late = [kb for t, kb in samples if t >= args.seconds - 20]
    growth = (max(late) / max(warm) - 1.0) if warm and late else None
    return {
        "requests": total, "errors": bad,
        "rps": sum(r or 0 for _, _, r in results.values()),
        "rss_kb_after_warmup": max(warm) if warm else None,
        "rss_kb_at_end": max(late) if late else None,
        "rss_growth": growth,
        "ok": bad == 0 and growth is not None and growth <= 0.10,
    }


def phase_kill(args, workdir):
    port = free_port()
    (sa, a), (sb, b) = start_backends(workdir, ["a", "b"])
    backends = {"a": sa, "b": sb}
    server, _ = start(workdir, config(port, a, b), port)

    def kill_later():
        time.sleep(5)
        backends["b"].proc.kill()

    killer = threading.Thread(target=kill_later)
    killer.start()
    statuses, errors, rps = oha("/to-instance", 20, 64, port)
    killer.join()
    ejected = "connection refused" in open(server.log_path, errors="replace").read()
    server.stop()
    backends["a"].stop()
    bad = bad_count(statuses, errors)
    return {"requests": sum(statuses.values()), "errors": bad, "status": statuses,
            "error_kinds": errors, "rps": rps, "ejection_logged": ejected,
            # Bounded: a few in-flight requests per connection broken by the kill, not seconds
            # of 502s (which at this rate would be thousands).
            "ok": ejected and bad <= 2 * 64}


def phase_reload(args, workdir):
    port = free_port()
    (sa, a), (sb, b) = start_backends(workdir, ["a", "b"])
    backends = [sa, sb]
    server, cfg = start(workdir, config(port, a, b), port)
    stop = threading.Event()
    written = [0]

    def rewrite():
        flip = False
        while not stop.wait(1.0):
            flip = not flip
            write_atomically(cfg, config(port, a, b, weights=(10, 20) if flip else (20, 10)))
            written[0] += 1

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        statuses, errors, rps = oha("/", 30, 64, port)
    finally:
        stop.set()
        writer.join()
    time.sleep(2)
    reloads = open(server.log_path, errors="replace").read().count("reloaded")
    server.stop()
    for s in backends:
        s.stop()
    bad = bad_count(statuses, errors)
    return {"requests": sum(statuses.values()), "errors": bad, "rps": rps,
            "rewrites": written[0], "reloads": reloads,
            "ok": bad == 0 and reloads >= written[0] // 2}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60, help="steady phase length (default 60)")
    ap.add_argument("--connections", type=int, default=256, help="steady phase connections (default 256)")
    ap.add_argument("--only", action="append", choices=["steady", "kill", "reload"])
    ap.add_argument("--out", default=os.path.join(bench.BENCH, "results", "soak.json"))
    args = ap.parse_args()
    workdir = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"trellis-soak-{os.getpid()}")
    os.makedirs(workdir, exist_ok=True)
    phases = {"steady": phase_steady, "kill": phase_kill, "reload": phase_reload}
    report = {"trellis": TRELLIS, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": bench.machine_info()}
    try:
        for name, fn in phases.items():
            if args.only and name not in args.only:
                continue
            log(f"soak: {name}")
            phase_dir = os.path.join(workdir, name)
            os.makedirs(phase_dir, exist_ok=True)
            report[name] = fn(args, phase_dir)
            log(f"soak: {name}: {json.dumps(report[name])}")
    finally:
        stop_all()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    failed = [n for n in phases if n in report and not report[n]["ok"]]
    print(json.dumps(report, indent=2))
    if failed:
        log(f"soak: FAILED: {', '.join(failed)}")
        sys.exit(1)
    log("soak: passed")


if __name__ == "__main__":
    main()
