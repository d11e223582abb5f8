#!/usr/bin/env bash
# Renders every HTML report in headless Chromium and takes a screenshot of each, to show
# that the reports render as pages (not just that the HTML is well formed).
#
#   bash tools/render-reports.sh [OUT_DIR]     (default: target/reports)
#
# Installs Debian's chromium when it is missing (root, as on CI). Fails if a report
# cannot be produced or a screenshot is missing or blank.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/reports}"
mkdir -p "$out"

if ! command -v chromium >/dev/null 2>&1; then
  echo "render-reports: installing chromium"
  (apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; })
fi

cargo build --release --quiet
bin=target/release/handoff
log="$out/generated.jsonl"
"$bin" gen --events 40000 --seed 2017 -o "$log"

"$bin" report ddor samples/week.jsonl --from 2017-01-28T00:00:00Z --to 2017-02-04T00:00:00Z \
  --format html > "$out/ddor-sample-week.html"
"$bin" report ddor "$log" --from 2017-01-28T00:00:00Z --to 2017-02-04T00:00:00Z \
  --format html > "$out/ddor-generated-week.html"
"$bin" report capacity "$log" --format html > "$out/capacity-generated.html"
"$bin" report capacity samples/week.jsonl --format html > "$out/capacity-sample-week.html"
"$bin" report capacity samples/sequester.jsonl --format html > "$out/capacity-sequester.html"

status=0
for html in "$out"/ddor-sample-week.html "$out"/ddor-generated-week.html \
            "$out"/capacity-generated.html "$out"/capacity-sample-week.html \
            "$out"/capacity-sequester.html; do
  png="${html%.html}.png"
  rm -f "$png"
  profile=$(mktemp -d)
  # The flags keep Chromium off the network (this machine has none to offer) and quiet.
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --window-size=1100,1500 \
    --screenshot="$png" "file://$(realpath "$html")" >/dev/null 2>&1 || true
  rm -rf "$profile"
  # A blank page compresses to almost nothing; a rendered report with charts does not.
  if ! python3 tools/check-png.py "$png"; then
    echo "render-reports: $png is missing or blank" >&2
    status=1
  fi
done
exit $status
