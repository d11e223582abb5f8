#!/usr/bin/env bash
# The long form of the failover test (tests/failover.rs): a writer and a hot standby on
# the stream journal, on a three-node RabbitMQ cluster of the test's own, under a load
# with holds ending during the run; the writer is killed (SIGKILL), frozen past the
# heartbeat and let go on (a zombie), and the stream leader's node is killed and brought
# back. CI runs the short form (3 writer kills, 1 zombie, 1 node kill) in `cargo test`.
#
#   tools/failover.sh                      # 20 kills, 3 zombies, 3 node kills, 20,000 events
#   KILLS=50 EVENTS=40000 tools/failover.sh
#   PROFILE_FLAG=--release tools/failover.sh   # the service built as it is deployed
#
# Prints the test's summary line (the counts and failover times docs/reliability.md
# quotes); the whole output is kept in target/failover-long.log.
set -euo pipefail
cd "$(dirname "$0")/.."
export HANDOFF_FAILOVER_KILLS="${KILLS:-20}"
export HANDOFF_FAILOVER_ZOMBIES="${ZOMBIES:-3}"
export HANDOFF_FAILOVER_NODE_KILLS="${NODE_KILLS:-3}"
export HANDOFF_FAILOVER_EVENTS="${EVENTS:-20000}"
export HANDOFF_FAILOVER_HOLDS="${HOLDS:-200}"
export HANDOFF_FAILOVER_RATE="${RATE:-150}"
export HANDOFF_FAILOVER_SEED="${SEED:-14}"
mkdir -p target
cargo test --locked ${PROFILE_FLAG:-} --test failover -- --nocapture 2>&1 | tee target/failover-long.log |
  grep -E '^failover:|^test |panicked|test result'
