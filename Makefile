# leadbridge — `make demo` runs the pipeline locally, `make test` is what CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < requirements-dev.txt | cut -d' ' -f1)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export LEADBRIDGE_PYTHON := $(CURDIR)/$(PY)

N ?= 2000

.PHONY: help venv demo dev test lint unit template lambda-smoke bench build watch events clean

help:
	@echo "make demo    run the whole pipeline locally on sample events and print a report"
	@echo "make dev     run the local stack until Ctrl-C (writes target/leadbridge-local.json)"
	@echo "make test    fmt, clippy, unit + end-to-end tests (moto + simulator), cfn-lint, template checks"
	@echo "make bench   N=$(N) signed events through the local stack; prints a table, writes target/bench/summary.json"
	@echo "make build   cargo lambda build --release --arm64 of the three functions"
	@echo "make watch   cargo lambda watch against a running 'make dev' stack"
	@echo "make events  regenerate the signed API Gateway / SQS sample events under events/"

venv: $(STAMP)
$(STAMP): requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

demo: venv
	cargo run --quiet -p leadbridge -- demo

dev: venv
	cargo run --quiet -p leadbridge -- dev

test: venv lint unit template lambda-smoke

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings

unit: venv
	cargo test --workspace --quiet

template: venv
	$(VENV)/bin/cfn-lint infra/template.yaml
	$(PY) infra/check_template.py

lambda-smoke: venv
	./scripts/lambda_smoke.sh

bench: venv
	cargo run --profile local-release --quiet -p leadbridge -- bench --events $(N)

build: venv
	cargo lambda build --release --arm64 --bin ingest --bin worker --bin dlq-alerter

watch: venv
	eval "$$(cargo run --quiet -p leadbridge -- env)" && cargo lambda watch

events:
	cargo run --quiet -p leadbridge -- events

clean:
	cargo clean
	rm -rf $(VENV)
