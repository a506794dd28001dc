# ringgate — build, run, test.
#   make run    build and start a gateway on 127.0.0.1:18789 with embedded defaults
#   make test   all tests (unit, integration, conformance with the real OpenClaw client)
#   make compare  benchmark against the original OpenClaw gateway (BENCHMARKS.md)

SHARED ?= ../shared
OPENCLAW_CLIENT_DIR ?= $(CURDIR)/target/openclaw-client
CARGO ?= cargo
RUN_ARGS ?=

.PHONY: all build run test unit lint bench openclaw-client clean compare fuzz fuzz-build control-ui browser-deps prometheus-deps nats-deps openai-client nginx-deps

all: build

build:
	$(CARGO) build --release --workspace

run: build control-ui
	./target/release/ringgate run $(RUN_ARGS)

# The Control UI (dashboard) ringgate serves: the pinned OpenClaw package's build, fetched
# once into target/control-ui (ringgate finds it beside its binary).
control-ui:
	@bash tools/fetch-control-ui.sh $(CURDIR)/target/control-ui

# The real-browser test of the dashboard: Debian's Chromium and playwright-core (pinned).
PLAYWRIGHT_CORE_VERSION ?= 1.65.2
BROWSER_DIR ?= $(CURDIR)/target/browser
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); \
		else echo "browser-deps: install Debian's chromium (apt-get install chromium)"; exit 1; fi; }
	@test -f $(BROWSER_DIR)/node_modules/playwright-core/package.json && \
		grep -q '"version": "$(PLAYWRIGHT_CORE_VERSION)"' $(BROWSER_DIR)/node_modules/playwright-core/package.json || { \
		mkdir -p $(BROWSER_DIR) && cd $(BROWSER_DIR) && { test -f package.json || npm init -y >/dev/null; } && \
		npm install --no-audit --no-fund playwright-core@$(PLAYWRIGHT_CORE_VERSION) >/dev/null; }

# The official OpenAI client library (npm, pinned) for the HTTP API test.
OPENAI_VERSION ?= 7.60.0
OPENAI_DIR ?= $(CURDIR)/target/openai-client
openai-client:
	@test -f $(OPENAI_DIR)/node_modules/openai/package.json && \
		grep -q '"version": "$(OPENAI_VERSION)"' $(OPENAI_DIR)/node_modules/openai/package.json || { \
		mkdir -p $(OPENAI_DIR) && cd $(OPENAI_DIR) && { test -f package.json || npm init -y >/dev/null; } && \
		npm install --no-audit --no-fund openai@$(OPENAI_VERSION) >/dev/null; }

# A real Prometheus (and promtool) for the metrics test: Debian's package.
prometheus-deps:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null); \
		else echo "prometheus-deps: install Debian's prometheus (apt-get install prometheus)"; exit 1; fi; }

# A real reverse proxy for the proxy test: Debian's nginx.
nginx-deps:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { \
		if [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null); \
		else echo "nginx-deps: install Debian's nginx (apt-get install nginx)"; exit 1; fi; }

nats-deps:
	@command -v nats-server >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nats-server >/dev/null); \
		else echo "nats-deps: install Debian's nats-server (apt-get install nats-server)"; exit 1; fi; }

# The real OpenClaw CLI and client class (npm, pinned) for the conformance tests.
openclaw-client:
	@test -f $(SHARED)/conformance/install-openclaw.sh || { echo "missing $(SHARED)/conformance/install-openclaw.sh (set SHARED=path/to/shared)"; exit 1; }
	bash $(SHARED)/conformance/install-openclaw.sh $(OPENCLAW_CLIENT_DIR)

test: openclaw-client browser-deps prometheus-deps nats-deps openai-client nginx-deps
	OPENCLAW_CLIENT_DIR=$(OPENCLAW_CLIENT_DIR) RINGGATE_REQUIRE_CONFORMANCE=1 RINGGATE_OPENAI_DIR=$(OPENAI_DIR) RINGGATE_REQUIRE_NGINX=1 \
		RINGGATE_BROWSER_DIR=$(BROWSER_DIR) RINGGATE_REQUIRE_BROWSER=1 \
		$(CARGO) test --release --workspace

# Unit tests only: no sockets, no Node.
unit:
	$(CARGO) test --release --lib

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	tools/lint/sans_io_imports.sh
	# The fuzz targets live outside the workspace; type-check them so an API change breaks here.
	$(CARGO) check --release --manifest-path tools/fuzz/Cargo.toml --target-dir $(CURDIR)/target/fuzz-check

bench:
	$(CARGO) bench --bench hot_paths

# Side-by-side with the original Node gateway and a bare echo server (see BENCHMARKS.md).
compare: build
	SHARED=$(SHARED) BIN=$(CURDIR)/target/release bash tools/compare.sh

# Coverage-guided fuzzing of the parsers (tools/fuzz/README.md): libFuzzer on the stable
# toolchain, each target for FUZZ_SECONDS; a crash fails the run and is kept under
# target/fuzz/artifacts/<target>/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= http_head websocket frame config_json5 cron session_key webhook_inbound ui_path tls http_api hooks
FUZZ_DIR := $(CURDIR)/target/fuzz
FUZZ_TRIPLE := x86_64-unknown-linux-gnu
FUZZ_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
	-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
	-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions

fuzz-build:
	RUSTFLAGS="$(FUZZ_RUSTFLAGS)" $(CARGO) build --release --target $(FUZZ_TRIPLE) \
		--manifest-path tools/fuzz/Cargo.toml --target-dir $(FUZZ_DIR)

fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/artifacts/$$t; \
		dirs="$(FUZZ_DIR)/corpus/$$t tools/fuzz/seeds/$$t"; \
		if [ -d tools/fuzz/regressions/$$t ]; then dirs="$$dirs tools/fuzz/regressions/$$t"; fi; \
		echo "fuzz $$t for $(FUZZ_SECONDS) s"; \
		$(FUZZ_DIR)/$(FUZZ_TRIPLE)/release/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
			-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_DIR)/artifacts/$$t/ $$dirs 2>&1 | \
			grep -E "^(stat::|#[0-9]+ +DONE|==|SUMMARY|Done )|panicked|ERROR" || true; \
		test -z "$$(ls -A $(FUZZ_DIR)/artifacts/$$t)" || { echo "fuzz $$t: crash saved in $(FUZZ_DIR)/artifacts/$$t"; exit 1; }; \
	done

clean:
	$(CARGO) clean
