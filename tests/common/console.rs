//! The web console's clients for the end-to-end tests: a plain HTTP/1.0 exchange with the
//! admin port, and a live tail (server-sent events) read line by line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Trellis;

/// One HTTP/1.0 exchange with the admin port: (status, body).
pub fn admin(t: &Trellis, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(t.admin_addr()).expect("connect admin");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = stream.take(8 << 20).read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line from {method} {path}: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub fn admin_json(t: &Trellis, path: &str) -> Value {
    let (status, body) = admin(t, "GET", path, "");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
}

/// A live-tail watcher: the SSE stream read line by line on a thread.
pub struct Tail {
    pub lines: std::sync::mpsc::Receiver<String>,
    stream: TcpStream,
}

impl Tail {
    /// Opens `/ui/api/logs?QUERY`; the status line and, for 200, the `: connected` comment.
    pub fn open(t: &Trellis, query: &str) -> (u16, Option<Tail>) {
        Tail::open_at(t, "/ui/api/logs", query)
    }

    /// Opens `PATH?QUERY` (a live tail); the status line and, for 200, the `: connected`
    /// comment.
    pub fn open_at(t: &Trellis, path: &str, query: &str) -> (u16, Option<Tail>) {
        let mut stream = TcpStream::connect(t.admin_addr()).expect("connect admin");
        write!(stream, "GET {path}?{query} HTTP/1.1\r\nHost: admin\r\n\r\n").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a status line");
        let status: u16 = first.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let tail = Tail { lines: rx, stream };
        if status == 200 {
            tail.wait_for(Duration::from_secs(5), |l| l == ": connected")
                .expect("the connected comment");
            (status, Some(tail))
        } else {
            (status, None)
        }
    }

    pub fn wait_for(&self, within: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    /// The next record whose request id is `id`, within `within`.
    pub fn record(&self, id: &str, within: Duration) -> Option<Value> {
        let line = self.wait_for(within, |l| {
            l.starts_with("data: {") && l.contains(&format!("\"requestId\":\"{id}\""))
        })?;
        serde_json::from_str(&line["data: ".len()..]).ok()
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}
