//! Process functions: any Lambda custom runtime (a `bootstrap` built with the `lambda_runtime`
//! crate, a shell script looping over `curl`, …) run as a local process that talks to Trellis's
//! Runtime API. The warm pool, scaling, timeouts and logs are [`trellis_runtime::pool::Pool`]'s;
//! this module only starts and stops processes ([`ProcessLauncher`]) and notices when their code
//! (the executable, the script it runs) changes.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use trellis_runtime::pool::{
    Environment, Exit, LaunchError, LaunchSpec, Launcher, Pool, PoolConfig,
};
use trellis_runtime::stamp::FileStamps;
use trellis_runtime::{BoxFuture, log};

/// Variables a runtime keeps from Trellis's own environment. Everything else is cleared, as in
/// Lambda, so a function does not silently depend on the developer's shell (credentials,
/// `CARGO_*`, proxies); it declares what it needs in its `environment`.
const INHERITED: [&str; 2] = ["PATH", "HOME"];

/// `PATH` when Trellis itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Longest line of output logged as one line; longer ones are split, so a runtime printing
/// megabytes without a newline cannot grow Trellis's memory.
const MAX_LINE: usize = 16 * 1024;

/// How long output still in the pipes may take to reach the log after the runtime is gone.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("function {0}: a process function needs a command")]
    EmptyCommand(String),
}

/// Starts environments as local processes: `command[0]` with the remaining arguments, in
/// Trellis's working directory, with a cleared environment plus Lambda's variables, its output
/// in the function log, in a process group of its own so that killing it also kills whatever
/// it started.
///
/// Its code is every file the command names: the executable and each argument that is the path
/// of a file (the script in `[bash, runtime.sh]`). When one of them changes, warm environments
/// are replaced, so the next invocation runs the new code.
pub struct ProcessLauncher {
    function: String,
    program: PathBuf,
    args: Vec<String>,
    code: FileStamps,
}

impl ProcessLauncher {
    pub fn new(function: &str, command: &[String]) -> Result<ProcessLauncher, ProcessError> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| ProcessError::EmptyCommand(function.to_owned()))?;
        let program = resolve(program);
        // Options are not files; any other argument may be (a missing one is looked at again
        // on every check, and only regular files count).
        let files = args
            .iter()
            .filter(|arg| !arg.starts_with('-'))
            .map(PathBuf::from);
        Ok(ProcessLauncher {
            function: function.to_owned(),
            code: FileStamps::new(std::iter::once(program.clone()).chain(files)),
            program,
            args: args.to_vec(),
        })
    }

    /// The program as it will be started (a bare name is looked up in `PATH`).
    pub fn program(&self) -> &Path {
        &self.program
    }

    fn spawn(&self, spec: &LaunchSpec) -> Result<Child, LaunchError> {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .env("PATH", DEFAULT_PATH)
            .envs(
                INHERITED
                    .iter()
                    .filter_map(|k| Some((*k, std::env::var_os(k)?))),
            )
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Backstop: a pool dropped without `shutdown` still leaves no process behind.
            .kill_on_drop(true)
            // Its own group (pgid = its pid), so `kill` reaches its children too.
            .process_group(0);
        command
            .spawn()
            .map_err(|e| LaunchError::new(spawn_error(&self.program, &e)))
    }
}

impl Launcher for ProcessLauncher {
    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<Box<dyn Environment>, LaunchError>> {
        Box::pin(async move {
            let mut child = self.spawn(&spec)?;
            let pgid = child.id().and_then(|pid| i32::try_from(pid).ok());
            let mut pumps = Vec::new();
            if let Some(stdout) = child.stdout.take() {
                pumps.push(tokio::spawn(pump_to_log(self.function.clone(), stdout)));
            }
            if let Some(stderr) = child.stderr.take() {
                pumps.push(tokio::spawn(pump_to_log(self.function.clone(), stderr)));
            }
            Ok(Box::new(ProcessEnvironment { child, pgid, pumps }) as Box<dyn Environment>)
        })
    }

    fn describe(&self) -> String {
        format!("process {}", self.program.display())
    }

    fn code_changed(&self) -> BoxFuture<'_, Option<String>> {
        let changed = self.code.changed();
        let note = (!changed.is_empty()).then(|| {
            let files: Vec<String> = changed.iter().map(|p| p.display().to_string()).collect();
            format!("{} changed: replacing warm environments", files.join(", "))
        });
        Box::pin(std::future::ready(note))
    }
}

/// One runtime process.
struct ProcessEnvironment {
    child: Child,
    /// Its process group, for killing its children along with it.
    pgid: Option<i32>,
    /// The tasks copying its stdout and stderr into the function log.
    pumps: Vec<JoinHandle<()>>,
}

impl ProcessEnvironment {
    /// SIGKILL to the whole process group. Sent before the leader is reaped (from `kill`) or
    /// right after it (from `wait`, to take its orphans along); while any member is alive the
    /// group id cannot be reused, so this cannot reach an unrelated process group.
    fn kill_group(&self) {
        if let Some(pgid) = self.pgid.filter(|p| *p > 1) {
            // SAFETY: kill(2) takes plain integers and touches no memory; a negative pid
            // addresses the process group. ESRCH (already gone) is fine.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }

    /// Lets the output still in the pipes reach the log, so a crash's last words come before
    /// the pool's report of the crash.
    async fn flush_output(&mut self) {
        for pump in self.pumps.drain(..) {
            let _ = tokio::time::timeout(OUTPUT_GRACE, pump).await;
        }
    }
}

impl Environment for ProcessEnvironment {
    fn wait(&mut self) -> BoxFuture<'_, Exit> {
        Box::pin(async move {
            // Cancel-safe: `Child::wait` is, and it keeps the status once reaped.
            let status = self.child.wait().await;
            self.kill_group();
            self.flush_output().await;
            describe(status)
        })
    }

    fn kill(&mut self) -> BoxFuture<'_, Exit> {
        Box::pin(async move {
            self.kill_group();
            // In case the group kill was not possible (no pid): kill the leader at least.
            let _ = self.child.start_kill();
            let status = self.child.wait().await;
            self.flush_output().await;
            describe(status)
        })
    }
}

/// A process function for `config` (its `command`, timeout, memory, environment and
/// concurrency): a [`Pool`] of [`ProcessLauncher`] environments. Nothing starts until the first
/// invocation; a missing executable is reported then, so Trellis can start before the function
/// is built.
pub fn pool(config: &trellis_config::Function, region: &str) -> Result<Pool, ProcessError> {
    let launcher = ProcessLauncher::new(&config.name, &config.command)?;
    let executable = launcher.program();
    let mut pool_config = PoolConfig::new(config, region);
    pool_config.handler = executable
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bootstrap".to_owned());
    let absolute = std::path::absolute(executable).unwrap_or_else(|_| executable.to_path_buf());
    if let Some(dir) = absolute.parent() {
        pool_config.task_root = dir.to_string_lossy().into_owned();
    }
    Ok(Pool::new(pool_config, Arc::new(launcher)))
}

/// The path to start and to watch: a name without `/` is looked up in `PATH`, as the shell
/// would; anything else is a path (relative to the working directory).
fn resolve(program: &str) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| PathBuf::from(program))
}

/// A spawn failure in words that say what to do about it.
fn spawn_error(program: &Path, error: &io::Error) -> String {
    let shown = program.display();
    let absolute = std::path::absolute(program).unwrap_or_else(|_| program.to_path_buf());
    match error.kind() {
        io::ErrorKind::NotFound if program.is_file() => format!(
            "cannot start {shown}: its interpreter (the #! line) or a library it needs is missing"
        ),
        io::ErrorKind::NotFound => format!(
            "executable {shown} not found (looked for {}); build it first, or fix the function's \"command\"",
            absolute.display()
        ),
        io::ErrorKind::PermissionDenied => {
            format!("cannot start {shown}: permission denied (is it executable? chmod +x)")
        }
        _ if error.raw_os_error() == Some(libc::ETXTBSY) => {
            format!(
                "cannot start {shown}: the file is being written (text file busy); retry once the build is done"
            )
        }
        _ => format!("cannot start {shown}: {error}"),
    }
}

/// `exit status 3`, `killed by signal 9 (SIGKILL)`.
fn describe(status: io::Result<ExitStatus>) -> Exit {
    let text = match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}{}", signal_name(signal)),
            (None, None) => status.to_string(),
        },
        Err(e) => format!("unknown exit ({e})"),
    };
    Exit(text)
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGBUS => " (SIGBUS)",
        libc::SIGILL => " (SIGILL)",
        libc::SIGFPE => " (SIGFPE)",
        libc::SIGINT => " (SIGINT)",
        _ => "",
    }
}

async fn pump_to_log(function: String, output: impl AsyncRead + Unpin) {
    pump_lines(output, |line| log::line(&function, line)).await;
}

/// Calls `sink` with each line of `output` (without its newline; invalid UTF-8 replaced; lines
/// over [`MAX_LINE`] bytes split) until the end of the stream.
async fn pump_lines(output: impl AsyncRead + Unpin, mut sink: impl FnMut(&str)) {
    let mut reader = BufReader::new(output);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match read_line_capped(&mut reader, &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => sink(&String::from_utf8_lossy(&line)),
        }
    }
}

/// Like `read_until(b'\n')`, but stops after [`MAX_LINE`] bytes.
async fn read_line_capped<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    line: &mut Vec<u8>,
) -> io::Result<usize> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(line.len());
        }
        let room = MAX_LINE - line.len();
        let window = &available[..available.len().min(room)];
        let (take, done) = match window.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (window.len(), window.len() == room),
        };
        line.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done {
            return Ok(line.len());
        }
    }
}

#[cfg(test)]
mod tests;
