#!/usr/bin/env bash
# Runs every test suite inside `latchkey-local test-env` (emulators up, env exported).
# Each suite runs even if an earlier one failed; the exit code says whether all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
cargo nextest run --workspace --no-fail-fast || status=1
scripts/schemathesis.sh || status=1
(cd tests/browser && node --test --test-concurrency=1) || status=1
exit $status
