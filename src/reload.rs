//! Hot reload of the config file: when it changes, it is validated and, if good, compiled into
//! a new routing table that replaces the old one atomically (requests in flight finish on the
//! table they started with). A bad edit keeps the old config serving and prints the problems.
//!
//! The file is polled (size and modification time, every 300 ms) rather than watched with
//! inotify: polling also sees editors that replace the file by renaming, bind mounts and
//! network file systems, and costs one `stat` per tick.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use trellis_config::{Config, ListenerProtocol};
use trellis_invokers::Invokers;
use trellis_router::RoutingTable;
use trellis_router::accesslog::LogSinks;
use trellis_router::health::HealthMonitor;
use trellis_runtime::stamp::FileStamp;

use crate::log::TARGET;

const POLL: Duration = Duration::from_millis(300);

/// Everything a reload needs to build and install a new table.
pub struct Live {
    pub file: PathBuf,
    pub invokers: Arc<Invokers>,
    pub monitor: Arc<HealthMonitor>,
    pub sinks: Arc<LogSinks>,
    pub table: Arc<ArcSwap<RoutingTable>>,
    /// The listener ports bound at start-up.
    pub ports: BTreeMap<u16, ListenerProtocol>,
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

/// Polls the config file until `stop` turns true, reloading on every change.
pub async fn watch_config(live: Live, mut stop: watch::Receiver<bool>) {
    let mut stamp = FileStamp::of(&live.file);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
        let now = FileStamp::of(&live.file);
        if now.is_none() || now == stamp {
            continue;
        }
        // Let a writer that saves in several steps finish.
        tokio::time::sleep(Duration::from_millis(100)).await;
        stamp = FileStamp::of(&live.file);
        reload(&live).await;
    }
}

async fn reload(live: &Live) {
    let file = live.file.display();
    // An editor saving in place truncates the file before writing it: caught in between, the
    // file is empty, which would parse as a config with no services (and stop every function).
    // The write that follows changes the file again and is reloaded then.
    if std::fs::metadata(&live.file).is_ok_and(|m| m.len() == 0) {
        tracing::warn!(target: TARGET, %file, "{file} is empty; still serving the previous config");
        return;
    }
    let config = match trellis_config::load(&live.file) {
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
    let ports = ports_of(&config);
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
    match built {
        Ok(Ok(table)) => {
            live.table.store(Arc::new(table));
            live.invokers.retain(&config).await;
            tracing::info!(
                target: TARGET,
                %file,
                services = config.services.len(),
                "reloaded {file}: {} service{}",
                config.services.len(),
                if config.services.len() == 1 { "" } else { "s" }
            );
            if ports != live.ports {
                let ports = describe(&ports);
                tracing::warn!(
                    target: TARGET,
                    %ports,
                    "the listener ports changed ({ports}); restart trellis to listen on the new set (rules, targets and functions are applied now)"
                );
            }
        }
        Ok(Err(e)) => cannot_serve(&file, &anyhow::Error::new(e)),
        Err(e) => cannot_serve(
            &file,
            &anyhow::Error::new(e).context("the reload task failed"),
        ),
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
