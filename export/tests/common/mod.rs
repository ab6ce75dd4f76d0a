//! What the export tests share: the round-trip check and a view of a config that holds every
//! served setting.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use trellis_config::Config;

/// Every `.yaml` file under `dir`, recursively, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The config as `Debug` shows it, without where each object was written (which an export
/// cannot keep) and with the identities' secrets (which `Debug` redacts): every setting that
/// changes what Trellis serves, and whatever field a later change adds.
pub fn view(config: &Config) -> String {
    let mut c = config.clone();
    let here = trellis_config::Loc::default();
    for v in &mut c.vpcs {
        v.at = here.clone();
    }
    for n in &mut c.service_networks {
        n.at = here.clone();
    }
    for s in &mut c.services {
        s.at = here.clone();
        for l in &mut s.listeners {
            l.at = here.clone();
            for r in &mut l.rules {
                r.at = here.clone();
            }
        }
    }
    for t in &mut c.target_groups {
        t.at = here.clone();
    }
    for f in &mut c.functions {
        f.at = here.clone();
    }
    let secrets: Vec<(String, Option<String>)> = c
        .identities
        .iter()
        .flatten()
        .map(|i| (i.secret_access_key.clone(), i.session_token.clone()))
        .collect();
    format!("{c:#?}\nsecrets: {secrets:?}")
}

/// `yaml(config)` parses back to a config that serves the same, and exports to the same text.
pub fn assert_round_trip(config: &Config, what: &str) {
    let text = trellis_export::yaml(config);
    let back = trellis_config::parse_str(&text, "export.yaml")
        .unwrap_or_else(|e| panic!("{what}: the export does not parse: {e}\n{text}"));
    assert_eq!(
        view(config),
        view(&back),
        "{what}: the export serves differently:\n{text}"
    );
    assert_eq!(
        text,
        trellis_export::yaml(&back),
        "{what}: the export of the export differs"
    );
}
