//! The listening ports follow the config (issue 16, item 1): a reload that adds a listener
//! port listens on it at once; one that removes a port stops listening there (new connections
//! refused; requests in flight finish, within the drain timeout) while the other ports serve
//! on; a port whose protocol changes is rebound; a new port that cannot be bound refuses the
//! reload and keeps the old table and ports serving; a new port gets its certificate and its
//! connection limit as at start-up.
mod common;

use std::net::TcpStream as StdStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::*;

const HOST: &str = "svc.trellis.localhost";

/// An HTTP listener on `port` (named after it) forwarding to `web-tg`.
fn http(port: u16) -> Listener {
    Listener::new(&format!("http-{port}"), "HTTP", port).forward("web-tg")
}

/// An HTTPS listener on `port` (named after it, generated certificate) forwarding to `web-tg`.
fn https(port: u16) -> Listener {
    Listener::new(&format!("https-{port}"), "HTTPS", port).forward("web-tg")
}

/// Service `svc` with `listeners`, and target group `web-tg` over the backend on `backend`.
fn config(listeners: &[Listener], backend: u16) -> String {
    config_of(&[("svc", listeners)], backend)
}

/// Services with their listeners, and target group `web-tg` over the backend on `backend`.
fn config_of(services: &[(&str, &[Listener])], backend: u16) -> String {
    let mut config = Config::new();
    for (name, listeners) in services {
        let mut svc = Service::new(name);
        for l in *listeners {
            svc = svc.listener(l.clone());
        }
        config = config.service(svc);
    }
    config
        .target_group(TargetGroup::instance("web-tg", &[backend]).no_health_checks())
        .yaml()
}

/// Replaces the config in one step (write a temporary file, rename it over), as the README
/// tells config writers to.
fn rewrite(t: &Trellis, yaml: &str) {
    let tmp = t.dir.join("trellis.yaml.tmp");
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, t.config_path()).unwrap();
}

/// Rewrites the config and reloads it at once with SIGHUP (for `--reload signal`).
fn reload(t: &Trellis, yaml: &str) -> usize {
    let mark = t.stderr().len();
    rewrite(t, yaml);
    t.signal("HUP");
    mark
}

/// Waits until the stderr written after `mark` contains `text`.
fn wait_after(t: &Trellis, mark: usize, text: &str) {
    t.wait_for_stderr(Duration::from_secs(10), text, |e| {
        e.get(mark..).unwrap_or_default().contains(text)
    });
}

/// Whether a connection to loopback `port` is refused (nothing listens there).
fn refused(port: u16) -> bool {
    matches!(
        StdStream::connect(("127.0.0.1", port)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// The certificate Trellis generates for HTTPS `port` under the test's state dir.
fn generated_pem(t: &Trellis, port: u16) -> String {
    t.dir
        .join("state/certs")
        .join(format!("trellis-{port}.pem"))
        .display()
        .to_string()
}

/// curl's exit code, HTTP status and body.
async fn curl(args: &[&str]) -> (i32, u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    (
        out.status.code().unwrap_or(-1),
        code.trim().parse().unwrap_or(0),
        format!("{body}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_that_adds_a_port_listens_at_once_and_one_that_removes_a_port_refuses_it() {
    let backend = Backend::start("web").await;
    let (a, b) = (free_port(), free_port());
    let t = Trellis::start(&config(&[http(a)], backend.port), &[]);
    let old_client = http1_client();
    assert_eq!(get(&old_client, a, HOST, "/").await.status, 200);
    assert!(refused(b));

    // Added by an edit (the file watcher): served right after the reload says so.
    let mark = t.stderr().len();
    rewrite(&t, &config(&[http(a), http(b)], backend.port));
    wait_after(&t, mark, &format!("now listening on HTTP 127.0.0.1:{b}"));
    let logged = Instant::now();
    let answer = get(&http1_client(), b, HOST, "/new").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "Hello from web at /new")
    );
    assert!(
        logged.elapsed() < Duration::from_secs(2),
        "{:?}",
        logged.elapsed()
    );
    // The port that stayed was not disturbed: its kept-alive connection still serves.
    assert_eq!(get(&old_client, a, HOST, "/").await.status, 200);
    let log = t.stderr()[mark..].to_string();
    assert!(log.contains("trellis: reloaded"), "{log}");
    assert!(!log.contains("restart"), "{log}");
    assert!(!log.contains("stopped listening"), "{log}");

    // Removed: new connections are refused; the other port serves on.
    let b_client = http1_client();
    assert_eq!(get(&b_client, b, HOST, "/").await.status, 200);
    let mark = t.stderr().len();
    rewrite(&t, &config(&[http(b)], backend.port));
    wait_after(
        &t,
        mark,
        &format!("stopped listening on HTTP 127.0.0.1:{a}"),
    );
    assert!(refused(a), "port {a} still accepts after it was removed");
    assert_eq!(get(&b_client, b, HOST, "/").await.status, 200);
    assert_eq!(get(&http1_client(), b, HOST, "/").await.status, 200);
    let log = t.stderr()[mark..].to_string();
    assert!(!log.contains("now listening"), "{log}");

    // And back again on the same port number.
    let mark = t.stderr().len();
    rewrite(&t, &config(&[http(a), http(b)], backend.port));
    wait_after(&t, mark, &format!("now listening on HTTP 127.0.0.1:{a}"));
    assert_eq!(get(&http1_client(), a, HOST, "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_in_flight_on_a_removed_port_finishes_and_its_connection_closes() {
    let backend = Backend::start("web").await;
    let (a, b) = (free_port(), free_port());
    let t = Trellis::start(
        &config(&[http(a), http(b)], backend.port),
        &["--reload", "signal"],
    );
    backend
        .delay_ms
        .store(3000, std::sync::atomic::Ordering::SeqCst);
    let slow = tokio::spawn(async move { get(&http1_client(), a, HOST, "/slow").await });
    // The request reaches the backend (which then waits 3 s) before the reload.
    backend.wait_arrived(1).await;
    backend
        .delay_ms
        .store(0, std::sync::atomic::Ordering::SeqCst);

    let mark = reload(&t, &config(&[http(b)], backend.port));
    wait_after(
        &t,
        mark,
        &format!("stopped listening on HTTP 127.0.0.1:{a}"),
    );
    assert!(!slow.is_finished(), "the slow request ended early");
    assert!(refused(a), "port {a} still accepts after it was removed");
    assert_eq!(get(&http1_client(), b, HOST, "/").await.status, 200);

    // The request in flight finishes, on a connection that closes after it.
    let answer = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .expect("the request in flight never finished")
        .unwrap();
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "Hello from web at /slow")
    );
    assert_eq!(
        answer.headers.get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "{:?}",
        answer.headers
    );
    assert!(!t.stderr().contains("still busy"), "{}", t.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_on_a_removed_port_is_cut_when_the_drain_timeout_runs_out() {
    let backend = Backend::start("web").await;
    let (a, b) = (free_port(), free_port());
    let t = Trellis::start(
        &config(&[http(a), http(b)], backend.port),
        &["--reload", "signal", "--drain-timeout", "1s"],
    );
    backend
        .delay_ms
        .store(8000, std::sync::atomic::Ordering::SeqCst);
    let slow = tokio::spawn(async move {
        send_bytes(&http1_client(), a, HOST, "GET", "/slow", &[], Vec::new()).await
    });
    backend.wait_arrived(1).await;
    backend
        .delay_ms
        .store(0, std::sync::atomic::Ordering::SeqCst);

    let mark = reload(&t, &config(&[http(b)], backend.port));
    wait_after(
        &t,
        mark,
        &format!("stopped listening on HTTP 127.0.0.1:{a}"),
    );
    let reloaded = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(6), slow)
        .await
        .expect("the request outlived the drain timeout by far")
        .unwrap();
    assert!(result.is_err(), "the request was answered: {result:?}");
    let waited = reloaded.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(4),
        "cut {waited:?} after the reload"
    );
    wait_after(
        &t,
        mark,
        &format!("port {a} stopped listening 1s ago; closed 1 connection still busy"),
    );
    // The other port never noticed.
    assert_eq!(get(&http1_client(), b, HOST, "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_port_in_use_refuses_the_reload_and_the_old_config_keeps_serving() {
    let backend = Backend::start("web").await;
    let (a, c) = (free_port(), free_port());
    let t = Trellis::start(&config(&[http(a)], backend.port), &["--reload", "signal"]);
    let blocker = std::net::TcpListener::bind(("127.0.0.1", c)).unwrap();

    // The new config also changes what port `a` answers: none of it may be served.
    let next = config(
        &[
            Listener::new(&format!("http-{a}"), "HTTP", a).action(fixed_response(503)),
            http(c),
        ],
        backend.port,
    );
    let mark = reload(&t, &next);
    wait_after(&t, mark, "still serving the previous config");
    let log = t.stderr()[mark..].to_string();
    assert!(
        log.contains(&format!(
            "cannot listen on 127.0.0.1:{c}: Address already in use (os error 98) (another program uses this port; stop it or change the listener's port)"
        )),
        "{log}"
    );
    assert!(!log.contains("trellis: reloaded"), "{log}");
    assert!(!log.contains("now listening"), "{log}");
    let answer = get(&http1_client(), a, HOST, "/").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "Hello from web at /")
    );

    // Once the port is free, the same file reloads.
    drop(blocker);
    let mark = reload(&t, &next);
    wait_after(&t, mark, &format!("now listening on HTTP 127.0.0.1:{c}"));
    assert_eq!(get(&http1_client(), a, HOST, "/").await.status, 503);
    assert_eq!(get(&http1_client(), c, HOST, "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_port_that_changes_between_http_and_https_is_rebound() {
    let backend = Backend::start("web").await;
    let (a, b) = (free_port(), free_port());
    let t = Trellis::start(
        &config(&[http(a), http(b)], backend.port),
        &["--reload", "signal"],
    );
    let http_url = format!("http://{HOST}:{a}/plain");
    let https_url = format!("https://{HOST}:{a}/secure");
    assert_eq!(curl(&[&http_url]).await.1, 200);
    let b_client = http1_client();
    assert_eq!(get(&b_client, b, HOST, "/").await.status, 200);

    let mark = reload(&t, &config(&[https(a), http(b)], backend.port));
    let pem = generated_pem(&t, a);
    wait_after(
        &t,
        mark,
        &format!("now listening on HTTPS 127.0.0.1:{a} (certificate {pem})"),
    );
    let log = t.stderr()[mark..].to_string();
    assert!(
        log.contains(&format!("stopped listening on HTTP 127.0.0.1:{a}")),
        "{log}"
    );
    // curl (OpenSSL) verifies the certificate generated under the state dir, as at start-up.
    let (exit, code, out) = curl(&["--cacert", &pem, &https_url]).await;
    assert_eq!((exit, code), (0, 200), "{out}");
    assert_eq!(out, "Hello from web at /secure");
    let (_, code, out) = curl(&[&http_url]).await;
    assert_ne!(code, 200, "plain HTTP still served on an HTTPS port: {out}");
    // The other port's kept-alive connection was not disturbed.
    assert_eq!(get(&b_client, b, HOST, "/").await.status, 200);

    let mark = reload(&t, &config(&[http(a), http(b)], backend.port));
    wait_after(&t, mark, &format!("now listening on HTTP 127.0.0.1:{a}"));
    assert_eq!(curl(&[&http_url]).await.1, 200);
    let (_, code, out) = curl(&["--cacert", &pem, &https_url]).await;
    assert_ne!(code, 200, "HTTPS still served on an HTTP port: {out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_added_on_a_listening_https_port_gets_a_certificate_for_its_names() {
    let backend = Backend::start("web").await;
    let a = free_port();
    let t = Trellis::start(&config(&[https(a)], backend.port), &["--reload", "signal"]);
    let pem = generated_pem(&t, a);
    let other = format!("https://other.trellis.localhost:{a}/");
    let (exit, _, out) = curl(&["--cacert", &pem, &other]).await;
    assert_ne!(exit, 0, "the certificate already named `other`: {out}");

    // A second service on the port (a target group belongs to one service: `other` answers
    // itself).
    let answers = Listener::new(&format!("https-{a}"), "HTTPS", a).action(fixed_response(200));
    let two = config_of(&[("svc", &[https(a)]), ("other", &[answers])], backend.port);

    let mark = reload(&t, &two);
    wait_after(
        &t,
        mark,
        &format!("new certificates on HTTPS 127.0.0.1:{a} (certificate {pem})"),
    );
    let (exit, code, out) = curl(&["--cacert", &pem, &other]).await;
    assert_eq!((exit, code), (0, 200), "{out}");
    let (exit, code, out) = curl(&["--cacert", &pem, &format!("https://{HOST}:{a}/")]).await;
    assert_eq!((exit, code), (0, 200), "{out}");

    // A reload that changes nothing for the port keeps its certificate.
    let before = std::fs::read(&pem).unwrap();
    let mark = reload(&t, &two);
    wait_after(&t, mark, "trellis: reloaded");
    assert!(!t.stderr()[mark..].contains("new certificates"));
    assert_eq!(std::fs::read(&pem).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_connections_applies_to_a_port_added_by_a_reload() {
    let backend = Backend::start("web").await;
    let (a, b) = (free_port(), free_port());
    let t = Trellis::start(
        &config(&[http(a)], backend.port),
        &["--reload", "signal", "--max-connections", "1"],
    );
    let mark = reload(&t, &config(&[http(a), http(b)], backend.port));
    wait_after(&t, mark, &format!("now listening on HTTP 127.0.0.1:{b}"));

    let request = || {
        Request::get("/")
            .header("host", HOST)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let stream = TcpStream::connect(("127.0.0.1", b)).await.unwrap();
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let first = sender.send_request(request()).await.unwrap();
    assert_eq!(first.status(), 200);
    let _ = first.into_body().collect().await;

    // A second connection is over the limit: closed without an answer.
    let mut extra = TcpStream::connect(("127.0.0.1", b)).await.unwrap();
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
    // The open one is untouched.
    assert_eq!(sender.send_request(request()).await.unwrap().status(), 200);
    t.wait_for_stderr(Duration::from_secs(2), "the shedding warning", |e| {
        e.contains(&format!("port {b}: 1 connections open (--max-connections)"))
    });
}
