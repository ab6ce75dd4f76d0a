//! Loading a wasm file: telling a core module from a component by its header, compiling it once
//! and keeping the compiled artifact on disk, keyed by content, so that a restart (or a rebuild
//! that produced the same bytes) does not compile again.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::Module;
use wasmtime::component::Component;

use super::{WasmEngine, WasmError, WasmKind};

/// A compiled program, ready to be linked and pre-instantiated.
#[derive(Clone)]
pub(crate) enum Compiled {
    Module(Module),
    Component(Component),
}

/// Where a compiled program came from, and how long that took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled now with Cranelift (and written to the cache).
    Compiled(Duration),
    /// Read back from the on-disk cache.
    Cached(Duration),
}

impl Origin {
    /// How long producing the compiled program took.
    pub fn duration(&self) -> Duration {
        match *self {
            Origin::Compiled(d) | Origin::Cached(d) => d,
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Compiled(d) => write!(f, "compiled in {}", human(*d)),
            Origin::Cached(d) => write!(f, "loaded from cache in {}", human(*d)),
        }
    }
}

/// `1.2s` above a second, `35 ms` below.
fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// A loaded wasm file: its compiled form, what kind of program it is, and where it came from.
pub(crate) struct Artifact {
    pub compiled: Compiled,
    pub kind: WasmKind,
    pub origin: Origin,
}

/// What the first bytes of a wasm binary say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    Module,
    Component,
}

/// Reads the preamble: `\0asm`, then a 16-bit version and a 16-bit layer. Core modules are
/// version 1 layer 0; components are layer 1 (with a pre-1.0 version that still changes).
fn header(path: &Path, bytes: &[u8]) -> Result<Header, WasmError> {
    let not_wasm = || WasmError::NotWasm {
        path: path.to_path_buf(),
    };
    let preamble = bytes.get(..8).ok_or_else(not_wasm)?;
    if &preamble[..4] != b"\0asm" {
        return Err(not_wasm());
    }
    match (&preamble[4..6], &preamble[6..8]) {
        ([1, 0], [0, 0]) => Ok(Header::Module),
        (_, [1, 0]) => Ok(Header::Component),
        (version, layer) => Err(WasmError::Unsupported {
            path: path.to_path_buf(),
            reason: format!(
                "unknown wasm binary version {:#06x} layer {:#06x}",
                u16::from_le_bytes([version[0], version[1]]),
                u16::from_le_bytes([layer[0], layer[1]])
            ),
        }),
    }
}

/// Reads, compiles (or loads from the cache) and classifies the wasm file at `path`.
///
/// Blocking: compiling takes from ~100 ms (release build of Trellis) to seconds (debug build).
/// Call it before serving, or from `spawn_blocking`.
pub(crate) fn load(engine: &WasmEngine, path: &Path) -> Result<Artifact, WasmError> {
    let bytes = std::fs::read(path).map_err(|e| WasmError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let header = header(path, &bytes)?;
    let entry = entry_path(engine, &bytes);
    let started = Instant::now();
    let cached = match header {
        Header::Module => deserialize_module(engine, &entry).map(Compiled::Module),
        Header::Component => deserialize_component(engine, &entry).map(Compiled::Component),
    };
    let (compiled, origin) = match cached {
        Some(compiled) => (compiled, Origin::Cached(started.elapsed())),
        None => {
            let compiled = compile(engine, path, header, &bytes, &entry)?;
            (compiled, Origin::Compiled(started.elapsed()))
        }
    };
    let kind = classify(engine, path, &compiled)?;
    Ok(Artifact {
        compiled,
        kind,
        origin,
    })
}

/// `<cache-dir>/<sha256(fingerprint, wasm bytes)>.cwasm`
fn entry_path(engine: &WasmEngine, bytes: &[u8]) -> PathBuf {
    let mut sha = Sha256::new();
    sha.update(engine.fingerprint());
    sha.update(bytes);
    let digest = sha.finalize();
    let mut name = String::with_capacity(70);
    for byte in digest.iter() {
        let _ = write!(name, "{byte:02x}");
    }
    name.push_str(".cwasm");
    engine.cache_dir().join(name)
}

fn deserialize_module(engine: &WasmEngine, entry: &Path) -> Option<Module> {
    if !entry.is_file() {
        return None;
    }
    // SAFETY: `deserialize_file` maps the file and runs the machine code in it without
    // validating it, so the file must be an artifact wasmtime produced. Entries in the cache
    // directory are only ever created by `store_entry` below, from `Engine::precompile_module`
    // output, written to a temporary file and renamed into place, so a reader never sees a
    // partial file. The entry's name is the SHA-256 of the wasm bytes and the engine
    // fingerprint, so an entry can only be found for the exact input and engine configuration
    // it was compiled from; and wasmtime itself still checks the artifact's header, version
    // and configuration, returning an error (handled by recompiling) on any mismatch. The
    // remaining trust is in the cache directory, which belongs to Trellis's state directory
    // just like the configuration that names the code to run.
    match unsafe { Module::deserialize_file(engine.engine(), entry) } {
        Ok(module) => Some(module),
        Err(e) => {
            tracing::warn!(
                "wasm cache: ignoring unusable entry {}: {e:#}",
                entry.display()
            );
            None
        }
    }
}

fn deserialize_component(engine: &WasmEngine, entry: &Path) -> Option<Component> {
    if !entry.is_file() {
        return None;
    }
    // SAFETY: as in `deserialize_module`: only artifacts this module wrote from
    // `Engine::precompile_component`, atomically, under a name derived from the exact input
    // bytes and engine configuration; wasmtime rejects incompatible artifacts itself.
    match unsafe { Component::deserialize_file(engine.engine(), entry) } {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(
                "wasm cache: ignoring unusable entry {}: {e:#}",
                entry.display()
            );
            None
        }
    }
}

/// Compiles `bytes`, stores the artifact in the cache (best effort: a read-only state
/// directory only costs a recompile at the next start), and loads it.
fn compile(
    engine: &WasmEngine,
    path: &Path,
    header: Header,
    bytes: &[u8],
    entry: &Path,
) -> Result<Compiled, WasmError> {
    let invalid = |e: wasmtime::Error| WasmError::Compile {
        path: path.to_path_buf(),
        reason: format!("{e:#}"),
    };
    let artifact = match header {
        Header::Module => engine.engine().precompile_module(bytes),
        Header::Component => engine.engine().precompile_component(bytes),
    }
    .map_err(invalid)?;
    if let Err(e) = store_entry(entry, &artifact) {
        tracing::warn!(
            "wasm cache: cannot write {} ({e}); {} will be compiled again at the next start",
            entry.display(),
            path.display()
        );
    }
    // SAFETY: `artifact` was produced a moment ago by `precompile_module`/`precompile_component`
    // of this very engine; it never left this process's memory.
    let compiled = unsafe {
        match header {
            Header::Module => Module::deserialize(engine.engine(), &artifact).map(Compiled::Module),
            Header::Component => {
                Component::deserialize(engine.engine(), &artifact).map(Compiled::Component)
            }
        }
    };
    compiled.map_err(invalid)
}

/// Writes `artifact` to `entry` atomically: a temporary file in the same directory, synced,
/// then renamed over the final name. Two Trellis processes compiling the same module write the
/// same bytes, so whichever rename lands last is as good as the other.
fn store_entry(entry: &Path, artifact: &[u8]) -> std::io::Result<()> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let dir = entry.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = entry
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(artifact)?;
        file.sync_all()?;
        std::fs::rename(&temp, entry)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Tells what kind of program a compiled binary is from what it imports and exports.
fn classify(engine: &WasmEngine, path: &Path, compiled: &Compiled) -> Result<WasmKind, WasmError> {
    match compiled {
        Compiled::Module(module) => {
            if module.get_export("_start").is_none() {
                return Err(WasmError::Unsupported {
                    path: path.to_path_buf(),
                    reason: "this core module exports no `_start`: only WASI command modules \
                             (a `main` built for wasm32-wasip1) can run as functions, not \
                             reactors or libraries"
                        .into(),
                });
            }
            Ok(WasmKind::CommandModule)
        }
        Compiled::Component(component) => {
            let ty = component.component_type();
            let exports: Vec<String> = ty
                .exports(engine.engine())
                .map(|(name, _)| name.to_owned())
                .collect();
            let exports_interface = |interface: &str| {
                exports
                    .iter()
                    .any(|name| name.split('@').next() == Some(interface))
            };
            if exports_interface("wasi:http/incoming-handler") {
                Ok(WasmKind::HttpProxy)
            } else if exports_interface("wasi:cli/run") {
                Ok(WasmKind::CommandComponent)
            } else {
                Err(WasmError::Unsupported {
                    path: path.to_path_buf(),
                    reason: format!(
                        "this component exports neither `wasi:http/incoming-handler` (a \
                         wasi:http proxy) nor `wasi:cli/run` (a command); it exports {}",
                        if exports.is_empty() {
                            "nothing".to_owned()
                        } else {
                            exports.join(", ")
                        }
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_told_apart() {
        let p = Path::new("x.wasm");
        assert_eq!(header(p, b"\0asm\x01\0\0\0rest").ok(), Some(Header::Module));
        assert_eq!(
            header(p, b"\0asm\x0d\0\x01\0rest").ok(),
            Some(Header::Component)
        );
        assert!(matches!(
            header(p, b"#!/bin/sh\n"),
            Err(WasmError::NotWasm { .. })
        ));
        assert!(matches!(header(p, b"\0as"), Err(WasmError::NotWasm { .. })));
        assert!(matches!(
            header(p, b"\0asm\x02\0\0\0"),
            Err(WasmError::Unsupported { .. })
        ));
    }
}
