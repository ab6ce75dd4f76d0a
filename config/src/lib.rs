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
pub use yaml::Pos;

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    parse_str(&text, &file)
}

/// Validates config `text`; `file` names it in messages.
pub fn parse_str(text: &str, file: &str) -> Result<Config, ConfigError> {
    let root = yaml::parse(text).map_err(|e| ConfigError::Invalid {
        file: file.to_string(),
        problems: vec![Diagnostic {
            path: String::new(),
            pos: e.pos,
            message: format!("YAML syntax error: {}", e.message),
            hint: None,
        }],
    })?;
    let mut problems = decode::Problems::default();
    let config = parse::config(&mut problems, &root, text);
    if problems.list.is_empty() {
        Ok(config)
    } else {
        let mut list = problems.list;
        list.sort_by_key(|d| (d.pos.line, d.pos.col));
        Err(ConfigError::Invalid {
            file: file.to_string(),
            problems: list,
        })
    }
}
