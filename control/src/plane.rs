//! The control plane: the config file's last good bytes and the store's snapshot, composed into
//! the effective config, and the one path every change takes.
//!
//! A write takes the lock (writes are serialised), makes a new snapshot, composes it with the
//! file and validates the result (the config crate: one parse, one validation), persists the
//! snapshot durably, applies the config through [`DataPlane::apply`] (the way a reload
//! installs a config), and only then answers. If applying fails, the previous snapshot is
//! written back and the call answers an error: the store never holds a change the data plane
//! refused. A file reload takes the same lock and the same path ([`Plane::reload`]).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Mutex;
use trellis_config::{Config, ConfigError, Layer};

use crate::error::ApiError;
use crate::store::{Snapshot, Store, StoreError};

/// What the control plane needs from the running data plane (the binary implements it; the
/// control crate stays below the router).
pub trait DataPlane: Send + Sync {
    /// Installs a validated config as a reload does (routing table, functions, listeners). An
    /// error leaves the previous config serving and is the API's answer.
    fn apply(
        &self,
        config: Arc<Config>,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;

    /// The live status of a target (`HEALTHY`, `UNHEALTHY`, `INITIAL`, `UNAVAILABLE`,
    /// `DRAINING`) and its reason code, or `None` when the data plane does not know it yet.
    fn target_status(
        &self,
        target_group_arn: &str,
        target: &str,
        port: u16,
    ) -> Option<(String, Option<String>)>;
}

/// The lock-protected state.
pub(crate) struct State {
    /// The config file's last good bytes.
    pub file: Vec<u8>,
    pub snap: Snapshot,
    pub config: Arc<Config>,
    /// When each object of the file was first seen (its `createdAt`), by ARN.
    pub file_seen: HashMap<String, String>,
}

/// The control plane. Create it with [`Plane::open`]; it implements
/// [`crate::Operations`].
pub struct Plane {
    pub(crate) state: Mutex<State>,
    pub(crate) store: Store,
    pub(crate) data: Arc<dyn DataPlane>,
    pub(crate) file_name: String,
    /// Where access-log destinations of the API go (`<state-dir>/api/logs`), absolute.
    pub(crate) logs_dir: PathBuf,
    pub(crate) region: std::sync::RwLock<String>,
}

/// Why the control plane cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Config(#[from] ConfigError),
}

impl Plane {
    /// Opens the store under `state_dir` and composes it with the config file's `bytes`
    /// (named `file_name` in messages). The config is what `trellis up` serves first; it is
    /// not applied (there is no data plane yet).
    pub fn open(
        bytes: Vec<u8>,
        file_name: &str,
        state_dir: &Path,
        data: Arc<dyn DataPlane>,
    ) -> Result<(Arc<Plane>, Arc<Config>), OpenError> {
        let (store, snap) = Store::open(state_dir)?;
        let config = Arc::new(compose(&bytes, file_name, store.file(), &snap)?);
        let state_dir = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.into());
        let mut file_seen = HashMap::new();
        note_file_objects(&config, &snap, &mut file_seen);
        let plane = Plane {
            region: std::sync::RwLock::new(config.region.clone()),
            state: Mutex::new(State {
                file: bytes,
                snap,
                config: config.clone(),
                file_seen,
            }),
            store,
            data,
            file_name: file_name.to_string(),
            logs_dir: state_dir.join("api").join("logs"),
        };
        Ok((Arc::new(plane), config))
    }

    /// The config file changed: composes its new `bytes` with the store and applies the
    /// result. On an error the previous file and config stay.
    pub async fn reload(&self, bytes: Vec<u8>) -> Result<Arc<Config>, ReloadError> {
        let mut st = self.state.lock().await;
        let config = Arc::new(
            compose(&bytes, &self.file_name, self.store.file(), &st.snap)
                .map_err(ReloadError::Invalid)?,
        );
        self.data
            .apply(config.clone())
            .await
            .map_err(ReloadError::Apply)?;
        st.file = bytes;
        st.config = config.clone();
        let State {
            snap, file_seen, ..
        } = &mut *st;
        note_file_objects(&config, snap, file_seen);
        self.set_region(&config);
        Ok(config)
    }

    /// The effective config now.
    pub async fn config(&self) -> Arc<Config> {
        self.state.lock().await.config.clone()
    }

    fn set_region(&self, config: &Config) {
        if let Ok(mut r) = self.region.write() {
            r.clone_from(&config.region);
        }
    }

    /// Persists `snap` and applies `config` (composed from it).
    pub(crate) async fn install(
        &self,
        st: &mut State,
        snap: Snapshot,
        config: Arc<Config>,
    ) -> Result<(), ApiError> {
        self.persist(&snap).await?;
        if let Err(e) = self.data.apply(config.clone()).await {
            // The data plane refused it: the store goes back to what is serving.
            let _ = self.persist(&st.snap).await;
            return Err(ApiError::Validation {
                message: format!("the change cannot be served: {e}"),
                reason: "other",
                fields: Vec::new(),
            });
        }
        self.set_region(&config);
        st.snap = snap;
        st.config = config;
        Ok(())
    }

    async fn persist(&self, snap: &Snapshot) -> Result<(), ApiError> {
        let bytes = Store::encode(snap);
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.write(&bytes))
            .await
            .map_err(|e| ApiError::Internal {
                message: format!("the store write did not finish: {e}"),
            })?
            .map_err(|e| ApiError::Internal {
                message: e.to_string(),
            })
    }
}

/// The config `trellis up` would serve from the config file's `bytes` (named `file_name`) and
/// the store under `state_dir`, composed read-only: nothing is locked, created or written, so
/// it may run beside a running `trellis up` (whose store writes are atomic renames). `None`
/// when there is no store: then the file alone is the config.
pub fn compose_read_only(
    bytes: &[u8],
    file_name: &str,
    state_dir: &Path,
) -> Result<Option<Config>, OpenError> {
    let Some(snap) = Store::peek(state_dir)? else {
        return Ok(None);
    };
    let store = state_dir.join("api").join("store.json");
    Ok(Some(compose(bytes, file_name, &store, &snap)?))
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Invalid(ConfigError),
    #[error("{0}")]
    Apply(String),
}

/// The file's bytes layered with the store's document, and the API's tags on its services.
pub(crate) fn compose(
    bytes: &[u8],
    file_name: &str,
    store: &Path,
    snap: &Snapshot,
) -> Result<Config, ConfigError> {
    let document = Value::Object(snap.document.clone());
    let mut config = trellis_config::parse_layered(
        bytes,
        file_name,
        &Layer {
            document: &document,
            name: &store.display().to_string(),
            path: "document",
        },
    )?;
    add_api_tags(&mut config, snap);
    Ok(config)
}

/// Puts the tags the API gave services (`CreateService`, `TagResource`, kept by ARN beside the
/// document) on the config's services, where the routing table finds them for
/// `aws:ResourceTag/<key>`: one model of a service's tags, whichever door they came through.
/// A tag of the API replaces one of the same key (keys compared as IAM compares them, without
/// case). Only the API's own services have such tags: `TagResource` refuses a file's.
pub(crate) fn add_api_tags(config: &mut Config, snap: &Snapshot) {
    for service in &mut config.services {
        let Some(meta) = snap.resources.get(&service.arn) else {
            continue;
        };
        for (key, value) in &meta.tags {
            match service
                .tags
                .iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
            {
                Some(tag) => *tag = (key.clone(), value.clone()),
                None => service.tags.push((key.clone(), value.clone())),
            }
        }
    }
}

/// Records when objects of the file were first seen (their `createdAt`).
fn note_file_objects(config: &Config, snap: &Snapshot, seen: &mut HashMap<String, String>) {
    let now = crate::time::now();
    let mut arns: Vec<&str> = Vec::new();
    arns.extend(config.service_networks.iter().map(|x| x.arn.as_str()));
    arns.extend(config.target_groups.iter().map(|x| x.arn.as_str()));
    for s in &config.services {
        arns.push(&s.arn);
        for l in &s.listeners {
            arns.push(&l.arn);
            arns.extend(l.rules.iter().map(|r| r.arn.as_str()));
        }
    }
    for arn in arns {
        if !snap.resources.contains_key(arn) {
            seen.entry(arn.to_string()).or_insert_with(|| now.clone());
        }
    }
}
