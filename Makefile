# ringgate — build, run, test.
#   make run    build and start a gateway on 127.0.0.1:18789 with embedded defaults
#   make test   all tests (unit, integration, conformance with the real OpenClaw client)
#   make compare  benchmark against the original OpenClaw gateway (BENCHMARKS.md)

SHARED ?= ../shared
OPENCLAW_CLIENT_DIR ?= $(CURDIR)/target/openclaw-client
CARGO ?= cargo
RUN_ARGS ?=

.PHONY: all build run test unit lint bench openclaw-client clean compare

all: build

build:
	$(CARGO) build --release --workspace

run: build
	./target/release/ringgate run $(RUN_ARGS)

# The real OpenClaw CLI and client class (npm, pinned) for the conformance tests.
openclaw-client:
	@test -f $(SHARED)/conformance/install-openclaw.sh || { echo "missing $(SHARED)/conformance/install-openclaw.sh (set SHARED=path/to/shared)"; exit 1; }
	bash $(SHARED)/conformance/install-openclaw.sh $(OPENCLAW_CLIENT_DIR)

test: openclaw-client
	OPENCLAW_CLIENT_DIR=$(OPENCLAW_CLIENT_DIR) RINGGATE_REQUIRE_CONFORMANCE=1 \
		$(CARGO) test --release --workspace

# Unit tests only: no sockets, no Node.
unit:
	$(CARGO) test --release --lib

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

bench:
	$(CARGO) bench --bench hot_paths

# Side-by-side with the original Node gateway and a bare echo server (see BENCHMARKS.md).
compare: build
	SHARED=$(SHARED) BIN=$(CURDIR)/target/release bash tools/compare.sh

clean:
	$(CARGO) clean
