#!/usr/bin/env bash
# The HTTP load benchmark: bare axum, Tessera and tower-sessions serving the "views"
# demo, measured in ONE run on loopback. The server is pinned to core 0 and wrk to core 1.
#
#   bash bench/run.sh                      # 3 rounds x 5 s per server and scenario (~3 min)
#   DURATION=2 ROUNDS=1 bash bench/run.sh  # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
cargo build --release -p tessera-bench --bin bench_server
python3 bench/load.py --server target/release/bench_server \
  --duration "${DURATION:-5}" --rounds "${ROUNDS:-3}" --connections "${CONNECTIONS:-32}" \
  --out "${OUT:-bench/RESULTS.md}"
