# The two commands of the README: `make dev` runs the whole local stack, `make test` runs
# every test. Both install what they need first (scripts/install.sh is idempotent).
SHELL := /bin/bash
export PATH := $(CURDIR)/.local/venv/bin:$(HOME)/.cargo/bin:$(PATH)
LOCAL := target/debug/latchkey-local

.PHONY: dev test lint check build install

install:
	@scripts/install.sh

## Emulators, table, bucket, SES identity, bootstrap admin, every function on 127.0.0.1:9000.
dev: install
	cargo build --workspace --bins
	$(LOCAL) dev

## Format, lints, template lint, unit tests, end-to-end tests and the browser test.
test:
	@scripts/install.sh --browser
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo build --workspace --bins --tests
	scripts/lint-template.sh
	$(LOCAL) test-env -- scripts/run-tests.sh
