#!/usr/bin/env python3
"""Training throughput of Hugging Face transformers (PyTorch, CPU), the peer of
`rzero bench train`: the same shapes and the same work.

A random-init model in the shape of a Hugging Face config.json (default: SmolLM2-135M),
f32, `--batch` sequences of `--seq` tokens (prompt = seq/8 tokens, the rest response),
random token ids. One step = forward over every token, the response tokens' log-probs
(log-softmax + gather, f32), the surrogate sum(coef * logp), backward, and one AdamW
update of every parameter (full fine-tuning), as rzero's GRPO step without KL.
`--micro-batch` sequences per forward/backward (gradients accumulate).

`--matmul-precision bf16` sets torch.set_float32_matmul_precision("medium") (on CPU:
oneDNN float32 matmuls with bf16 operands, AMX where the CPU has it), the like-for-like peer
of `rzero bench train --matmul-precision bf16`; the default stays f32 ("highest").

Prints one JSON line: tokens/s (mean of the measured steps after one warm-up step), the
process's CPU seconds per token of the measured steps (all threads; comparable on a busy
machine where wall-clock figures are not), the 1-minute load average when it ended, and the
process's peak RSS (VmHWM).

    python bench/hf_train.py [--config bench/gpu/configs/smollm2-135m.json] [--batch 8]
        [--seq 512] [--micro-batch 8] [--steps 1] [--threads N] [--matmul-precision bf16]
"""

import argparse
import json
import os
import platform
import time


def peak_rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--config", default=os.path.join(here, "gpu/configs/smollm2-135m.json"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--matmul-precision", choices=["f32", "bf16"], default="f32",
                    help="bf16: torch.set_float32_matmul_precision('medium')")
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision("medium" if args.matmul_precision == "bf16" else "highest")
    torch.manual_seed(0)
    cfg = AutoConfig.from_pretrained(args.config)
    cfg.use_cache = False
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32,
                                             attn_implementation="sdpa")
    model.train()
    # rzero's GRPO defaults: AdamW betas (0.9, 0.999), eps 1e-8, weight decay 0.01, clip 1.0.
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.01)
    b, t = args.batch, args.seq
    p = max(t // 8, 1)
    r = t - p
    g = torch.Generator().manual_seed(0x12345678)
    ids = torch.randint(0, cfg.vocab_size, (b, t), generator=g)
    # Per-token coefficients of the surrogate (the policy-gradient term's derivative).
    coef = torch.randn(b, r, generator=g) / (b * r)

    def step():
        opt.zero_grad(set_to_none=True)
        for s in range(0, b, args.micro_batch):
            x = ids[s:s + args.micro_batch]
            hidden = model.model(input_ids=x).last_hidden_state  # [mb, T, H]
            h = hidden[:, p - 1:p - 1 + r]  # position P-1+j predicts response token j
            logits = model.lm_head(h).float()
            logp = torch.log_softmax(logits, dim=-1).gather(-1, x[:, p:].unsqueeze(-1))
            loss = (logp.squeeze(-1) * coef[s:s + args.micro_batch]).sum()
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    t0 = time.perf_counter()
    step()
    warm = time.perf_counter() - t0
    times = []
    c0 = time.process_time()
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    cpu = (time.process_time() - c0) / len(times) if times else None
    mean = sum(times) / len(times) if times else warm
    mkldnn = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    params = sum(x.numel() for x in model.parameters())
    print(json.dumps({
        "bench": "train",
        "engine": "transformers",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "model": os.path.relpath(args.config, os.path.dirname(here)),
        "params": params,
        "trainable_params": params,
        "lora_rank": 0,
        "recompute": False,
        "batch": b,
        "seq": t,
        "micro_batch": args.micro_batch,
        "kl_coef": 0.0,
        "tokens_per_step": b * t,
        "step_s": mean,
        "warmup_step_s": warm,
        "tokens_per_s": b * t / mean,
        "cpu_s_per_token": cpu / (b * t) if cpu is not None else None,
        "load_avg_1m": os.getloadavg()[0],
        "matmul_precision": args.matmul_precision,
        "torch_float32_matmul_precision": torch.get_float32_matmul_precision(),
        "mkldnn_matmul_fp32_precision": getattr(mkldnn, "fp32_precision", None),
        "peak_rss_bytes": peak_rss(),
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }, sort_keys=True))


if __name__ == "__main__":
    main()
