#!/usr/bin/env bash
# Runs the script fuzzer (tests/tests/fuzz_scripts.rs) for hours rather than the test
# suite's minute: rounds of CASES mutated scripts, each round from the next seeds, until
# stopped or a script crashes sluice. Usage: fuzz/run.sh [CASES_PER_ROUND]
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-5000}"
seed=1
while true; do
    echo "seeds $seed to $((seed + cases - 1))"
    SLUICE_FUZZ_CASES="$cases" SLUICE_FUZZ_SEED="$seed" \
        cargo test --release -p sluice-tests --test fuzz_scripts -- --nocapture
    seed=$((seed + cases))
done
