# The commands of the README: `make dev` runs the whole local stack, `make test` runs
# every test. Both install what they need first (scripts/install.sh is idempotent).
SHELL := /bin/bash
export PATH := $(CURDIR)/.local/venv/bin:$(HOME)/.cargo/bin:$(PATH)
LOCAL := target/debug/latchkey-local
# The functions' logs of the whole test run, scanned for secrets by scripts/scan-logs.sh.
TEST_LOG := target/test-logs/functions.log

.PHONY: dev test bench lint check build install

install:
	@scripts/install.sh

## Emulators, table, bucket, SES identity, bootstrap admin, every function on 127.0.0.1:9000.
dev: install
	cargo build --workspace --bins
	$(LOCAL) dev

## Format, lints, dependency audit, template lint, unit tests, end-to-end tests and the browser test.
test:
	@scripts/install.sh --browser
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	scripts/audit.sh
	cargo build --workspace --bins --tests
	scripts/lint-template.sh
	@rm -f $(TEST_LOG)
	LATCHKEY_LOG_FILE=$(CURDIR)/$(TEST_LOG) $(LOCAL) test-env --log-file $(TEST_LOG) -- scripts/run-tests.sh

## Benchmarks (bench/): AWS requests per operation, cold start, argon2's share of sign-in,
## load. Release binaries in their own target dir, so the long release build never holds the
## lock of target/ that dev and test builds wait on. Figures: stdout and BENCHMARKS.md.
## BENCH_ARGS picks benchmarks (e.g. BENCH_ARGS=cold-start); see latchkey-bench --help.
## LATCHKEY_ROOT: a binary otherwise finds the root where its latchkey-local was compiled, and
## cargo reuses that artifact across checkouts (worktrees) that share a target dir.
BENCH_TARGET := target/bench
bench: install
	cargo build --release --workspace --bins --target-dir $(BENCH_TARGET)
	BENCH_COMMAND="$(if $(BENCH_CSV_ROWS),BENCH_CSV_ROWS=$(BENCH_CSV_ROWS) )$(if $(BENCH_CSV_SDK_ROWS),BENCH_CSV_SDK_ROWS=$(BENCH_CSV_SDK_ROWS) )make bench $(BENCH_ARGS)" LATCHKEY_LOG_FILE=$(BENCH_TARGET)/functions.log LATCHKEY_ROOT=$(CURDIR) \
	  $(BENCH_TARGET)/release/latchkey-bench $(BENCH_ARGS)
