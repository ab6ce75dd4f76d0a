//! `hello-http`: a `wasi:http/proxy` component (wasm32-wasip2), the kind `wasmtime serve` and
//! Spin run. Trellis hands it the HTTP request itself, with no Lambda event in between.
//!
//! `/echo` answers with the request body (to show request bodies reach the component) and
//! `/loop` never answers (to show the function's timeout stops it).

use wstd::http::body::Body;
use wstd::http::{Error, Request, Response};

/// The greeting for `path`, worded like `hello-instance`'s and `hello-wasm`'s.
fn greeting(path: &str) -> String {
    match path {
        "/" => "Hello from the wasi:http function\n".to_owned(),
        _ => format!("Hello from the wasi:http function at path \"{path}\"\n"),
    }
}

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().to_owned();
    eprintln!("{} {path}", request.method());
    let body: Body = match path.as_str() {
        "/echo" => request.body_mut().contents().await?.to_vec().into(),
        "/loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        _ => greeting(&path).into(),
    };
    Ok(Response::builder()
        .header("content-type", "text/plain")
        .body(body)?)
}
