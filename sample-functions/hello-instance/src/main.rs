//! `hello-instance`: the plain HTTP server behind INSTANCE / IP targets in the Trellis demos.
//! It speaks HTTP/1.1 and HTTP/2 (h2c prior knowledge) on one port and says who it is, so that
//! weighted routing between several instances is visible from curl.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, header, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;

const USAGE: &str =
    "usage: hello-instance [--port N (8081)] [--bind ADDR (0.0.0.0)] [--name NAME (instance)]";

/// Command-line options.
struct Options {
    port: u16,
    bind: String,
    name: String,
}

/// Parses `--port`, `--bind` and `--name` (also as `--flag=value`); `Err` carries the message
/// to print, which is the usage text for `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        port: 8081,
        bind: "0.0.0.0".into(),
        name: "instance".into(),
    };
    while let Some(arg) = args.next() {
        let (flag, mut inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value = || {
            inline
                .take()
                .or_else(|| args.next())
                .ok_or(format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--help" | "-h" => return Err(USAGE.to_owned()),
            "--port" => {
                let text = value()?;
                options.port = text.parse().map_err(|_| format!("invalid port {text:?}"))?;
            }
            "--bind" => options.bind = value()?,
            "--name" => options.name = value()?,
            _ => return Err(format!("unknown argument {flag:?}\n{USAGE}")),
        }
    }
    Ok(options)
}

/// The greeting for `path`: `/` gets the short form.
fn greeting(name: &str, path: &str) -> String {
    match path {
        "/" => format!("Hello from the {name}\n"),
        _ => format!("Hello from the {name} at path \"{path}\"\n"),
    }
}

async fn handle(
    name: Arc<str>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    let body = if path == "/health" {
        "ok".to_owned()
    } else {
        greeting(&name, path)
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) if message == USAGE => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let addr: SocketAddr = format!("{}:{}", options.bind, options.port)
        .parse()
        .or_else(|_| format!("[{}]:{}", options.bind, options.port).parse())
        .map_err(|_| format!("invalid bind address {:?}", options.bind))?;
    let listener = TcpListener::bind(addr).await?;
    println!("hello-instance listening on {}", listener.local_addr()?);
    let name: Arc<str> = options.name.into();
    loop {
        let (tcp, _) = listener.accept().await?;
        let name = Arc::clone(&name);
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&name), request));
            // Errors here are one client's broken connection: nothing to report.
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
