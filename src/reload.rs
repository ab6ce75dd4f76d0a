//! Hot reload of the config file: when it changes, it is validated and, if good, compiled into
//! a new routing table that replaces the old one atomically (requests in flight finish on the
//! table they started with). A bad edit keeps the old config serving and prints the problems.
//!
//! `--reload` chooses what triggers a reload: `watch` (the default) notices edits and also
//! reloads on `SIGHUP`; `signal` reloads only on `SIGHUP`; `off` never reloads.
//!
//! The file is polled (size and modification time, every 300 ms) rather than watched with
//! inotify: polling also sees editors that replace the file by renaming, bind mounts and
//! network file systems, and costs one `stat` per tick. A change is applied only once the
//! file has settled — size, modification time and content unchanged for [`QUIET`] — so that a
//! file written in several steps is never served half-written (the first half of a config may
//! well be valid on its own, and lack a deny rule of the second). `SIGHUP` reloads at once: it
//! is how a tool that wrote the file says it is complete.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::Signal;
use tokio::sync::watch;
use tokio::time::Instant;
use trellis_invokers::Invokers;
use trellis_router::RoutingTable;
use trellis_router::accesslog::LogSinks;
use trellis_router::health::HealthMonitor;
use trellis_router::server::Listeners;
use trellis_runtime::stamp::FileStamp;

use crate::log::TARGET;

/// How often the file is checked for a change.
const POLL: Duration = Duration::from_millis(300);
/// How often a changed file is looked at again while it settles.
const SETTLE_POLL: Duration = Duration::from_millis(100);
/// How long a changed file must stay the same before it is loaded.
pub const QUIET: Duration = Duration::from_millis(500);

/// `trellis up --reload`: what reloads the config file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReloadMode {
    /// Never reload (SIGHUP is logged and ignored).
    Off,
    /// Reload an edit once the file has not changed for half a second, and at once on SIGHUP.
    #[default]
    Watch,
    /// Reload only on SIGHUP (edits are not looked at).
    Signal,
}

/// Everything a reload needs to build and install a new table.
pub struct Live {
    pub file: PathBuf,
    pub invokers: Arc<Invokers>,
    pub monitor: Arc<HealthMonitor>,
    pub sinks: Arc<LogSinks>,
    /// The listening ports and the routing table they serve: a reload installs its table
    /// there, which also starts and stops ports to match it.
    pub listeners: Arc<Listeners>,
}

/// The file as last looked at: its stamp and its bytes (at most the config size limit + 1).
#[derive(PartialEq)]
struct Snapshot {
    stamp: Option<FileStamp>,
    bytes: Option<Vec<u8>>,
}

impl Snapshot {
    fn take(live: &Live) -> Snapshot {
        Snapshot {
            stamp: FileStamp::of(&live.file),
            bytes: trellis_config::read_capped(&live.file).ok(),
        }
    }
}

/// A change seen and waiting to settle: the file as last seen, and since when it is so.
struct Settling {
    seen: Snapshot,
    since: Instant,
}

/// Reloads the config as `mode` says until `stop` turns true: on SIGHUP (`hup`), and under
/// `watch` on every edit once the file has settled.
pub async fn watch_config(
    live: Live,
    mode: ReloadMode,
    mut hup: Signal,
    mut stop: watch::Receiver<bool>,
) {
    let file = live.file.display().to_string();
    // The stamp of the file as last loaded (or refused): a change from it starts a reload.
    let mut loaded = FileStamp::of(&live.file);
    let mut settling: Option<Settling> = None;
    let polling = mode == ReloadMode::Watch;
    loop {
        let tick = if settling.is_some() {
            SETTLE_POLL
        } else {
            POLL
        };
        tokio::select! {
            _ = stop.changed() => return,
            Some(()) = hup.recv() => {
                if mode == ReloadMode::Off {
                    tracing::info!(target: TARGET, %file, "SIGHUP received; ignored, as reloading is off (--reload=off)");
                    continue;
                }
                tracing::info!(target: TARGET, %file, "SIGHUP received; reloading {file}");
                settling = None;
                let now = Snapshot::take(&live);
                loaded = now.stamp;
                match now.bytes {
                    Some(bytes) => reload(&live, &bytes).await,
                    None => unreadable(&live),
                }
                continue;
            }
            _ = tokio::time::sleep(tick), if polling => {}
        }
        match settling.take() {
            None => {
                let stamp = FileStamp::of(&live.file);
                // A missing file (being replaced, or deleted) is not a change: the old config
                // keeps serving until a file is there again.
                if stamp.is_some() && stamp != loaded {
                    settling = Some(Settling {
                        seen: Snapshot::take(&live),
                        since: Instant::now(),
                    });
                }
            }
            Some(mut settle) => {
                let now = Snapshot::take(&live);
                if now.stamp.is_none() {
                    continue;
                }
                if now != settle.seen {
                    settling = Some(Settling {
                        seen: now,
                        since: Instant::now(),
                    });
                } else if settle.since.elapsed() < QUIET {
                    settling = Some(settle);
                } else {
                    loaded = now.stamp;
                    match settle.seen.bytes.take() {
                        Some(bytes) => reload(&live, &bytes).await,
                        None => unreadable(&live),
                    }
                }
            }
        }
    }
}

/// The file could not be read (permissions, or it vanished): the old config keeps serving.
fn unreadable(live: &Live) {
    let file = live.file.display();
    let error = trellis_config::read_capped(&live.file).err().map_or_else(
        || "it changed while being read".to_string(),
        |e| e.to_string(),
    );
    tracing::warn!(target: TARGET, %file, "cannot read {file} ({error}); still serving the previous config");
}

/// Validates `bytes` (the config file's content) and, if good, serves them.
async fn reload(live: &Live, bytes: &[u8]) {
    let file = live.file.display();
    // An editor saving in place truncates the file before writing it: caught in between, the
    // file is empty, which would parse as a config with no services (and stop every function).
    // The write that follows changes the file again and is reloaded then.
    if bytes.is_empty() {
        tracing::warn!(target: TARGET, %file, "{file} is empty; still serving the previous config");
        return;
    }
    let config = match trellis_config::parse_bytes(bytes, &file.to_string()) {
        Ok(config) => config,
        Err(e) => {
            // The problems keep their `FILE:LINE:COL` lines, as `validate` prints them.
            tracing::warn!(
                target: TARGET,
                %file,
                "{file} changed but has problems; still serving the previous config:\n{e}"
            );
            return;
        }
    };
    if let Err(e) = live.invokers.prepare(&config).await {
        cannot_serve(&file, &anyhow::anyhow!(e));
        return;
    }
    let config = Arc::new(config);
    let invokers = live.invokers.clone();
    let monitor = live.monitor.clone();
    let sinks = live.sinks.clone();
    let built = {
        let config = config.clone();
        // Building loads functions (wasm compiles can take a while): keep it off the workers
        // that serve requests.
        tokio::task::spawn_blocking(move || {
            let handle = tokio::runtime::Handle::current();
            let _guard = handle.enter();
            RoutingTable::build(config, invokers.as_ref(), &monitor, &sinks)
        })
        .await
    };
    let installed = match built {
        // New ports are bound before the table is swapped: one that cannot be keeps the old
        // table and ports serving.
        Ok(Ok(table)) => live
            .listeners
            .install(table)
            .await
            .map_err(anyhow::Error::new),
        Ok(Err(e)) => Err(anyhow::Error::new(e)),
        Err(e) => Err(anyhow::Error::new(e).context("the reload task failed")),
    };
    match installed {
        Ok(changes) => {
            live.invokers.retain(&config).await;
            tracing::info!(
                target: TARGET,
                %file,
                services = config.services.len(),
                "reloaded {file}: {} service{}",
                config.services.len(),
                if config.services.len() == 1 { "" } else { "s" }
            );
            if !changes.is_empty() {
                tracing::info!(target: TARGET, %file, "{changes}");
            }
        }
        Err(e) => cannot_serve(&file, &e),
    }
}

/// A config that parses but cannot be built: the old one keeps serving.
fn cannot_serve(file: &std::path::Display<'_>, error: &anyhow::Error) {
    tracing::warn!(
        target: TARGET,
        %file,
        "{file} changed but cannot be served; still serving the previous config: {error:#}"
    );
}
