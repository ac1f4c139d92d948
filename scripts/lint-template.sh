#!/usr/bin/env bash
# Lint infra/template.yaml the way it will be deployed, and the sample events.
#
#   scripts/lint-template.sh
#
# 1. cfn-lint on the SAM template as written.
# 2. Expand the SAM transform with aws-sam-translator (offline: no AWS calls,
#    region and partition from AWS_DEFAULT_REGION, default us-east-1), then
#    cfn-lint the resulting CloudFormation JSON. cfn-lint 1.x validates SAM
#    resources against their own schema only; mistakes that surface after the
#    transform (runtimes, dangling !Refs in generated resources, event
#    sources...) are only caught on the expanded template.
# 3. Policies of every function are inline statements only (no managed
#    policy names/ARNs, no SAM policy templates).
# 4. Every events/*.json is valid JSON; every function with a
#    Metadata.BuildProperties.Binary has at least one events/<binary>*.json;
#    every HTTP API 2.0 sample's routeKey is a route of that binary.
# 5. Every alarm on the functions' own metrics (namespace Latchkey) watches a
#    metric name and dimension names that the common crate writes: cfn-lint
#    cannot know them, and a renamed metric would leave an alarm that never
#    fires.
#
# Tools: cfn-lint and a python with samtranslator, taken from the project's
# venv (${LATCHKEY_VENV:-.local/venv}) if present, else from PATH. Nothing is
# installed here; versions are pinned in scripts/requirements-lint.txt.
#
# Any finding (cfn-lint errors AND warnings) makes the script exit non-zero.
# A rule that must be ignored is ignored narrowly in the template, under
# Metadata: cfn-lint: config: ignore_checks, with a comment saying why.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TEMPLATE="infra/template.yaml"
EVENTS_DIR="events"
VENV="${LATCHKEY_VENV:-.local/venv}"

if [[ -x "$VENV/bin/cfn-lint" ]]; then
  CFN_LINT="$VENV/bin/cfn-lint"
  PYTHON="$VENV/bin/python"
else
  CFN_LINT="$(command -v cfn-lint || true)"
  PYTHON="$(command -v python3 || true)"
fi

die() {
  echo "lint-template: $*" >&2
  exit 2
}

[[ -n "$CFN_LINT" ]] || die "cfn-lint not found (in $VENV/bin or on PATH); install it: pip install -r scripts/requirements-lint.txt"
[[ -n "$PYTHON" ]] || die "python3 not found (in $VENV/bin or on PATH)"
"$PYTHON" -c 'import samtranslator' 2>/dev/null ||
  die "$PYTHON cannot import samtranslator; install it: pip install -r scripts/requirements-lint.txt"
[[ -f "$TEMPLATE" ]] || die "$TEMPLATE not found"

export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
# samtranslator reads the region from a boto3 session: make sure nothing
# ever tries instance metadata or a shared profile for credentials.
export AWS_EC2_METADATA_DISABLED=true

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
EXPANDED="$WORK/template.expanded.json"

echo "lint-template: cfn-lint $("$CFN_LINT" --version 2>&1 | awk '{print $NF}') ($CFN_LINT)"
echo "lint-template: aws-sam-translator $("$PYTHON" -c 'import samtranslator; print(samtranslator.__version__)') ($PYTHON)"
echo "lint-template: region $AWS_DEFAULT_REGION"

passed=0
failed=0
step() { # step NAME CMD...: run a check, keep going, count the result
  local name="$1"
  shift
  echo
  echo "== $name"
  if "$@"; then
    echo "-- ok: $name"
    passed=$((passed + 1))
  else
    echo "-- FAILED: $name"
    failed=$((failed + 1))
  fi
}

lint_sam() {
  "$CFN_LINT" -- "$TEMPLATE"
}

# Expand the SAM transform offline into $EXPANDED.
expand_sam() {
  "$PYTHON" - "$TEMPLATE" "$EXPANDED" <<'PY'
import json
import sys

from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

src, dst = sys.argv[1], sys.argv[2]


class OfflineManagedPolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader, which lists AWS
    managed policies through IAM. The template uses inline statements only
    (checked separately), and the basic execution role that SAM attaches is
    built from the partition without the map, so an empty map is enough."""

    def load(self):
        return {}


with open(src, encoding="utf-8") as f:
    template = yaml_parse(f.read())

# `sam build` replaces local CodeUri paths with the S3 location of the built
# artefact; the translator itself only accepts S3 locations. Stand in a fake
# one, as `sam validate` does, so the rest of the template is translated.
def fake_s3(value):
    if isinstance(value, str) and not value.startswith("s3://"):
        key = value.strip("./") or "workspace"
        return f"s3://latchkey-lint-placeholder/{key}.zip"
    return value

fn_globals = template.get("Globals", {}).get("Function", {})
if "CodeUri" in fn_globals:
    fn_globals["CodeUri"] = fake_s3(fn_globals["CodeUri"])
for res in template.get("Resources", {}).values():
    props = res.get("Properties") or {}
    if res.get("Type") == "AWS::Serverless::Function" and "CodeUri" in props:
        props["CodeUri"] = fake_s3(props["CodeUri"])
    if res.get("Type") == "AWS::Serverless::LayerVersion" and "ContentUri" in props:
        props["ContentUri"] = fake_s3(props["ContentUri"])

translator = Translator(OfflineManagedPolicyLoader().load(), Parser())
try:
    out = translator.translate(template, parameter_values={})
except InvalidDocumentException as exc:
    for cause in exc.causes:
        print(f"samtranslator: {cause.message}")
    sys.exit(1)

with open(dst, "w", encoding="utf-8") as f:
    json.dump(out, f, indent=2, sort_keys=False)
kinds = {}
for res in out.get("Resources", {}).values():
    kinds[res["Type"]] = kinds.get(res["Type"], 0) + 1
print(f"expanded {src} into {len(out.get('Resources', {}))} resources:")
for kind in sorted(kinds):
    print(f"  {kinds[kind]:3d} {kind}")
PY
}

lint_expanded() {
  if [[ ! -s "$EXPANDED" ]]; then
    echo "no expanded template (the expansion failed)"
    return 1
  fi
  if [[ -n "${LATCHKEY_EXPANDED_OUT:-}" ]]; then
    cp "$EXPANDED" "$LATCHKEY_EXPANDED_OUT"
    echo "expanded template copied to $LATCHKEY_EXPANDED_OUT"
  fi
  "$CFN_LINT" -- "$EXPANDED"
}

# Inline-only policies, valid events, one event per binary, routeKeys.
check_policies_and_events() {
  "$PYTHON" - "$TEMPLATE" "$EVENTS_DIR" <<'PY'
import glob
import json
import os
import sys

from samtranslator.yaml_helper import yaml_parse

template_path, events_dir = sys.argv[1], sys.argv[2]
with open(template_path, encoding="utf-8") as f:
    template = yaml_parse(f.read())

findings = []
resources = template.get("Resources", {})
HTTP_API_METHODS = {"ANY", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"}

# Functions, their binary and their HTTP routes ("METHOD /path").
binaries = {}
for logical_id, res in resources.items():
    if res.get("Type") != "AWS::Serverless::Function":
        continue
    props = res.get("Properties") or {}

    for i, policy in enumerate(props.get("Policies") or []):
        if not (isinstance(policy, dict) and "Statement" in policy):
            findings.append(
                f"{template_path}: {logical_id}.Policies[{i}] is not an inline policy "
                f"document (managed policy or SAM policy template): {json.dumps(policy)}"
            )

    binary = ((res.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
    if not binary:
        continue
    routes = set()
    for event_id, event in (props.get("Events") or {}).items():
        if event.get("Type") == "HttpApi":
            ev = event.get("Properties") or {}
            method = str(ev.get("Method", "ANY")).upper()
            # Neither cfn-lint nor the translator checks the method name.
            if method not in HTTP_API_METHODS:
                findings.append(f"{template_path}: {logical_id}.Events.{event_id}: method {method!r} is not one of {sorted(HTTP_API_METHODS)}")
            routes.add(f"{method} {ev.get('Path', '/')}")
    binaries[binary] = (logical_id, routes)

print(f"functions with a binary: {', '.join(f'{b} ({v[0]})' for b, v in sorted(binaries.items()))}")

files = sorted(glob.glob(os.path.join(events_dir, "*.json")))
parsed = {}
for path in files:
    try:
        with open(path, encoding="utf-8") as f:
            parsed[path] = json.load(f)
    except (OSError, ValueError) as exc:
        findings.append(f"{path}: not valid JSON: {exc}")
print(f"{len(parsed)}/{len(files)} event files are valid JSON")

for binary, (logical_id, routes) in sorted(binaries.items()):
    mine = [p for p in files if os.path.basename(p).startswith(binary)]
    if not mine:
        findings.append(f"{logical_id}: no sample event {events_dir}/{binary}*.json for binary '{binary}'")
        continue
    for path in mine:
        event = parsed.get(path)
        if not isinstance(event, dict) or event.get("version") != "2.0":
            continue
        route = event.get("routeKey")
        if route not in routes:
            findings.append(
                f"{path}: routeKey {route!r} is not a route of {logical_id} "
                f"({', '.join(sorted(routes)) or 'no HttpApi events'})"
            )
        ctx = event.get("requestContext") or {}
        if ctx.get("routeKey") != route:
            findings.append(f"{path}: requestContext.routeKey differs from routeKey")
        if (ctx.get("http") or {}).get("path") != event.get("rawPath"):
            findings.append(f"{path}: requestContext.http.path differs from rawPath")
        if route and (ctx.get("http") or {}).get("method") != route.split(" ", 1)[0]:
            findings.append(f"{path}: requestContext.http.method does not match routeKey")
    print(f"{binary}: {', '.join(os.path.basename(p) for p in mine)}")

orphans = [
    p for p in files
    if not any(os.path.basename(p).startswith(b) for b in binaries)
]
for path in orphans:
    findings.append(f"{path}: matches no function binary of {template_path}")

for finding in findings:
    print(f"finding: {finding}")
sys.exit(1 if findings else 0)
PY
}

# The metric and dimension names of every Latchkey-namespace alarm, each quoted
# somewhere in shared/src (where the EMF lines are written).
check_alarm_metrics() {
  "$PYTHON" - "$TEMPLATE" shared/src <<'PY'
import glob
import os
import sys

from samtranslator.yaml_helper import yaml_parse

template_path, src = sys.argv[1], sys.argv[2]
with open(template_path, encoding="utf-8") as f:
    template = yaml_parse(f.read())
code = ""
for path in glob.glob(os.path.join(src, "**", "*.rs"), recursive=True):
    with open(path, encoding="utf-8") as f:
        code += f.read()

findings = []
checked = 0
for logical_id, res in (template.get("Resources") or {}).items():
    props = res.get("Properties") or {}
    if res.get("Type") != "AWS::CloudWatch::Alarm" or props.get("Namespace") != "Latchkey":
        continue
    checked += 1
    names = [props.get("MetricName")] + [d.get("Name") for d in props.get("Dimensions") or []]
    for name in names:
        if f'"{name}"' not in code:
            findings.append(f"{logical_id}: {name!r} is written nowhere in {src} (a renamed metric?)")
print(f"{checked} alarm(s) on the Latchkey namespace")
if not checked:
    findings.append("no alarm watches a Latchkey metric: is the namespace still Latchkey?")
for finding in findings:
    print(f"finding: {finding}")
sys.exit(1 if findings else 0)
PY
}

step "cfn-lint on the SAM template ($TEMPLATE)" lint_sam
step "expand the SAM transform (aws-sam-translator, offline)" expand_sam
step "cfn-lint on the expanded CloudFormation template" lint_expanded
step "inline policies and sample events ($EVENTS_DIR/)" check_policies_and_events
step "alarms on the functions' metrics" check_alarm_metrics

echo
echo "lint-template: $passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
