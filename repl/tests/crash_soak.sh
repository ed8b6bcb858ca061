#!/usr/bin/env bash
# A longer run of the crash test: ROUNDS kills of the server while producers publish
# (default 500), then a check that every acknowledged event is stored exactly once.
set -euo pipefail
cd "$(dirname "$0")/../.."
SLUICE_CRASH_ROUNDS="${1:-500}" cargo test --workspace --test serve -- \
  crashes_while_publishing_lose_no_acknowledged_event --nocapture
