#!/usr/bin/env bash
# Runs every test suite inside `latchkey-local test-env` (emulators up, env exported).
# Each suite runs even if an earlier one failed; the exit code says whether all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
# Every test stack's functions log into one file (`make test` also points test-env's own
# gateway there), scanned at the end for leaked tokens and passwords, with a dump of every
# table the suites left on DynamoDB Local.
if [[ -z "${LATCHKEY_LOG_FILE:-}" ]]; then
  export LATCHKEY_LOG_FILE="$PWD/target/test-logs/functions.log"
  mkdir -p "$(dirname "$LATCHKEY_LOG_FILE")"
  : >"$LATCHKEY_LOG_FILE"
fi
# nextest's default profile (.config/nextest.toml) ends a test that hangs.
cargo nextest run --workspace --no-fail-fast || status=1
scripts/fuzz.sh || status=1
scripts/schemathesis.sh || status=1
# The browser tests as tests/browser/package.json runs them (`npm test`): one definition.
(cd tests/browser && npm test --silent) || status=1
# Every test's table is still on the emulator: dump them all and scan them like the logs.
TABLE_DUMP="$(dirname "$LATCHKEY_LOG_FILE")/tables.jsonl"
target/debug/latchkey-local dump-tables "$TABLE_DUMP" || status=1
scripts/scan-logs.sh "$LATCHKEY_LOG_FILE" "$TABLE_DUMP" || status=1
exit $status
