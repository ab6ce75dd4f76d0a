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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::signal::unix::Signal;
use tokio::sync::watch;
use tokio::time::Instant;
use trellis_config::{Config, ListenerProtocol};
use trellis_invokers::Invokers;
use trellis_router::RoutingTable;
use trellis_router::accesslog::LogSinks;
use trellis_router::health::HealthMonitor;
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

/// What the reload watcher needs: the file to watch and the control plane that layers it with
/// the API store (issue 16: a reload composes the file with the store, then installs the
/// result through [`Installer`] as an API change does).
pub struct Live {
    pub file: PathBuf,
    pub plane: Arc<trellis_control::Plane>,
}

/// Everything needed to build and install a new table: the binary's side of the control
/// plane's [`trellis_control::DataPlane`] seam (API changes and file reloads both end here).
pub struct Installer {
    pub invokers: Arc<Invokers>,
    pub monitor: Arc<HealthMonitor>,
    pub sinks: Arc<LogSinks>,
    pub table: Arc<ArcSwap<RoutingTable>>,
    /// The listener ports bound at start-up.
    pub ports: BTreeMap<u16, ListenerProtocol>,
}

/// The control plane's data-plane seam. The installer is set once the first table is built
/// (the control plane composes the first config before there is one).
#[derive(Default)]
pub struct DataPlaneSeam {
    pub installer: std::sync::OnceLock<Installer>,
}

impl trellis_control::DataPlane for DataPlaneSeam {
    fn apply(
        &self,
        config: Arc<Config>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            match self.installer.get() {
                Some(installer) => install(installer, config).await,
                None => Err("trellis is still starting".into()),
            }
        })
    }

    fn target_status(
        &self,
        target_group_arn: &str,
        target: &str,
        port: u16,
    ) -> Option<(String, Option<String>)> {
        let installer = self.installer.get()?;
        let key = trellis_router::health::target_key(target_group_arn, target, port);
        let (status, ejected) = installer.monitor.status(&key)?;
        use trellis_router::health::Status;
        let reason = match status {
            Status::Initial => Some("Elb.RegistrationInProgress"),
            Status::Unhealthy => Some("Target.FailedHealthChecks"),
            Status::Unavailable => Some("HealthCheckDisabled"),
            Status::Healthy if ejected => Some("Target.ConnectionRefused"),
            Status::Healthy => None,
        };
        Some((status.as_str().to_string(), reason.map(str::to_string)))
    }
}

/// The listener ports a config asks for.
pub fn ports_of(config: &Config) -> BTreeMap<u16, ListenerProtocol> {
    config
        .services
        .iter()
        .flat_map(|s| &s.listeners)
        .map(|l| (l.port, l.protocol))
        .collect()
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

/// Validates `bytes` (the config file's content) layered with the API store and, if good,
/// serves them.
async fn reload(live: &Live, bytes: &[u8]) {
    let file = live.file.display();
    // An editor saving in place truncates the file before writing it: caught in between, the
    // file is empty, which would parse as a config with no services (and stop every function).
    // The write that follows changes the file again and is reloaded then.
    if bytes.is_empty() {
        tracing::warn!(target: TARGET, %file, "{file} is empty; still serving the previous config");
        return;
    }
    match live.plane.reload(bytes.to_vec()).await {
        Ok(config) => {
            tracing::info!(
                target: TARGET,
                %file,
                services = config.services.len(),
                "reloaded {file}: {} service{}",
                config.services.len(),
                if config.services.len() == 1 { "" } else { "s" }
            );
        }
        Err(trellis_control::ReloadError::Invalid(e)) => {
            // The problems keep their `FILE:LINE:COL` lines, as `validate` prints them.
            tracing::warn!(
                target: TARGET,
                %file,
                "{file} changed but has problems; still serving the previous config:\n{e}"
            );
        }
        Err(trellis_control::ReloadError::Apply(e)) => {
            cannot_serve(&file, &anyhow::anyhow!(e));
        }
    }
}

/// Installs a validated config: functions prepared, a new routing table built and swapped in
/// (requests in flight finish on the old one), functions no longer used retired. An error
/// leaves the previous config serving.
pub async fn install(live: &Installer, config: Arc<Config>) -> Result<(), String> {
    live.invokers
        .prepare(&config)
        .await
        .map_err(|e| format!("{:#}", anyhow::anyhow!(e)))?;
    let ports = ports_of(&config);
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
    match built {
        Ok(Ok(table)) => {
            live.table.store(Arc::new(table));
            live.invokers.retain(&config).await;
            if ports != live.ports {
                let ports = describe(&ports);
                tracing::warn!(
                    target: TARGET,
                    %ports,
                    "the listener ports changed ({ports}); restart trellis to listen on the new set (rules, targets and functions are applied now)"
                );
            }
            Ok(())
        }
        Ok(Err(e)) => Err(format!("{:#}", anyhow::Error::new(e))),
        Err(e) => Err(format!(
            "{:#}",
            anyhow::Error::new(e).context("the reload task failed")
        )),
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

fn describe(ports: &BTreeMap<u16, ListenerProtocol>) -> String {
    ports
        .iter()
        .map(|(p, proto)| format!("{} {p}", proto.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}
