#!/usr/bin/env bash
# Replay throughput and peak memory over logs of growing history: does the cost of one
# event stay flat as the history behind it grows?
#
# Generates (once; cached) policy-heavy logs of 1M, 5M and 10M events at a fixed rate of
# policy changes (one `jurisdiction.policy.updated` per 20 people, 0.294 people an event)
# and a plain `handoff gen` log of 1M events, then runs `handoff replay LOG --quiet --stats`
# under /usr/bin/time -v for each log and each binary given, alternating the binaries,
# and prints one table row per run and a summary per log and binary.
#
# Run `bash tools/bench-history.sh --help` for the options.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: tools/bench-history.sh [options]

Measures `handoff replay LOG --quiet --stats` (release build) over logs of growing
history, as events/s and peak RSS, for one binary or several compared in one sitting.

Options (each has an environment variable; the option wins):
  --bin PATH        A handoff binary to measure. Repeat to compare binaries (say, before
                    and after a change): each log's runs alternate between them.
                    [HANDOFF_BINS, space-separated; default: target/release/handoff]
  --gen PATH        The binary that generates the logs; it needs `gen
                    --policy-every-people`. [HANDOFF_GEN_BIN; default: the last --bin]
  --logs DIR        Where the logs are cached; a log is generated only when missing or
                    when the command that made it differs (the `.gen` file beside it).
                    Delete the directory after changing the generator.
                    [BENCH_LOGS_DIR; default: target/bench-history]
  --sizes LIST      Event counts of the policy-heavy logs, comma-separated.
                    [BENCH_SIZES; default: 1000000,5000000,10000000]
  --plain N         Event count of the plain `handoff gen` log; 0 for none.
                    [BENCH_PLAIN; default: 1000000]
  --runs N          Runs of each binary on each log. [BENCH_RUNS; default: 3]
  --big-runs N      Runs on logs of 10,000,000 events or more, which take minutes.
                    [BENCH_BIG_RUNS; default: the value of --runs]
  --policy-every N  One policy change per N people. [BENCH_POLICY_EVERY; default: 20]
  --people-per-mille N
                    People per thousand events in the policy-heavy logs.
                    [BENCH_PEOPLE_PER_MILLE; default: 294]
  --seed S          Seed of every log. [BENCH_SEED; default: 1]
  --results FILE    Also append each run as a tab-separated line to FILE.
                    [BENCH_RESULTS; default: none]
  -h, --help        This text.

Example, before and after a change, three runs each (ten-million-event logs once):
  cargo build --release --locked && cp target/release/handoff /tmp/handoff-after
  bash tools/bench-history.sh --bin /work/bench-bin/handoff-before \
    --bin /tmp/handoff-after --big-runs 1

The table: log, binary, run, events (as replay counted them), seconds (wall clock),
events/s, peak RSS (MiB, /usr/bin/time's maximum resident set size) and replay's exit
status (0: every line accepted). Each log is read once before its runs so that every run
finds it in the page cache. The logs need about 5.5 GB of disk.
EOF
}

cd "$(dirname "$0")/.."

read -r -a bins <<<"${HANDOFF_BINS:-}"
gen_bin="${HANDOFF_GEN_BIN:-}"
logs_dir="${BENCH_LOGS_DIR:-target/bench-history}"
sizes="${BENCH_SIZES:-1000000,5000000,10000000}"
plain="${BENCH_PLAIN:-1000000}"
runs="${BENCH_RUNS:-3}"
big_runs="${BENCH_BIG_RUNS:-}"
policy_every="${BENCH_POLICY_EVERY:-20}"
people_per_mille="${BENCH_PEOPLE_PER_MILLE:-294}"
seed="${BENCH_SEED:-1}"
results="${BENCH_RESULTS:-}"

cli_bins=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) cli_bins+=("$2"); shift 2 ;;
    --gen) gen_bin="$2"; shift 2 ;;
    --logs) logs_dir="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --plain) plain="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --big-runs) big_runs="$2"; shift 2 ;;
    --policy-every) policy_every="$2"; shift 2 ;;
    --people-per-mille) people_per_mille="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --results) results="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-history: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ ${#cli_bins[@]} -gt 0 ]; then
  bins=("${cli_bins[@]}")
fi
if [ ${#bins[@]} -eq 0 ]; then
  bins=(target/release/handoff)
fi
big_runs="${big_runs:-$runs}"
gen_bin="${gen_bin:-${bins[${#bins[@]}-1]}}"

for b in "${bins[@]}" "$gen_bin"; do
  if [ ! -x "$b" ]; then
    echo "bench-history: $b is not an executable (build with cargo build --release --locked)" >&2
    exit 2
  fi
done
if [ ! -x /usr/bin/time ]; then
  echo "bench-history: needs GNU time as /usr/bin/time (Debian: apt-get install time)" >&2
  exit 2
fi
if ! "$gen_bin" gen --help | grep -q -- --policy-every-people; then
  echo "bench-history: $gen_bin gen has no --policy-every-people; give a newer one with --gen" >&2
  exit 2
fi
mkdir -p "$logs_dir"

# generate NAME ARGS...: the log NAME in the cache, made by `gen ARGS` unless it is there.
generate() {
  local name="$1"; shift
  local log="$logs_dir/$name.jsonl"
  local cmd="gen $*"
  if [ -s "$log" ] && [ "$(cat "$log.gen" 2>/dev/null)" = "$cmd" ]; then
    echo "$log"
    return
  fi
  echo "bench-history: $gen_bin $cmd -o $log" >&2
  rm -f "$log" "$log.gen"
  "$gen_bin" gen "$@" -o "$log.tmp"
  mv "$log.tmp" "$log"
  echo "$cmd" > "$log.gen"
  echo "$log"
}

logs=()
IFS=',' read -r -a size_list <<<"$sizes"
for n in "${size_list[@]}"; do
  people=$(( n * people_per_mille / 1000 ))
  logs+=("$(generate "policy-$n-every$policy_every-s$seed" --events "$n" --seed "$seed" \
    --people "$people" --policy-every-people "$policy_every")")
done
if [ "$plain" -gt 0 ]; then
  logs+=("$(generate "plain-$plain-s$seed" --events "$plain" --seed "$seed")")
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo
echo "host: $(nproc) CPUs, $(uname -r); $(date -u +%FT%TZ); load average $(cut -d" " -f1-3 /proc/loadavg)"
for i in "${!bins[@]}"; do
  echo "bin$i: ${bins[$i]} ($(stat -c %y "${bins[$i]}" | cut -d. -f1), sha256 $(sha256sum "${bins[$i]}" | cut -c1-12))"
done
echo
row() { printf '%-42s %-5s %4s %12s %9s %11s %10s %5s\n' "$@"; }
row log bin run events seconds events/s "peak MiB" exit
summary="$tmp/summary"
: > "$summary"

for log in "${logs[@]}"; do
  name=$(basename "$log" .jsonl)
  n=$runs
  lines=$(wc -l < "$log")
  if [ "$lines" -ge 10000000 ]; then n=$big_runs; fi
  cat "$log" > /dev/null   # into the page cache, so no run pays for the first read
  for run in $(seq 1 "$n"); do
    for i in "${!bins[@]}"; do
      status=0
      /usr/bin/time -v -o "$tmp/time" "${bins[$i]}" replay "$log" --quiet --stats \
        > /dev/null 2> "$tmp/stderr" || status=$?
      events=$(sed -n 's/^handoff: \([0-9]*\) events.*/\1/p' "$tmp/stderr" | tail -1)
      wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$tmp/time")
      secs=$(awk -v t="$wall" 'BEGIN { n = split(t, p, ":"); s = 0;
        for (k = 1; k <= n; k++) s = s * 60 + p[k]; printf "%.2f", s }')
      kib=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tmp/time")
      rate=$(awk -v e="${events:-0}" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? e / s : 0) }')
      mib=$(awk -v k="$kib" 'BEGIN { printf "%.1f", k / 1024 }')
      row "$name" "bin$i" "$run" "${events:-?}" "$secs" "$rate" "$mib" "$status"
      printf '%s\tbin%s\t%s\n' "$name" "$i" "$rate $mib" >> "$summary"
      if [ -n "$results" ]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$name" \
          "${bins[$i]}" "$run" "${events:-}" "$secs" "$rate" "$mib" "$status" >> "$results"
      fi
      if [ "$status" -ne 0 ]; then
        echo "  (exit $status; stderr: $(head -c 300 "$tmp/stderr"))"
      fi
    done
  done
done

echo
echo "done $(date -u +%FT%TZ); load average $(cut -d" " -f1-3 /proc/loadavg) (other work on the machine makes runs noisy)"
echo "summary: median, min and max events/s, and the largest peak RSS, per log and binary"
awk -F'\t' '
  { split($3, v, " "); key = $1 "\t" $2; rates[key] = rates[key] " " v[1];
    if (v[2] > rss[key]) rss[key] = v[2]; if (!(key in seen)) { order[++n] = key; seen[key] = 1 } }
  END {
    for (k = 1; k <= n; k++) {
      key = order[k]; m = split(substr(rates[key], 2), r, " ");
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
      med = (m % 2) ? r[(m + 1) / 2] : (r[m / 2] + r[m / 2 + 1]) / 2;
      split(key, kv, "\t");
      printf "%-42s %-5s median %9.0f  min %9.0f  max %9.0f events/s  peak %8.1f MiB\n", kv[1], kv[2], med, r[1], r[m], rss[key]
    }
  }' "$summary"
