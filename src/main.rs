//! `trellis`: a local VPC Lattice. See `trellis --help`.

#![forbid(unsafe_code)]

mod admin;
mod console;
mod duration;
mod export;
mod invoke;
mod log;
mod reload;
mod show;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: a proxied request allocates and frees many small
/// buffers across threads, which glibc's malloc serves slower (see docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code: the config file is missing or invalid.
pub const EXIT_BAD_CONFIG: u8 = 1;
/// Exit code: Trellis could not run (a port in use, a target that cannot be built, …). Clap
/// exits with the same code on a usage error (an unknown flag, a bad `--target-timeout`).
pub const EXIT_RUNTIME: u8 = 2;

#[derive(Parser)]
#[command(
    name = "trellis",
    // The commit it was built from (build.rs), so a benchmark can tell a stale binary.
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("TRELLIS_COMMIT"), ")"),
    about = "A local VPC Lattice: services, listeners, rules and weighted target groups in one binary",
    after_help = "Exit codes: 0 success, 1 invalid or missing config file, 2 runtime failure or invalid\n\
                  command-line arguments.\n\
                  Docs: README.md and docs/ in the Trellis repository."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub struct ConfigArg {
    /// The config file.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        default_value = "trellis.yaml"
    )]
    pub file: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the config's services until SIGINT or SIGTERM, then drain and exit 0.
    #[command(
        after_help = "Prints one line per listener with a curl command to try it.\n\
                            Access logs go to the destinations in the config; Trellis's own log goes to stderr\n\
                            (set RUST_LOG=debug for one line per request; --log-format json for JSON lines).\n\
                            Config reload (--reload): by default an edit is applied once the file has not changed\n\
                            for 0.5 s, and SIGHUP (kill -HUP PID) reloads at once; an invalid file is refused and\n\
                            the previous config keeps serving. To replace the file in one step, write a temporary\n\
                            file in the same directory and rename it over: mv trellis.yaml.new trellis.yaml\n\
                            Exit codes: 0 after a clean shutdown, 1 invalid config, 2 runtime failure or\n\
                            invalid arguments (checked before anything starts)."
    )]
    Up(up::UpArgs),
    /// Check a config file; print every problem with its line:column and a hint.
    #[command(
        after_help = "Exit codes: 0 the file is valid (a one-line summary is printed), 1 problems were found."
    )]
    Validate(ConfigArg),
    /// List the services: names, generated DNS names, host names and listeners; with a Trellis
    /// running on the admin address, also its targets' live health.
    #[command(after_help = "Exit codes: 0 success, 1 invalid config.")]
    Services {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        live: show::LiveArg,
    },
    /// Run one function directly with a raw event; print its response (stdout) and log (stderr).
    #[command(
        after_help = "Example: trellis generate-event --path /hello | trellis invoke hello-function --event - -f examples/walkthrough.yaml\n\
                            Exit codes: 0 the function answered, 1 invalid config/event or unknown function, 2 the function failed\n\
                            or invalid arguments."
    )]
    Invoke(invoke::InvokeArgs),
    /// Print a sample VPC Lattice event (V1 or V2) for `trellis invoke` or a unit test.
    #[command(
        after_help = "Exit codes: 0 success, 1 an event that cannot be built (a --header without ':'),\n\
                            2 invalid arguments."
    )]
    GenerateEvent(invoke::GenerateEventArgs),
    /// Print the effective config as a Trellis YAML file or a CloudFormation template.
    #[command(after_help = "Examples:\n  \
                      trellis export -f examples/walkthrough.yaml -o exported.yaml && trellis up -f exported.yaml\n  \
                      trellis export -f trellis.yaml --format cloudformation -o lattice.json\n  \
                      aws cloudformation deploy --template-file lattice.json --stack-name my-lattice \\\n      \
                      --parameter-overrides VpcClientVpcId=vpc-0abc... (one per Parameter without a default)\n\
                      The effective config is the file layered with the objects made by API (DIR/api/store.json\n\
                      of --state-dir), read without writing anything, so it may run beside `trellis up`.\n\
                      Every default is written out. Relative paths (function code, certificates, access-log files)\n\
                      are written absolute, resolved against the working directory as `trellis up` resolves them, so\n\
                      the export works from anywhere. Secrets written as ${NAME} stay ${NAME}. In a CloudFormation\n\
                      template what exists only locally (VPC ids, targets, log destinations, function code) becomes\n\
                      a Parameter; see \"Taking it to AWS\" in README.md.\n\
                      Exit codes: 0 success, 1 invalid or missing config file, 2 the API store cannot be read\n\
                      (corrupt or newer), the output cannot be written, or invalid arguments.")]
    Export(export::ExportArgs),
    /// Show how a service routes: listener → rules in priority order → weighted target groups → targets
    /// (with their live health when a Trellis is running on the admin address).
    #[command(after_help = "Exit codes: 0 success, 1 invalid config or unknown service.")]
    Routes {
        /// The service's name (or id, or ARN).
        service: String,
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        live: show::LiveArg,
    },
}

/// How the commands that log (`up`, `invoke`) write Trellis's own log.
#[derive(clap::Args, Clone)]
pub struct LogArgs {
    /// Trellis's own log on stderr: text (colour only on a terminal, none with NO_COLOR) or
    /// json (one object per line, start-up lines included). RUST_LOG sets the level (default
    /// info).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = log::LogFormat::Text)]
    pub log_format: log::LogFormat,
}

/// Where Trellis keeps what it generates (shared by the commands that run functions).
#[derive(clap::Args, Clone)]
pub struct StateDirArg {
    /// Directory for generated files (self-signed certificates, compiled wasm cache) and the
    /// store of the objects made through the API (api/store.json).
    #[arg(long, value_name = "DIR", default_value = ".trellis")]
    pub state_dir: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Up(args) => {
            log::init(args.log.log_format);
            up::run(args)
        }
        Command::Validate(c) => show::validate(&c.file),
        Command::Services { config, live } => show::services(&config.file, &live),
        Command::Routes {
            service,
            config,
            live,
        } => show::routes(&config.file, &service, &live),
        Command::Invoke(args) => {
            log::init(args.log.log_format);
            invoke::invoke(args)
        }
        Command::GenerateEvent(args) => invoke::generate_event(args),
        Command::Export(args) => export::run(args),
    };
    ExitCode::from(code)
}

/// Loads the config, printing its problems (and returning the exit code) when it is invalid.
pub fn load_config(file: &std::path::Path) -> Result<trellis_config::Config, u8> {
    match trellis_config::load(file) {
        Ok(config) => Ok(config),
        Err(e) => {
            eprintln!("{e}");
            if let trellis_config::ConfigError::Read { .. } = e
                && !file.exists()
            {
                eprintln!(
                    "hint: pass the config file with -f FILE (examples/walkthrough.yaml is a start)"
                );
            }
            Err(EXIT_BAD_CONFIG)
        }
    }
}

/// `did you mean "NAME"? ` when one of `names` is close to `name` (a likely typo), else nothing.
pub fn suggestion(name: &str, names: &[&str]) -> String {
    trellis_config::did_you_mean(name, names.iter().copied())
        .map(|hint| format!("{hint} "))
        .unwrap_or_default()
}

/// The multi-threaded tokio runtime the commands that serve or invoke run on; when it cannot be
/// made, the error is printed and the exit code returned.
pub fn async_runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            log::error(&anyhow::Error::new(e).context("cannot start the async runtime"));
            EXIT_RUNTIME
        })
}
