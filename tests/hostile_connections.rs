//! Hostile connections (issue 15, items 2-4): slow request heads, idle keep-alive connections,
//! connections past their lifetime or over the per-port limit, requests over Lattice's header
//! limits, and a process out of file descriptors. Each drives the real binary with the
//! limits set small by `trellis up`'s flags.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HOST: &str = "svc.trellis.localhost";

/// A backend and trellis in front of it with the `flags`.
async fn start(flags: &[&str]) -> (Backend, Trellis, u16) {
    let backend = Backend::start("b1").await;
    let port = free_port();
    let trellis = Trellis::start(&simple_config(port, &[backend.port]), flags);
    (backend, trellis, port)
}

/// Waits until the server closes `stream` (EOF or reset), discarding what it sends; returns
/// how long that took, or `None` if it is still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + within).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

fn get_request(extra: &[(&str, String)]) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().uri("/").header("host", HOST);
    for (name, value) in extra {
        builder = builder.header(*name, value.as_str());
    }
    builder.body(Full::new(Bytes::new())).unwrap()
}

/// An HTTP/1.1 connection to trellis, and the task driving it (it ends when the connection
/// does).
async fn h1_conn(port: u16) -> (http1::SendRequest<Full<Bytes>>, tokio::task::JoinHandle<()>) {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    (
        sender,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

async fn h2_conn(port: u16) -> (http2::SendRequest<Full<Bytes>>, tokio::task::JoinHandle<()>) {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    (
        sender,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

/// The status of a response, its body read to the end.
async fn status_of(response: hyper::Response<hyper::body::Incoming>) -> u16 {
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

#[tokio::test]
async fn slow_request_heads_are_closed_within_the_header_timeout() {
    let (_backend, trellis, port) = start(&["--header-timeout", "1s"]).await;

    // Slowloris: a request head dripped a byte at a time, never finished.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: svc.trellis.localhost\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    for _ in 0..40 {
        if slow.write_all(b"x").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waited = match closed_within(&mut slow, Duration::from_millis(500)).await {
        Some(_) => start.elapsed(),
        None => Duration::MAX,
    };
    assert!(
        waited < Duration::from_secs(3),
        "a dripped request head was still open after {waited:?} (header timeout 1 s)"
    );

    // A connection that sends nothing at all, and one that stops after the HTTP/2 preface's
    // first bytes.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut partial = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    partial.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let opened = Instant::now();
    for stream in [&mut silent, &mut partial] {
        closed_within(stream, Duration::from_secs(3))
            .await
            .expect("a connection with no request head stays open past the header timeout");
        let took = opened.elapsed();
        assert!(
            took >= Duration::from_millis(800),
            "closed too soon: {took:?}"
        );
    }

    // A keep-alive connection between requests is idle, not slow: the header timeout does not
    // close it (the idle timeout, 60 s by default, does).
    let (mut sender, _conn) = h1_conn(port).await;
    let first = sender.send_request(get_request(&[])).await.unwrap();
    assert_eq!(status_of(first).await, 200);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let second = sender
        .send_request(get_request(&[]))
        .await
        .expect("an idle keep-alive connection was closed by the header timeout");
    assert_eq!(status_of(second).await, 200);
    drop(trellis);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let (_backend, trellis, port) = start(&["--max-idle-timeout", "1s"]).await;

    for http2 in [false, true] {
        let start = Instant::now();
        let ended = if http2 {
            let (mut sender, conn) = h2_conn(port).await;
            let response = sender.send_request(get_request(&[])).await.unwrap();
            assert_eq!(status_of(response).await, 200);
            tokio::time::timeout(Duration::from_secs(4), conn).await
        } else {
            let (mut sender, conn) = h1_conn(port).await;
            // The request comes a little after the connection, so the watchdog has looked at
            // the connection before its first request head: the idle timeout must still hold
            // after that request (it once slept until the 10 s header timeout instead).
            tokio::time::sleep(Duration::from_millis(300)).await;
            let response = sender.send_request(get_request(&[])).await.unwrap();
            assert_eq!(status_of(response).await, 200);
            tokio::time::timeout(Duration::from_secs(4), conn).await
        };
        let took = start.elapsed();
        assert!(
            ended.is_ok(),
            "an idle {} connection stayed open past the idle timeout",
            if http2 { "HTTP/2" } else { "HTTP/1.1" }
        );
        assert!(
            took >= Duration::from_millis(900),
            "closed too soon: {took:?}"
        );
    }
    drop(trellis);
}

#[tokio::test]
async fn connections_are_closed_gracefully_after_their_lifetime() {
    let (backend, trellis, port) = start(&["--max-connection-age", "1s"]).await;

    // HTTP/1.1: the request in flight when the lifetime ends is answered, with
    // `Connection: close`, and the connection then closes.
    backend.delay_ms.store(1500, Ordering::SeqCst);
    let (mut sender, conn) = h1_conn(port).await;
    let response = sender.send_request(get_request(&[])).await.unwrap();
    assert_eq!(
        response.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "the response after the connection's lifetime does not say Connection: close"
    );
    assert_eq!(status_of(response).await, 200);
    assert!(
        tokio::time::timeout(Duration::from_secs(2), conn)
            .await
            .is_ok(),
        "the HTTP/1.1 connection stayed open past its lifetime"
    );
    backend.delay_ms.store(0, Ordering::SeqCst);

    // HTTP/2: busy all along, the connection gets GOAWAY after its lifetime; every request
    // sent before it is answered.
    let (mut sender, conn) = h2_conn(port).await;
    let start = Instant::now();
    let mut answered = 0;
    while start.elapsed() < Duration::from_secs(4) && !conn.is_finished() {
        match sender.send_request(get_request(&[])).await {
            Ok(response) => {
                assert_eq!(status_of(response).await, 200);
                answered += 1;
            }
            Err(_) => break,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = start.elapsed();
    assert!(
        tokio::time::timeout(Duration::from_secs(2), conn)
            .await
            .is_ok(),
        "the HTTP/2 connection stayed open past its lifetime"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "the HTTP/2 connection ended after {took:?} (lifetime 1 s)"
    );
    assert!(answered >= 5, "only {answered} requests answered");
    drop(trellis);
}

#[tokio::test]
async fn connections_over_the_limit_are_shed_and_the_open_ones_keep_working() {
    let (_backend, trellis, port) = start(&["--max-connections", "3"]).await;

    let mut open = Vec::new();
    for _ in 0..3 {
        let (mut sender, conn) = h1_conn(port).await;
        let response = sender.send_request(get_request(&[])).await.unwrap();
        assert_eq!(status_of(response).await, 200);
        open.push((sender, conn));
    }
    // The fourth is accepted and closed at once, without an answer.
    let mut extra = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = extra
        .write_all(b"GET / HTTP/1.1\r\nHost: svc.trellis.localhost\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), extra.read_to_end(&mut answer)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a connection over the limit was served: {:?}",
        String::from_utf8_lossy(&answer)
    );
    // The open ones are untouched.
    for (sender, _) in &mut open {
        let response = sender.send_request(get_request(&[])).await.unwrap();
        assert_eq!(status_of(response).await, 200);
    }
    // Closing one makes room.
    let (sender, conn) = open.pop().unwrap();
    drop(sender);
    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
    // The client's side ends at once; Trellis frees the slot when it has seen the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let (mut sender, _conn) = h1_conn(port).await;
        match sender.send_request(get_request(&[])).await {
            Ok(response) => break status_of(response).await,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("closing a connection made no room within 5 s: {e}"),
        }
    };
    assert_eq!(status, 200);
    trellis.wait_for_stderr(Duration::from_secs(2), "the shedding warning", |e| {
        e.contains("--max-connections")
    });
    drop(trellis);
}

#[tokio::test]
async fn requests_over_lattices_header_limits_get_400_on_http1_and_http2() {
    let (_backend, trellis, port) = start(&[]).await;
    let many: Vec<(&str, String)> = (0..101).map(|i| ("x-many", i.to_string())).collect();
    let fits: Vec<(&str, String)> = (0..90).map(|i| ("x-many", i.to_string())).collect();
    let big = vec![("x-big", "a".repeat(70 * 1024))];
    let medium = vec![("x-medium", "a".repeat(30 * 1024))];
    for http2 in [false, true] {
        let protocol = if http2 { "HTTP/2" } else { "HTTP/1.1" };
        for (what, headers, want) in [
            ("101 headers", &many, 400),
            ("70 KB of headers", &big, 400),
            ("90 headers", &fits, 200),
            ("30 KB of headers", &medium, 200),
        ] {
            let response = if http2 {
                let (mut sender, _conn) = h2_conn(port).await;
                sender.send_request(get_request(headers)).await
            } else {
                let (mut sender, _conn) = h1_conn(port).await;
                sender.send_request(get_request(headers)).await
            };
            let status = status_of(response.unwrap()).await;
            assert_eq!(status, want, "{protocol}, {what}");
        }
    }
    drop(trellis);
}

/// User plus system CPU time of process `pid`, in clock ticks (/proc/PID/stat).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test]
async fn out_of_file_descriptors_the_accept_loops_back_off() {
    let backend = Backend::start("b1").await;
    let port = free_port();
    let admin = free_port();
    let dir = scratch_dir("emfile");
    let config = dir.join("trellis.yaml");
    std::fs::write(&config, simple_config(port, &[backend.port])).unwrap();
    let script = format!(
        "ulimit -n 64 && exec {TRELLIS} up -f {} --state-dir {} --admin 127.0.0.1:{admin} --threads 1",
        config.display(),
        dir.join("state").display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stderr = Arc::new(Mutex::new(Vec::<String>::new()));
    let pipe = child.stderr.take().unwrap();
    let lines = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stderr
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("trellis: ready"))
    {
        assert!(
            Instant::now() < deadline,
            "not ready: {:?}",
            stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // More connections than it has descriptors, to the data plane and the admin port. Each
    // sends part of a request head, so that the accepted ones stay open (until the header
    // timeout, 10 s by default) and the rest wait in the backlog.
    let mut held = Vec::new();
    for i in 0..100 {
        let to = if i % 2 == 0 { port } else { admin };
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", to)).unwrap();
        let _ = stream.write_all(b"GET / HTTP/1.1\r\n");
        held.push(stream);
    }
    std::thread::sleep(Duration::from_millis(500));
    let lines_before = stderr.lock().unwrap().len();
    let ticks_before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let ticks = cpu_ticks(pid) - ticks_before;
    let new_lines = stderr.lock().unwrap().len() - lines_before;
    let all = stderr.lock().unwrap().join("\n");
    assert!(
        all.contains("accept failed"),
        "it never ran out of descriptors:\n{all}"
    );
    // Clock ticks are 1/100 s: under a third of a core over the 3 s.
    assert!(
        ticks < 100,
        "{ticks} ticks of CPU in 3 s while out of descriptors (spinning?)"
    );
    assert!(
        new_lines <= 10,
        "{new_lines} lines of log in 3 s while out of descriptors:\n{all}"
    );

    // With the descriptors back, it serves again.
    drop(held);
    std::thread::sleep(Duration::from_millis(1500));
    let client = http1_client();
    let answer = get(&client, port, HOST, "/").await;
    assert_eq!(answer.status, 200);
    let mut admin_conn = std::net::TcpStream::connect(("127.0.0.1", admin)).unwrap();
    admin_conn
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    let _ = admin_conn.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "admin port: {reply}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn zero_connection_timeouts_are_refused_before_anything_starts() {
    let dir = scratch_dir("zero-timeouts");
    for flag in [
        "--header-timeout",
        "--max-idle-timeout",
        "--max-connection-age",
        "--max-connections",
    ] {
        let (code, out, err) = run_cli(&["up", flag, "0", "-f", "nope.yaml"], &dir);
        assert_eq!(code, 2, "{flag} 0: stdout:\n{out}\nstderr:\n{err}");
        assert!(err.contains(flag), "{err}");
        assert!(!err.contains("cannot read"), "{err}");
    }
}
