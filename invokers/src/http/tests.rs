use super::*;

use std::convert::Infallible;
use std::net::SocketAddr;

use http::HeaderMap;
use http_body_util::BodyExt;
use http_body_util::channel::Channel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use trellis_router::target::{boxed, empty, full};

type TestResult = Result<(), BoxError>;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The host of [`http1_request`] and of [`http2_request`].
const HOST: &str = "svc.trellis.localhost:8080";
const H2_HOST: &str = "grpc.trellis.localhost:8443";

/// The context the router passes along, with the host it resolved for the request.
fn ctx(host: &'static str) -> CallContext<'static> {
    CallContext {
        request_id: "req-1",
        host,
        client: SocketAddr::from(([127, 0, 0, 1], 40000)),
        listener_port: 8080,
        scheme: "http",
        target_group_arn: "arn:tg",
        service_arn: "arn:svc",
        service_network_arn: None,
        source_vpc_arn: None,
        caller: None,
    }
}

/// The test server: reports what it saw in `x-seen-*` headers and echoes the request body
/// frame by frame; `/trailers` answers with a gRPC-style trailer; `/missing` is a 404.
async fn handle(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let seen = |value: &str| HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("?"));
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let authority = request
        .uri()
        .authority()
        .map_or("-", |a| a.as_str())
        .to_owned();
    let version = format!("{:?}", request.version());
    let line = format!(
        "{} {}",
        request.method(),
        request.uri().path_and_query().map_or("", |pq| pq.as_str())
    );
    let path = request.uri().path().to_owned();
    let mut response = match path.as_str() {
        "/trailers" => Response::new(trailer_body()),
        "/missing" => {
            let mut response = Response::new(empty());
            *response.status_mut() = http::StatusCode::NOT_FOUND;
            response
        }
        _ => Response::new(boxed(request.into_body())),
    };
    let headers = response.headers_mut();
    headers.insert("x-seen-host", seen(&host));
    headers.insert("x-seen-authority", seen(&authority));
    headers.insert("x-seen-version", seen(&version));
    headers.insert("x-seen-line", seen(&line));
    Ok(response)
}

fn trailer_body() -> Body {
    let (mut sender, body) = Channel::<Bytes, BoxError>::new(2);
    tokio::spawn(async move {
        let _ = sender.send_data(Bytes::from_static(b"payload")).await;
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let _ = sender.send_trailers(trailers).await;
    });
    boxed(body)
}

/// Serves [`handle`] with HTTP/1.1 and h2c (and h2 over TLS when `tls` is given).
async fn server(tls: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let service = hyper::service::service_fn(handle);
                let _ = match acceptor {
                    None => builder.serve_connection(TokioIo::new(tcp), service).await,
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
                        Err(_) => return,
                    },
                };
            });
        }
    });
    Ok(addr)
}

/// A server that runs `behave` on every accepted connection.
async fn raw_server<F, Fut>(behave: F) -> std::io::Result<SocketAddr>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(behave(tcp));
        }
    });
    Ok(addr)
}

fn target(
    clients: &HttpClients,
    addr: SocketAddr,
    tls: bool,
    version: UpstreamVersion,
    timeout: Duration,
) -> Result<HttpTarget, HttpTargetError> {
    HttpTarget::new(clients, "127.0.0.1", addr.port(), tls, version, timeout)
}

fn header<'a>(response: &'a Response<Body>, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

/// An HTTP/1.1-style client request with a `Host` header.
fn http1_request(method: &str, path: &str, body: Body) -> Result<Request<Body>, http::Error> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, HOST)
        .body(body)
}

/// An HTTP/2-style client request: authority in the URI, no `Host` header.
fn http2_request(path: &str) -> Result<Request<Body>, http::Error> {
    Request::get(format!("http://{H2_HOST}{path}"))
        .version(Version::HTTP_2)
        .body(empty())
}

async fn text(response: Response<Body>) -> Result<String, BoxError> {
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(bytes.to_vec())?)
}

#[tokio::test]
async fn proxies_get_to_http1_target_keeping_host() -> TestResult {
    let addr = server(None).await?;
    let clients = HttpClients::new()?;
    let target = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
    assert_eq!(target.address(), format!("127.0.0.1:{}", addr.port()));

    let response = target
        .call(ctx(HOST), http1_request("GET", "/a/b?x=1", empty())?)
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-seen-line"), "GET /a/b?x=1");
    assert_eq!(
        header(&response, "x-seen-host"),
        "svc.trellis.localhost:8080"
    );
    assert_eq!(header(&response, "x-seen-version"), "HTTP/1.1");

    // An HTTP/2 client request reaches an HTTP/1.1 target with the client's authority.
    let response = target
        .call(ctx(H2_HOST), http2_request("/from-h2")?)
        .await?;
    assert_eq!(header(&response, "x-seen-version"), "HTTP/1.1");
    assert_eq!(
        header(&response, "x-seen-host"),
        "grpc.trellis.localhost:8443"
    );
    assert_eq!(header(&response, "x-seen-line"), "GET /from-h2");
    Ok(())
}

/// The request body is sent frame by frame and the echo comes back before the request
/// body ends: neither direction is buffered.
async fn streams_both_ways(version: UpstreamVersion) -> TestResult {
    let addr = server(None).await?;
    let clients = HttpClients::new()?;
    let target = target(&clients, addr, false, version, TIMEOUT)?;
    let (mut sender, body) = Channel::<Bytes, BoxError>::new(1);
    let request = http1_request("POST", "/echo", boxed(body))?;

    sender.send_data(Bytes::from_static(b"first ")).await?;
    let response = target.call(ctx(HOST), request).await?;
    assert_eq!(header(&response, "x-seen-line"), "POST /echo");
    let mut body = response.into_body();
    let frame = tokio::time::timeout(TIMEOUT, body.frame())
        .await?
        .ok_or("no frame")??;
    assert_eq!(frame.into_data().ok().as_deref(), Some(&b"first "[..]));

    sender.send_data(Bytes::from_static(b"second")).await?;
    drop(sender);
    let rest = tokio::time::timeout(TIMEOUT, body.collect())
        .await??
        .to_bytes();
    assert_eq!(&rest[..], b"second");
    Ok(())
}

#[tokio::test]
async fn streams_post_body_over_http1() -> TestResult {
    streams_both_ways(UpstreamVersion::Http1).await
}

#[tokio::test]
async fn streams_post_body_over_h2c() -> TestResult {
    streams_both_ways(UpstreamVersion::Http2).await
}

#[tokio::test]
async fn proxies_to_h2c_target_with_trailers() -> TestResult {
    let addr = server(None).await?;
    let clients = HttpClients::new()?;
    let target = target(&clients, addr, false, UpstreamVersion::Http2, TIMEOUT)?;

    // An HTTP/1.1 client request reaches an HTTP/2 target, its host as `:authority` and
    // no `Host` beside it (RFC 9113 8.3.1: the two must not differ).
    let response = target
        .call(ctx(HOST), http1_request("GET", "/x", empty())?)
        .await?;
    assert_eq!(header(&response, "x-seen-version"), "HTTP/2.0");
    assert_eq!(
        header(&response, "x-seen-authority"),
        "svc.trellis.localhost:8080"
    );
    assert_eq!(header(&response, "x-seen-host"), "-");

    let response = target
        .call(ctx(H2_HOST), http2_request("/trailers")?)
        .await?;
    assert_eq!(
        header(&response, "x-seen-authority"),
        "grpc.trellis.localhost:8443"
    );
    assert_eq!(header(&response, "x-seen-host"), "-");
    let collected = response.into_body().collect().await?;
    let trailers = collected.trailers().cloned().ok_or("no trailers")?;
    assert_eq!(
        trailers.get("grpc-status").map(HeaderValue::as_bytes),
        Some(&b"0"[..])
    );
    assert_eq!(&collected.to_bytes()[..], b"payload");
    Ok(())
}

/// A request that named no host (or one that is no valid authority, when the router found
/// the service by SNI) reaches the target with the target's own address as its host.
#[tokio::test]
async fn request_without_host_names_the_target() -> TestResult {
    let addr = server(None).await?;
    let clients = HttpClients::new()?;
    let own = format!("127.0.0.1:{}", addr.port());
    for (version, host, seen_host, seen_authority) in [
        (UpstreamVersion::Http1, "", own.as_str(), "-"),
        (UpstreamVersion::Http2, "", "-", own.as_str()),
        (UpstreamVersion::Http2, "not a host", "-", own.as_str()),
    ] {
        let target = target(&clients, addr, false, version, TIMEOUT)?;
        let request = Request::get("/bare").body(empty())?;
        let response = target.call(ctx(host), request).await?;
        assert_eq!(header(&response, "x-seen-host"), seen_host, "{host:?}");
        assert_eq!(
            header(&response, "x-seen-authority"),
            seen_authority,
            "{host:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn proxies_over_tls_with_http1_and_h2() -> TestResult {
    let cert = trellis_router::tls::self_signed(&["target.test".to_owned()])?;
    let resolver = trellis_router::tls::SniResolver::new(cert.certified_key);
    let addr = server(Some(trellis_router::tls::server_config(Arc::new(
        resolver,
    ))?))
    .await?;
    let clients = HttpClients::new()?;
    // The client's host: as `Host` over HTTP/1.1, as `:authority` over HTTP/2.
    let host = "svc.trellis.localhost:8080";
    for (version, seen, seen_host, seen_authority) in [
        (UpstreamVersion::Http1, "HTTP/1.1", host, "-"),
        (UpstreamVersion::Http2, "HTTP/2.0", "-", host),
    ] {
        let target = target(&clients, addr, true, version, TIMEOUT)?;
        let response = target
            .call(ctx(HOST), http1_request("POST", "/tls", full("hi"))?)
            .await?;
        assert_eq!(header(&response, "x-seen-version"), seen);
        assert_eq!(header(&response, "x-seen-host"), seen_host);
        assert_eq!(header(&response, "x-seen-authority"), seen_authority);
        assert_eq!(text(response).await?, "hi");
    }
    Ok(())
}

#[tokio::test]
async fn refused_connection_is_connect_error() -> TestResult {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    drop(listener);
    let clients = HttpClients::new()?;
    for version in [UpstreamVersion::Http1, UpstreamVersion::Http2] {
        let target = target(&clients, addr, false, version, TIMEOUT)?;
        let err = target
            .call(ctx(HOST), http1_request("GET", "/", empty())?)
            .await
            .err();
        assert!(matches!(err, Some(TargetError::Connect { .. })), "{err:?}");
    }
    Ok(())
}

#[tokio::test]
async fn garbage_response_is_protocol_error() -> TestResult {
    let addr = raw_server(|mut tcp| async move {
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp.write_all(b"this is not HTTP\r\n\r\n").await;
        let _ = tcp.shutdown().await;
    })
    .await?;
    let clients = HttpClients::new()?;
    let target = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
    let err = target
        .call(ctx(HOST), http1_request("GET", "/", empty())?)
        .await
        .err();
    assert!(matches!(err, Some(TargetError::Protocol { .. })), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn garbage_to_h2c_client_is_protocol_error() -> TestResult {
    let addr = raw_server(|mut tcp| async move {
        let _ = tcp
            .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\nnot a settings frame")
            .await;
        let mut buf = [0u8; 1024];
        while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await?;
    let clients = HttpClients::new()?;
    let target = target(&clients, addr, false, UpstreamVersion::Http2, TIMEOUT)?;
    let err = target
        .call(ctx(HOST), http1_request("GET", "/", empty())?)
        .await
        .err();
    assert!(matches!(err, Some(TargetError::Protocol { .. })), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn connection_closed_without_answer_is_closed() -> TestResult {
    let addr = raw_server(|mut tcp| async move {
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
    })
    .await?;
    let clients = HttpClients::new()?;
    let target = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
    let err = target
        .call(ctx(HOST), http1_request("GET", "/", empty())?)
        .await
        .err();
    assert!(matches!(err, Some(TargetError::Closed { .. })), "{err:?}");
    Ok(())
}

/// A keep-alive HTTP/1.1 server that answers every request on a connection with
/// `hello` and tells `events` when it accepts a connection (`"open"`) and when the client
/// closes one (`"closed"`). With `close_after_one`, it closes each connection itself after
/// the first answer, without saying so in a `Connection: close` header.
async fn counting_server(
    close_after_one: bool,
) -> std::io::Result<(
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<&'static str>,
)> {
    let (events, seen) = tokio::sync::mpsc::unbounded_channel();
    let addr = raw_server(move |mut tcp| {
        let events = events.clone();
        async move {
            let _ = events.send("open");
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            loop {
                match tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                // Requests here are GETs: each ends with its blank line.
                while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    buf.drain(..end + 4);
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
                    if tcp.write_all(answer).await.is_err() || close_after_one {
                        return;
                    }
                }
            }
            let _ = events.send("closed");
        }
    })
    .await?;
    Ok((addr, seen))
}

/// What the counting server has reported so far.
fn drain(seen: &mut tokio::sync::mpsc::UnboundedReceiver<&'static str>) -> Vec<&'static str> {
    std::iter::from_fn(|| seen.try_recv().ok()).collect()
}

/// `GET /` through `target`.
async fn get(target: &HttpTarget) -> Result<Response<Body>, BoxError> {
    Ok(target
        .call(ctx(HOST), http1_request("GET", "/", empty())?)
        .await?)
}

#[tokio::test]
async fn http1_connection_is_reused_once_the_response_is_read() -> TestResult {
    let (addr, mut seen) = counting_server(false).await?;
    let clients = HttpClients::new()?;
    let target = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
    for _ in 0..5 {
        let response = get(&target).await?;
        assert_eq!(text(response).await?, "hello");
    }
    assert_eq!(target.http1.idle_here(), 1);
    assert_eq!(drain(&mut seen), ["open"]);

    // A response dropped before its body was read leaves the rest on the socket: that
    // connection is closed, not reused, and the next request opens a new one.
    let unread = get(&target).await?;
    drop(unread);
    assert_eq!(target.http1.idle_here(), 0);
    let response = get(&target).await?;
    assert_eq!(text(response).await?, "hello");
    // The old connection's close and the new one's accept race each other.
    let mut events = [seen.recv().await, seen.recv().await];
    events.sort();
    assert_eq!(events, [Some("closed"), Some("open")]);
    Ok(())
}

#[tokio::test]
async fn http1_connection_the_target_closed_while_idle_is_not_used() -> TestResult {
    let (addr, mut seen) = counting_server(true).await?;
    let clients = HttpClients::new()?;
    let target = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
    for round in 1..=3 {
        let response = get(&target).await?;
        assert_eq!(response.status(), 200, "request {round}");
        assert_eq!(text(response).await?, "hello", "request {round}");
        // Let the pooled connection's task see the target's FIN.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(drain(&mut seen), ["open", "open", "open"]);
    Ok(())
}

#[tokio::test]
async fn idle_http1_connections_are_closed_after_the_idle_timeout() -> TestResult {
    let (addr, mut seen) = counting_server(false).await?;
    // Kept: a minute-long timeout leaves the connection open well past a second.
    let clients = HttpClients::with_idle_timeout(Duration::from_secs(60))?;
    let kept = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
    let response = get(&kept).await?;
    assert_eq!(text(response).await?, "hello");
    assert_eq!(seen.recv().await, Some("open"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(drain(&mut seen), Vec::<&str>::new());

    // Closed: with a 200 ms timeout the client hangs up, twice in a row (the timer starts
    // again when the connection is used again).
    let clients = HttpClients::with_idle_timeout(Duration::from_millis(200))?;
    let closing = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
    for _ in 0..2 {
        let response = get(&closing).await?;
        assert_eq!(text(response).await?, "hello");
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            (seen.recv().await, seen.recv().await)
        });
        assert_eq!(closed.await?, (Some("open"), Some("closed")));
    }
    drop(kept);
    Ok(())
}

#[tokio::test]
async fn http2_connections_close_after_the_idle_timeout_with_no_stream_open() -> TestResult {
    let addr = server(None).await?;
    let idle = Duration::from_millis(200);
    let clients = HttpClients::with_idle_timeout(idle)?;
    let closing = target(&clients, addr, false, UpstreamVersion::Http2, TIMEOUT)?;

    // A response still streaming keeps its connection open past the idle timeout.
    let (mut sender, body) = Channel::<Bytes, BoxError>::new(1);
    let response = closing
        .call(ctx(HOST), http1_request("POST", "/echo", boxed(body))?)
        .await?;
    sender.send_data(Bytes::from_static(b"slow")).await?;
    tokio::time::sleep(idle * 3).await;
    assert!(closing.http2.open_here(), "closed with a stream open");
    drop(sender);
    assert_eq!(text(response).await?, "slow");

    // Once it has ended, the connection goes after the timeout; the next request opens
    // another.
    let closed = tokio::time::timeout(TIMEOUT, async {
        while closing.http2.open_here() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    closed.await?;
    let response = get(&closing).await?;
    assert_eq!(header(&response, "x-seen-version"), "HTTP/2.0");
    assert!(closing.http2.open_here());

    // With a minute-long timeout it stays.
    let clients = HttpClients::with_idle_timeout(Duration::from_secs(60))?;
    let kept = target(&clients, addr, false, UpstreamVersion::Http2, TIMEOUT)?;
    text(get(&kept).await?).await?;
    tokio::time::sleep(idle * 3).await;
    assert!(kept.http2.open_here());
    Ok(())
}

#[tokio::test]
async fn concurrent_requests_on_a_cold_thread_share_one_http2_connection() -> TestResult {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let service = hyper::service::service_fn(handle);
                let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
            });
        }
    });
    let clients = HttpClients::new()?;
    let target = target(&clients, addr, false, UpstreamVersion::Http2, TIMEOUT)?;
    // Eight calls at once on this (single) thread, which has no connection yet.
    let calls = futures_util::future::join_all((0..8).map(|_| get(&target))).await;
    for response in calls {
        assert_eq!(header(&response?, "x-seen-version"), "HTTP/2.0");
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "each call opened its own connection"
    );
    Ok(())
}

/// Accepts, reads the request, and holds the connection open without answering.
async fn silent_server() -> std::io::Result<SocketAddr> {
    raw_server(|mut tcp| async move {
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await
}

#[tokio::test]
async fn silent_target_times_out() -> TestResult {
    let addr = silent_server().await?;
    let clients = HttpClients::new()?;
    let timeout = Duration::from_millis(200);
    let target = target(&clients, addr, false, UpstreamVersion::Http1, timeout)?;
    let err = target
        .call(ctx(HOST), http1_request("GET", "/", empty())?)
        .await
        .err();
    assert!(matches!(err, Some(TargetError::Timeout { .. })), "{err:?}");
    Ok(())
}

fn spec(path: &str, http2: bool, port: Option<u16>) -> ProbeSpec {
    ProbeSpec {
        scheme: "http",
        http2,
        port,
        path: path.to_owned(),
        timeout: Duration::from_millis(500),
    }
}

async fn probe(target: &HttpTarget, spec: &ProbeSpec) -> Result<ProbeOutcome, &'static str> {
    Ok(target.probe(spec).ok_or("probe not supported")?.await)
}

#[tokio::test]
async fn probe_reports_status_codes() -> TestResult {
    let addr = server(None).await?;
    let clients = HttpClients::new()?;
    let target = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
    assert_eq!(
        probe(&target, &spec("/health", false, None)).await?,
        ProbeOutcome::Status(200)
    );
    assert_eq!(
        probe(&target, &spec("/missing?a=1", false, None)).await?,
        ProbeOutcome::Status(404)
    );
    assert_eq!(
        probe(&target, &spec("/health", true, None)).await?,
        ProbeOutcome::Status(200)
    );

    // The probe port overrides the traffic port.
    let other = target_with_port(&clients, 1)?;
    let explicit = spec("/health", false, Some(addr.port()));
    assert_eq!(probe(&other, &explicit).await?, ProbeOutcome::Status(200));
    Ok(())
}

fn target_with_port(clients: &HttpClients, port: u16) -> Result<HttpTarget, HttpTargetError> {
    HttpTarget::new(
        clients,
        "127.0.0.1",
        port,
        false,
        UpstreamVersion::Http1,
        TIMEOUT,
    )
}

#[tokio::test]
async fn probes_of_a_target_that_answers_and_closes_pass() -> TestResult {
    // HTTP/1.0-style: the answer and the close come together, so the probe's connection ends
    // in the poll that delivers the answer. Each probe must still see the answer.
    let addr = raw_server(|mut tcp| async move {
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp
            .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            .await;
        let _ = tcp.shutdown().await;
    })
    .await?;
    let clients = HttpClients::new()?;
    let target = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
    for i in 0..40 {
        let outcome = probe(&target, &spec("/health", false, None)).await?;
        assert_eq!(outcome, ProbeOutcome::Status(204), "probe {i}");
    }
    Ok(())
}

#[tokio::test]
async fn probe_over_tls() -> TestResult {
    let cert = trellis_router::tls::self_signed(&[])?;
    let resolver = trellis_router::tls::SniResolver::new(cert.certified_key);
    let addr = server(Some(trellis_router::tls::server_config(Arc::new(
        resolver,
    ))?))
    .await?;
    let clients = HttpClients::new()?;
    let target = target(&clients, addr, true, UpstreamVersion::Http1, TIMEOUT)?;
    for http2 in [false, true] {
        let spec = ProbeSpec {
            scheme: "https",
            ..spec("/health", http2, None)
        };
        assert_eq!(probe(&target, &spec).await?, ProbeOutcome::Status(200));
    }
    Ok(())
}

/// Each probe uses its own connection and closes it: the server sees EOF after answering.
#[tokio::test]
async fn probe_closes_its_connection() -> TestResult {
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
    let addr = raw_server(move |mut tcp| {
        let closed_tx = closed_tx.clone();
        async move {
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
            while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
            let _ = closed_tx.send(());
        }
    })
    .await?;
    let clients = HttpClients::new()?;
    let target = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
    for _ in 0..2 {
        let outcome = probe(&target, &spec("/", false, None)).await?;
        assert_eq!(outcome, ProbeOutcome::Status(204));
        tokio::time::timeout(TIMEOUT, closed_rx.recv())
            .await?
            .ok_or("server gone")?;
    }
    Ok(())
}

#[tokio::test]
async fn probe_failures() -> TestResult {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let refused = listener.local_addr()?;
    drop(listener);
    let clients = HttpClients::new()?;
    let target = target(&clients, refused, false, UpstreamVersion::Http1, TIMEOUT)?;
    let outcome = probe(&target, &spec("/", false, None)).await?;
    assert!(
        matches!(&outcome, ProbeOutcome::Failed(reason) if reason.contains("connect")),
        "{outcome:?}"
    );

    let silent = silent_server().await?;
    let target = target_with_port(&clients, silent.port())?;
    let outcome = probe(&target, &spec("/", false, None)).await?;
    assert!(
        matches!(&outcome, ProbeOutcome::Failed(reason) if reason.contains("within")),
        "{outcome:?}"
    );
    Ok(())
}

#[test]
fn ipv6_hosts_are_bracketed() -> TestResult {
    let bracketed = authority("::1", 8080)?;
    assert_eq!(bracketed.as_str(), "[::1]:8080");
    assert!(authority("bad host", 80).is_err());
    Ok(())
}
