#!/usr/bin/env bash
# Checks the contract beside the Rust tests (tests/asyncapi.rs, tests/schema_examples.rs):
#
#   1. schemas/asyncapi.yaml is valid AsyncAPI by the official parser (@asyncapi/parser);
#      any error diagnostic fails, warnings are counted;
#   2. its HTML documentation renders (@asyncapi/html-template) into target/contract/html,
#      self-contained, and a headless Chromium shows it: a screenshot that is not blank
#      (tools/check-png.py) and a rendered page that names every operation and message;
#   3. a second JSON Schema validator (Python jsonschema, format checking off) passes every
#      valid example and sample line and fails every invalid example.
#
#   bash tools/check-contract.sh
#
# Needs node and npm (Node.js 20), python3, and chromium (installed from Debian when
# missing, as root, like tools/render-reports.sh). The npm packages and Python packages are
# pinned (tools/contract/package-lock.json, tools/contract/requirements.txt) and installed
# under tools/contract/node_modules and target/contract/venv.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/contract
mkdir -p "$out"
started=$SECONDS
step() { echo "check-contract: [$((SECONDS - started))s] $*"; }

step "npm ci"
# --ignore-scripts: html-template depends on puppeteer (for PDFs, which this does not make),
# whose install script downloads a Chrome from Google; nothing here needs an install script.
(cd tools/contract && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)

step "AsyncAPI parser"
node tools/contract/validate-asyncapi.mjs schemas/asyncapi.yaml

step "HTML documentation"
node tools/contract/render-docs.mjs schemas/asyncapi.yaml "$out/html" 2>&1 |
  # Babel's note that it does not pretty-print the template's 3 MB bundle is noise.
  grep -v '^\[BABEL\] Note: The code generator has deoptimised' || true
test -s "$out/html/index.html" || { echo "check-contract: no $out/html/index.html" >&2; exit 1; }

if ! command -v chromium >/dev/null 2>&1; then
  step "installing chromium"
  (apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; })
fi
page="file://$(realpath "$out/html/index.html")"
# The flags keep Chromium off the network and quiet, as in tools/render-reports.sh; the
# virtual time budget lets the page's script run (it hydrates the pre-rendered document)
# before the screenshot and the DOM dump are taken.
browse() {
  local profile status=0
  profile=$(mktemp -d)
  timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --window-size=1100,1500 \
    --virtual-time-budget=10000 "$@" "$page" 2>/dev/null || status=$?
  rm -rf "$profile"
  return $status
}
step "screenshot"
rm -f "$out/asyncapi.png"
browse --screenshot="$out/asyncapi.png" >/dev/null || true
python3 tools/check-png.py "$out/asyncapi.png" ||
  { echo "check-contract: $out/asyncapi.png is missing or blank" >&2; exit 1; }
browse --dump-dom >"$out/asyncapi.dom.html" ||
  { echo "check-contract: chromium could not load $page" >&2; exit 1; }
node tools/contract/check-docs.mjs "$out/asyncapi.dom.html" schemas/asyncapi.yaml

step "second JSON Schema validator"
venv="$out/venv"
if [ ! -x "$venv/bin/python" ]; then
  # Debian's python3 makes a venv only with python3-venv (for ensurepip).
  python3 -m venv "$venv" 2>/dev/null || {
    rm -rf "$venv"
    (apt-get install -y python3-venv >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y python3-venv >/dev/null; })
    python3 -m venv "$venv"
  }
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tools/contract/requirements.txt
"$venv/bin/python" tools/contract/validate_examples.py

step "done"
