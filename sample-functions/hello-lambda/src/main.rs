//! `hello-lambda`: a Lambda function written with the official `lambda_runtime` crate, exactly as
//! one would deploy it to AWS Lambda behind a VPC Lattice LAMBDA target group (V2 events). Trellis
//! runs it unmodified as a `process` function (and, later, inside a container): the crate talks
//! to the Lambda Runtime API named by `AWS_LAMBDA_RUNTIME_API`, which Trellis serves.
//!
//! Besides the greeting, a few request paths misbehave on purpose, so that tests can drive each
//! failure through the very binary users run:
//!
//! | path      | behaviour                                                          |
//! |-----------|--------------------------------------------------------------------|
//! | `/error`  | the handler returns an error (the runtime posts it to `/error`)    |
//! | `/exit`   | the process exits with status 3 mid-invocation                     |
//! | `/sleep`  | sleeps 60 s (stopped by the function's timeout)                    |
//! | `…/hold`  | any path ending in `/hold`: keeps its environment busy for 1 s,    |
//! |           | then greets (the benchmark's burst, behind a path-prefix rule)     |
//! | `/env`    | echoes `AWS_LAMBDA_FUNCTION_NAME` and the `GREETING` variable      |

use std::time::Duration;

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::vpc_lattice::{VpcLatticeRequestV2, VpcLatticeResponse};
use aws_lambda_events::http::HeaderValue;
use aws_lambda_events::http::header::CONTENT_TYPE;
use lambda_runtime::{Error, LambdaEvent, service_fn};

/// The greeting for `path`, worded like `hello-instance`'s and `hello-wasm`'s so that weighted
/// routing between an instance and a function is easy to read in curl output.
fn greeting(path: &str, method: &str) -> String {
    match path {
        "/" => "Hello from the function\n".to_owned(),
        _ => format!("Hello from the function at path \"{path}\" (method {method})\n"),
    }
}

/// A `text/plain` response; the structs are `#[non_exhaustive]`, so start from the default.
fn text_response(status: u16, body: String) -> VpcLatticeResponse {
    let mut response = VpcLatticeResponse::default();
    response.status_code = status;
    response.headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.body = Some(Body::Text(body));
    response
}

async fn handle(event: LambdaEvent<VpcLatticeRequestV2>) -> Result<VpcLatticeResponse, Error> {
    let request = event.payload;
    // In V2 events `path` carries the query string too; the greeting names the path only.
    let raw = request.path.as_deref().unwrap_or("/");
    let path = raw.split('?').next().unwrap_or(raw).to_owned();
    let method = request
        .method
        .as_ref()
        .map_or("GET", |m| m.as_str())
        .to_owned();
    eprintln!("{method} {path} (request {})", event.context.request_id);
    match path.as_str() {
        "/error" => Err("the handler failed on purpose".into()),
        "/exit" => {
            eprintln!("exiting with status 3 mid-invocation, on purpose");
            std::process::exit(3)
        }
        "/sleep" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(text_response(200, "woke up\n".to_owned()))
        }
        hold if hold.ends_with("/hold") => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(text_response(200, greeting(&path, &method)))
        }
        "/env" => {
            let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
            let greeting = std::env::var("GREETING").unwrap_or_default();
            Ok(text_response(200, format!("{name} {greeting}\n")))
        }
        _ => Ok(text_response(200, greeting(&path, &method))),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_mirrors_the_other_samples() {
        assert_eq!(greeting("/", "GET"), "Hello from the function\n");
        assert_eq!(
            greeting("/to-function", "POST"),
            "Hello from the function at path \"/to-function\" (method POST)\n"
        );
    }
}
