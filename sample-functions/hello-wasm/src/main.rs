//! `hello-wasm`: a Lambda-style function built as a WASI command (wasm32-wasip1, or wasm32-wasip2
//! for a command component). Trellis writes the VPC Lattice event (V1 or V2) to its stdin and
//! reads the response JSON from its stdout; what it prints on stderr goes to the function log.
//!
//! Besides the greeting, a few request paths misbehave on purpose, so that the tests can drive
//! every failure through the very module users run:
//!
//! | path       | behaviour                                                       |
//! |------------|-----------------------------------------------------------------|
//! | `/panic`   | panics (a trap, with the panic message on stderr)               |
//! | `/loop`    | loops forever (stopped by the function's timeout)               |
//! | `/oom`     | allocates until the memory limit stops it                       |
//! | `/garbage` | prints something that is not JSON                              |
//! | `/big`     | answers with a 7 MB body (over Lambda's 6 MB response limit)     |
//! | `/env`     | echoes `AWS_LAMBDA_FUNCTION_NAME` and the `GREETING` variable   |
//! | `/exit`    | exits with status 3 mid-invocation                              |
//! | `/event`   | answers with the event it received, as JSON text                |

use std::io::{Read, Write};

use serde_json::{Value, json};

/// The greeting for `path`, worded like `hello-instance`'s so that weighted routing between an
/// instance and a function is easy to read in curl output.
fn greeting(path: &str, method: &str) -> String {
    match path {
        "/" => "Hello from the function\n".to_owned(),
        _ => format!("Hello from the function at path \"{path}\" (method {method})\n"),
    }
}

/// The request path without its query string. A V2 event (`"version": "2.0"`) carries it in
/// `path`, a V1 event in `raw_path`; both include the query string.
fn request_path(event: &Value) -> &str {
    let raw = if event.get("version").and_then(Value::as_str) == Some("2.0") {
        event.get("path")
    } else {
        event.get("raw_path")
    };
    let raw = raw.and_then(Value::as_str).unwrap_or("/");
    raw.split('?').next().unwrap_or(raw)
}

fn text_response(status: u16, body: &str) -> Value {
    json!({
        "statusCode": status,
        "headers": {"content-type": "text/plain"},
        "body": body,
    })
}

fn main() {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("cannot read the event from stdin: {e}");
        std::process::exit(1);
    }
    let event: Value = match serde_json::from_str(&input) {
        Ok(event) => event,
        Err(e) => {
            eprintln!("the event is not JSON: {e}");
            std::process::exit(1);
        }
    };
    let path = request_path(&event).to_owned();
    let method = event
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_owned();
    eprintln!("{method} {path}");

    let response = match path.as_str() {
        "/panic" => panic!("boom: the function panicked on purpose"),
        "/loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "/oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // Touch every page so the memory is really used, not just reserved.
                hoard.push(vec![1u8; 1024 * 1024]);
                std::hint::black_box(&hoard);
            }
        }
        "/garbage" => {
            print!("this is not JSON {{");
            return;
        }
        "/exit" => {
            eprintln!("exiting with status 3");
            std::process::exit(3);
        }
        "/big" => text_response(200, &"x".repeat(7 * 1024 * 1024)),
        "/env" => {
            let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
            let greeting = std::env::var("GREETING").unwrap_or_default();
            text_response(
                200,
                &format!("AWS_LAMBDA_FUNCTION_NAME={name}\nGREETING={greeting}\n"),
            )
        }
        // Who called: a V2 event's requestContext.identity, or a V1 event's identity header.
        "/whoami" => {
            let identity = event
                .pointer("/requestContext/identity")
                .cloned()
                .or_else(|| {
                    event
                        .pointer("/headers/x-amzn-lattice-identity")
                        .cloned()
                        .map(|header| json!({ "x-amzn-lattice-identity": header }))
                })
                .unwrap_or_else(|| json!({ "type": "NONE" }));
            text_response(200, &format!("{identity}\n"))
        }
        // The event itself, so tests can check what Trellis sent against an outside decoder.
        "/event" => text_response(200, &event.to_string()),
        _ => text_response(200, &greeting(&path, &method)),
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_all(response.to_string().as_bytes())
        .and_then(|()| out.flush())
    {
        eprintln!("cannot write the response: {e}");
        std::process::exit(1);
    }
}
