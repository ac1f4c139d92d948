#!/usr/bin/env bash
# Runs every test suite inside `latchkey-local test-env` (emulators up, env exported).
# Each suite runs even if an earlier one failed; the exit code says whether all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
# Every test stack's functions log into one file (`make test` also points test-env's own
# gateway there), scanned at the end for leaked tokens and passwords.
if [[ -z "${LATCHKEY_LOG_FILE:-}" ]]; then
  export LATCHKEY_LOG_FILE="$PWD/target/test-logs/functions.log"
  mkdir -p "$(dirname "$LATCHKEY_LOG_FILE")"
  : >"$LATCHKEY_LOG_FILE"
fi
cargo nextest run --workspace --no-fail-fast || status=1
scripts/fuzz.sh || status=1
scripts/schemathesis.sh || status=1
(cd tests/browser && node --test --test-concurrency=1) || status=1
scripts/scan-logs.sh "$LATCHKEY_LOG_FILE" || status=1
exit $status
