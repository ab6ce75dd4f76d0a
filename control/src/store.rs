//! The API store: one JSON file, `<state-dir>/api/store.json`, replaced atomically.
//!
//! Every acknowledged write is: write `store.json.tmp`, fsync it, rename it over `store.json`,
//! fsync the directory — and only then answer. A `kill -9` (or a power cut) at any moment
//! leaves the old file or the new one, never a torn one; a torn `store.json.tmp` left behind
//! is never read, and is removed at the next start. Why one file rather than SQLite: no C
//! build, a store a user can read and diff, `trellis export` reads it directly, and Lattice's
//! quotas keep it small (docs/DESIGN.md has the trade-off and the measured writes per second).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The store's format. A store of a newer format is refused (an older Trellis must not
/// rewrite what it does not understand).
pub const FORMAT: u64 = 1;

/// The largest store read at start-up: far above what Lattice's quotas allow to create.
const MAX_STORE_BYTES: u64 = 64 * 1024 * 1024;

/// What the store holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub format: u64,
    /// The API's objects in the config file's schema, as `trellis_config::Layer` reads them.
    pub document: Map<String, Value>,
    /// What the config schema has no place for, by ARN: times and tags.
    #[serde(default)]
    pub resources: BTreeMap<String, Meta>,
    /// Access-log subscriptions (their destination, mapped, is in the document).
    #[serde(default)]
    pub access_log_subscriptions: Vec<AccessLogSubscription>,
    /// The answers to the latest create calls that carried a `clientToken`, oldest first.
    #[serde(default)]
    pub client_tokens: Vec<TokenRecord>,
}

/// Metadata of one API object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub created_at: String,
    pub last_updated_at: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// One access-log subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogSubscription {
    pub id: String,
    pub arn: String,
    /// The service's or service network's ARN.
    pub resource_arn: String,
    pub destination_arn: String,
    /// Where the records go: the `accessLogs` destination written in the document.
    pub destination: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_network_log_type: Option<String>,
}

/// A create call with a `clientToken`, and its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub operation: String,
    pub token: String,
    /// The call's input without the token.
    pub input: Map<String, Value>,
    pub output: Map<String, Value>,
}

/// Why the store cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read the API store {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error(
        "the API store {file} is not a store Trellis can read ({why}); it was left as it is: move it away to start with an empty store, or restore it from a copy"
    )]
    Corrupt { file: String, why: String },
    #[error(
        "the API store {file} has format {found}, newer than this Trellis's {FORMAT}: run the Trellis that wrote it (it was left as it is)"
    )]
    Newer { file: String, found: u64 },
    #[error("cannot write the API store {file}: {source}")]
    Write {
        file: String,
        source: std::io::Error,
    },
}

/// The store's file.
#[derive(Debug, Clone)]
pub struct Store {
    file: PathBuf,
}

impl Store {
    /// The store under `state_dir` (`api/store.json`), and what it holds: an empty snapshot
    /// when there is none yet. A store that does not parse, or is of a newer format, is an
    /// error naming the file; it is never replaced silently.
    pub fn open(state_dir: &Path) -> Result<(Store, Snapshot), StoreError> {
        let dir = state_dir.join("api");
        let file = dir.join("store.json");
        let name = file.display().to_string();
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Read {
            file: name.clone(),
            source,
        })?;
        // A write cut short: never the store (the rename did not happen).
        let _ = std::fs::remove_file(tmp_of(&file));
        let store = Store { file };
        match store.read()? {
            Some(snap) => Ok((store, snap)),
            None => Ok((
                store,
                Snapshot {
                    format: FORMAT,
                    ..Snapshot::default()
                },
            )),
        }
    }

    /// What the store under `state_dir` holds, read without locking, creating or removing
    /// anything (`trellis export` beside a running `trellis up`): `None` when there is no store.
    /// The file is replaced by a rename, so a reader sees the old store or the new one whole.
    pub fn peek(state_dir: &Path) -> Result<Option<Snapshot>, StoreError> {
        let store = Store {
            file: state_dir.join("api").join("store.json"),
        };
        store.read()
    }

    fn read(&self) -> Result<Option<Snapshot>, StoreError> {
        let name = self.file.display().to_string();
        let store = self;
        let bytes = match std::fs::File::open(&store.file) {
            Ok(f) => {
                use std::io::Read;
                let mut bytes = Vec::new();
                f.take(MAX_STORE_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|source| StoreError::Read {
                        file: name.clone(),
                        source,
                    })?;
                bytes
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Read { file: name, source }),
        };
        Ok(Some(store.decode(&bytes)?))
    }

    /// The store's file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    fn decode(&self, bytes: &[u8]) -> Result<Snapshot, StoreError> {
        let name = self.file.display().to_string();
        let corrupt = |why: String| StoreError::Corrupt {
            file: name.clone(),
            why,
        };
        if bytes.len() as u64 > MAX_STORE_BYTES {
            return Err(corrupt(format!(
                "it is larger than {MAX_STORE_BYTES} bytes"
            )));
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        let format = value
            .get("format")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt("it has no \"format\" number".into()))?;
        if format > FORMAT {
            return Err(StoreError::Newer {
                file: name.clone(),
                found: format,
            });
        }
        serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))
    }

    /// The bytes `snapshot` is written as (pretty JSON: a user may read and diff it).
    pub fn encode(snapshot: &Snapshot) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(snapshot).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Replaces the store with `bytes` (from [`Store::encode`]) durably: on `Ok` the new store
    /// is on disk and survives a crash. Blocking: call it off the async workers.
    pub fn write(&self, bytes: &[u8]) -> Result<(), StoreError> {
        let err = |source| StoreError::Write {
            file: self.file.display().to_string(),
            source,
        };
        let tmp = tmp_of(&self.file);
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        std::fs::rename(&tmp, &self.file).map_err(err)?;
        if let Some(dir) = self.file.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err)?;
        }
        Ok(())
    }
}

fn tmp_of(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("trellis-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn sample() -> Snapshot {
        let mut s = Snapshot {
            format: FORMAT,
            ..Snapshot::default()
        };
        s.document.insert(
            "services".into(),
            json!([{"name": "parking", "listeners": []}]),
        );
        s.resources.insert(
            "arn:x".into(),
            Meta {
                created_at: "2025-01-01T00:00:00Z".into(),
                last_updated_at: "2025-01-01T00:00:00Z".into(),
                tags: [("team".to_string(), "a".to_string())].into(),
            },
        );
        s
    }

    #[test]
    fn a_new_state_dir_gives_an_empty_store_and_a_write_reads_back() {
        let d = dir("roundtrip");
        let (store, snap) = Store::open(&d).unwrap();
        assert_eq!(snap.format, FORMAT);
        assert!(snap.document.is_empty());
        assert!(!store.file().exists());
        store.write(&Store::encode(&sample())).unwrap();
        let (_, again) = Store::open(&d).unwrap();
        assert_eq!(again, sample());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn peek_reads_without_creating_or_removing_anything() {
        let d = dir("peek");
        assert_eq!(Store::peek(&d).unwrap(), None);
        assert!(!d.exists(), "peek made the state dir");
        let (store, _) = Store::open(&d).unwrap();
        store.write(&Store::encode(&sample())).unwrap();
        let tmp = tmp_of(store.file());
        std::fs::write(&tmp, b"{").unwrap();
        assert_eq!(Store::peek(&d).unwrap(), Some(sample()));
        assert!(tmp.exists(), "peek removed a file");
        std::fs::write(store.file(), b"{\"format\": 7}").unwrap();
        let e = Store::peek(&d).unwrap_err().to_string();
        assert!(e.contains("has format 7, newer"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_torn_tmp_left_behind_is_ignored_and_removed() {
        let d = dir("torn");
        let (store, _) = Store::open(&d).unwrap();
        store.write(&Store::encode(&sample())).unwrap();
        let tmp = tmp_of(store.file());
        let whole = Store::encode(&sample());
        std::fs::write(&tmp, &whole[..whole.len() / 2]).unwrap();
        let (_, snap) = Store::open(&d).unwrap();
        assert_eq!(snap, sample());
        assert!(!tmp.exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_corrupt_or_newer_store_is_an_error_naming_the_file_and_is_left_alone() {
        let d = dir("corrupt");
        let (store, _) = Store::open(&d).unwrap();
        for (bytes, expect) in [
            (
                b"{\"format\": 1, \"document\": {".to_vec(),
                "is not a store Trellis can read",
            ),
            (b"\x00\xff".to_vec(), "is not a store Trellis can read"),
            (b"[]".to_vec(), "has no \"format\" number"),
            (
                b"{\"format\": 1, \"document\": 5}".to_vec(),
                "is not a store",
            ),
            (
                b"{\"format\": 99, \"document\": {}}".to_vec(),
                "has format 99, newer",
            ),
        ] {
            std::fs::write(store.file(), &bytes).unwrap();
            let e = Store::open(&d).unwrap_err().to_string();
            assert!(e.contains(expect), "{e}");
            assert!(e.contains(&store.file().display().to_string()), "{e}");
            assert_eq!(std::fs::read(store.file()).unwrap(), bytes);
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
