//! The one wasmtime [`Engine`] of a Trellis process: its configuration, the epoch ticker that
//! makes timeouts work, and the fingerprint that keys the compile cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::WasmError;

/// How often the epoch advances. Every running instance checks the epoch at function entries
/// and loop back-edges, so this is both the timeout's resolution and how often a busy guest
/// yields its tokio worker to other tasks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How many instances may be alive at once with the pooling allocator. The pool reserves its
/// address space up front (one 4 GiB reservation plus guard per memory slot), so this is
/// deliberately far below wasmtime's default of 1000: 512 slots are ~2 TiB of *virtual* address
/// space, which fits every 47-bit x86-64 or arm64 machine, and still far more concurrent
/// invocations than a local emulator sees.
const POOL_SLOTS: u32 = 512;

/// A component instance of a Rust wasip2 program holds a few core instances (the program, the
/// preview-1 adapter, shims) and as many memories; the per-component defaults are kept, only
/// the totals are bounded.
const POOL_COMPONENT_INSTANCES: u32 = 256;

/// Bumped whenever the way Trellis writes cache entries changes, so that old entries are
/// simply not found instead of being misread.
const CACHE_FORMAT: &str = "trellis-wasm-cache-v1";

/// A wasmtime engine set up for running functions: async calls, epoch interruption, the pooling
/// allocator when the machine can reserve its address space, and an on-disk compile cache.
///
/// Cheap to clone: clones share the engine, the epoch ticker and the cache directory. The ticker
/// thread stops when the last clone (including those held by loaded functions) is dropped.
#[derive(Clone)]
pub struct WasmEngine {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    cache_dir: PathBuf,
    allocator: String,
    pooling: bool,
    fingerprint: [u8; 32],
    _ticker: EpochTicker,
}

impl WasmEngine {
    /// Builds the engine. `cache_dir` holds compiled artifacts (Trellis passes
    /// `<state-dir>/wasm-cache`); it is created on first write.
    ///
    /// The pooling allocator is tried first: it makes a fresh instance per invocation cost
    /// microseconds, but it reserves all of its address space when the engine is created, which
    /// fails on machines with a small virtual address space or a `ulimit -v`. Then the engine
    /// falls back to on-demand allocation and says so in the log.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Result<WasmEngine, WasmError> {
        let cache_dir = cache_dir.into();
        let (engine, pooling, allocator) = match Engine::new(&config(true)) {
            Ok(engine) => (
                engine,
                true,
                format!("pooling allocator ({POOL_SLOTS} instance slots)"),
            ),
            Err(pool_error) => {
                let engine = Engine::new(&config(false)).map_err(|e| WasmError::Engine {
                    reason: format!("{e:#}"),
                })?;
                tracing::info!(
                    "wasm: the pooling allocator is not available on this machine ({pool_error:#}); \
                     using on-demand instance allocation (slower instantiation, same behaviour)"
                );
                (
                    engine,
                    false,
                    format!("on-demand allocator (pooling unavailable: {pool_error:#})"),
                )
            }
        };
        let fingerprint = fingerprint(&engine);
        let ticker = EpochTicker::start(engine.clone())?;
        Ok(WasmEngine {
            inner: Arc::new(Inner {
                engine,
                cache_dir,
                allocator,
                pooling,
                fingerprint,
                _ticker: ticker,
            }),
        })
    }

    /// Whether instances come from the pooling allocator.
    pub fn pooling(&self) -> bool {
        self.inner.pooling
    }

    /// A one-line description of the instance allocator, for the start-up log.
    pub fn allocator(&self) -> &str {
        &self.inner.allocator
    }

    /// Where compiled artifacts are cached.
    pub fn cache_dir(&self) -> &Path {
        &self.inner.cache_dir
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// What, besides the wasm bytes, decides whether a compiled artifact can be reused: the
    /// cache format, and wasmtime's own compatibility hash (target, compiler flags, tunables,
    /// enabled wasm features and the wasmtime version string).
    pub(crate) fn fingerprint(&self) -> &[u8; 32] {
        &self.inner.fingerprint
    }
}

impl std::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEngine")
            .field("cache_dir", &self.inner.cache_dir)
            .field("allocator", &self.inner.allocator)
            .finish()
    }
}

fn config(pooling: bool) -> Config {
    let mut config = Config::new();
    // Timeouts: the store's deadline callback decides at every tick whether to yield or trap.
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    if pooling {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(POOL_SLOTS)
            .total_component_instances(POOL_COMPONENT_INSTANCES)
            .total_memories(POOL_SLOTS)
            .total_tables(POOL_SLOTS)
            .total_stacks(POOL_SLOTS)
            // wasm32's whole address space: the per-function memorySize is enforced by each
            // store's limiter, so one pool serves functions of every size.
            .max_memory_size(4 << 30);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    } else {
        config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    }
    config
}

fn fingerprint(engine: &Engine) -> [u8; 32] {
    use std::hash::Hash;
    let mut hasher = ShaHasher(Sha256::new());
    CACHE_FORMAT.hash(&mut hasher);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

/// Feeds a [`Hash`](std::hash::Hash) value into SHA-256. std's `DefaultHasher` is not
/// guaranteed stable across Rust releases; cache keys must be stable across restarts.
struct ShaHasher(Sha256);

impl std::hash::Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Only the full digest is used (`fingerprint`); `finish` exists to satisfy the trait.
        let digest = self.0.clone().finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
}

/// Increments the engine's epoch every [`EPOCH_TICK`] on a plain thread (not a tokio task, so
/// that it keeps ticking even when every worker thread is busy running wasm).
struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Result<EpochTicker, WasmError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                // Any message or a dropped sender ends the loop.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                    engine.increment_epoch();
                }
            })
            .map_err(|e| WasmError::Engine {
                reason: format!("cannot start the epoch thread: {e}"),
            })?;
        Ok(EpochTicker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread only sleeps and increments a counter; it cannot panic in practice,
            // and a panic there must not become a second panic here.
            let _ = thread.join();
        }
    }
}
