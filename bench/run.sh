#!/usr/bin/env bash
# The HTTP load benchmark: bare axum, Tessera and tower-sessions serving the "views"
# demo, measured in ONE run on loopback. The server is pinned to core 0 and wrk to core 1.
#
#   bash bench/run.sh                # 10 s per scenario, writes bench/RESULTS.md
#   DURATION=3 bash bench/run.sh     # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
cargo build --release -p tessera-bench --bin bench_server
python3 bench/load.py --server target/release/bench_server \
  --duration "${DURATION:-10}" --connections "${CONNECTIONS:-32}" --out "${OUT:-bench/RESULTS.md}"
