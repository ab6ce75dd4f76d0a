# Trellis — build, demo, test.
#
#   make demo    build what the demo needs, start two hello-instance apps and `trellis up`
#   make test    every test: unit, end-to-end (real binary, real sockets), demo smoke, lint
#
# Both install what they need (rustup components) themselves.

CARGO ?= cargo
PROFILE ?= debug
CARGO_PROFILE_FLAG := $(if $(filter release,$(PROFILE)),--release,)
TRELLIS := target/$(PROFILE)/trellis
HELLO_INSTANCE := sample-functions/target/$(PROFILE)/hello-instance

.PHONY: all build sample-functions demo demo-check test unit lint fmt toolchain clean

all: build

toolchain:
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

build:
	$(CARGO) build --workspace $(CARGO_PROFILE_FLAG)

sample-functions:
	cd sample-functions && $(CARGO) build $(CARGO_PROFILE_FLAG)

demo: build sample-functions
	TRELLIS=$(TRELLIS) HELLO_INSTANCE=$(HELLO_INSTANCE) scripts/demo.sh

# The demo, non-interactively: start it, run the printed curl commands, check the answers, stop.
demo-check: build sample-functions
	TRELLIS=$(TRELLIS) HELLO_INSTANCE=$(HELLO_INSTANCE) DEMO_CHECK=1 scripts/demo.sh

unit:
	$(CARGO) test --workspace $(CARGO_PROFILE_FLAG)

lint: toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets $(CARGO_PROFILE_FLAG) -- -D warnings
	cd sample-functions && $(CARGO) fmt --all -- --check

test: toolchain unit demo-check lint

fmt:
	$(CARGO) fmt --all
	cd sample-functions && $(CARGO) fmt --all

clean:
	$(CARGO) clean
	cd sample-functions && $(CARGO) clean
