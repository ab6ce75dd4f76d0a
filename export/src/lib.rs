//! trellis-export: the effective configuration (the file layered with the API store, as the
//! config crate validated it) written out again — as a Trellis YAML file that `trellis up`
//! serves identically ([`yaml`]), or as a CloudFormation template of `AWS::VpcLattice::*`
//! resources ([`cloudformation`]), the way to take a local setup to AWS.
//!
//! Both are functions of the [`Config`] alone: the same config gives the same bytes, and
//! `yaml(parse(yaml(c))) == yaml(c)`.
//!
//! Paths (function code and build directories, a process function's program, certificate and
//! key files, access-log files) are written as the config holds them. `trellis up` resolves a
//! relative path against its working directory, so an export meant to be used elsewhere is
//! first passed through [`with_absolute_paths`] (as `trellis export` does).

#![forbid(unsafe_code)]

mod cloudformation;
mod emit;
mod json;
mod yaml;

use std::path::{Path, PathBuf};

use trellis_config::{Config, LogDestination};

pub use cloudformation::cloudformation;
pub use yaml::yaml;

/// `config` with every relative path made absolute against `base` — the directory `trellis up`
/// would resolve them against (its working directory) — so that an export saved anywhere
/// names the same files. A process function's program is a path only when it contains a `/`
/// (a bare name is looked up in `PATH`, as the shell would), and its arguments are left alone:
/// Trellis cannot know which of them are paths.
pub fn with_absolute_paths(config: &Config, base: &Path) -> Config {
    let abs = |p: &Path| -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let logs = |list: &mut Vec<LogDestination>| {
        for d in list {
            if let LogDestination::File(p) = d {
                *p = abs(p);
            }
        }
    };
    let mut out = config.clone();
    for f in &mut out.functions {
        f.code = f.code.as_deref().map(abs);
        f.build = f.build.as_deref().map(abs);
        if let Some(program) = f.command.first_mut()
            && program.contains('/')
        {
            *program = abs(Path::new(program)).to_string_lossy().into_owned();
        }
    }
    for s in &mut out.services {
        logs(&mut s.access_logs);
        for l in &mut s.listeners {
            if let Some(tls) = &mut l.tls {
                tls.certificate = abs(&tls.certificate);
                tls.key = abs(&tls.key);
            }
        }
    }
    for n in &mut out.service_networks {
        logs(&mut n.access_logs);
    }
    out
}
