#!/usr/bin/env bash
# Training throughput: `rzero bench train` vs Hugging Face transformers (bench/hf_train.py)
# in one run, back to back, on the same shapes: random-init SmolLM2-135M (f32), BATCH x SEQ
# tokens, forward + backward + AdamW, full fine-tuning, no KL. Appends both rows (and the
# ratio, printed) to bench/results/train.jsonl.
#   bench/train.sh [BATCH] [SEQ] [STEPS] [NOTE]
# Extra rzero settings: RZERO_ARGS="--lora-rank 16" / "--recompute", KL_COEF=0.01 (the peer
# stays full fine-tuning without KL, so only the default rows compare the same work).
# MATMUL_PRECISION=bf16: bf16 operands in the matrix products on both sides (rzero
# --matmul-precision bf16; torch.set_float32_matmul_precision("medium")).
# Needs torch + transformers: scripts/py-venv.sh (or PYTHON=... with both installed).
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=${1:-8}
SEQ=${2:-512}
STEPS=${3:-1}
NOTE=${4:-}
CONFIG=bench/gpu/configs/smollm2-135m.json
OUT=bench/results/train.jsonl
PY=${PYTHON:-$(bash scripts/py-venv.sh)}
TMP=$(mktemp bench/results/.train.XXXXXX)
trap 'rm -f "$TMP"' EXIT
cargo build --release -q -p rzero-cli
# shellcheck disable=SC2086
./target/release/rzero bench train --random-init "$CONFIG" --batch "$BATCH" --seq "$SEQ" \
  --steps "$STEPS" --kl-coef "${KL_COEF:-0}" --matmul-precision "${MATMUL_PRECISION:-f32}" ${RZERO_ARGS:-} \
  --json | tee -a "$TMP"
"$PY" bench/hf_train.py --config "$CONFIG" --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" \
  --micro-batch 1 --matmul-precision "${MATMUL_PRECISION:-f32}" 2>/dev/null | tee -a "$TMP"
"$PY" - "$TMP" "$NOTE" "$(date -u +%F)" <<'PY'
import json, sys
path, note, date = sys.argv[1:4]
rows = [json.loads(l) for l in open(path) if l.strip()]
rz = next(r for r in rows if r.get("engine", "rzero") == "rzero")
hf = next(r for r in rows if r.get("engine") == "transformers")
ratio = rz["tokens_per_s"] / hf["tokens_per_s"]
with open(path, "w") as f:
    for r in rows:
        r.setdefault("engine", "rzero")
        r["date"] = date
        r["binary"] = "release" if r["engine"] == "rzero" else "python"
        r["run"] = "bench/train.sh (rzero and transformers back to back)"
        r["ratio_rzero_over_transformers"] = ratio
        if note:
            r["note"] = note
        f.write(json.dumps(r, sort_keys=True) + "\n")
print(f"rzero {rz['tokens_per_s']:.1f} tok/s (peak RSS {rz['peak_rss_bytes'] / 2**30:.2f} GiB), "
      f"transformers {hf['tokens_per_s']:.1f} tok/s (peak RSS {hf['peak_rss_bytes'] / 2**30:.2f} GiB): "
      f"ratio {ratio:.2f}")
PY
cat "$TMP" >> "$OUT"
rm -f "$TMP"
trap - EXIT
