//! `trellis export`: the effective config as a Trellis YAML file or a CloudFormation template.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use trellis_config::Config;

use crate::{ConfigArg, EXIT_BAD_CONFIG, EXIT_RUNTIME, StateDirArg, load_config, log};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A Trellis config file that `trellis up` serves identically.
    Yaml,
    /// A CloudFormation template of AWS::VpcLattice::* resources (JSON).
    Cloudformation,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    state: StateDirArg,
    /// What to write.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Yaml)]
    format: Format,
    /// Write to this file (replaced in one step) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: Option<PathBuf>,
}

pub fn run(args: ExportArgs) -> u8 {
    let config = match effective_config(&args.config.file, &args.state.state_dir) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // `trellis up` resolves relative paths against its working directory: the export names
    // the same files from wherever it is saved or run.
    let config = match std::env::current_dir() {
        Ok(cwd) => trellis_export::with_absolute_paths(&config, &cwd),
        Err(e) => {
            log::error(&anyhow::Error::new(e).context("cannot read the working directory"));
            return EXIT_RUNTIME;
        }
    };
    let text = match args.format {
        Format::Yaml => trellis_export::yaml(&config),
        Format::Cloudformation => trellis_export::cloudformation(&config),
    };
    let written = match &args.output {
        Some(out) => write_file(out, &text),
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .context("cannot write to stdout"),
    };
    match written {
        Ok(()) => 0,
        Err(e) => {
            log::error(&e);
            EXIT_RUNTIME
        }
    }
}

/// The config `trellis up -f FILE --state-dir DIR` would serve: the file layered with the API
/// store under DIR, read without locking or writing anything (so it works beside a running
/// `trellis up`); the file alone when there is no store. A file that does not validate exits 1;
/// a store that cannot be read (corrupt, or of a newer Trellis) exits 2, naming the store.
pub fn effective_config(file: &Path, state_dir: &Path) -> Result<Config, u8> {
    let Ok(bytes) = trellis_config::read_capped(file) else {
        // The message (and hint) of a file that cannot be read.
        return load_config(file);
    };
    match trellis_control::compose_read_only(&bytes, &file.display().to_string(), state_dir) {
        Ok(Some(config)) => Ok(config),
        Ok(None) => load_config(file),
        Err(e) => {
            eprintln!("{e}");
            Err(match e {
                trellis_control::OpenError::Config(_) => EXIT_BAD_CONFIG,
                trellis_control::OpenError::Store(_) => EXIT_RUNTIME,
            })
        }
    }
}

/// Writes `text` to `out` through a temporary file renamed over it, so a reader never sees half
/// an export and a failed write leaves the old file.
fn write_file(out: &Path, text: &str) -> anyhow::Result<()> {
    let name = out
        .file_name()
        .with_context(|| format!("{} is not a file name", out.display()))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = out.with_file_name(tmp_name);
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("cannot replace {}", out.display()))
}
