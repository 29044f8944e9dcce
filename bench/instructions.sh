#!/usr/bin/env bash
# Instructions per in-process request (no network) for each server and scenario, counted
# by callgrind: unlike CPU time, the same binary and inputs give the same count on a
# noisy machine. Valgrind hides the CPU's SHA extensions, so HMAC-SHA256 runs in
# software here, for Tessera and tower-sessions alike. In A and A-read bare axum gets a
# cookie of the same shape as the others, as in the load benchmark.
#
#   bash bench/instructions.sh            # 20000 requests per cell (~2 min)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get install -y valgrind >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; }; }
cargo build --release -p tessera-bench --bin profile_requests
N="${N:-20000}"
out=$(mktemp -d)
echo "| scenario | bare | tessera | tower-sessions | tessera added | tower-sessions added |"
echo "|---|---:|---:|---:|---:|---:|"
for scenario in A A-read B; do
  declare -A per=()
  for kind in bare tessera tower-sessions; do
    total=$(valgrind --tool=callgrind --callgrind-out-file="$out/$kind.$scenario" \
      target/release/profile_requests "$kind" "$scenario" "$N" 2>&1 | awk '/Collected/ {print $4}')
    per[$kind]=$((total / N))
  done
  printf '| %s | %d | %d | %d | %d | %d |\n' "$scenario" "${per[bare]}" "${per[tessera]}" \
    "${per[tower-sessions]}" $((per[tessera] - per[bare])) $((per[tower-sessions] - per[bare]))
done
# The per-user index: the same requests on a session tied to a user (`set_user`).
echo
echo "| scenario | tessera, no user | tessera, tied to a user | difference |"
echo "|---|---:|---:|---:|"
for pair in "A U" "A-read U-read"; do
  set -- $pair
  declare -A tied=()
  for scenario in "$1" "$2"; do
    total=$(valgrind --tool=callgrind --callgrind-out-file="$out/user.$scenario" \
      target/release/profile_requests tessera "$scenario" "$N" 2>&1 | awk '/Collected/ {print $4}')
    tied[$scenario]=$((total / N))
  done
  printf '| %s | %d | %d | %+d |\n' "$1" "${tied[$1]}" "${tied[$2]}" $((tied[$2] - tied[$1]))
done
# Hostile input: the cost of a request must grow linearly with the keys of its session.
KN="${KN:-200}"
echo
echo "| session keys | tessera instructions/request | ratio to 2,000 keys |"
echo "|---:|---:|---:|"
base=0
for keys in 2000 8000; do
  total=$(valgrind --tool=callgrind --callgrind-out-file="$out/keys.$keys" \
    target/release/profile_requests tessera "K$keys" "$KN" 2>&1 | awk '/Collected/ {print $4}')
  per=$((total / KN))
  [ "$base" -eq 0 ] && base=$per
  printf '| %d | %d | %s |\n' "$keys" "$per" "$(awk -v a="$per" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
done
rm -rf "$out"
