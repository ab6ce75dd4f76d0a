//! `POST /ui/api/send`: the send-a-request form. The console sends the request to the service's
//! listener as any client would, and reports the answer with the rule and target that served it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use trellis_config::ListenerProtocol;

use super::{Body, Console, MAX_FILTER, json_response, truncate};

/// The longest body `POST /ui/api/send` accepts, and the longest response body it shows.
const MAX_SEND_BODY: usize = 1 << 20;

/// How long the console waits for a sent request's answer.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the console waits for the access-log record of a request it sent.
const RECORD_WAIT: Duration = Duration::from_secs(2);

impl Console {
    /// `POST /ui/api/send` with `{"service", "listener"?, "method", "path", "headers": [[name,
    /// value]…], "body"}`: sends the request to the service's listener on loopback, with the
    /// service's DNS name as its host and a fresh `x-amzn-requestid`, and answers with the full
    /// response, the rule it matched and the access-log record of that request (found on the
    /// tap by its request id).
    pub(super) async fn send(&self, request: Request<hyper::body::Incoming>) -> Response<Body> {
        let body = match tokio::time::timeout(
            Duration::from_secs(10),
            Limited::new(request.into_body(), MAX_SEND_BODY).collect(),
        )
        .await
        {
            Ok(Ok(b)) => b.to_bytes(),
            _ => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "the form's JSON did not arrive whole within 10 s, or is over 1 MiB"}),
                );
            }
        };
        let form: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": format!("not JSON: {e}")}),
                );
            }
        };
        match self.send_form(&form).await {
            Ok(v) => json_response(StatusCode::OK, &v),
            Err((status, message)) => json_response(status, &json!({"error": message})),
        }
    }

    async fn send_form(&self, form: &Value) -> Result<Value, (StatusCode, String)> {
        let bad = |m: String| (StatusCode::BAD_REQUEST, m);
        let text = |k: &str| form.get(k).and_then(Value::as_str);
        let service = text("service").ok_or_else(|| bad("\"service\" is required".into()))?;
        let method = text("method").unwrap_or("GET");
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| bad(format!("not an HTTP method: {method:?}")))?;
        let path = text("path").unwrap_or("/");
        if !path.starts_with('/') {
            return Err(bad("the path must start with /".into()));
        }
        let table = self.table.load_full();
        let svc = table
            .config
            .services
            .iter()
            .find(|s| s.name == service)
            .ok_or_else(|| {
                (
                    StatusCode::NOT_FOUND,
                    format!("no service named {:?}", truncate(service, MAX_FILTER)),
                )
            })?;
        // The named listener, else the first HTTP one, else the first.
        let listener = match text("listener") {
            Some(name) => svc.listeners.iter().find(|l| l.name == name),
            None => svc
                .listeners
                .iter()
                .find(|l| l.protocol == ListenerProtocol::Http)
                .or_else(|| svc.listeners.first()),
        }
        .ok_or_else(|| bad(format!("service {service} has no such listener")))?;
        let tls = listener.protocol == ListenerProtocol::Https;
        let address = self.listener_address(listener.port).await.ok_or_else(|| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("port {} is not listening", listener.port),
            )
        })?;
        let id = format!("console-{}", uuid::Uuid::new_v4());
        let mut sent_headers = http::HeaderMap::new();
        if let Some(headers) = form.get("headers").and_then(Value::as_array) {
            for pair in headers.iter().take(100) {
                let (Some(k), Some(v)) = (
                    pair.get(0).and_then(Value::as_str),
                    pair.get(1).and_then(Value::as_str),
                ) else {
                    continue;
                };
                if k.is_empty() || k.eq_ignore_ascii_case("host") {
                    continue;
                }
                let name = http::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| bad(format!("not a header name: {k:?}")))?;
                let value = http::HeaderValue::from_str(v)
                    .map_err(|_| bad(format!("not a header value for {k}")))?;
                sent_headers.append(name, value);
            }
        }
        let signed_as = match text("identity").filter(|i| !i.is_empty()) {
            Some(identity) => Some(sign(
                &table.config,
                identity,
                &method,
                path,
                svc,
                &id,
                &mut sent_headers,
            )?),
            None => None,
        };
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, &svc.dns_name)
            .header("x-amzn-requestid", &id);
        for (name, value) in &sent_headers {
            builder = builder.header(name, value);
        }
        let body = text("body").unwrap_or("").to_owned();
        let request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| bad(format!("cannot make the request: {e}")))?;
        // Which rule the router picks, by the same matcher it uses (the path without query).
        let rule = table
            .services
            .iter()
            .find(|s| s.name == svc.name)
            .and_then(|s| s.listeners.iter().find(|l| l.name == listener.name))
            .map(|l| {
                let bare = path.split('?').next().unwrap_or(path);
                l.route(method.as_str(), bare, &sent_headers)
                    .1
                    .unwrap_or("default action")
                    .to_owned()
            });
        // Subscribed before sending, so the record cannot slip past.
        let mut records = trellis_router::accesslog::tap().subscribe();
        let started = std::time::Instant::now();
        let sni = tls.then_some(svc.dns_name.as_str());
        let answer = tokio::time::timeout(SEND_TIMEOUT, exchange(address, sni, request))
            .await
            .map_err(|_| {
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("no answer within {} s", SEND_TIMEOUT.as_secs()),
                )
            })?
            .map_err(|e| (StatusCode::BAD_GATEWAY, e))?;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let record = tokio::time::timeout(RECORD_WAIT, async {
            loop {
                match records.recv().await {
                    Ok(line) => {
                        if let Ok(v) = serde_json::from_str::<Value>(&line)
                            && v.get("requestId").and_then(Value::as_str) == Some(id.as_str())
                        {
                            return Some(v);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .await
        .ok()
        .flatten();
        let group = record
            .as_ref()
            .and_then(|r| r.get("targetGroupArn").and_then(Value::as_str))
            .and_then(|arn| table.config.target_groups.iter().find(|g| g.arn == arn))
            .map(|g| g.name.clone());
        let (status, headers, body) = answer;
        Ok(json!({
            "requestId": id,
            "url": format!("{}://{}:{}{}", if tls { "https" } else { "http" }, svc.dns_name, listener.port, path),
            "status": status, "headers": headers, "body": body, "elapsedMs": elapsed_ms,
            "rule": rule, "targetGroup": group, "signedAs": signed_as,
            "target": record.as_ref().and_then(|r| r.get("targetIpPort")).cloned(),
            "record": record,
        }))
    }

    /// Where to reach the listener on `port`: its socket, loopback when bound to every address.
    async fn listener_address(&self, port: u16) -> Option<SocketAddr> {
        let ports = self.listeners.as_ref()?.ports().await;
        let local = ports.iter().find(|p| p.port == port)?.local;
        let ip = match local.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            other => other,
        };
        Some(SocketAddr::new(ip, local.port()))
    }
}

/// The headers a request signed by one of the configured identities (`identity`: its access
/// key id or ARN) adds: SigV4 for `vpc-lattice-svcs` in the config's region over the request as
/// it will be sent (method, path and query, the service's DNS name as `host`, the request id
/// and the form's headers), made with the very signer whose output the tests hold to
/// botocore's. The secret never leaves Trellis: the page names identities, the console signs.
/// Returns the principal the request is signed as.
fn sign(
    config: &trellis_config::Config,
    identity: &str,
    method: &Method,
    path: &str,
    svc: &trellis_config::Service,
    request_id: &str,
    headers: &mut http::HeaderMap,
) -> Result<String, (StatusCode, String)> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let signers = config.signers();
    let signer = signers
        .iter()
        .find(|s| s.access_key_id == identity || s.arn == identity)
        .ok_or_else(|| {
            bad(format!(
                "no configured identity has access key id or ARN {:?} (the form signs only as one of the config's identities)",
                truncate(identity, MAX_FILTER)
            ))
        })?;
    // The signature is made here: a header of the form's that the signature sets would be
    // sent twice (a duplicated Authorization is refused), or replace it unseen.
    for name in [
        "authorization",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
    ] {
        if headers.contains_key(name) {
            return Err(bad(format!(
                "leave out the {name} header when signing as an identity: the console makes it"
            )));
        }
    }
    let mut to_sign = headers.clone();
    let request_id = http::HeaderValue::from_str(request_id)
        .map_err(|_| bad("the request id is not a header value".into()))?;
    to_sign.insert("x-amzn-requestid", request_id);
    let (bare, query) = match path.split_once('?') {
        Some((bare, query)) => (bare, Some(query)),
        None => (path, None),
    };
    let added = trellis_auth::sigv4::sign(
        signer,
        &config.region,
        &trellis_auth::sigv4::RequestToSign {
            method: method.as_str(),
            path: bare,
            query,
            host: &svc.dns_name,
            headers: &to_sign,
        },
        std::time::SystemTime::now(),
    )
    .map_err(|e| bad(format!("cannot sign as {}: {e}", signer.arn)))?;
    for (name, value) in &added {
        headers.insert(name, value.clone());
    }
    let caller = signer
        .caller()
        .map_err(|e| bad(format!("identity {}: {e}", signer.arn)))?;
    Ok(caller.arn)
}

/// What a sent request got back: status, headers, body.
type Answer = (u16, Vec<(String, String)>, String);

/// Sends one HTTP/1.1 request and reads its answer, body as lossy UTF-8 cut at
/// [`MAX_SEND_BODY`]. With `sni`, over TLS with that server name (an HTTPS listener's
/// certificate is not checked: it is Trellis's own, often self-signed).
async fn exchange(
    address: SocketAddr,
    sni: Option<&str>,
    request: Request<Full<Bytes>>,
) -> Result<Answer, String> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    let Some(sni) = sni else {
        return exchange_over(stream, address, request).await;
    };
    let config = trellis_router::tls::loopback_client_config().map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned())
        .map_err(|e| format!("{sni:?} is not a TLS server name: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake with {address} failed: {e}"))?;
    exchange_over(stream, address, request).await
}

async fn exchange_over<S>(
    stream: S,
    address: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<Answer, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake with {address} failed: {e}"))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("the request failed: {e}"))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the response body broke off: {e}"))?;
        if let Some(data) = frame.data_ref() {
            let room = MAX_SEND_BODY.saturating_sub(bytes.len());
            bytes.extend_from_slice(&data[..data.len().min(room)]);
            if room <= data.len() {
                break;
            }
        }
    }
    Ok((
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}
