#!/usr/bin/env bash
# The GPU check: run on a GPU machine with only this repository and a CUDA rzero binary
# (built by scripts/build-cuda.sh). About 8 minutes at most on an H100 (a time budget skips
# what would not fit; skipped steps are recorded, never silently dropped).
#
#   bash scripts/gpu-check.sh [RZERO_BINARY]     (default target-cuda/release/rzero)
#
# 1. Parity on the tiny fixture models (fixtures/models or ../shared/fixtures/models, or
#    $RZERO_FIXTURES/models), each a pass/fail row:
#    - greedy ids: `rzero generate` (20 tokens, EOS ignored) on cuda in f32 equal the CPU's;
#    - log-probs: `rzero score` of the fixture continuation vs the PyTorch reference in
#      expected.json: f32 on cuda within 2e-4 (absolute), bf16 on cuda within 0.15;
#    - a GRPO step: `rzero bench train` (synthetic batch, the same on every device): the first
#      step's loss and gradient norm on cuda within 1e-3 relative of the CPU's (f32), and
#      within 2e-2 with bf16 compute (`--dtype bf16`: f32 master weights and AdamW state).
# 2. Throughput: `rzero bench generate` (bf16, 256 new tokens) and `rzero bench train` (f32,
#    and bf16 compute for Qwen3-0.6B, 8 x 512; rows carry gpu_mem_used_bytes) on random-init SmolLM2-135M, Qwen3-0.6B and Qwen3-4B shapes (bench/gpu/configs).
#
# Everything goes to bench/results/gpu-check-<UTC time>.jsonl (one JSON object per line);
# the exit status is non-zero when a parity check failed.
set -uo pipefail
cd "$(dirname "$0")/.."

BIN="${1:-${RZERO_BIN:-target-cuda/release/rzero}}"
BUDGET_S="${GPU_CHECK_BUDGET_S:-460}"
START=$(date +%s)
mkdir -p bench/results
RES="bench/results/gpu-check-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILED=0

log() { echo "gpu-check: $*" >&2; }
row() { echo "$1" >>"$RES"; echo "$1"; }
left() { echo $((BUDGET_S - ($(date +%s) - START))); }

[ -x "$BIN" ] || { log "no rzero binary at $BIN (build it with scripts/build-cuda.sh)"; exit 2; }

# The CUDA 13 libraries: PyTorch's wheels (site-packages/nvidia/cu13/lib), else a local toolkit.
libs=""
for py in python3 python; do
    d=$("$py" -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null) || continue
    for l in "$d"/nvidia/cu13/lib "$d"/nvidia/*/lib; do
        [ -e "$l/libcublas.so.13" ] && libs="$libs:$l"
    done
    [ -n "$libs" ] && break
done
for l in "${CUDA_HOME:-/usr/local/cuda}/lib64" "$HOME/.cache/rzero/cuda-root/lib64"; do
    [ -e "$l/libcublas.so.13" ] && libs="$libs:$l"
done
export LD_LIBRARY_PATH="${libs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n1)
row "$(python3 -c 'import json,sys; print(json.dumps({"what":"gpu_check_start","gpu":sys.argv[1],"binary":sys.argv[2]}))' "$gpu" "$BIN")"
if ! "$BIN" --device cuda bench model --help >/dev/null 2>"$WORK/err"; then
    log "the binary does not start: $(cat "$WORK/err")"
    exit 2
fi

# Runs "$@" with the time left (at least 1 s); records a skip when the budget is spent.
timed() {
    local t
    t=$(left)
    if [ "$t" -le 5 ]; then
        row "{\"what\":\"skipped\",\"reason\":\"time budget\",\"cmd\":\"$*\"}"
        return 124
    fi
    timeout "$t" "$@"
}

compare() { python3 - "$@" <<'EOF'
import json, sys
kind, name = sys.argv[1], sys.argv[2]
def lines(p):
    return [json.loads(l) for l in open(p) if l.strip()]
out = {"what": "parity", "check": kind, "model": name}
try:
    if kind == "greedy":
        a, b = lines(sys.argv[3]), lines(sys.argv[4])
        ia = [r["completion_ids"] for r in a]
        ib = [r["completion_ids"] for r in b]
        out.update(ok=ia == ib and len(ia) > 0, rows=len(ia), devices=sys.argv[5])
    elif kind == "logprobs":
        got = lines(sys.argv[3])[0]["logprobs"]
        exp = json.load(open(sys.argv[4]))["logprobs"]["token_logprobs"]
        tol = float(sys.argv[5])
        err = max(abs(g - e) for g, e in zip(got, exp)) if len(got) == len(exp) else float("inf")
        out.update(ok=err <= tol, max_abs_err=err, tol=tol, dtype=sys.argv[6])
    elif kind == "grpo_step":
        a, b = lines(sys.argv[3])[0], lines(sys.argv[4])[0]
        tol = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-3
        # relative, absolute below 1e-6 (the synthetic step's loss is 0 up to rounding)
        rel = lambda x, y: abs(x - y) / max(abs(y), 1e-6)
        rl = rel(b["first_step_loss"], a["first_step_loss"])
        rg = rel(b["first_step_grad_norm"], a["first_step_grad_norm"])
        out.update(ok=max(rl, rg) <= tol, loss_rel_err=rl, grad_norm_rel_err=rg, tol=tol,
                   cpu_grad_norm=a["first_step_grad_norm"], cuda_grad_norm=b["first_step_grad_norm"],
                   cuda_dtype=b.get("dtype"))
except Exception as e:  # a missing or malformed output is a failure, named
    out.update(ok=False, error=repr(e))
print(json.dumps(out))
sys.exit(0 if out["ok"] else 1)
EOF
}

# A parity row from `compare`; a failed comparison fails the script.
check() {
    local r rc
    r=$(compare "$@")
    rc=$?
    row "$r"
    [ "$rc" -eq 0 ] || FAILED=1
}

# 1. Parity.
FIX=""
for d in "${RZERO_FIXTURES:+$RZERO_FIXTURES/models}" fixtures/models tests/fixtures/models ../shared/fixtures/models /work/shared/fixtures/models; do
    [ -n "$d" ] && [ -d "$d/qwen3-tiny" ] && { FIX="$d"; break; }
done
if [ -z "$FIX" ]; then
    row '{"what":"parity","ok":false,"error":"fixture models not found (fixtures/models, ../shared/fixtures/models or $RZERO_FIXTURES/models)"}'
    FAILED=1
else
    printf '%s\n' '{"prompt": "The capital of France is"}' '{"prompt": "1 + 1 ="}' \
        '{"prompt": "Once upon a time, in a land far away, there lived a"}' >"$WORK/prompts.jsonl"
    for name in llama-tiny qwen2-tiny qwen3-tiny; do
        m="$FIX/$name"
        [ -d "$m" ] || { row "{\"what\":\"parity\",\"model\":\"$name\",\"ok\":false,\"error\":\"missing $m\"}"; FAILED=1; continue; }
        gen() { timed "$BIN" -q --device "$1" generate --model "$m" --input "$WORK/prompts.jsonl" \
            --max-new-tokens 20 --ignore-eos --temperature 0 -o "$WORK/$name.gen.$1.jsonl"; }
        gen cpu; gen cuda; gen cpu-generic
        check greedy "$name" "$WORK/$name.gen.cpu.jsonl" "$WORK/$name.gen.cuda.jsonl" "cpu vs cuda f32"
        check greedy "$name" "$WORK/$name.gen.cpu.jsonl" "$WORK/$name.gen.cpu-generic.jsonl" "cpu vs cpu-generic"
        python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["logprobs"]; print(json.dumps({"prompt_ids": e["prompt_ids"], "completion_ids": e["continuation_ids"]}))' \
            "$m/expected.json" >"$WORK/$name.score.jsonl"
        timed "$BIN" -q --device cuda score --model "$m" --input "$WORK/$name.score.jsonl" --output "$WORK/$name.lp32.jsonl"
        check logprobs "$name" "$WORK/$name.lp32.jsonl" "$m/expected.json" 2e-4 f32
        timed "$BIN" -q --device cuda --dtype bf16 score --model "$m" --input "$WORK/$name.score.jsonl" --output "$WORK/$name.lp16.jsonl"
        check logprobs "$name" "$WORK/$name.lp16.jsonl" "$m/expected.json" 0.15 bf16
        for dev in cpu cuda; do
            timed "$BIN" -q --device $dev bench train --model "$m" --batch 4 --seq 32 --steps 0 --json >"$WORK/$name.train.$dev.json"
        done
        check grpo_step "$name" "$WORK/$name.train.cpu.json" "$WORK/$name.train.cuda.json"
        # bf16 compute (f32 master weights): the first step's gradient norm within 2e-2 of
        # the CPU's f32 (on cpu-generic the three fixtures differ by 2.4e-5 to 3.0e-3).
        timed "$BIN" -q --device cuda --dtype bf16 bench train --model "$m" --batch 4 --seq 32 --steps 0 --json >"$WORK/$name.train.cuda-bf16.json"
        check grpo_step "$name" "$WORK/$name.train.cpu.json" "$WORK/$name.train.cuda-bf16.json" 2e-2
    done
fi
log "parity done after $(($(date +%s) - START)) s (failed: $FAILED)"

# 2. Throughput on random-init shapes. Generation in bf16; training in f32 (master weights).
bench_gen() {  # config, batches
    timed "$BIN" -q --device cuda --dtype bf16 bench generate --random-init "bench/gpu/configs/$1.json" \
        --batch "$2" --new-tokens 256 --max-kv-bytes 40G --json | tee -a "$RES"
}
bench_train() {  # config [dtype]
    timed "$BIN" -q --device cuda --dtype "${2:-f32}" bench train --random-init "bench/gpu/configs/$1.json" \
        --batch 8 --seq 512 --micro-batch 8 --steps 2 --json | tee -a "$RES"
}
bench_gen smollm2-135m 1,64,256 || log "bench generate smollm2-135m failed or timed out"
bench_gen qwen3-0.6b 1,64,256 || log "bench generate qwen3-0.6b failed or timed out"
bench_train smollm2-135m || log "bench train smollm2-135m failed or timed out"
bench_train qwen3-0.6b || log "bench train qwen3-0.6b failed or timed out"
bench_train qwen3-0.6b bf16 || log "bench train qwen3-0.6b bf16 failed or timed out"
bench_gen qwen3-4b 1,64 || log "bench generate qwen3-4b failed or timed out"
row "{\"what\":\"gpu_check_end\",\"seconds\":$(($(date +%s) - START)),\"parity_failed\":$FAILED}"
log "results in $RES"
exit $FAILED
