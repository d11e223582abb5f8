#!/usr/bin/env bash
# The long form of the fault-injection test (tests/faults.rs): many SIGKILLs of the
# service, several RabbitMQ restarts and connection drops under a larger load, on a
# RabbitMQ node of the test's own. CI runs the short form (20 kills, 1 restart, 3 drops)
# as part of `cargo test`.
#
#   tools/faults.sh                 # 100 kills, 10 drops, 3 restarts, 30,000 events
#   KILLS=300 EVENTS=90000 tools/faults.sh
#
# Prints the test's summary line (the counts docs/reliability.md quotes); the whole output
# is kept in target/faults-long.log.
set -euo pipefail
cd "$(dirname "$0")/.."
export HANDOFF_FAULT_KILLS="${KILLS:-100}"
export HANDOFF_FAULT_DROPS="${DROPS:-10}"
export HANDOFF_FAULT_RESTARTS="${RESTARTS:-3}"
export HANDOFF_FAULT_EVENTS="${EVENTS:-30000}"
export HANDOFF_FAULT_HOLDS="${HOLDS:-200}"
export HANDOFF_FAULT_SEED="${SEED:-7}"
mkdir -p target
cargo test --locked --test faults -- --nocapture 2>&1 | tee target/faults-long.log |
  grep -E '^faults:|^test |panicked|test result'
