#!/usr/bin/env bash
# The HTTP load benchmark: bare axum, Tessera and tower-sessions serving the "views"
# demo, measured in ONE run on loopback. The server is pinned to core 0 and wrk to core 1.
#
#   bash bench/run.sh                      # 7 rounds x 4 s per server and scenario (~5 min)
#   DURATION=2 ROUNDS=1 bash bench/run.sh  # a quick look
#   SCENARIOS=A-read ROUNDS=5 OUT=/tmp/a.md bash bench/run.sh  # one scenario
#   SET=redis bash bench/run.sh            # the Redis servers (REDIS_URL, database 15)
#   SET=pg bash bench/run.sh               # the PostgreSQL servers (DATABASE_URL)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
SET="${SET:-memory}"  # memory, redis (REDIS_URL) or pg (DATABASE_URL)
if [ "$SET" = memory ]; then
  cargo build --release -p tessera-bench --bin bench_server
else
  cargo build --release -p tessera-bench --bin bench_server --features peers
  npm ci --prefix tests/node --no-audit --no-fund >/dev/null
fi
if [ "$SET" = pg ]; then
  # Its own database on the server of DATABASE_URL.
  base="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  export DATABASE_URL="${base%/*}/tessera_bench"
  db=tessera_bench
  psql "${DATABASE_URL%/*}/postgres" -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
    || psql "${DATABASE_URL%/*}/postgres" -c "CREATE DATABASE \"$db\"" >/dev/null
fi
python3 bench/load.py --server target/release/bench_server --set "$SET" \
  --duration "${DURATION:-4}" --rounds "${ROUNDS:-7}" --connections "${CONNECTIONS:-32}" \
  --scenarios "${SCENARIOS:-A,A-read,B}" \
  --out "${OUT:-bench/RESULTS.md}"
