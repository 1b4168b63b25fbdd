# medrec: every task of the project. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

FOUNDRY_BIN := $(CURDIR)/node_modules/@foundry-rs
# The native binaries: the npm wrappers in node_modules/.bin exit 0 even when tests fail.
FORGE := $(FOUNDRY_BIN)/forge-linux-amd64/bin/forge
ANVIL := $(FOUNDRY_BIN)/anvil-linux-amd64/bin/anvil
CAST := $(FOUNDRY_BIN)/cast-linux-amd64/bin/cast
VENV := $(CURDIR)/.venv
export PATH := $(FOUNDRY_BIN)/forge-linux-amd64/bin:$(FOUNDRY_BIN)/anvil-linux-amd64/bin:$(FOUNDRY_BIN)/cast-linux-amd64/bin:$(VENV)/bin:$(PATH)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-17s %s\n", $$1, $$2}'

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

$(VENV)/.installed: tools/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	@touch $@

.PHONY: install
install: node_modules/.installed $(VENV)/.installed ## Install the pinned toolchain (npm ci, Python tools)

.PHONY: build
build: node_modules/.installed ## Compile the contracts
	$(FORGE) build

.PHONY: fmt
fmt: node_modules/.installed ## Format Solidity and Rust sources
	$(FORGE) fmt && $(FORGE) fmt
	cargo fmt --all

.PHONY: cli
cli: ## Build the medrec CLI (target/debug/medrec)
	cargo build --locked -p medrec-cli

.PHONY: lint
lint: node_modules/.installed ## Lints as errors: forge fmt, cargo fmt, clippy -D warnings
	$(FORGE) fmt --check
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

.PHONY: test-sol
test-sol: node_modules/.installed ## Forge tests: unit, fuzz, invariant (fixed seed)
	FOUNDRY_PROFILE=ci $(FORGE) test

.PHONY: gas-check
gas-check: node_modules/.installed ## Fail when gas per operation differs from snapshots/GasTest.json
	FORGE=$(FORGE) script/gas-check.sh

.PHONY: gas
gas: node_modules/.installed ## Rewrite snapshots/GasTest.json and print it
	$(FORGE) test --match-contract GasTest
	@cat snapshots/GasTest.json

.PHONY: slither
# Detectors left out (slither.config.json), and why:
#   timestamp: consent, credential and break-glass windows last hours to years by design, and
#     the chain is run by the consortium itself;
#   calls-loop: anchorBatch calls only the consortium's own ConsentRegistry, fixed at
#     deployment, and a revert there is meant to revert the whole batch;
#   naming-convention: DOMAIN_SEPARATOR() is the name EIP-712 tooling expects.
slither: install ## Static analysis: fails on any high or medium finding
	slither . --config-file slither.config.json

.PHONY: abi
abi: node_modules/.installed ## Write the contracts' ABI and bytecode for the Rust bindings
	FORGE=$(FORGE) script/abi.sh

.PHONY: abi-check
abi-check: node_modules/.installed ## Fail when crates/bindings/abi is stale against contracts/
	FORGE=$(FORGE) script/abi.sh --check

.PHONY: pg
pg: ## Start the local PostgreSQL (installing it if missing) and print its URL
	@script/pg.sh

.PHONY: test-rust
test-rust: node_modules/.installed ## Rust tests against a real anvil and PostgreSQL (started here)
	@DATABASE_URL=$${DATABASE_URL:-$$(script/pg.sh)} && export DATABASE_URL && \
	cargo build --workspace --locked --bins && \
	if cargo nextest --version >/dev/null 2>&1; then \
	  cargo nextest run --workspace --locked --no-fail-fast; \
	else \
	  cargo test --workspace --locked --no-fail-fast; \
	fi

.PHONY: interop
interop: node_modules/.installed ## docs/protocol.md's worked examples, run with viem and cast against a fresh anvil and gatekeeper
	@DATABASE_URL=$${DATABASE_URL:-$$(script/pg.sh)} && export DATABASE_URL && \
	cargo build --workspace --locked -q --bins && interop/run.sh

.PHONY: test
test: install lint abi-check test-sol gas-check slither test-rust interop demo-smoke ## Run every check and test (what CI runs)

.PHONY: bench
bench: node_modules/.installed ## Run every benchmark; rewrites their figures in BENCHMARKS.md
	script/bench.sh

.PHONY: bench-gas
bench-gas: node_modules/.installed ## Gas per call (forge) and per whole transaction (anvil)
	script/bench.sh gas

.PHONY: bench-indexer
bench-indexer: node_modules/.installed ## Indexer: backfill vs raw eth_getLogs on 200k events, live lag
	script/bench.sh indexer

.PHONY: bench-gatekeeper
bench-gatekeeper: node_modules/.installed ## Gatekeeper: 10 KB resolves with concurrent requesters
	script/bench.sh gatekeeper

.PHONY: bench-research
bench-research: node_modules/.installed ## Research: aggregates over 100,000 consenting patients at two holders
	script/bench.sh research

.PHONY: demo
demo: node_modules/.installed ## The whole story on a simulated population, left running (PATIENTS=N, default 2000)
	script/demo.sh $(if $(PATIENTS),--patients $(PATIENTS))

.PHONY: demo-smoke
demo-smoke: node_modules/.installed ## The demo on 20 patients on its own ports and databases, then stopped
	@export MEDREC_STATE_DIR=.medrec-smoke MEDREC_RPC_PORT=18545 MEDREC_INDEXER_PORT=18600 \
	  MEDREC_GATEKEEPER_A_PORT=18701 MEDREC_GATEKEEPER_B_PORT=18702 MEDREC_CHAIN_ID=31338 \
	  MEDREC_DB_PREFIX=medrec_smoke; \
	script/demo.sh stop >/dev/null; rm -rf .medrec-smoke; mkdir -p target; \
	echo "demo-smoke: script/demo.sh --patients 20 (log: target/demo-smoke.log)"; \
	script/demo.sh --patients 20 >target/demo-smoke.log 2>&1; rc=$$?; \
	script/demo.sh stop >/dev/null; rm -f deployments/31338.json; \
	if [ $$rc -ne 0 ]; then tail -40 target/demo-smoke.log; echo "demo-smoke: FAILED"; \
	else echo "demo-smoke: the whole story ran"; fi; exit $$rc

.PHONY: adversary
adversary: node_modules/.installed ## demo-smoke, then what an adversary recovers from its chain and indexer database (report only)
	@ADVERSARY=1 $(MAKE) -s demo-smoke && awk '/^== Adversary/{p=1} /^== Figures/{p=0} p' target/demo-smoke.log

.PHONY: stop
stop: ## Stop what `make demo` left running
	script/demo.sh stop

.PHONY: clean
clean: ## Remove build outputs
	rm -rf out cache target
