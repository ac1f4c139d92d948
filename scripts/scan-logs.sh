#!/usr/bin/env bash
# Fails if a log holds a secret: a raw link token, or a password the tests use.
# scripts/run-tests.sh runs it last, on the function logs of the whole run
# (LATCHKEY_LOG_FILE, where every test stack's gateway writes its functions' output) and on
# a dump of every table the run left on DynamoDB Local (`latchkey-local dump-tables`).
#
#   scripts/scan-logs.sh FILE...
#
# What counts as a secret:
#   - a link token: `<22-char base64url user id>.<43-char base64url secret>` (shared/src/token.rs);
#   - every password constant of the Rust tests (`const *PASSWORD*: &str = "..."`), every
#     passphrase literal in them, the bootstrap admin's password, and the browser tests'
#     generated passphrases (`amber <n> lantern orbit`, tests/browser/helpers.mjs).
# Before scanning, it checks on a planted log that it finds each kind (so it cannot pass by
# finding nothing), and it refuses an empty log (so a run that captured nothing fails).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ $# -eq 0 ]]; then
  echo "usage: scripts/scan-logs.sh FILE..." >&2
  exit 2
fi

B64='[A-Za-z0-9_-]'
TOKEN="(^|[^A-Za-z0-9_-])${B64}{22}\\.${B64}{43}([^A-Za-z0-9_-]|\$)"
BROWSER_PASSPHRASE='amber [^ "]+ lantern orbit'

# The passwords, one per line, from the test sources (so a new constant is covered at once).
passwords() {
  grep -rhoE 'const [A-Z_]*PASSWORD[A-Z_]*: &str = "[^"]+"' "$ROOT/tests" --include='*.rs' |
    sed -E 's/.*= "([^"]+)"/\1/'
  grep -rhoE '"[^"]*passphrase[^"]*"' "$ROOT/tests" --include='*.rs' | tr -d '"'
  grep -hoE '"BOOTSTRAP_ADMIN_PASSWORD", "[^"]+"' "$ROOT/local/src/stack.rs" | sed -E 's/.*, "([^"]+)"/\1/'
  if [[ -n "${BOOTSTRAP_ADMIN_PASSWORD:-}" ]]; then echo "$BOOTSTRAP_ADMIN_PASSWORD"; fi
}

# Prints what `file` leaks (one line per finding) and returns 1 if anything.
scan() {
  local file="$1" found=0 hits
  hits="$(grep -nE "$TOKEN" "$file" | cut -c1-300 || true)"
  if [[ -n "$hits" ]]; then
    echo "a link token in $file:"$'\n'"$hits"
    found=1
  fi
  while IFS= read -r password; do
    [[ -z "$password" ]] && continue
    hits="$(grep -nF -- "$password" "$file" | cut -c1-300 || true)"
    if [[ -n "$hits" ]]; then
      echo "the test password \"$password\" in $file:"$'\n'"$hits"
      found=1
    fi
  done < <(passwords | sort -u)
  hits="$(grep -nE "$BROWSER_PASSPHRASE" "$file" | cut -c1-300 || true)"
  if [[ -n "$hits" ]]; then
    echo "a browser test passphrase in $file:"$'\n'"$hits"
    found=1
  fi
  return $found
}

# The scan must find each kind of secret in a log that holds it, and nothing in one that holds
# only what the logs legitimately carry (user ids, redacted addresses, token hashes).
self_test() {
  local dir clean user_id secret hash
  dir="$(mktemp -d)"
  trap 'rm -rf "$dir"' RETURN
  user_id="AbCdEfGhIjKlMnOpQrStU_"
  secret="0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
  hash="k3Xw-ZrT0pQ9uV8sY7aB6cD5eF4gH3iJ2kL1mN0oP9q"
  clean="$dir/clean.log"
  printf '[invite#1] {"level":"INFO","user_id":"%s","email":"a***@example.com","hash":"%s"}\n' \
    "$user_id" "$hash" >"$clean"
  if ! scan "$clean" >/dev/null; then
    echo "scan-logs.sh: self-test: a clean log was flagged" >&2
    return 1
  fi
  local planted=("link=http://127.0.0.1:9000/accept-invite#token=$user_id.$secret"
    "{\"token\":\"$user_id.$secret\"}")
  while IFS= read -r password; do planted+=("{\"password\":\"$password\"}"); done < <(passwords | sort -u)
  planted+=('{"password":"amber 4821 lantern orbit"}')
  [[ ${#planted[@]} -ge 5 ]] || { echo "scan-logs.sh: self-test: found too few passwords in the tests" >&2; return 1; }
  for line in "${planted[@]}"; do
    printf '%s\n[reset#2] %s\n' "$(cat "$clean")" "$line" >"$dir/leak.log"
    if scan "$dir/leak.log" >/dev/null; then
      echo "scan-logs.sh: self-test: missed a planted secret: $line" >&2
      return 1
    fi
  done
}

self_test

status=0
for file in "$@"; do
  if [[ ! -s "$file" ]]; then
    echo "scan-logs.sh: $file is missing or empty: nothing was captured to scan" >&2
    status=1
    continue
  fi
  if ! scan "$file" >&2; then
    status=1
  else
    echo "scan-logs.sh: $(wc -l <"$file") lines of $file: no link token, no test password"
  fi
done
exit $status
