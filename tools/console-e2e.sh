#!/usr/bin/env bash
# The live service's web console in a real browser (issue 15): starts `handoff serve` with
# the console on, on its own vhost and users of the local RabbitMQ, publishes a generated
# log dated up to now (so that some 48-hour holds are still open), then has headless
# Chromium (Debian's, driven by playwright-core: tools/console-e2e/console.mjs) sign in,
# read the board, follow a hold to its person, open both reports and sign out, checking
# every page (status, no script or console error, heading, a screenshot that is not blank).
#
#   bash tools/console-e2e.sh                      screenshots in target/console-e2e/
#   UPDATE_SCREENSHOT=1 bash tools/console-e2e.sh  also copies the board's top to docs/console.png
#
# CONSOLE_E2E_EVENTS and CONSOLE_E2E_SEED choose the generated log (default 5000 events,
# seed 1: three holds open at its end).
#
# Needs RabbitMQ on HANDOFF_TEST_AMQP_URL's host (default 127.0.0.1:5672) with its
# management API at HANDOFF_TEST_MGMT_URL (default http://guest:guest@127.0.0.1:15672), as
# the integration tests do. Installs Debian's chromium (and jq) when missing (root, as on CI).
# Everything it creates on the broker (a vhost, two users) is deleted on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

t_start=$(date +%s%N)
secs() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
say() { echo "console-e2e: $*"; }

out=target/console-e2e
events=${CONSOLE_E2E_EVENTS:-5000}
seed=${CONSOLE_E2E_SEED:-1}
amqp_url=${HANDOFF_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
mgmt=${HANDOFF_TEST_MGMT_URL:-http://guest:guest@127.0.0.1:15672}
mgmt=${mgmt%/}
# host:port of AMQP, from the URL.
amqp_host=${amqp_url#*://}
amqp_host=${amqp_host#*@}
amqp_host=${amqp_host%%/*}

# --- Tools: chromium, the release binary, playwright-core ---------------------------------
if [ ! -x /usr/bin/chromium ]; then
  say "installing chromium"
  (apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; })
fi
command -v jq >/dev/null 2>&1 || apt-get install -y jq >/dev/null 2>&1 \
  || { apt-get update >/dev/null && apt-get install -y jq >/dev/null; }
t=$(date +%s%N)
# A no-op when it is up to date (on CI, tools/render-reports.sh has just built it).
# CONSOLE_E2E_BIN names another build to test instead (not rebuilt).
if [ -n "${CONSOLE_E2E_BIN:-}" ]; then
  bin=$(realpath "$CONSOLE_E2E_BIN")
else
  cargo build --release --quiet
  bin=$PWD/target/release/handoff
fi
(cd tools/console-e2e && npm ci --silent --no-audit --no-fund >/dev/null)
t_tools=$(secs "$t")

# --- Scratch space, and everything removed on exit ------------------------------------------
rm -rf "$out"
mkdir -p "$out"
tmp=$(mktemp -d)
chmod 700 "$tmp"
run=handoff-e2e-$$
vhost=$run
svc_user=$run.svc
pub_user=$run.pub
serve_pid=
created_vhost=

api() { # METHOD PATH [JSON]
  local method=$1 path=$2
  shift 2
  curl -fsS -o /dev/null -X "$method" -H 'content-type: application/json' "$@" "$mgmt/api/$path"
}

cleanup() {
  local status=$?
  if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
    kill -TERM "$serve_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$serve_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$tmp/serve.log" ]; then
    echo "console-e2e: the service's log, last 40 lines:" >&2
    # (less the warnings, one per agency, that no agency has a queue of its own here)
    grep -v 'a publisher has no queue' "$tmp/serve.log" | tail -n 40 >&2 || true
  fi
  if [ -n "$created_vhost" ]; then
    api DELETE "vhosts/$vhost" || echo "console-e2e: could not delete vhost $vhost" >&2
  fi
  api DELETE "users/$svc_user" 2>/dev/null || true
  api DELETE "users/$pub_user" 2>/dev/null || true
  rm -rf "$tmp"
  if [ "$status" -ne 0 ]; then echo "console-e2e: FAILED after $(secs "$t_start") s" >&2; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "console-e2e: $*" >&2; exit 1; }

# --- The broker: a vhost of our own, the service's user and a publisher that impersonates ----
curl -fsS -o /dev/null "$mgmt/api/overview" || die "no RabbitMQ management API at ${mgmt#*@}"
password() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }
svc_pass=$(password)
pub_pass=$(password)
api PUT "vhosts/$vhost" -d '{}'
created_vhost=1
# The service's user has no tags (it may not impersonate); the publisher sends each event
# as the agency that may send it (`handoff publish --impersonate`), which needs the tag.
api PUT "users/$svc_user" -d "{\"password\":\"$svc_pass\",\"tags\":\"\"}"
api PUT "users/$pub_user" -d "{\"password\":\"$pub_pass\",\"tags\":\"impersonator\"}"
for u in "$svc_user" "$pub_user"; do
  api PUT "permissions/$vhost/$u" -d '{"configure":".*","write":".*","read":".*"}'
done
svc_url="amqp://$svc_user:$svc_pass@$amqp_host/$vhost"
pub_url="amqp://$pub_user:$pub_pass@$amqp_host/$vhost"

# --- The log: dated so that it ends shortly before now --------------------------------------
# The live service ends holds by the wall clock, so a log dated in the past has all of its
# holds ended the moment it arrives. `handoff gen` spaces events the same whatever --start
# is, so: generate once to learn the span, then again starting span + 2 minutes ago. Its
# last event is then 2 minutes old (none is in the future), and the holds it opens near its
# end (48 hours each) are still open when the browser looks.
t=$(date +%s%N)
"$bin" gen --events "$events" --seed "$seed" -o "$tmp/span.jsonl"
first=$(head -n 1 "$tmp/span.jsonl" | jq -r .time)
last=$(tail -n 1 "$tmp/span.jsonl" | jq -r .time)
span=$(($(date -u -d "$last" +%s) - $(date -u -d "$first" +%s)))
start=$(date -u -d "@$(($(date -u +%s) - span - 120))" +%Y-%m-%dT%H:%M:%SZ)
log=$tmp/log.jsonl
"$bin" gen --events "$events" --seed "$seed" --start "$start" -o "$log"
log_end=$(tail -n 1 "$log" | jq -r .time)
[ "$(date -u -d "$log_end" +%s)" -le "$(date -u +%s)" ] || die "the log ends in the future ($log_end)"

# Each agency publishes as its own AMQP user-id: bop, ice, a court, and every jurisdiction
# the log names (as the tests' publishers_for does).
{
  echo "e2e-bop = \"bop\""
  echo "e2e-ice = \"ice\""
  echo "e2e-court = \"court\""
  jq -r '.data.jurisdiction_id // empty, (select(.data.custodian.kind? == "local") | .data.custodian.id)' "$log" \
    | sort -u | while read -r j; do echo "\"e2e-j-$j\" = \"jurisdiction:$j\""; done
} > "$tmp/publishers.toml"

# --- The service, with the console -------------------------------------------------------
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http_port=$(free_port)
console_port=$(free_port)
credential=$(head -c 32 /dev/urandom | base64)
hash=$(printf '%s\n' "$credential" | "$bin" console --hash-credential)
config=$tmp/handoff.toml
cat > "$config" <<EOF
[amqp]
url = "$svc_url"
queue_type = "classic"

[journal]
path = "$tmp/journal.jsonl"

[http]
listen = "127.0.0.1:$http_port"

[console]
enabled = true
listen = "127.0.0.1:$console_port"
credential_hash = "$hash"

[log]
format = "json"
level = "info,lapin=off"

[publishers]
$(cat "$tmp/publishers.toml")
EOF
t_setup=$(secs "$t")

t=$(date +%s%N)
"$bin" serve --config "$config" >/dev/null 2>"$tmp/serve.log" &
serve_pid=$!
http=http://127.0.0.1:$http_port
for _ in $(seq 1 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$http/readyz")" = 200 ] && break
  kill -0 "$serve_pid" 2>/dev/null || die "handoff serve exited before it was ready"
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$http/readyz")" = 200 ] || die "handoff serve not ready after 30 s"
t_ready=$(secs "$t")

# --- Publish the log, and wait until the service has taken all of it ------------------------
t=$(date +%s%N)
HANDOFF_AMQP_URL=$pub_url "$bin" publish "$log" --impersonate --config "$config" 2>"$tmp/publish.log" \
  || { cat "$tmp/publish.log" >&2; die "handoff publish failed"; }
# Every event is journaled (handoff_events_in_total) or dropped as a duplicate (the
# generator repeats a few on purpose). Some are journaled and also dead-lettered: the rules'
# refusals, such as an answer to an offer whose deadline the wall clock has already passed.
metric_sum() { awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { printf "%d", s }' <<<"$2"; }
taken=0
for _ in $(seq 1 600); do
  metrics=$(curl -fsS "$http/metrics") || die "no /metrics"
  journaled=$(metric_sum 'handoff_events_in_total{' "$metrics")
  dup=$(metric_sum 'handoff_events_duplicate_total' "$metrics")
  taken=$((journaled + dup))
  [ "$taken" -ge "$events" ] && break
  kill -0 "$serve_pid" 2>/dev/null || die "handoff serve exited while taking the log"
  sleep 0.1
done
[ "$taken" -eq "$events" ] || die "the service journaled $journaled and dropped $dup duplicates of $events events in 60 s"
dead=$(awk 'index($0, "handoff_dead_letters_total{") == 1 && $NF > 0 { sub(/.*reason="/, ""); sub(/"}/, ""); printf "%s%s", sep, $0; sep = ", " }' <<<"$metrics")
t_publish=$(secs "$t")

# --- The browser ---------------------------------------------------------------------------
t=$(date +%s%N)
CONSOLE_E2E_CREDENTIAL=$credential node tools/console-e2e/console.mjs \
  --url "http://127.0.0.1:$console_port" --out "$out" | tee "$tmp/browser.out"
t_browser=$(secs "$t")

# --- Stop the service: SIGTERM, exit status 0 ----------------------------------------------
t=$(date +%s%N)
kill -TERM "$serve_pid"
for _ in $(seq 1 300); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$serve_pid" 2>/dev/null && die "handoff serve still running 30 s after SIGTERM"
status=0
wait "$serve_pid" || status=$?
serve_pid=
[ "$status" -eq 0 ] || die "handoff serve exited with status $status on SIGTERM"
t_stop=$(secs "$t")

if [ "${UPDATE_SCREENSHOT:-}" = 1 ]; then
  cp "$out/board-top.png" docs/console.png
  say "copied $out/board-top.png (the board's first 1400 pixels) to docs/console.png"
fi

person=$(sed -n 's/.*followed hold of \([^;]*\);.*/\1/p' "$tmp/browser.out")
say "ok: $events events (ending $log_end; $dup duplicates, dead letters: ${dead:-none}), board -> person $person -> reports -> signed out;" \
  "tools ${t_tools}s, setup ${t_setup}s, ready ${t_ready}s, publish ${t_publish}s, browser ${t_browser}s," \
  "stop ${t_stop}s, $(secs "$t_start")s in all"
