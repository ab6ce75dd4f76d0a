//! A first end-to-end check: trellis up proxies to a backend.
mod common;
use common::*;

#[tokio::test]
async fn proxies_to_backend() {
    let backend = Backend::start("instance").await;
    let port = free_port();
    // Health checks off: a probe of `/` could otherwise be the last request the backend saw.
    let trellis = Trellis::start(&simple_config(port, &[backend.port]), &[]);
    let client = http1_client();
    let a = get(&client, port, "svc.trellis.localhost", "/hello?x=1").await;
    assert_eq!(a.status, 200, "{a:?}\n{}", trellis.stderr());
    assert_eq!(a.body, "Hello from instance at /hello");
    let seen = backend.last_seen();
    assert_eq!(seen.uri, "/hello?x=1");
    assert_eq!(seen.headers["host"], "svc.trellis.localhost");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
}
