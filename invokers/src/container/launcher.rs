//! Starting and stopping one container per execution environment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{CreateContainerOptions, LogsOptions, WaitContainerOptions};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use trellis_runtime::pool::{Environment, Exit, LaunchError, LaunchSpec, Launcher};
use trellis_runtime::{BoxFuture, log};

use super::engine::{DockerEngine, is_status, remove_container, short_id};
use super::image::{ImageSource, Images};
use super::{ContainerError, labels};
use crate::one_line;

/// Longest line of output logged as one line (as for process functions).
const MAX_LINE: usize = 16 * 1024;

/// How long output may take to reach the log after the container is gone.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// How long `kill` waits for the engine to confirm the container is gone.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// How often the engine may fail to answer a wait before the container is given up as lost.
const WAIT_RETRIES: u32 = 5;

/// Starts environments as containers of the function's image: Lambda's variables in the
/// environment, the memory limit from `memorySize`, `trellis.*` labels, attached where the
/// engine's [`Placement`](super::Placement) says, output streamed into the function log.
///
/// Its code is the image: for a `build:` directory, a change to the directory's content means
/// a new image, and warm containers are replaced.
pub struct DockerLauncher {
    engine: Arc<DockerEngine>,
    images: Images,
    function: String,
    /// The value of this launcher's `trellis.pool` label.
    pool_id: String,
    memory_mb: u32,
    /// The build directory's metadata fingerprint as last seen, for cheap change detection.
    fingerprint: Mutex<Option<u64>>,
}

impl DockerLauncher {
    /// A launcher for container function `config` (its `image` or `build`, and memory).
    pub fn new(
        config: &trellis_config::Function,
        engine: &Arc<DockerEngine>,
    ) -> Result<DockerLauncher, ContainerError> {
        let source = ImageSource::from_config(config)?;
        let images = Images::new(engine.docker().clone(), &config.name, source);
        Ok(DockerLauncher {
            engine: Arc::clone(engine),
            fingerprint: Mutex::new(images.fingerprint()),
            images,
            function: config.name.clone(),
            pool_id: short_id(),
            memory_mb: config.memory_size_mb,
        })
    }

    /// Where the image comes from.
    pub fn source(&self) -> &ImageSource {
        self.images.source()
    }

    /// The value of this launcher's `trellis.pool` label, on every container it starts.
    pub fn pool_id(&self) -> &str {
        &self.pool_id
    }

    /// Finds the image now (building a `build:` directory if its content has no image yet).
    /// Returns the image reference containers are created from.
    pub async fn image(&self) -> Result<String, ContainerError> {
        self.images.resolve().await
    }

    async fn start(&self, spec: LaunchSpec) -> Result<ContainerEnvironment, String> {
        let docker = self.engine.docker();
        let image = self.images.resolve().await.map_err(|e| e.to_string())?;
        let name = container_name(&self.function, spec.environment_id);
        let placement = self.engine.placement();
        let memory = i64::from(self.memory_mb) * 1024 * 1024;
        let labels = HashMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::FUNCTION.to_owned(), self.function.clone()),
            (
                labels::INSTANCE.to_owned(),
                self.engine.instance().to_owned(),
            ),
            (labels::OWNER.to_owned(), self.engine.owner().label()),
            (
                labels::ENVIRONMENT.to_owned(),
                spec.environment_id.to_string(),
            ),
            (labels::POOL.to_owned(), self.pool_id.clone()),
        ]);
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                memory: Some(memory),
                // No swap: the limit is the function's memory, as in Lambda.
                memory_swap: Some(memory),
                network_mode: Some(placement.network.clone()),
                extra_hosts: (!placement.extra_hosts.is_empty())
                    .then(|| placement.extra_hosts.clone()),
                // The engine keeps the output until the container is removed; bound it.
                log_config: Some(HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: Some(HashMap::from([
                        ("max-size".to_owned(), "10m".to_owned()),
                        ("max-file".to_owned(), "1".to_owned()),
                    ])),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| format!("cannot create a container from {image}: {}", one_line(&e)))?;
        let id = created.id;
        if let Err(e) = docker.start_container(&id, None).await {
            let _ = remove_container(docker, &id).await;
            return Err(format!(
                "cannot start container {name} from {image}: {}",
                one_line(&e)
            ));
        }
        let killing = Arc::new(AtomicBool::new(false));
        let (exit_tx, exit_rx) = watch::channel(None);
        let logs = tokio::spawn(pump_logs(docker.clone(), id.clone(), self.function.clone()));
        let watcher = tokio::spawn(watch_exit(
            docker.clone(),
            id.clone(),
            name,
            self.function.clone(),
            self.memory_mb,
            Arc::clone(&killing),
            exit_tx,
        ));
        Ok(ContainerEnvironment {
            docker: docker.clone(),
            id,
            exit: exit_rx,
            killing,
            logs: Some(logs),
            watcher,
        })
    }
}

impl Launcher for DockerLauncher {
    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<Box<dyn Environment>, LaunchError>> {
        Box::pin(async move {
            let env = self.start(spec).await.map_err(LaunchError::new)?;
            Ok(Box::new(env) as Box<dyn Environment>)
        })
    }

    fn describe(&self) -> String {
        match self.images.source() {
            ImageSource::Image(image) => format!("container {image}"),
            ImageSource::Build(dir) => format!("container built from {}", dir.display()),
        }
    }

    /// Finds or builds the image, so that a missing image or a failed build shows at start-up.
    fn prepare(&self) -> BoxFuture<'_, Result<(), LaunchError>> {
        Box::pin(async move {
            self.image().await.map_err(LaunchError::new)?;
            Ok(())
        })
    }

    /// Whether the `build:` directory's content changed since the image the warm containers run
    /// was built. A metadata walk per invocation (sizes and mtimes); the content is hashed only
    /// when that changed, so touching a file without changing it costs nothing.
    fn code_changed(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            let now = self.images.fingerprint()?;
            {
                let mut seen = self
                    .fingerprint
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if *seen == Some(now) {
                    return None;
                }
                *seen = Some(now);
            }
            self.images.content_changed().await.then(|| {
                format!(
                    "{} changed: rebuilding the image and replacing warm containers",
                    self.images.source()
                )
            })
        })
    }

    /// Removes any container of this launcher still there: one whose creation raced with the
    /// pool's shutdown.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self
                .engine
                .remove_containers(&[(labels::POOL, &self.pool_id)])
                .await
            {
                log::line(
                    &self.function,
                    &format!("could not remove its containers: {e}"),
                );
            }
        })
    }
}

/// `trellis-<function>-<n>-<8 hex>`: readable in `docker ps`, unique across pools and runs.
fn container_name(function: &str, environment: u64) -> String {
    let function: String = function
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("trellis-{function}-{environment}-{}", short_id())
}

/// How a container ended: what the engine says, and whether someone other than Trellis
/// stopped or removed it.
#[derive(Debug, Clone)]
struct Ended {
    exit: Exit,
    vanished: bool,
}

/// One function container.
struct ContainerEnvironment {
    docker: Docker,
    id: String,
    /// Set by the watcher once the container has exited (and been removed).
    exit: watch::Receiver<Option<Ended>>,
    /// Set when Trellis itself removes the container.
    killing: Arc<AtomicBool>,
    /// Copies the container's output into the function log.
    logs: Option<JoinHandle<()>>,
    watcher: JoinHandle<()>,
}

impl ContainerEnvironment {
    /// The watcher's verdict (cancel-safe).
    async fn ended(&mut self) -> Ended {
        let seen = self.exit.wait_for(Option::is_some).await.map(|e| e.clone());
        match seen {
            Ok(Some(ended)) => ended,
            // The watcher is gone (aborted): whatever it last said.
            _ => self.exit.borrow().clone().unwrap_or_else(lost),
        }
    }

    /// Lets the output still streaming reach the log, so a crash's last words come before the
    /// pool's report of the crash.
    async fn flush_output(&mut self) {
        if let Some(logs) = self.logs.take() {
            let _ = tokio::time::timeout(OUTPUT_GRACE, logs).await;
        }
    }
}

fn lost() -> Ended {
    Ended {
        exit: Exit("lost track of the container".into()),
        vanished: true,
    }
}

impl Environment for ContainerEnvironment {
    fn wait(&mut self) -> BoxFuture<'_, Exit> {
        Box::pin(async move {
            let ended = self.ended().await;
            self.flush_output().await;
            ended.exit
        })
    }

    fn kill(&mut self) -> BoxFuture<'_, Exit> {
        Box::pin(async move {
            self.killing.store(true, Ordering::SeqCst);
            let removed = remove_container(&self.docker, &self.id).await;
            let exit = match tokio::time::timeout(KILL_GRACE, self.ended()).await {
                Ok(ended) => ended.exit,
                Err(_) => Exit(match removed {
                    Ok(()) => "removed".into(),
                    Err(e) => format!("could not be removed: {}", one_line(&e)),
                }),
            };
            self.flush_output().await;
            exit
        })
    }

    fn vanished(&self) -> bool {
        self.exit
            .borrow()
            .as_ref()
            .is_some_and(|ended| ended.vanished)
    }
}

impl Drop for ContainerEnvironment {
    /// Backstop: an environment dropped without `kill` or `wait` (its runtime shutting down)
    /// still asks the engine to remove its container, if a runtime is there to ask.
    fn drop(&mut self) {
        if self.exit.borrow().is_none()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let docker = self.docker.clone();
            let id = self.id.clone();
            runtime.spawn(async move {
                let _ = remove_container(&docker, &id).await;
            });
        }
        self.watcher.abort();
    }
}

/// Waits until container `id` is not running, whoever stopped it, describes how it ended, and
/// removes it. A container removed behind Trellis's back answers 404: that is an end too.
async fn watch_exit(
    docker: Docker,
    id: String,
    name: String,
    function: String,
    memory_mb: u32,
    killing: Arc<AtomicBool>,
    done: watch::Sender<Option<Ended>>,
) {
    let mut failures = 0;
    let code: Result<i64, String> = loop {
        let options = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let answer = docker.wait_container(&id, Some(options)).next().await;
        match answer {
            Some(Ok(response)) => break Ok(response.status_code),
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => break Ok(code),
            Some(Err(e)) if is_status(&e, 404) => break Err("removed".into()),
            other => {
                // The engine restarted or the connection broke: ask directly.
                match docker.inspect_container(&id, None).await {
                    Err(e) if is_status(&e, 404) => break Err("removed".into()),
                    Ok(c) if !c.state.as_ref().and_then(|s| s.running).unwrap_or(false) => {
                        break Ok(c.state.and_then(|s| s.exit_code).unwrap_or(-1));
                    }
                    Ok(_) => failures = 0,
                    Err(_) => failures += 1,
                }
                if failures >= WAIT_RETRIES {
                    let why = match other {
                        Some(Err(e)) => one_line(&e),
                        _ => "no answer".into(),
                    };
                    break Err(format!("lost contact with the Docker engine ({why})"));
                }
                tokio::time::sleep(Duration::from_millis(200 * u64::from(failures + 1))).await;
            }
        }
    };
    let ours = killing.load(Ordering::SeqCst);
    let oom = match &code {
        Ok(_) => docker
            .inspect_container(&id, None)
            .await
            .ok()
            .and_then(|c| c.state.and_then(|s| s.oom_killed))
            .unwrap_or(false),
        Err(_) => false,
    };
    let ended = describe(code, oom, ours, memory_mb);
    if ended.vanished {
        log::line(
            &function,
            &format!(
                "container {name} is gone ({}); a fresh one replaces it",
                ended.exit
            ),
        );
    }
    // The container is done: remove it (a no-op if it is gone already).
    let _ = remove_container(&docker, &id).await;
    done.send_replace(Some(ended));
}

/// `exit status 3`, `killed by signal 9 (SIGKILL)`, `out of memory (…)`, or why it vanished.
fn describe(code: Result<i64, String>, oom: bool, ours: bool, memory_mb: u32) -> Ended {
    let (text, external) = match code {
        Err(why) if why == "removed" => (
            "the container was removed (docker rm) behind Trellis's back".to_owned(),
            true,
        ),
        Err(why) => (why, true),
        Ok(_) if oom => (
            format!("out of memory: the container exceeded its {memory_mb} MB memory limit"),
            false,
        ),
        Ok(code @ 129..=159) => {
            let signal = code - 128;
            let name = match signal {
                9 => " (SIGKILL)",
                15 => " (SIGTERM)",
                11 => " (SIGSEGV)",
                6 => " (SIGABRT)",
                _ => "",
            };
            // SIGKILL or SIGTERM that Trellis did not send: `docker kill`, `docker stop`.
            let external = matches!(signal, 9 | 15);
            let by = if external && !ours {
                " (docker kill or stop, behind Trellis's back)"
            } else {
                ""
            };
            (format!("killed by signal {signal}{name}{by}"), external)
        }
        Ok(code) => (format!("exit status {code}"), false),
    };
    Ended {
        exit: Exit(text),
        vanished: external && !ours,
    }
}

/// Streams container `id`'s stdout and stderr into `function`'s log, line by line, until the
/// container is gone.
async fn pump_logs(docker: Docker, id: String, function: String) {
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut stream = docker.logs(&id, Some(options));
    let mut stdout = LineBuffer::default();
    let mut stderr = LineBuffer::default();
    while let Some(Ok(chunk)) = stream.next().await {
        let (buffer, bytes) = match chunk {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (&mut stdout, message)
            }
            LogOutput::StdErr { message } => (&mut stderr, message),
            LogOutput::StdIn { .. } => continue,
        };
        buffer.push(&bytes, |line| log::line(&function, line));
    }
    for buffer in [&mut stdout, &mut stderr] {
        buffer.finish(|line| log::line(&function, line));
    }
}

/// Reassembles lines from the engine's output frames (a frame is a write, not a line).
#[derive(Default)]
pub(super) struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    pub(super) fn push(&mut self, bytes: &[u8], mut sink: impl FnMut(&str)) {
        for &b in bytes {
            if b == b'\n' {
                sink(&String::from_utf8_lossy(&self.pending));
                self.pending.clear();
            } else {
                self.pending.push(b);
                if self.pending.len() >= MAX_LINE {
                    sink(&String::from_utf8_lossy(&self.pending));
                    self.pending.clear();
                }
            }
        }
    }

    pub(super) fn finish(&mut self, mut sink: impl FnMut(&str)) {
        if !self.pending.is_empty() {
            sink(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_reassembled_and_bounded() {
        let mut buffer = LineBuffer::default();
        let mut lines = Vec::new();
        buffer.push(b"hel", |l| lines.push(l.to_owned()));
        buffer.push(b"lo\nwor", |l| lines.push(l.to_owned()));
        buffer.push(b"ld\n\xff\n", |l| lines.push(l.to_owned()));
        buffer.push(&vec![b'x'; MAX_LINE + 1], |l| lines.push(l.to_owned()));
        buffer.finish(|l| lines.push(l.to_owned()));
        assert_eq!(lines[..3], ["hello", "world", "\u{fffd}"]);
        assert_eq!(lines[3].len(), MAX_LINE);
        assert_eq!(lines[4], "x");
    }

    #[test]
    fn exits_are_described_and_outside_kills_noticed() {
        let d = |code, oom, ours| describe(code, oom, ours, 128);
        let e = d(Ok(3), false, false);
        assert_eq!((e.exit.0.as_str(), e.vanished), ("exit status 3", false));
        let e = d(Ok(137), false, false);
        assert!(e.vanished && e.exit.0.contains("SIGKILL") && e.exit.0.contains("docker kill"));
        let e = d(Ok(137), false, true);
        assert!(!e.vanished && !e.exit.0.contains("docker kill"), "{:?}", e);
        let e = d(Ok(137), true, false);
        assert!(!e.vanished && e.exit.0.contains("128 MB"), "{:?}", e);
        let e = d(Ok(139), false, false);
        assert!(!e.vanished && e.exit.0.contains("SIGSEGV"));
        let e = d(Err("removed".into()), false, false);
        assert!(e.vanished && e.exit.0.contains("docker rm"));
        let e = d(Err("removed".into()), false, true);
        assert!(!e.vanished);
        let name = container_name("hello fn", 3);
        assert!(
            name.starts_with("trellis-hello-fn-3-") && name.len() == 27,
            "{name}"
        );
    }
}
