//! How the binary speaks on stderr: Trellis's own log through `tracing` (text or one JSON
//! object per line), command output as plain lines, and errors one way,
//! `trellis: error: message: cause: cause`.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

/// The target of the binary's own events: text mode shows it as the `trellis:` prefix of the
/// message, and a JSON consumer can tell Trellis's lines from its libraries'.
pub const TARGET: &str = "trellis";

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people: time, level, target, message, fields.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields, span), for log shippers.
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the subscriber for the commands that log (`up`, `invoke`). `RUST_LOG` filters as
/// usual (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
    if installed.is_ok() {
        let _ = FORMAT.set(format);
        if format == LogFormat::Json {
            trellis_runtime::log::as_events();
        }
    }
}

/// Whether the log is JSON: then the lines `up` prints for people go out as events too, so
/// that every line on stderr parses.
pub fn json() -> bool {
    FORMAT.get() == Some(&LogFormat::Json)
}

/// Colour codes only for a terminal, and not when `NO_COLOR` is set to anything but the empty
/// string (<https://no-color.org>): a file or a pipe would keep the escape bytes.
fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Reports an error the one way the binary does: `trellis: error: ` and the error with its
/// causes on one line (anyhow's alternate form), or an `error` event when the log is JSON.
/// Config problems are not reported here: they keep their multi-line `FILE:LINE:COL` form.
pub fn error(err: &anyhow::Error) {
    if json() {
        tracing::error!(target: TARGET, "{err:#}");
    } else {
        eprintln!("trellis: error: {err:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new("1"))));
    }
}
