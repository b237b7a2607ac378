#!/usr/bin/env bash
# A fingerprint of a fixed-seed `tiny` run on the tests' chain model (with eval and audit):
# the sha256 of every file of the run directory (the work folder's path replaced) and of
# every metric row without its machine-dependent fields (testdata::MACHINE_FIELDS). Two commits whose
# fingerprints are equal produce byte-identical datasets, checkpoints, eval results and
# metric rows; `diff` two fingerprints to compare a refactor with the commit before it.
#   scripts/fingerprint-run.sh OUT_FILE [WORK_DIR]
# MODEL=smollm2 (or any model spec) runs `tiny` on that model instead of the chain model.
# bench/results/fingerprint-tiny.txt is main's (bc94068, this 2-core AVX-512 machine; float
# kernels differ by CPU, so compare on one machine): a refactor keeps it; a change of numerics
# (new kernels, shared prompts) replaces it, saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: fingerprint-run.sh OUT_FILE [WORK_DIR]}
WORK=${2:-$(mktemp -d)}
cargo build --release -q -p rzero-cli
MODEL_SPEC=${MODEL:-}
if [ -z "$MODEL_SPEC" ]; then
  cargo run --release -q -p rzero --example chain_model -- "$WORK/chain-model"
  MODEL_SPEC="$WORK/chain-model"
fi
rm -rf "$WORK/run"
./target/release/rzero run --preset tiny --model "$MODEL_SPEC" --out "$WORK/run" --quiet
PY=${PYTHON:-python3}
"$PY" - "$WORK/run" "$WORK" > "$OUT" <<'PY'
import hashlib, json, os, sys
run, work = sys.argv[1], sys.argv[2].encode()
machine = {"time_s", "tokens_per_s", "seconds", "rollout_seconds", "mem_rss_bytes",
           "mem_rss_peak_bytes", "mem_device_bytes", "mem_device_total_bytes"}
def digest(b):
    return hashlib.sha256(b).hexdigest()
for root, dirs, files in os.walk(run):
    dirs.sort()
    for f in sorted(files):
        p = os.path.join(root, f)
        rel = os.path.relpath(p, run)
        if rel == "config.toml" or rel.endswith(".log"):
            continue
        if f.startswith("metrics") and f.endswith(".jsonl"):
            for i, line in enumerate(open(p)):
                row = {k: v for k, v in json.loads(line).items() if k not in machine}
                print(digest(json.dumps(row, sort_keys=True).encode()), f"{rel}:{i + 1}")
            continue
        # the work folder's path (the model's) is written into eval options and results
        print(digest(open(p, "rb").read().replace(work, b"$WORK")), rel)
PY
wc -l < "$OUT"
