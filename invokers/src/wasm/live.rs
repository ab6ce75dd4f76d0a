//! The developer loop for wasm functions: the code in use is swapped for the file's new content
//! when the file changes, checked on every invocation, without a watcher.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use trellis_runtime::stamp::FileStamp;

use super::cache::{self, Artifact, Compiled, Origin};
use super::{WasmEngine, WasmError, WasmKind};

/// Turns a compiled program into what a backend instantiates from (an `InstancePre`, a
/// `ProxyPre`, …). Fails when the program is not of a kind the backend runs.
pub(crate) type Prepare<P> = fn(&WasmEngine, &Compiled, WasmKind) -> Result<P, WasmError>;

/// How long a changed file must have been left alone before it is loaded.
pub(crate) const SETTLE: Duration = Duration::from_millis(200);

/// One version of a function's code, pre-instantiated.
pub(crate) struct Program<P> {
    pub pre: P,
    pub kind: WasmKind,
    /// The file as it was when this version was read; a different stamp means new code.
    stamp: Option<FileStamp>,
    /// Lambda's `Init Duration` (compile or cache load, plus pre-instantiation), reported by
    /// the first invocation of this version only.
    init: Mutex<Option<Duration>>,
}

impl<P> Program<P> {
    /// The init duration, the first time only.
    pub fn take_init(&self) -> Option<Duration> {
        self.init
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// A loaded program plus what the start-up line says about it.
pub(crate) struct Prepared<P> {
    pub program: Program<P>,
    pub origin: Origin,
    pub prepare_time: Duration,
}

/// Loads `path` and prepares it; blocking (see [`cache::load`]).
pub(crate) fn prepare<P>(
    engine: &WasmEngine,
    path: &std::path::Path,
    prepare_fn: Prepare<P>,
) -> Result<Prepared<P>, WasmError> {
    // The stamp is taken before reading, so a write that lands during the read is seen as a
    // change at the next invocation.
    let stamp = FileStamp::of(path);
    let artifact = cache::load(engine, path)?;
    prepare_artifact(engine, stamp, artifact, prepare_fn)
}

/// Prepares an already loaded artifact read from a file with `stamp`.
pub(crate) fn prepare_artifact<P>(
    engine: &WasmEngine,
    stamp: Option<FileStamp>,
    artifact: Artifact,
    prepare_fn: Prepare<P>,
) -> Result<Prepared<P>, WasmError> {
    let Artifact {
        compiled,
        kind,
        origin,
    } = artifact;
    let started = Instant::now();
    let pre = prepare_fn(engine, &compiled, kind)?;
    let prepare_time = started.elapsed();
    Ok(Prepared {
        program: Program {
            pre,
            kind,
            stamp,
            init: Mutex::new(Some(origin.duration() + prepare_time)),
        },
        origin,
        prepare_time,
    })
}

/// The current program of a function, reloaded when its file changes.
pub(crate) struct Live<P> {
    name: Arc<str>,
    path: PathBuf,
    engine: WasmEngine,
    prepare: Prepare<P>,
    /// Shared with the reload task, which outlives the invocation that started it.
    current: Arc<RwLock<Arc<Program<P>>>>,
    /// Serialises reloads, so a burst of requests after a rebuild compiles once. The reload
    /// task holds it until the new program is in `current`.
    reloading: Arc<tokio::sync::Mutex<()>>,
}

impl<P: Clone + Send + Sync + 'static> Live<P> {
    pub fn new(
        name: Arc<str>,
        path: PathBuf,
        engine: WasmEngine,
        prepare: Prepare<P>,
        program: Program<P>,
    ) -> Live<P> {
        Live {
            name,
            path,
            engine,
            prepare,
            current: Arc::new(RwLock::new(Arc::new(program))),
            reloading: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn snapshot(&self) -> Arc<Program<P>> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether the file holds new code, written completely: changed since it was read, and
    /// then left alone for [`SETTLE`]. Until then the current version serves, so a file caught
    /// half-written (a linker writes its output in place) is not loaded, nor warned about.
    fn stale(program: &Program<P>) -> bool {
        let Some(stamp) = program.stamp.as_ref() else {
            return false;
        };
        // A missing file (deleted, about to be rewritten) is not a change.
        FileStamp::of(&stamp.path).is_some_and(|now| now != *stamp && now.settled(SETTLE))
    }

    /// The program to run now: the current one, or, if the file changed since it was read (and
    /// has settled: see [`Self::stale`]), the file's new content. If the new content cannot be loaded (a half-written file, a
    /// compile error, a different kind of program), the failure goes to the function log and
    /// the previous version keeps serving until the file changes again.
    ///
    /// The reload runs in a task of its own: an invocation that gives up waiting for it (its
    /// caller's timeout) does not cancel it, so a compile slower than the function's timeout
    /// still completes, and the invocations after it get the new code.
    pub async fn get(&self) -> Arc<Program<P>> {
        let current = self.snapshot();
        if !Self::stale(&current) {
            return current;
        }
        let reloading = Arc::clone(&self.reloading).lock_owned().await;
        let current = self.snapshot();
        if !Self::stale(&current) {
            // Another invocation reloaded while this one waited.
            return current;
        }
        let name = Arc::clone(&self.name);
        let slot = Arc::clone(&self.current);
        let (engine, path, prepare_fn) = (self.engine.clone(), self.path.clone(), self.prepare);
        let task = tokio::spawn(async move {
            let _reloading = reloading;
            let new_stamp = FileStamp::of(&path);
            let loaded =
                tokio::task::spawn_blocking(move || prepare(&engine, &path, prepare_fn)).await;
            let next = match loaded {
                Ok(Ok(prepared)) => {
                    trellis_runtime::log::line(
                        &name,
                        &format!(
                            "code changed: now running the new {} ({})",
                            prepared.program.kind, prepared.origin
                        ),
                    );
                    Arc::new(prepared.program)
                }
                Ok(Err(e)) => keep(&name, &current, new_stamp, &e.to_string()),
                Err(e) => keep(
                    &name,
                    &current,
                    new_stamp,
                    &format!("loading panicked: {e}"),
                ),
            };
            *slot.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&next);
            next
        });
        match task.await {
            Ok(next) => next,
            // The task cannot panic short of a bug; serve what is there.
            Err(_) => self.snapshot(),
        }
    }
}

/// The previous code, remembered under the new file's stamp so that the failed file is not
/// retried on every invocation.
fn keep<P: Clone>(
    name: &str,
    current: &Program<P>,
    stamp: Option<FileStamp>,
    reason: &str,
) -> Arc<Program<P>> {
    trellis_runtime::log::line(
        name,
        &format!("code changed but cannot be loaded, still running the previous version: {reason}"),
    );
    Arc::new(Program {
        pre: current.pre.clone(),
        kind: current.kind,
        stamp,
        init: Mutex::new(None),
    })
}
