//! trellis-config: the Trellis config file — a YAML description of VPC Lattice objects
//! (VPCs, service networks, services, listeners, rules, target groups, functions).
//!
//! [`load`] reads, decodes, applies Lattice's defaults and validates a file, and reports every
//! problem at once with its path, line:column and a hint. Keys and enum values are spelled as
//! the VPC Lattice API spells them, so blocks from the AWS docs paste in unchanged.

#![forbid(unsafe_code)]

mod decode;
mod error;
mod ids;
mod model;
mod parse;
mod yaml;

use std::path::Path;

pub use decode::{Loc, did_you_mean};
pub use error::{ConfigError, Diagnostic};
pub use ids::{DNS_PARTITION_LABEL, service_dns_name, stable_id};
pub use model::*;
pub use parse::{parse_cidr, parse_matcher};
pub use yaml::{MAX_ALIAS_BYTES, MAX_ALIAS_NODES, MAX_ALIASES, MAX_DEPTH, Pos};

/// The largest config file Trellis reads: 4 MiB holds thousands of services, and the bound
/// keeps a wrong or hostile file (a log, a disk image) from being read into memory whole.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let bytes = read_capped(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    parse_bytes(&bytes, &file)
}

/// The bytes of the file at `path`, at most [`MAX_FILE_BYTES`] + 1 of them: enough for
/// [`parse_bytes`] to tell that a file is too large without reading all of it.
pub fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Validates a config file's bytes (as [`read_capped`] returns them); `file` names it in
/// messages. A file over [`MAX_FILE_BYTES`] or not UTF-8 is one problem with its position.
pub fn parse_bytes(bytes: &[u8], file: &str) -> Result<Config, ConfigError> {
    parse_str(file_text(bytes, file)?, file)
}

/// The API store's document, layered on the config file by [`parse_layered`].
///
/// `document` holds the objects the API created, in the config file's own schema
/// (`serviceNetworks`, `services` with their listeners and rules, `targetGroups`), and what
/// the API added to the file's objects and to its own: `serviceAssociations`
/// (`[{serviceNetwork, service}]`), `vpcAssociations` (`[{serviceNetwork, vpc}]`) and
/// `targetChanges` (`[{targetGroup, registered: [{id, port}], deregistered: [...]}]`, applied
/// on top of a target group's `targets`). Objects are named by name, as in the file.
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    pub document: &'a serde_json::Value,
    /// Names the store in messages (its file).
    pub name: &'a str,
    /// Where `document` is inside the store, put before the paths of its problems
    /// (`document.services[0].listeners[0].port`); empty when it is the whole store.
    pub path: &'a str,
}

/// Validates a config file's bytes layered with the API store's document: one config, every
/// object validated once, as if the store's objects were written after the file's. A problem
/// of the file has its `FILE:LINE:COL`, a problem of the store names the store and the
/// object's path (its position is [`Pos::STORE`]); a name used by both is reported at the
/// store's object, with the file's line in the hint.
pub fn parse_layered(bytes: &[u8], file: &str, layer: &Layer<'_>) -> Result<Config, ConfigError> {
    let text = file_text(bytes, file)?;
    let invalid = |problems| ConfigError::Invalid {
        file: file.to_string(),
        store: Some(layer.name.to_string()),
        problems,
    };
    let root = yaml::parse(text).map_err(|e| {
        invalid(vec![Diagnostic {
            path: String::new(),
            pos: e.pos,
            message: e.message,
            hint: e.hint,
        }])
    })?;
    let Some(store) = yaml::from_json(layer.document) else {
        return Err(invalid(vec![Diagnostic {
            path: layer.path.to_string(),
            pos: Pos::STORE,
            message: format!("the document nests deeper than {MAX_DEPTH} levels"),
            hint: None,
        }]));
    };
    let mut problems = decode::Problems {
        list: Vec::new(),
        names: Some((file.to_string(), layer.name.to_string())),
    };
    let config = parse::config(&mut problems, &root, text, Some((&store, layer.path)));
    finish(config, problems.list).map_err(invalid)
}

/// File problems in file order, then the store's in the order they were found.
fn finish(config: Config, mut list: Vec<Diagnostic>) -> Result<Config, Vec<Diagnostic>> {
    if list.is_empty() {
        return Ok(config);
    }
    list.sort_by_key(|d| (d.pos.in_store(), d.pos.line, d.pos.col));
    Err(list)
}

/// A config file's bytes as text: at most [`MAX_FILE_BYTES`], UTF-8.
fn file_text<'b>(bytes: &'b [u8], file: &str) -> Result<&'b str, ConfigError> {
    let one = |pos: Pos, message: String, hint: Option<String>| ConfigError::Invalid {
        file: file.to_string(),
        store: None,
        problems: vec![Diagnostic {
            path: String::new(),
            pos,
            message,
            hint,
        }],
    };
    if bytes.len() > MAX_FILE_BYTES {
        return Err(one(
            Pos { line: 1, col: 1 },
            format!(
                "the config file is larger than {MAX_FILE_BYTES} bytes (4 MiB), the most Trellis reads"
            ),
            Some(
                "is this the right file? a config for thousands of services fits in far less"
                    .into(),
            ),
        ));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = bytes.get(..e.valid_up_to()).unwrap_or_default();
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(valid.get(start..).unwrap_or_default())
            .chars()
            .count()
            + 1;
        one(
            Pos { line, col },
            "the config file is not UTF-8 text".into(),
            Some("save it as UTF-8".into()),
        )
    })
}

/// Validates config `text`; `file` names it in messages.
pub fn parse_str(text: &str, file: &str) -> Result<Config, ConfigError> {
    let root = yaml::parse(text).map_err(|e| ConfigError::Invalid {
        file: file.to_string(),
        store: None,
        problems: vec![Diagnostic {
            path: String::new(),
            pos: e.pos,
            message: e.message,
            hint: e.hint,
        }],
    })?;
    let mut problems = decode::Problems::default();
    let config = parse::config(&mut problems, &root, text, None);
    finish(config, problems.list).map_err(|problems| ConfigError::Invalid {
        file: file.to_string(),
        store: None,
        problems,
    })
}
