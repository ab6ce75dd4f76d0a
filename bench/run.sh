#!/usr/bin/env bash
# bench/run.sh — the entry point behind `make bench` (see docs/BENCHMARKS.md).
#
#   bench/run.sh                 every scenario, full length (about 10 s per measurement, 3 rounds)
#   QUICK=1 bench/run.sh         a smoke run of every scenario (about 2 s per measurement, 1 round)
#   bench/run.sh --only http     one scenario (http, wasm, functions, auth, api, internals, footprint);
#                                other flags go to bench.py
#
# Installs what it needs when missing: nginx-light, haproxy, curl, openssl and python3-matplotlib
# from Debian's packages (as root, with apt-get), oha and (for the wasm scenario) wasmtime-cli from
# crates.io into bench/.tools (with their own CARGO_TARGET_DIR, so the workspace's target/ is never
# locked). For the functions scenario, when the Docker engine is reachable, it builds hello-lambda
# for x86_64-unknown-linux-musl (the FROM scratch image's program; rustup adds the target). The
# internals scenario runs `cargo bench` in the workspace (CARGO_TARGET_DIR honoured). The auth
# scenario signs its requests with botocore (tests/oracles/sign.py): scripts/pyenv.sh makes a
# virtualenv with it under the cargo target directory (from PyPI, on first use) and its Python
# goes to bench.py as SIGNER_PYTHON. The api scenario drives Trellis and moto's server with boto3
# from the same virtualenv, adding moto[server] (PyPI) to it when missing.
# Expects the release build of Trellis (target/release/trellis) and the sample functions
# (sample-functions/dist/), which `make bench` builds first.
# Every server listens on 127.0.0.1 only and every load generator talks to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=bench/.tools
OHA_VERSION=${OHA_VERSION:-}            # empty: the newest on crates.io
WASMTIME_VERSION=48.0.8                 # the wasmtime version Trellis embeds (Cargo.toml)
PY=/usr/bin/python3                     # Debian's python, where python3-matplotlib goes

log() { echo "bench: $*" >&2; }

apt_install() { # PACKAGE... — only the missing ones; services are not started (policy-rc.d/RUNLEVEL)
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
        log "need Debian packages ${missing[*]}: run as root or install them"; exit 1
    fi
    local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    log "installing ${missing[*]} (apt-get)"
    $SUDO apt-get update -qq
    # RUNLEVEL=1: the packages' init scripts must not start system nginx/haproxy services.
    $SUDO env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

apt_install nginx-light haproxy openssl procps
[ -x "$PY" ] || apt_install python3
"$PY" -c "import matplotlib" 2>/dev/null || apt_install python3-matplotlib
"$PY" -c "import h2" 2>/dev/null || apt_install python3-h2

cargo_install() { # CRATE BINARY [VERSION]
    local crate=$1 bin=$2 version=${3:-}
    if [ -x "$TOOLS/bin/$bin" ]; then
        if [ -z "$version" ] || "$TOOLS/bin/$bin" --version 2>/dev/null | grep -q "$version"; then return 0; fi
    fi
    log "installing $crate${version:+ $version} from crates.io into $TOOLS (a few minutes)"
    CARGO_TARGET_DIR="$TOOLS/target" cargo install "$crate" --locked --root "$TOOLS" \
        ${version:+--version "$version"} >&2
}

# want SCENARIO ARGS...: true when this run includes SCENARIO (all do unless --only names others)
want() {
    local sc=$1 only=() prev=""; shift
    for a in "$@"; do
        case $a in --only=*) only+=("${a#--only=}") ;; esac
        [ "$prev" = --only ] && only+=("$a")
        prev=$a
    done
    [ ${#only[@]} -eq 0 ] || printf '%s\n' "${only[@]}" | grep -qx "$sc"
}

cargo_install oha oha "$OHA_VERSION"
if want wasm "$@"; then cargo_install wasmtime-cli wasmtime "$WASMTIME_VERSION"; fi
if want auth "$@" || want api "$@"; then SIGNER_PYTHON=$(scripts/pyenv.sh); export SIGNER_PYTHON; fi
if want api "$@" && ! "$SIGNER_PYTHON" -c 'import boto3, moto.server' 2>/dev/null; then
    log "installing moto[server] from PyPI into the virtualenv (the api scenario's peer)"
    "$SIGNER_PYTHON" -m pip install -q 'moto[server]' >&2
fi

# The container function's program: hello-lambda linked statically, for a FROM scratch image.
# Without a reachable engine the container half of the functions scenario is skipped (bench.py
# says why), so nothing is built.
if want functions "$@" && docker info >/dev/null 2>&1; then
    musl=x86_64-unknown-linux-musl
    rustup target list --installed 2>/dev/null | grep -qx "$musl" || rustup target add "$musl" >&2
    log "building hello-lambda for $musl (the container function's image)"
    (cd sample-functions && cargo build --release --target "$musl" -p hello-lambda) >&2
    # cargo resolves a relative CARGO_TARGET_DIR against the directory it runs in
    samples_target=${CARGO_TARGET_DIR:-target}
    case $samples_target in /*) ;; *) samples_target=$PWD/sample-functions/$samples_target ;; esac
    export HELLO_LAMBDA_MUSL=$samples_target/$musl/release/hello-lambda
fi

# TRELLIS: the binary under test (default: the release build of this tree).
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$PWD/$target_dir ;; esac
export TRELLIS=${TRELLIS:-$target_dir/release/trellis}
[ -x "$TRELLIS" ] || { log "$TRELLIS is missing: run 'make bench' (or cargo build --release --bin trellis)"; exit 1; }
[ -x sample-functions/dist/hello-instance ] && [ -f sample-functions/dist/hello-http.wasm ] \
    && [ -f sample-functions/dist/hello-wasm.wasm ] || { log "sample functions are missing: run 'make sample-functions'"; exit 1; }

args=()
[ -n "${QUICK:-}" ] && [ "${QUICK}" != 0 ] && args+=(--quick)
exec "$PY" bench/bench.py "${args[@]}" "$@"
