//! Decoding and validating the config file: Lattice's names, enums, ranges and defaults.
//!
//! Sections are decoded in dependency order (VPCs, functions, target groups, services, service
//! networks) so that references can be resolved, with a suggestion, as soon as they are read;
//! what spans sections is checked last, on the decoded config ([`checks`]). Every list section
//! starts its items the same way ([`section`]).

mod auth;
mod checks;
mod functions;
mod identities;
mod layer;
mod networks;
mod rules;
mod section;
mod services;
mod tags;
mod target_groups;
mod vpcs;

use std::path::PathBuf;

use crate::decode::{Fields, Loc, Problems, boolean, fields, int, item, list, one_of, string};
use crate::ids::{lattice_arn, stable_id};
use crate::model::*;
use crate::yaml::{Node, Pos};

pub use target_groups::parse_matcher;
pub use vpcs::parse_cidr;

const TOP_KEYS: &[&str] = &[
    "region",
    "accountId",
    "vpcs",
    "serviceNetworks",
    "services",
    "targetGroups",
    "functions",
    "identities",
];

/// Decodes a whole document, with the API store's document (and its path inside the store)
/// layered on it when given. Problems are collected in `problems`; the returned config is only
/// meaningful when there are none.
pub fn config(
    problems: &mut Problems,
    root: &Node,
    source: &str,
    store: Option<(&Node, &str)>,
) -> Config {
    let top = Loc::default();
    let merged;
    let mut store_fields = None;
    let root = match store {
        None => root,
        Some((store, path)) => {
            let Some(sf) = fields(
                problems,
                store,
                &Loc::new(path, Pos::STORE),
                layer::STORE_KEYS,
            ) else {
                return empty_config();
            };
            merged = layer::merge(problems, root, &sf);
            store_fields = Some(sf);
            &merged
        }
    };
    let Some(f) = fields(problems, root, &top, TOP_KEYS) else {
        return empty_config();
    };
    let region = f
        .get("region")
        .and_then(|n| string(problems, n, &f.loc("region")))
        .unwrap_or_else(|| "us-east-1".to_string());
    check_region(problems, &region, &f.loc("region"));
    let account_id = f
        .get("accountId")
        .and_then(|n| string(problems, n, &f.loc("accountId")))
        .unwrap_or_else(|| "123456789012".to_string());
    if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
        problems.add(
            &f.loc("accountId"),
            format!("\"{account_id}\" is not an account id"),
            Some("an AWS account id is 12 digits, e.g. \"123456789012\"".into()),
        );
    }
    let store_path = match store {
        Some((_, path)) if !path.is_empty() => format!("{path}."),
        _ => String::new(),
    };
    let mut ctx = Ctx {
        problems,
        source,
        region,
        account_id,
        store_path,
    };

    let vpcs = ctx.vpcs(&f);
    let functions = ctx.functions(&f);
    let mut target_groups = ctx.target_groups(&f, &functions);
    if let Some(sf) = &store_fields {
        ctx.target_changes(sf, &mut target_groups, &functions);
    }
    let services = ctx.services(&f, &target_groups);
    let mut service_networks = ctx.service_networks(&f, &services, &vpcs);
    if let Some(sf) = &store_fields {
        ctx.associations(sf, &mut service_networks, &services, &vpcs);
    }
    let (identities, identity_env) = ctx.identities(&f);
    let config = Config {
        region: ctx.region,
        account_id: ctx.account_id,
        vpcs,
        service_networks,
        services,
        target_groups,
        functions,
        identities,
        identity_env,
    };
    checks::cross_checks(ctx.problems, &config);
    config
}

fn empty_config() -> Config {
    Config {
        region: String::new(),
        account_id: String::new(),
        vpcs: vec![],
        service_networks: vec![],
        services: vec![],
        target_groups: vec![],
        functions: vec![],
        identities: None,
        identity_env: vec![],
    }
}

fn check_region(problems: &mut Problems, region: &str, loc: &Loc) {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !ok {
        problems.add(
            loc,
            format!("\"{region}\" is not a region name"),
            Some("a region looks like \"us-west-2\"".into()),
        );
    }
}

/// The state the section decoders share: where problems go, and what ids and ARNs are made of.
struct Ctx<'p> {
    problems: &'p mut Problems,
    /// The file's text: where a JSON-string auth policy starts, for its problems' positions.
    source: &'p str,
    region: String,
    account_id: String,
    /// Put before the paths of the store's top-level objects (`document.`), which are
    /// numbered apart from the file's.
    store_path: String,
}

impl Ctx<'_> {
    fn id(&self, kind: &str, name: &str) -> String {
        stable_id(&[kind, &self.region, &self.account_id, name])
    }

    fn arn(&self, resource: &str) -> String {
        lattice_arn(&self.region, &self.account_id, resource)
    }

    fn str_field(&mut self, f: &Fields<'_>, key: &str) -> Option<String> {
        f.get(key)
            .and_then(|n| string(self.problems, n, &f.loc(key)))
    }

    fn int_field(
        &mut self,
        f: &Fields<'_>,
        key: &str,
        min: i64,
        max: i64,
        what: &str,
    ) -> Option<i64> {
        f.get(key)
            .and_then(|n| int(self.problems, n, &f.loc(key), min, max, what))
    }

    /// One of the spellings in `allowed` (an enum of the Lattice API).
    fn enum_field(&mut self, f: &Fields<'_>, key: &str, allowed: &[&str]) -> Option<String> {
        f.get(key)
            .and_then(|n| one_of(self.problems, n, &f.loc(key), allowed))
    }

    fn bool_field(&mut self, f: &Fields<'_>, key: &str) -> Option<bool> {
        f.get(key)
            .and_then(|n| boolean(self.problems, n, &f.loc(key)))
    }

    /// A service's or service network's `accessLogs`.
    fn access_logs(&mut self, f: &Fields<'_>) -> Vec<LogDestination> {
        let loc = f.loc("accessLogs");
        let mut out = Vec::new();
        for (i, node) in list(self.problems, f.get("accessLogs"), &loc)
            .iter()
            .enumerate()
        {
            let at = item(&loc, i, node);
            let Some(g) = fields(self.problems, node, &at, &["destination"]) else {
                continue;
            };
            let Some(dest) = g
                .require(self.problems, "destination", "\"stdout\" or \"file:PATH\"")
                .and_then(|n| string(self.problems, n, &g.loc("destination")))
            else {
                continue;
            };
            if dest == "stdout" {
                out.push(LogDestination::Stdout);
            } else if let Some(path) = dest.strip_prefix("file:").filter(|p| !p.is_empty()) {
                out.push(LogDestination::File(PathBuf::from(path)));
            } else {
                self.problems.add(
                    &g.loc("destination"),
                    format!("unsupported access-log destination \"{dest}\""),
                    Some(
                        "use \"stdout\" or \"file:PATH\" (one JSON record per line, appended)"
                            .into(),
                    ),
                );
            }
        }
        out
    }
}
