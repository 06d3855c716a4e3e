# leadbridge — `make demo` runs the pipeline locally, `make test` is what CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV  := .venv
PY    := $(VENV)/bin/python
# Two stamps: the local stack's tools (moto) for demo/dev/chaos/bench, and the
# rest (cfn-lint, cargo-lambda and its zig toolchain) only for test/build/watch.
LOCAL_STAMP := $(VENV)/.local-$(shell cksum < requirements-local.txt | cut -d' ' -f1)
DEV_STAMP   := $(VENV)/.dev-$(shell cat requirements-local.txt requirements-dev.txt | cksum | cut -d' ' -f1)
# The SAM CLI lives in a venv of its own: it pins its own cfn-lint and boto.
DEPLOY_VENV  := .venv-deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.deploy-$(shell cksum < requirements-deploy.txt | cut -d' ' -f1)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export LEADBRIDGE_PYTHON := $(CURDIR)/$(PY)

N ?= 1000

.PHONY: help venv venv-dev venv-deploy deploy demo dev test lint unit chromium template lambda-smoke chaos bench build watch events clean

help:
	@echo "make demo    run the whole pipeline locally on sample events and print a report"
	@echo "make dev     run the local stack until Ctrl-C (writes target/leadbridge-local.json; CONFIG=FILE for a config file)"
	@echo "make test    fmt, clippy, unit + end-to-end tests (moto + simulator), cfn-lint, template checks"
	@echo "make bench   N=$(N) signed events through the local stack; prints a table, writes target/bench/summary.json"
	@echo "make chaos   the full fault-injection run (5,000 events, 60 s outage); writes target/chaos/summary.json"
	@echo "make build   cargo lambda build --release --arm64 of the three functions"
	@echo "make deploy  config check, build for arm64, sam deploy, outputs, doctor (STACK=, CONFIG=, SECRET_ARNS=, ALERT_EMAIL=)"
	@echo "make watch   cargo lambda watch against a running 'make dev' stack"
	@echo "make events  regenerate the signed API Gateway / SQS sample events under events/"

venv: $(LOCAL_STAMP)
$(LOCAL_STAMP): requirements-local.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-local.txt
	rm -f $(VENV)/.local-*
	touch $@

venv-dev: $(DEV_STAMP)
$(DEV_STAMP): $(LOCAL_STAMP) requirements-dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.dev-*
	touch $@

# The SAM CLI, only for `make deploy`.
venv-deploy: $(DEPLOY_STAMP)
$(DEPLOY_STAMP): requirements-deploy.txt
	python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-deploy.txt
	rm -f $(DEPLOY_VENV)/.deploy-*
	touch $@

# Five steps in scripts/deploy.sh (DRY_RUN=1 prints them without running them).
deploy: venv-dev venv-deploy
	SAM=$(CURDIR)/$(DEPLOY_VENV)/bin/sam ./scripts/deploy.sh

demo: venv
	cargo run --quiet -p leadbridge -- demo

dev: venv
	cargo run --quiet -p leadbridge -- dev $(if $(CONFIG),--config $(CONFIG))

test: venv-dev lint deny unit template lambda-smoke

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings

unit: venv chromium
	cargo test --workspace --quiet

# The console's browser test (tests/e2e/console.rs) drives Debian's Chromium through
# chromedriver: installed here when missing (CI runs as root; sudo otherwise).
chromium:
	@if [ ! -x /usr/bin/chromedriver ] || [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=; \
	  elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	  else echo "the browser test needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver" >&2; exit 1; fi; \
	  $$sudo apt-get update -q && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	fi

template: venv-dev
	$(VENV)/bin/cfn-lint infra/template.yaml
	$(PY) infra/check_template.py
	$(PY) scripts/check_docs.py

chaos: venv
	cargo run --profile local-release --quiet -p leadbridge -- chaos

lambda-smoke: venv-dev
	./scripts/lambda_smoke.sh

# The functions and hello world in the release profile (as Lambda gets them):
# their package size and cold start are part of the report.
bench: venv
	cargo build --release --quiet -p ingest -p worker -p dlq-alerter -p hello
	cargo run --profile local-release --quiet -p leadbridge -- bench --events $(N) --functions target/release

build: venv-dev
	cargo lambda build --release --arm64 --bin ingest --bin worker --bin dlq-alerter

watch: venv-dev
	eval "$$(cargo run --quiet -p leadbridge -- env)" && cargo lambda watch

events:
	cargo run --quiet -p leadbridge -- events

clean:
	cargo clean
	rm -rf $(VENV) $(DEPLOY_VENV)

# --- fuzzing and dependency policy (tools pinned in scripts/install_tools.sh) ---
TOOLS_BIN    := .tools/bin
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := signature_header canonical_event $(addprefix source_,whatsapp twilio intercom crisp tidio drift chatbase dialogflow_cx standard_webhooks custom_json)

.PHONY: tools fuzz deny

tools:
	./scripts/install_tools.sh

# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, sancov); RUSTC_BOOTSTRAP=1
# lets the stable toolchain accept them. Builds into fuzz/target. New inputs go to
# fuzz/corpus/<target> (git-ignored), crashes to fuzz/artifacts/<target>. See fuzz/README.md.
fuzz:
	./scripts/install_tools.sh cargo-fuzz
	@failed=; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  dict=; if [ -f fuzz/dicts/$$t.dict ]; then dict=-dict=fuzz/dicts/$$t.dict; fi; \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  RUSTC_BOOTSTRAP=1 $(TOOLS_BIN)/cargo-fuzz run $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$dict || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed (reproducers in fuzz/artifacts/)"; exit 1; fi; \
	echo "fuzz: no crash in $(FUZZ_TARGETS)"

deny:
	./scripts/install_tools.sh cargo-deny
	$(TOOLS_BIN)/cargo-deny check bans licenses sources
