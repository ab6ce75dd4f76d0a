//! `trellis up --dns`: the real binary answering a resolver nobody here wrote (dnspython, in
//! the virtualenv of scripts/pyenv.sh; tests/oracles/dns_query.py) over real loopback sockets.
//! Names that are not Trellis's go to a local upstream (tests/oracles/dns_upstream.py) given
//! with --dns-upstream: no query ever leaves loopback.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{Value, json};

/// The virtualenv's Python when it has dnspython, else `None` with the reason printed
/// (`make test` sets TRELLIS_REQUIRE_ORACLES, and then a missing oracle fails the test).
fn python(test: &str) -> Option<PathBuf> {
    oracle_python(test, "dns.query, dns.message", "dnspython")
}

/// The local upstream resolver; it exits when this guard drops (its stdin closes).
struct Upstream {
    child: Child,
    port: u16,
}

impl Upstream {
    fn start(python: &Path) -> Upstream {
        let port = free_port();
        let mut child = Command::new(python)
            .arg(oracle_script("dns_upstream.py"))
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn dns_upstream.py");
        let mut line = String::new();
        let out = child.stdout.take().expect("stdout");
        BufReader::new(out).read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "ready", "dns_upstream.py did not start");
        Upstream { child, port }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DNS address `up` printed ("trellis: DNS at ADDR  →  dig ...").
fn dns_addr(trellis: &Trellis) -> (String, u16) {
    let line = trellis
        .stderr()
        .lines()
        .find_map(|l| l.strip_prefix("trellis: DNS at ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no DNS line in:\n{}", trellis.stderr()));
    let addr: std::net::SocketAddr = line
        .split_whitespace()
        .next()
        .and_then(|a| a.parse().ok())
        .expect("DNS address");
    (addr.ip().to_string(), addr.port())
}

/// Runs dns_query.py with `queries` against `trellis`'s DNS address; one result per query.
fn query(python: &Path, trellis: &Trellis, queries: Value) -> Vec<Value> {
    let (server, port) = dns_addr(trellis);
    let spec = json!({"server": server, "port": port, "queries": queries});
    let ran = run_oracle(
        python,
        "dns_query.py",
        &[&spec.to_string()],
        Duration::from_secs(60),
    );
    assert_eq!(ran.code, Some(0), "dns_query.py failed: {}", ran.stderr);
    serde_json::from_str::<Vec<Value>>(ran.stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {}", ran.stdout))
}

/// Like [`query`], but runs `change` once the queries have begun (the script said `ready`),
/// so that an `until` query measures the change and not the interpreter's start-up; returns
/// the answers and what `change` returned.
fn query_during<T>(
    python: &Path,
    trellis: &Trellis,
    queries: Value,
    change: impl FnOnce() -> T,
) -> (Vec<Value>, T) {
    use std::io::Read;
    let (server, port) = dns_addr(trellis);
    let spec = json!({"server": server, "port": port, "queries": queries, "ready": true});
    let mut child = oracle_command(python, "dns_query.py", &[&spec.to_string()])
        .spawn()
        .expect("spawn dns_query.py");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    let mut stderr = String::new();
    if line.trim() != "ready" {
        let _ = child.kill();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        panic!("dns_query.py did not start: {line}{stderr}");
    }
    let changed = change();
    // The script is bounded by its queries' deadlines; its stderr is small.
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest);
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let status = child.wait().expect("wait for dns_query.py");
    assert!(status.success(), "dns_query.py failed: {stderr}");
    let answers =
        serde_json::from_str::<Vec<Value>>(rest.trim()).unwrap_or_else(|e| panic!("{e}: {rest}"));
    (answers, changed)
}

fn q(name: &str, rtype: &str, source: &str) -> Value {
    json!({"name": name, "type": rtype, "source": source})
}

/// VPC `client-vpc` (127.0.0.2/32) is associated with network `net`, which has `svc`; `other`
/// is in no network, so no client may reach (or resolve) it.
fn networked_config(port: u16) -> String {
    Config::new()
        .vpc("client-vpc", &["127.0.0.2/32"])
        .network(Network::new("net", &["svc"], &["client-vpc"]))
        .service(
            Service::new("svc")
                .custom_domain("svc.example.com")
                .listener(Listener::http(port).forward("svc-tg")),
        )
        .service(Service::new("other").listener(Listener::http(port).forward("other-tg")))
        .target_group(TargetGroup::instance("svc-tg", &[free_port()]).no_health_checks())
        .target_group(TargetGroup::instance("other-tg", &[free_port()]).no_health_checks())
        .yaml()
}

fn rcode(r: &Value) -> &str {
    r["rcode"].as_str().unwrap_or("")
}

fn answers(r: &Value) -> Vec<String> {
    r["answers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_name_kind_resolves_for_an_admitted_client_and_not_for_others() {
    let Some(python) = python("every_name_kind") else {
        return;
    };
    let upstream = Upstream::start(&python);
    let t = Trellis::start(
        &networked_config(free_port()),
        &["--dns", "127.0.0.1:0", "--dns-upstream", &upstream.addr()],
    );
    let generated = dns_names(&t.config_path())["svc"].clone();
    let other = dns_names(&t.config_path())["other"].clone();
    let admitted = "127.0.0.2";
    let outside = "127.0.0.3";
    let r = query(
        &python,
        &t,
        json!([
            q(&generated, "A", admitted),
            q(&format!("{}.", generated.to_uppercase()), "A", admitted),
            q("svc.example.com", "A", admitted),
            q("svc.trellis.localhost", "A", admitted),
            q(&generated, "AAAA", admitted),
            q(&generated, "A", outside),
            q("svc.trellis.localhost", "A", outside),
            q(&other, "A", admitted),
            q("nothing.trellis.localhost", "A", admitted),
            q("forwarded.test", "A", admitted),
            q("unknown.test", "A", admitted),
            {"name": &generated, "type": "A", "source": admitted, "transport": "tcp"},
        ]),
    );
    for (i, name) in [
        "generated",
        "upper-case with dot",
        "custom domain",
        "trellis.localhost",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(rcode(&r[i]), "NOERROR", "{name}: {}", r[i]);
        assert_eq!(answers(&r[i]), ["127.0.0.1"], "{name}: {}", r[i]);
        assert_eq!(r[i]["ttls"][0], 5, "{name}: short TTL: {}", r[i]);
    }
    // AAAA of an IPv4-only answer: the name exists, with no record of that type.
    assert_eq!(rcode(&r[4]), "NOERROR", "{}", r[4]);
    assert!(answers(&r[4]).is_empty(), "{}", r[4]);
    // Not admitted: a client outside every VPC of the network, a service in no network.
    assert_eq!(rcode(&r[5]), "NXDOMAIN", "outside client: {}", r[5]);
    assert_eq!(rcode(&r[6]), "NXDOMAIN", "outside client: {}", r[6]);
    assert_eq!(rcode(&r[7]), "NXDOMAIN", "service in no network: {}", r[7]);
    assert_eq!(rcode(&r[8]), "NXDOMAIN", "unknown trellis name: {}", r[8]);
    // Forwarded: the upstream's answers, both positive and negative.
    assert_eq!(rcode(&r[9]), "NOERROR", "{}", r[9]);
    assert_eq!(answers(&r[9]), ["192.0.2.7"], "{}", r[9]);
    assert_eq!(rcode(&r[10]), "NXDOMAIN", "{}", r[10]);
    // Over TCP too.
    assert_eq!(answers(&r[11]), ["127.0.0.1"], "TCP: {}", r[11]);
}

#[test]
fn advertise_sets_the_answer_and_an_ipv6_answer_is_aaaa_only() {
    let Some(python) = python("advertise") else {
        return;
    };
    let yaml = simple_config(free_port(), &[free_port()]);
    let t = Trellis::start(
        &yaml,
        &[
            "--dns",
            "127.0.0.1:0",
            "--dns-upstream",
            "127.0.0.1:9",
            "--advertise",
            "127.0.0.9",
        ],
    );
    let r = query(
        &python,
        &t,
        json!([q("svc.trellis.localhost", "A", "127.0.0.1")]),
    );
    assert_eq!(answers(&r[0]), ["127.0.0.9"], "{}", r[0]);
    drop(t);
    let t = Trellis::start(
        &yaml,
        &[
            "--dns",
            "127.0.0.1:0",
            "--dns-upstream",
            "127.0.0.1:9",
            "--advertise",
            "::1",
        ],
    );
    let r = query(
        &python,
        &t,
        json!([
            q("svc.trellis.localhost", "AAAA", "127.0.0.1"),
            q("svc.trellis.localhost", "A", "127.0.0.1"),
        ]),
    );
    assert_eq!(answers(&r[0]), ["::1"], "{}", r[0]);
    assert_eq!(rcode(&r[1]), "NOERROR", "{}", r[1]);
    assert!(answers(&r[1]).is_empty(), "{}", r[1]);
}

#[test]
fn a_large_forwarded_answer_is_truncated_over_udp_and_whole_over_tcp() {
    let Some(python) = python("tcp_fallback") else {
        return;
    };
    let upstream = Upstream::start(&python);
    let t = Trellis::start(
        &simple_config(free_port(), &[free_port()]),
        &["--dns", "127.0.0.1:0", "--dns-upstream", &upstream.addr()],
    );
    let r = query(
        &python,
        &t,
        json!([{"name": "big.test", "type": "A", "transport": "fallback"}]),
    );
    assert_eq!(r[0]["tc"], true, "the UDP answer has TC set: {}", r[0]);
    assert_eq!(r[0]["tcp"], true, "the client retried over TCP: {}", r[0]);
    assert_eq!(answers(&r[0]).len(), 120, "{}", r[0]);
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[test]
fn a_name_added_by_a_reload_resolves_within_a_second_and_a_removed_one_goes() {
    let Some(python) = python("reload") else {
        return;
    };
    let port = free_port();
    let backend = free_port();
    let t = Trellis::start(
        &simple_config(port, &[backend]),
        &[
            "--dns",
            "127.0.0.1:0",
            "--dns-upstream",
            "127.0.0.1:9",
            "--reload",
            "signal",
        ],
    );
    let r = query(
        &python,
        &t,
        json!([q("late.trellis.localhost", "A", "127.0.0.1")]),
    );
    assert_eq!(rcode(&r[0]), "NXDOMAIN", "{}", r[0]);
    let added = Config::new()
        .service(Service::new("late").listener(Listener::http(port).forward("web-tg")))
        .target_group(TargetGroup::instance("web-tg", &[backend]).no_health_checks())
        .yaml();
    std::fs::write(t.config_path(), added).expect("write");
    let mut until = q("late.trellis.localhost", "A", "127.0.0.1");
    until["until"] = json!({"rcode": "NOERROR", "deadline": 10});
    let mut gone = q("svc.trellis.localhost", "A", "127.0.0.1");
    gone["until"] = json!({"rcode": "NXDOMAIN", "deadline": 5});
    // The resolver already asks every 20 ms when the signal goes.
    let (r, hup) = query_during(&python, &t, json!([until, gone]), || {
        let hup = now();
        t.signal("HUP");
        hup
    });
    assert_eq!(answers(&r[0]), ["127.0.0.1"], "{}", r[0]);
    let took = r[0]["at"].as_f64().unwrap_or(f64::MAX) - hup;
    assert!(took < 1.0, "resolved {took:.2}s after SIGHUP");
    assert_eq!(rcode(&r[1]), "NXDOMAIN", "the removed service: {}", r[1]);
}

#[test]
fn garbage_oversized_packets_and_a_flood_do_not_stop_answers() {
    let Some(python) = python("garbage") else {
        return;
    };
    // An upstream that never answers: every forwarded query waits for its timeout.
    let black_hole = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let t = Trellis::start(
        &simple_config(free_port(), &[free_port()]),
        &[
            "--dns",
            "127.0.0.1:0",
            "--dns-upstream",
            &black_hole.local_addr().expect("addr").to_string(),
        ],
    );
    let (server, port) = dns_addr(&t);
    let target = format!("{server}:{port}");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut packets: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff],
        vec![0u8; 12],
        // A header claiming 65535 questions, with none following.
        vec![0x12, 0x34, 0x01, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0],
        // A name with a compression pointer to itself.
        vec![
            0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
        ],
        vec![0xa5; 65_000],
    ];
    let mut seed: u32 = 0x2545_f491;
    for len in [13usize, 100, 512, 4096] {
        packets.push(
            (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    (seed & 0xff) as u8
                })
                .collect(),
        );
    }
    for p in &packets {
        let _ = sock.send_to(p, &target);
    }
    // A flood of well-formed queries for names that go to the silent upstream.
    for i in 0..2000u16 {
        let mut wire = vec![(i >> 8) as u8, i as u8, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in [format!("n{i}"), "flood".into(), "test".into()] {
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
        }
        wire.extend_from_slice(&[0, 0, 1, 0, 1]);
        let _ = sock.send_to(&wire, &target);
    }
    // TCP: a length prefix promising more than is sent, then junk, and a silent connection.
    let mut junk = TcpStream::connect(&target).expect("tcp");
    let _ = junk.write_all(&[0xff, 0xff, 1, 2, 3]);
    let _silent = TcpStream::connect(&target).expect("tcp");
    let mut oversized = TcpStream::connect(&target).expect("tcp");
    let _ = oversized.write_all(&[0x00, 0x05, 9, 9, 9, 9, 9]);
    let started = Instant::now();
    let r = query(
        &python,
        &t,
        json!([
            q("svc.trellis.localhost", "A", "127.0.0.1"),
            {"name": "svc.trellis.localhost", "type": "A", "transport": "tcp"},
        ]),
    );
    assert_eq!(answers(&r[0]), ["127.0.0.1"], "UDP after garbage: {}", r[0]);
    assert_eq!(answers(&r[1]), ["127.0.0.1"], "TCP after garbage: {}", r[1]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answers took {:?}",
        started.elapsed()
    );
    let mut t = t;
    let running = t.child.as_mut().map(|c| c.try_wait());
    assert!(
        matches!(running, Some(Ok(None))),
        "trellis exited: {running:?}\n{}",
        t.stderr()
    );
}

#[test]
fn a_service_made_through_the_api_resolves_within_a_second_and_goes_when_deleted() {
    let Some(python) = oracle_python("dns_api", "boto3, dns.query", "boto3 and dnspython") else {
        return;
    };
    let upstream = Upstream::start(&python);
    let yaml = Config::new()
        .region("us-west-2")
        .vpc("client-vpc", &["127.0.0.2/32"])
        .yaml();
    let t = Trellis::start(
        &yaml,
        &["--dns", "127.0.0.1:0", "--dns-upstream", &upstream.addr()],
    );
    let (server, port) = dns_addr(&t);
    let endpoint = format!("http://{}", t.admin_addr());
    let ran = run_oracle(
        &python,
        "dns_api.py",
        &[&endpoint, "us-west-2", &server, &port.to_string()],
        Duration::from_secs(60),
    );
    assert_eq!(
        ran.code,
        Some(0),
        "dns_api.py failed:\n{}\n{}\n--- trellis:\n{}",
        ran.stdout,
        ran.stderr,
        t.stderr()
    );
    let summary: Value = serde_json::from_str(ran.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {}", ran.stdout));
    eprintln!("seconds from each API call to the DNS answer showing it: {summary}");
    // Every name of the created service, then of the deleted one, and the admission of the
    // networked one: each within a second of the API call that made the change.
    let mut timed = 0;
    for phase in ["created", "deleted"] {
        let names = summary[phase].as_object().expect("names");
        assert_eq!(names.len(), 3, "{summary}");
        for (name, took) in names {
            let took = took.as_f64().unwrap_or(f64::MAX);
            assert!(took < 1.0, "{phase} {name}: {took}s ({summary})");
            timed += 1;
        }
    }
    for key in ["admitted", "refused"] {
        let took = summary[key].as_f64().unwrap_or(f64::MAX);
        assert!(took < 1.0, "{key}: {took}s ({summary})");
        timed += 1;
    }
    assert_eq!(timed, 8);
}

/// Whether the server has closed `stream` (EOF or reset), looking for 20 ms.
fn closed_by_server(mut stream: &TcpStream) -> bool {
    use std::io::Read;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn more_idle_tcp_connections_than_the_cap_take_no_descriptors_and_no_answers() {
    let Some(python) = python("tcp_cap") else {
        return;
    };
    let upstream = Upstream::start(&python);
    let t = Trellis::start(
        &simple_config(free_port(), &[free_port()]),
        &["--dns", "127.0.0.1:0", "--dns-upstream", &upstream.addr()],
    );
    let (server, port) = dns_addr(&t);
    let target = format!("{server}:{port}");
    let pid = t.child.as_ref().expect("running").id();
    let descriptors = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|dir| dir.count())
            .expect("/proc/PID/fd")
    };
    let well_behaved = json!([
        q("svc.trellis.localhost", "A", "127.0.0.1"),
        {"name": "svc.trellis.localhost", "type": "A", "transport": "tcp"},
        {"name": "forwarded.test", "type": "A", "transport": "tcp"},
        {"name": "svc.trellis.localhost", "type": "A", "transport": "tcp"},
        q("forwarded.test", "A", "127.0.0.1"),
    ]);
    let check = |r: &[Value], when: &str| {
        for (i, expected) in [
            "127.0.0.1",
            "127.0.0.1",
            "192.0.2.7",
            "127.0.0.1",
            "192.0.2.7",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(answers(&r[i]), [*expected], "{when}, query {i}: {}", r[i]);
        }
    };
    // Once before, so that whatever is opened on first use is open.
    check(&query(&python, &t, well_behaved.clone()), "before");
    let before = descriptors();

    // The cap and 64 more connections, half of them silent, half stopped one byte into a
    // query.
    let cap = trellis_dns::tcp::MAX_TCP_CONNECTIONS;
    let flood: Vec<TcpStream> = (0..cap + 64)
        .map(|i| {
            let mut s = TcpStream::connect(&target).expect("connect");
            if i % 2 == 1 {
                s.write_all(&[0x00]).expect("one byte");
            }
            s
        })
        .collect();
    // Let the server accept them all: it has when the 64 oldest are closed (each accept past
    // the cap closes the longest idle one). Bounded; the assertions below say what was missed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !flood[..64].iter().all(closed_by_server) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let during = descriptors();
    assert!(
        during <= before + cap + 4,
        "{during} descriptors with {} idle connections open (before: {before}, cap {cap})",
        flood.len()
    );

    // The server closed the ones over the cap, oldest first.
    let closed_before = flood.iter().filter(|s| closed_by_server(s)).count();
    assert_eq!(
        closed_before,
        flood.len() - cap,
        "closed before the queries"
    );
    assert!(
        flood[..64].iter().all(closed_by_server),
        "the oldest went first"
    );
    let started = Instant::now();
    check(&query(&python, &t, well_behaved), "during the flood");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answers took {:?}",
        started.elapsed()
    );
    // The first TCP query took the place of the longest idle connection; the next ones took
    // the place the one before left (or, had it not been given back yet, another idle one's).
    let open = flood.len() - flood.iter().filter(|s| closed_by_server(s)).count();
    assert!(
        (cap - 3..cap).contains(&open),
        "{open} idle connections still open after the queries"
    );
    assert!(descriptors() <= before + cap + 4);
    let mut t = t;
    let running = t.child.as_mut().map(|c| c.try_wait());
    assert!(
        matches!(running, Some(Ok(None))),
        "trellis exited: {running:?}"
    );
}
