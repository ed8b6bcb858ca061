#!/usr/bin/env bash
# Alternating before/after runs of the throughput benchmarks, the order flipped each pair,
# for comparing two builds: benches/alternate.sh BEFORE_DIR AFTER_DIR [PAIRS]
# Each directory holds the release binaries of one build (window_bench, join_bench,
# cep_bench, alert_bench, serve_bench and sluice, copied from target/release/). Prints one
# line a run: which side, the benchmark, and its events/s (alert_bench: registration time
# and engine events/s).
set -euo pipefail
before=$1
after=$2
pairs=${3:-5}
run() {
  local side=$1 dir=$2 bin=$3
  shift 3
  local out
  if [ "$bin" = serve_bench ]; then
    out=$(SLUICE="$dir/sluice" "$dir/$bin" "$@" 2>&1)
  else
    out=$("$dir/$bin" "$@" 2>&1)
  fi
  case $bin in
    alert_bench) echo "$side $bin $* :: $(echo "$out" | grep -iE "registration|engine" | tr '\n' ' ' | cut -c1-200)" ;;
    *) echo "$side $bin $* :: $(echo "$out" | grep -E "events/s" | tr '\n' ' ')" ;;
  esac
}
for i in $(seq 1 "$pairs"); do
  for spec in "window_bench tumble 10000000" "window_bench hop 10000000" "join_bench" \
    "cep_bench v 5000000" "cep_bench fraud 2000000" "alert_bench 100000 400000" \
    "serve_bench ingest 1 300000 1000 batch"; do
    # shellcheck disable=SC2086
    if ((i % 2)); then
      run before "$before" $spec
      run after "$after" $spec
    else
      run after "$after" $spec
      run before "$before" $spec
    fi
  done
done
