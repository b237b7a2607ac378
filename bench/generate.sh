#!/usr/bin/env bash
# Generation throughput: rzero's engine vs llama.cpp on SmolLM2-135M-Instruct (GGUF),
# batch 1/8/32 x 256 new tokens. Writes bench/results/generate.jsonl (atomically).
#   bench/generate.sh [GGUF] [BATCHES] [NEW_TOKENS]
# Needs the GGUF (scripts/fetch-smollm2.sh) and, for the peer, `pip install llama-cpp-python`.
set -euo pipefail
cd "$(dirname "$0")/.."
GGUF=${1:-$HOME/.cache/rzero/SmolLM2-135M-Instruct.Q4_1.gguf}
BATCHES=${2:-1,8,32}
NEW=${3:-256}
OUT=bench/results/generate.jsonl
TMP=$(mktemp bench/results/.generate.XXXXXX)
trap 'rm -f "$TMP"' EXIT
cargo build --release -q -p engine --example bench_generate
./target/release/examples/bench_generate "$GGUF" "$BATCHES" "$NEW" | tee -a "$TMP"
if python3 -c 'import llama_cpp' 2>/dev/null; then
  # llama.cpp's OpenMP threads spin; on a shared machine one thread can beat two, so both
  # are measured and the comparison takes llama.cpp's best.
  for t in 1 2; do
    OMP_WAIT_POLICY=PASSIVE python3 bench/llamacpp_peer.py --model "$GGUF" --batch "$BATCHES" \
      --new-tokens "$NEW" --threads "$t" 2>/dev/null | tee -a "$TMP"
  done
else
  echo "llama-cpp-python not installed: peer skipped" >&2
fi
mv "$TMP" "$OUT"
trap - EXIT
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| batch | rzero gen tok/s | llama.cpp best gen tok/s | ratio | rzero prompt tok/s | llama.cpp prompt tok/s |")
print("|---:|---:|---:|---:|---:|---:|")
for b in sorted({r["batch"] for r in rows}):
    rz = [r for r in rows if r["batch"] == b and r["engine"] == "rzero"]
    lc = [r for r in rows if r["batch"] == b and r["engine"] == "llama.cpp"]
    if not rz:
        continue
    g = rz[0]["gen_tps"]
    best = max(lc, key=lambda r: r["gen_tps"]) if lc else None
    if best:
        print(f"| {b} | {g:.1f} | {best['gen_tps']:.1f} ({best['threads']} thr) | {g / best['gen_tps']:.2f} | {rz[0]['prompt_tps']:.0f} | {max(r['prompt_tps'] for r in lc):.0f} |")
    else:
        print(f"| {b} | {g:.1f} | - | - | {rz[0]['prompt_tps']:.0f} | - |")
PY
