#!/usr/bin/env bash
# The HTTP load benchmark: bare axum, Tessera and tower-sessions serving the "views"
# demo, measured in ONE run on loopback. The server is pinned to core 0 and wrk to core 1.
#
#   bash bench/run.sh                      # 7 rounds x 4 s per server and scenario (~5 min)
#   DURATION=2 ROUNDS=1 bash bench/run.sh  # a quick look
#   SCENARIOS=A-read ROUNDS=5 OUT=/tmp/a.md bash bench/run.sh  # one scenario
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
cargo build --release -p tessera-bench --bin bench_server
python3 bench/load.py --server target/release/bench_server \
  --duration "${DURATION:-4}" --rounds "${ROUNDS:-7}" --connections "${CONNECTIONS:-32}" \
  --scenarios "${SCENARIOS:-A,A-read,B}" \
  --out "${OUT:-bench/RESULTS.md}"
