//! `trellis invoke` and `trellis generate-event`: run one function directly with a raw event,
//! and print a sample Lattice event to feed it.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use trellis_config::EventVersion;
use trellis_invokers::{Invokers, Options};
use trellis_runtime::{FunctionError, InvokeContext};

use crate::{EXIT_BAD_CONFIG, EXIT_RUNTIME, load_config, log};

#[derive(clap::Args)]
pub struct InvokeArgs {
    /// The function's name (from the config's `functions:` section).
    function: String,
    /// The event: a JSON file, or `-` for stdin (default: a V2 `GET /` event).
    #[arg(long, value_name = "FILE|-")]
    event: Option<String>,
    #[command(flatten)]
    config: crate::ConfigArg,
    #[command(flatten)]
    state: crate::StateDirArg,
    #[command(flatten)]
    pub log: crate::LogArgs,
}

/// Runs the function once; prints its response on stdout and its log on stderr.
pub fn invoke(args: InvokeArgs) -> u8 {
    let config = match load_config(&args.config.file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(function) = config.functions.iter().find(|f| f.name == args.function) else {
        let names: Vec<&str> = config.functions.iter().map(|f| f.name.as_str()).collect();
        log::error(&anyhow!(
            "no function \"{}\" in {}; {}functions: {}",
            args.function,
            args.config.file.display(),
            crate::suggestion(&args.function, &names),
            if names.is_empty() {
                "(none)".to_string()
            } else {
                names.join(", ")
            }
        ));
        return EXIT_BAD_CONFIG;
    };
    let payload = match read_event(args.event.as_deref(), &config.region) {
        Ok(p) => p,
        Err(e) => {
            log::error(&e);
            return EXIT_BAD_CONFIG;
        }
    };
    let runtime = match crate::async_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let timeout = Duration::from_secs(u64::from(function.timeout_seconds));
    let result = runtime.block_on(async {
        let invokers = Invokers::new(Options {
            target_timeout: timeout,
            state_dir: args.state.state_dir.clone(),
            provision: false,
        })
        .context("cannot set up the invokers")?;
        invokers.prepare(&config).await.map_err(|e| anyhow!(e))?;
        let f = invokers
            .function(&config, &function.name)
            .map_err(|e| anyhow!(e))?;
        let request_id = uuid_like();
        let outcome = f
            .invoke(
                Bytes::from(payload),
                InvokeContext::new(request_id, timeout),
            )
            .await;
        invokers.shutdown().await;
        Ok::<_, anyhow::Error>(outcome)
    });
    match result {
        Ok(Ok(response)) => {
            println!("{}", String::from_utf8_lossy(&response));
            0
        }
        Ok(Err(e)) => {
            if let FunctionError::Unhandled {
                error_type,
                message,
            } = &e
            {
                println!(
                    "{}",
                    serde_json::json!({"errorType": error_type, "errorMessage": message})
                );
            }
            log::error(&anyhow::Error::new(e));
            EXIT_RUNTIME
        }
        Err(e) => {
            log::error(&e);
            EXIT_RUNTIME
        }
    }
}

fn read_event(source: Option<&str>, region: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = match source {
        None => {
            return Ok(trellis_runtime::event::sample_event(
                EventVersion::V2,
                "GET",
                "/",
                &[],
                None,
                region,
            )?
            .into_bytes());
        }
        Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read the event from stdin")?;
            buf
        }
        Some(path) => std::fs::read(Path::new(path))
            .with_context(|| format!("cannot read event file {path}"))?,
    };
    serde_json::from_slice::<serde_json::Value>(&bytes).context("the event is not JSON")?;
    Ok(bytes)
}

/// A request id of the shape Lambda uses.
fn uuid_like() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[derive(clap::Args)]
pub struct GenerateEventArgs {
    /// Event structure version.
    #[arg(long, value_name = "V1|V2", default_value = "V2", value_parser = ["V1", "V2"])]
    version: String,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Path, with an optional query string.
    #[arg(long, default_value = "/")]
    path: String,
    /// A header as `Name:Value` (repeatable).
    #[arg(long = "header", value_name = "K:V")]
    headers: Vec<String>,
    /// Request body.
    #[arg(long)]
    body: Option<String>,
    /// Region in the ARNs.
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

pub fn generate_event(args: GenerateEventArgs) -> u8 {
    let version = if args.version == "V1" {
        EventVersion::V1
    } else {
        EventVersion::V2
    };
    let mut headers = Vec::new();
    for h in &args.headers {
        let Some((k, v)) = h.split_once(':') else {
            log::error(&anyhow!("--header {h:?} is not Name:Value"));
            return EXIT_BAD_CONFIG;
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    match trellis_runtime::event::sample_event(
        version,
        &args.method,
        &args.path,
        &headers,
        args.body.as_deref(),
        &args.region,
    ) {
        Ok(json) => {
            println!("{json}");
            0
        }
        Err(e) => {
            log::error(&anyhow::Error::new(e));
            EXIT_BAD_CONFIG
        }
    }
}
