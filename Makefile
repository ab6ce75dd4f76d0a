# Trellis — build, demo, test.
#
#   make demo    build what the demo needs, start two hello-instance apps and `trellis up`
#   make test    every test: unit, end-to-end (real binary, real sockets, real Docker engine),
#                demo and compose-demo checks, lint
#
# Both install what they need (rustup components) themselves.

CARGO ?= cargo
PROFILE ?= debug
CARGO_PROFILE_FLAG := $(if $(filter release,$(PROFILE)),--release,)
# CARGO_TARGET_DIR, when set, is where cargo puts the binary.
TRELLIS := $(or $(CARGO_TARGET_DIR),target)/$(PROFILE)/trellis
# Sample apps and functions are always built in release (small, fast wasm; quick to build) and
# copied to sample-functions/dist/, where the example configs find them.
DIST := sample-functions/dist
SAMPLES_TARGET := $(or $(CARGO_TARGET_DIR),sample-functions/target)
HELLO_INSTANCE := $(DIST)/hello-instance

.PHONY: browser all build images compose-demo compose-check sample-functions demo demo-check test unit lint fmt toolchain wasm-targets python-h2 tools clean bench soak

all: build

toolchain:
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

# --all-targets: the same feature set as `cargo test`, so the demo and the images use the very
# binary the end-to-end tests drove, and CI does not compile wasmtime a second time.
build:
	$(CARGO) build --workspace --all-targets $(CARGO_PROFILE_FLAG)

wasm-targets:
	@rustup target list --installed | grep -q '^wasm32-wasip1$$' || rustup target add wasm32-wasip1
	@rustup target list --installed | grep -q '^wasm32-wasip2$$' || rustup target add wasm32-wasip2
	@rustup target list --installed | grep -q '^x86_64-unknown-linux-musl$$' || rustup target add x86_64-unknown-linux-musl

sample-functions: wasm-targets
	cd sample-functions && $(CARGO) build --release -p hello-instance -p hello-lambda
	cd sample-functions && $(CARGO) build --release --target wasm32-wasip1 -p hello-wasm
	cd sample-functions && $(CARGO) build --release --target wasm32-wasip2 -p hello-http
	mkdir -p $(DIST)
	@# Copied only when changed, and to a new inode: a running demo or benchmark may be executing
	@# the old file (cp onto it fails with "Text file busy"), and Trellis reloads a function
	@# whose file changed.
	@for f in release/hello-instance release/hello-lambda \
	          wasm32-wasip1/release/hello-wasm.wasm wasm32-wasip2/release/hello-http.wasm; do \
	  src=$(SAMPLES_TARGET)/$$f; dst=$(DIST)/$$(basename $$f); \
	  cmp -s $$src $$dst || cp --remove-destination $$src $$dst || exit 1; \
	done

# Container images (FROM scratch, built with the local engine only): trellis, trellis-hello-instance,
# trellis-hello-lambda, trellis-client.
images: build sample-functions
	scripts/images.sh $(TRELLIS) $(DIST)

# The docker compose demo (compose.yaml): the walkthrough as containers.
compose-demo: images
	scripts/compose.sh up

# Skipped, with the reason printed, only when the Docker engine is unreachable.
compose-check:
	@if docker info >/dev/null 2>&1; then $(MAKE) images && scripts/compose.sh check; \
	else echo "compose-check: SKIPPED: the Docker engine is not reachable (docker info failed)"; fi

demo: build sample-functions
	TRELLIS=$(TRELLIS) HELLO_INSTANCE=$(HELLO_INSTANCE) scripts/demo.sh

# The demo, non-interactively: start it, run the printed curl and dig commands, check the answers, stop.
demo-check: build sample-functions tools
	TRELLIS=$(TRELLIS) HELLO_INSTANCE=$(HELLO_INSTANCE) DEMO_CHECK=1 scripts/demo.sh

# The oracles in a virtualenv under the target dir: the SigV4/SigV4A signers (botocore, awscrt)
# the auth tests sign with, and boto3 and the AWS CLI the API tests drive Trellis with; they may
# not skip here (TRELLIS_REQUIRE_ORACLES).
unit: sample-functions python-h2 browser tools
	TRELLIS_PYTHON=$$(scripts/pyenv.sh) && export TRELLIS_PYTHON TRELLIS_REQUIRE_ORACLES=1 && \
	  $(CARGO) test --workspace $(CARGO_PROFILE_FLAG)

# Debian's curl (7.75 or later signs with --aws-sigv4: the auth tests and the demo use it) and
# bind9-dnsutils (dig: the demo check resolves the README's generated name through Trellis).
tools:
	@{ curl --help all 2>/dev/null | grep -q -- --aws-sigv4 && command -v dig; } >/dev/null 2>&1 || \
	  [ "$$(id -u)" -ne 0 ] || apt-get install -y -q curl bind9-dnsutils >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q curl bind9-dnsutils >/dev/null; } || \
	  echo "make: could not install curl/bind9-dnsutils; the tests that sign with curl and the demo check will fail"

# Debian's python3-h2: an HTTP/2 client nobody here wrote, for the HPACK check in tests/protocols.rs
# (skipped, saying why, without it).
python-h2:
	@/usr/bin/python3 -c "import h2, hpack" 2>/dev/null || [ "$$(id -u)" -ne 0 ] || \
	  apt-get install -y -q python3-h2 >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q python3-h2 >/dev/null; } || \
	  echo "make: could not install python3-h2; the HPACK test will be skipped"

# Debian's chromium and chromium-driver: the headless browser the console's tests
# (tests/console.rs) drive through selenium (installed into the virtualenv by scripts/pyenv.sh).
browser:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || [ "$$(id -u)" -ne 0 ] || \
	  apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; } || \
	  echo "make: could not install chromium/chromium-driver; the console's browser tests will fail under make unit"

lint: toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets $(CARGO_PROFILE_FLAG) -- -D warnings
	cd sample-functions && $(CARGO) fmt --all -- --check

test: toolchain unit demo-check compose-check lint

# Benchmarks on loopback (docs/BENCHMARKS.md): Trellis vs nginx, HAProxy and wasmtime serve, process and
# container functions (the container image built with the local engine), the criterion micro-benchmarks;
# QUICK=1 for a smoke run. bench/run.sh installs the peers and builds the rest. Not part of `make test`.
bench: sample-functions
	$(CARGO) build --release --bin trellis
	TRELLIS=$(abspath $(or $(CARGO_TARGET_DIR),target)/release/trellis) QUICK=$(QUICK) bench/run.sh

# The soak (bench/soak.py; results in docs/BENCHMARKS.md): 60 s at 256 connections across rules and a
# LAMBDA target, a target killed under load, a reload every second. Not part of `make test`.
soak: sample-functions
	$(CARGO) build --release --bin trellis
	@[ -x bench/.tools/bin/oha ] || { echo "installing oha into bench/.tools (a few minutes)"; \
	  CARGO_TARGET_DIR=bench/.tools/target $(CARGO) install oha --locked --root bench/.tools; }
	TRELLIS=$(abspath $(or $(CARGO_TARGET_DIR),target)/release/trellis) python3 bench/soak.py

fmt:
	$(CARGO) fmt --all
	cd sample-functions && $(CARGO) fmt --all

clean:
	$(CARGO) clean
	cd sample-functions && $(CARGO) clean
