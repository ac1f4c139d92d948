#!/usr/bin/env bash
# Audits Cargo.lock (the workspace's, and fuzz/'s) against the RustSec advisory database with
# cargo-audit (installed into .local/venv by scripts/install.sh). Any advisory fails it: fix
# the dependency, do not ignore the advisory.
#
# Which database: $ADVISORY_DB if set; else a snapshot named advisory-db in the `shared`
# folder beside this checkout, or beside the checkout it was cloned from (machines that
# cannot reach GitHub keep one there); else the live database, which cargo-audit fetches.
# A database that cannot be read or fetched fails the check: an audit that did not run
# must not pass.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
AUDIT="$ROOT/.local/venv/bin/cargo-audit"
[[ -x "$AUDIT" ]] || { echo "audit.sh: $AUDIT is missing; run scripts/install.sh" >&2; exit 1; }

candidates=()
[[ -n "${ADVISORY_DB:-}" ]] && candidates+=("$ADVISORY_DB")
candidates+=("$ROOT/../shared/advisory-db")
# A fresh clone (`git clone . /tmp/ci`) finds the snapshot beside the checkout it came from.
origin="$(git remote get-url origin 2>/dev/null || true)"
if [[ -n "$origin" && -d "$origin" ]]; then
  candidates+=("$(cd "$origin" && pwd)/../shared/advisory-db")
fi

db_args=()
for db in "${candidates[@]}"; do
  if [[ -d "$db/crates" ]]; then
    # Offline, so yanked crates cannot be looked up in the crates.io index.
    db_args=(--db "$db" --no-fetch --no-yanked)
    echo "audit.sh: RustSec snapshot at $(cd "$db" && pwd)"
    break
  fi
done
[[ ${#db_args[@]} -eq 0 ]] && echo "audit.sh: no snapshot found; fetching the live RustSec database"

status=0
for lock in Cargo.lock fuzz/Cargo.lock; do
  echo "audit.sh: $lock"
  "$AUDIT" audit "${db_args[@]}" --file "$lock" || status=1
done
exit $status
