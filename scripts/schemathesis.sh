#!/usr/bin/env bash
# Runs schemathesis (scripts/requirements-dev.txt) against infra/openapi.yaml on a live local
# stack: every response must be documented (status, content type, schema) and none may be a
# 5xx. Run it inside `latchkey-local test-env`, which exports LATCHKEY_API_URL (a gateway with
# every function, on a throwaway table) and BOOTSTRAP_ADMIN_EMAIL / BOOTSTRAP_ADMIN_PASSWORD:
#
#   target/debug/latchkey-local test-env -- scripts/schemathesis.sh
#
# It signs in as the bootstrap admin, creates a customer tenant with an invited and an active
# user, and points the generated path parameters and link tokens at them most of the time, so
# the checks reach the routes' real logic and not only their 404s. The bootstrap admin's id is
# never offered, so no generated request deletes or demotes it.
#
# Bounded: 25 examples per operation and phase (5 for "forgot password"), a fixed seed, at
# most 600 s. Exits non-zero on any failure. Arguments go to `schemathesis run`, e.g.
# `--report har --report-dir DIR`.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${LATCHKEY_API_URL:?run this inside latchkey-local test-env}"
: "${BOOTSTRAP_ADMIN_EMAIL:?run this inside latchkey-local test-env}"
: "${BOOTSTRAP_ADMIN_PASSWORD:?run this inside latchkey-local test-env}"
API="${LATCHKEY_API_URL%/}"
SCHEMATHESIS="$(command -v schemathesis || echo .local/venv/bin/schemathesis)"
SEED=20240601
MAX_EXAMPLES=25
TIME_LIMIT=600

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# json EXPR: evaluates a Python expression over the JSON document on stdin (`d`).
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

# call METHOD PATH [BODY]: an admin request; prints the body, fails on a non-2xx answer.
call() {
  local args=(-sS --fail-with-body -X "$1" "$API$2" -H "authorization: Bearer $TOKEN")
  [[ $# -ge 3 ]] && args+=(-H 'content-type: application/json' --data-binary "$3")
  curl "${args[@]}"
}

# The link token in an access link's URL fragment (`...#token=<token>`).
link_token() { json 'd["url"].split("#token=", 1)[1]'; }

sign_in_body="$(python3 -c 'import json, os; print(json.dumps({"tenant": "admin",
  "email": os.environ["BOOTSTRAP_ADMIN_EMAIL"], "password": os.environ["BOOTSTRAP_ADMIN_PASSWORD"]}))')"
TOKEN="$(curl -sS --fail-with-body "$API/v1/sessions" -H 'content-type: application/json' \
  --data-binary "$sign_in_body" | json 'd["token"]')"

# Fixtures: a new tenant with users who are invited (two) and active (one, through a copied
# access link, so no mail is read). Fresh names, so the script can run twice on one stack.
run_id="$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
TENANT="fuzz-$run_id"
call POST /v1/tenants "{\"name\": \"Schemathesis $run_id\", \"subdomain\": \"$TENANT\"}" >/dev/null
call POST "/v1/tenants/$TENANT/invitations" "{\"send_email\": false, \"invitations\": [
  {\"email\": \"invited-$run_id@fuzz.test\", \"role\": \"member\"},
  {\"email\": \"spare-$run_id@fuzz.test\", \"role\": \"admin\"},
  {\"email\": \"active-$run_id@fuzz.test\", \"role\": \"member\"}]}" >"$work/invited.json"
INVITED_ID="$(json 'd["results"][0]["user_id"]' <"$work/invited.json")"
SPARE_ID="$(json 'd["results"][1]["user_id"]' <"$work/invited.json")"
ACTIVE_ID="$(json 'd["results"][2]["user_id"]' <"$work/invited.json")"
accept_token="$(call POST "/v1/users/$ACTIVE_ID/access-link" | link_token)"
curl -sS --fail-with-body "$API/v1/invitations/accept" -H 'content-type: application/json' \
  --data-binary "{\"token\": \"$accept_token\", \"password\": \"fuzz-fixture-password\"}" >/dev/null
# Live tokens for the public link routes: an invitation and a password reset.
INVITE_TOKEN="$(call POST "/v1/users/$INVITED_ID/access-link" | link_token)"
RESET_TOKEN="$(call POST "/v1/users/$ACTIVE_ID/access-link" | link_token)"

cat >"$work/schemathesis.toml" <<EOF
[dictionaries.tenants]
values = ["$TENANT", "admin"]
[dictionaries.users]
values = ["$INVITED_ID", "$SPARE_ID", "$ACTIVE_ID"]
[dictionaries.tokens]
values = ["$INVITE_TOKEN", "$RESET_TOKEN"]

[parameters]
"path.tenant" = { dictionary = "tenants", probability = 0.7 }
"path.id" = { dictionary = "users", probability = 0.7 }
"body.token" = { dictionary = "tokens", probability = 0.5 }

# Schemathesis reuses ids it saw in responses (and follows links it infers from them in the
# stateful phase); a user listing of tenant admin holds the bootstrap admin's id. Deleting or
# changing a user only ever gets the fixtures' ids or generated ones.
[[operations]]
include-name = ["DELETE /v1/users/{id}", "PATCH /v1/users/{id}"]
phases.stateful.enabled = false
phases.examples.extra-data-sources.responses = false
phases.coverage.extra-data-sources.responses = false
phases.fuzzing.extra-data-sources.responses = false

# "Forgot password" allows 30 requests per source IP per hour, and the browser tests that run
# next on this gateway (scripts/run-tests.sh) need some of them: fuzz it with fewer examples.
[[operations]]
include-name = "POST /v1/password/forgot"
generation.max-examples = 5
EOF

# One worker: with the seed, the same requests in the same order on every run (rate limits
# make the order matter), and CPython 3.11's ast.parse, which hypothesis calls to describe
# filters, is not thread-safe ("AST constructor recursion depth mismatch").
status=0
timeout "$TIME_LIMIT" "$SCHEMATHESIS" --config-file "$work/schemathesis.toml" run infra/openapi.yaml \
  --url "$API" \
  --header "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --workers 1 \
  --request-timeout 30 \
  --no-color \
  "$@" \
  || status=$?
if [[ $status -eq 124 ]]; then
  echo "schemathesis.sh: schemathesis did not finish within $TIME_LIMIT s" >&2
fi
exit $status
