//! Access logs: one JSON object per request, with VPC Lattice's field names, to stdout or
//! appended to a file. Writing happens on a background task so the request path never waits
//! on disk; records are flushed as soon as the queue is empty.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc;
use trellis_config::LogDestination;

/// How many records may wait for the writer before new ones are dropped (and counted).
const QUEUE: usize = 65_536;

/// One access-log record. Field names and order follow Lattice's service access logs; empty
/// values are written as `"-"`, as real Lattice logs do (empty fields stay empty `String`s,
/// which cost no allocation, until then).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    #[serde(serialize_with = "dash")]
    pub start_time: String,
    #[serde(serialize_with = "dash")]
    pub request_id: String,
    #[serde(serialize_with = "dash")]
    pub service_network_arn: String,
    #[serde(serialize_with = "dash")]
    pub service_arn: String,
    #[serde(serialize_with = "dash")]
    pub target_group_arn: String,
    #[serde(serialize_with = "dash")]
    pub listener_type: String,
    #[serde(serialize_with = "dash")]
    pub request_method: String,
    #[serde(serialize_with = "dash")]
    pub request_path: String,
    #[serde(serialize_with = "dash")]
    pub protocol: String,
    pub response_code: u16,
    #[serde(serialize_with = "dash")]
    pub grpc_response_code: String,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration: u64,
    #[serde(serialize_with = "dash")]
    pub request_to_target_duration: String,
    #[serde(serialize_with = "dash")]
    pub response_from_target_duration: String,
    #[serde(serialize_with = "dash")]
    pub source_ip_port: String,
    #[serde(serialize_with = "dash")]
    pub target_ip_port: String,
    /// Not Lattice's: the target that refused the connection before the request was sent to
    /// `targetIpPort` instead (Trellis retries such a request once, and ejects the target).
    #[serde(serialize_with = "dash")]
    pub refused_by_target_ip_port: String,
    #[serde(serialize_with = "dash")]
    pub source_vpc_id: String,
    #[serde(serialize_with = "dash")]
    pub source_vpc_arn: String,
    #[serde(serialize_with = "dash")]
    pub destination_vpc_id: String,
    #[serde(serialize_with = "dash")]
    pub host_header: String,
    #[serde(serialize_with = "dash")]
    pub server_name_indication: String,
    #[serde(serialize_with = "dash")]
    pub tls_version: String,
    #[serde(serialize_with = "dash")]
    pub ssl_cipher: String,
    #[serde(serialize_with = "dash")]
    pub user_agent: String,
    #[serde(serialize_with = "dash")]
    pub auth_denied_reason: String,
    #[serde(serialize_with = "dash")]
    pub resolved_user: String,
    #[serde(serialize_with = "dash")]
    pub caller_principal: String,
    #[serde(rename = "callerPrincipalOrgID")]
    #[serde(serialize_with = "dash")]
    pub caller_principal_org_id: String,
    #[serde(serialize_with = "dash")]
    pub caller_principal_tags: String,
    #[serde(rename = "callerX509SubjectCN")]
    #[serde(serialize_with = "dash")]
    pub caller_x509_subject_cn: String,
    #[serde(rename = "callerX509IssuerOU")]
    #[serde(serialize_with = "dash")]
    pub caller_x509_issuer_ou: String,
    #[serde(rename = "callerX509SANNameCN")]
    #[serde(serialize_with = "dash")]
    pub caller_x509_san_name_cn: String,
    #[serde(rename = "callerX509SANDNS")]
    #[serde(serialize_with = "dash")]
    pub caller_x509_san_dns: String,
    #[serde(rename = "callerX509SANURI")]
    #[serde(serialize_with = "dash")]
    pub caller_x509_san_uri: String,
    #[serde(serialize_with = "dash")]
    pub failure_reason: String,
}

/// How many records the console's live tail keeps for a watcher that has fallen behind; a
/// watcher further behind loses the oldest (and is told how many), the request path never waits.
const TAP_CAPACITY: usize = 1024;

/// The console's live tail: every access-log record, whether or not an access log is
/// configured, broadcast to whoever watches (`/ui/api/logs`). Sending never blocks: a slow
/// watcher drops records. With nobody watching, requests make no record for it at all
/// ([`tapped`] is one atomic load).
pub fn tap() -> &'static tokio::sync::broadcast::Sender<Arc<String>> {
    static TAP: std::sync::LazyLock<tokio::sync::broadcast::Sender<Arc<String>>> =
        std::sync::LazyLock::new(|| tokio::sync::broadcast::channel(TAP_CAPACITY).0);
    &TAP
}

/// Whether anyone watches the live tail.
pub fn tapped() -> bool {
    tap().receiver_count() > 0
}

/// The placeholder Lattice writes for an empty value.
pub const DASH: &str = "-";

/// Serializes an empty string as `"-"`.
fn dash<S: serde::Serializer>(value: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(if value.is_empty() { DASH } else { value })
}

/// `s`, or `"-"` when empty.
pub fn or_dash(s: impl Into<String>) -> String {
    let s = s.into();
    if s.is_empty() { DASH.to_string() } else { s }
}

impl Record {
    /// A record with every string field empty (written as `"-"`).
    pub fn empty() -> Record {
        let d = String::new;
        Record {
            start_time: d(),
            request_id: d(),
            service_network_arn: d(),
            service_arn: d(),
            target_group_arn: d(),
            listener_type: d(),
            request_method: d(),
            request_path: d(),
            protocol: d(),
            response_code: 0,
            grpc_response_code: d(),
            bytes_received: 0,
            bytes_sent: 0,
            duration: 0,
            request_to_target_duration: d(),
            response_from_target_duration: d(),
            source_ip_port: d(),
            target_ip_port: d(),
            refused_by_target_ip_port: d(),
            source_vpc_id: d(),
            source_vpc_arn: d(),
            destination_vpc_id: d(),
            host_header: d(),
            server_name_indication: d(),
            tls_version: d(),
            ssl_cipher: d(),
            user_agent: d(),
            auth_denied_reason: d(),
            resolved_user: d(),
            caller_principal: d(),
            caller_principal_org_id: d(),
            caller_principal_tags: d(),
            caller_x509_subject_cn: d(),
            caller_x509_issuer_ou: d(),
            caller_x509_san_name_cn: d(),
            caller_x509_san_dns: d(),
            caller_x509_san_uri: d(),
            failure_reason: d(),
        }
    }
}

/// A destination's writer: a queue drained by a background task.
#[derive(Debug)]
pub struct LogSink {
    pub destination: LogDestination,
    queue: mpsc::Sender<Arc<String>>,
}

impl LogSink {
    /// Queues one line (without its newline). Never blocks; drops the line if the writer is
    /// far behind, with a warning.
    pub fn write(&self, line: Arc<String>) {
        if self.queue.try_send(line).is_err() {
            tracing::warn!(target: "trellis::accesslog", "access-log queue for {:?} is full; a record was dropped", self.destination);
        }
    }

    /// A sink whose lines arrive on the returned receiver, for tests that read the records.
    #[cfg(test)]
    pub(crate) fn channel() -> (Arc<LogSink>, mpsc::Receiver<Arc<String>>) {
        let (queue, lines) = mpsc::channel(16);
        let sink = LogSink {
            destination: LogDestination::Stdout,
            queue,
        };
        (Arc::new(sink), lines)
    }
}

/// One sink per destination, shared by every service and network that names it and kept
/// across reloads.
#[derive(Debug, Default)]
pub struct LogSinks {
    sinks: Mutex<HashMap<LogDestination, Arc<LogSink>>>,
}

impl LogSinks {
    pub fn new() -> Arc<LogSinks> {
        Arc::new(LogSinks::default())
    }

    /// The sink for `destination`, opening it on first use. Must run inside a tokio runtime.
    pub fn get(&self, destination: &LogDestination) -> Result<Arc<LogSink>, SinkError> {
        let mut sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sink) = sinks.get(destination) {
            return Ok(sink.clone());
        }
        let writer: Box<dyn Write + Send> = match destination {
            LogDestination::Stdout => Box::new(std::io::stdout()),
            LogDestination::File(path) => Box::new(open_append(path)?),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::task::spawn_blocking(move || drain(rx, writer));
        let sink = Arc::new(LogSink {
            destination: destination.clone(),
            queue: tx,
        });
        sinks.insert(destination.clone(), sink.clone());
        Ok(sink)
    }

    /// Drops every sink; their writers flush and end once in-flight records are written.
    pub fn close(&self) {
        self.sinks.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Why an access log could not be opened. Each message is whole on its own, the I/O error
/// included, as it is shown on one line among the reasons a config cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot create directory {}: {error}", dir.display())]
    CreateDir { dir: PathBuf, error: std::io::Error },
    #[error("cannot open {} for appending: {error}", path.display())]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
}

fn open_append(path: &Path) -> Result<std::fs::File, SinkError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|error| SinkError::CreateDir {
            dir: dir.to_path_buf(),
            error,
        })?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| SinkError::Open {
            path: path.to_path_buf(),
            error,
        })
}

fn drain(mut rx: mpsc::Receiver<Arc<String>>, writer: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::new(writer);
    while let Some(line) = rx.blocking_recv() {
        let mut result = writeln!(out, "{line}");
        while let Ok(more) = rx.try_recv() {
            result = result.and_then(|_| writeln!(out, "{more}"));
        }
        if let Err(e) = result.and_then(|_| out.flush()) {
            tracing::warn!(target: "trellis::accesslog", "cannot write access log: {e}");
        }
    }
    let _ = out.flush();
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time since the Unix epoch, as Lattice's `startTime`.
pub fn format_time(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Year, month and day of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`),
/// so that timestamps need no date crate.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log that cannot be opened says which step failed, on which path, and why.
    #[test]
    fn unopenable_log_is_explained() -> Result<(), Box<dyn std::error::Error>> {
        let file = std::env::temp_dir().join(format!("trellis-accesslog-{}", std::process::id()));
        std::fs::write(&file, "a file, not a directory")?;
        let under_file = LogDestination::File(file.join("access.log"));
        let result = LogSinks::new().get(&under_file);
        std::fs::remove_file(&file)?;
        let Err(err @ SinkError::CreateDir { .. }) = result else {
            return Err(format!("{result:?}").into());
        };
        let message = err.to_string();
        let expected = format!("cannot create directory {}: ", file.display());
        assert!(message.starts_with(&expected), "{message}");
        assert!(message.len() > expected.len(), "{message}");
        Ok(())
    }

    #[test]
    fn time_format_matches_lattice() {
        assert_eq!(
            format_time(std::time::Duration::from_secs(0)),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            format_time(std::time::Duration::from_secs(1_690_497_599)),
            "2023-07-27T22:39:59Z"
        );
        assert_eq!(
            format_time(std::time::Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_418), (2025, 11, 26));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn empty_values_are_dashes() {
        let json = serde_json::to_value(Record::empty()).unwrap();
        assert_eq!(json["serviceArn"], "-");
        assert_eq!(json["callerX509SANDNS"], "-");
        assert_eq!(json["responseCode"], 0);
    }
}
