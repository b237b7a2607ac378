#!/usr/bin/env python3
"""llama.cpp peer for `rzero bench generate`: aggregate generation throughput of llama.cpp
on the same GGUF, at the same batch sizes, prompts and sampling settings.

llama-cpp-python's OpenAI server (`python3 -m llama_cpp.server`) serves one request at a
time (it has no --n_parallel), so this script drives llama.cpp's C API directly through the
package's ctypes bindings, as llama.cpp's own `llama-batched` example does: all B prompts
are decoded in one batch with distinct sequence ids, then every step decodes one token per
sequence in one `llama_decode` call. That is llama.cpp's best case for B parallel streams.

Install (builds llama.cpp from source; about 10-15 minutes on 2 cores):
    pip install 'llama-cpp-python'
Run:
    python3 bench/llamacpp_peer.py --model ~/.cache/rzero/SmolLM2-135M-Instruct.Q4_1.gguf \
        --batch 1,8,32 --new-tokens 256 --threads 2 [--out bench/results/generate.jsonl]
Prints one JSON object per batch size (and appends them to --out).
"""
import argparse
import ctypes
import json
import os
import sys
import time


def prompt(i):
    # Same text as engine::bench::bench_prompt.
    return f"Story {i}: Once upon a time, there was a little robot who"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    try:
        import llama_cpp as L
    except ImportError:
        print("llama-cpp-python is not installed: pip install llama-cpp-python", file=sys.stderr)
        sys.exit(2)

    L.llama_backend_init()
    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(args.model.encode(), mp)
    if not model:
        sys.exit(f"cannot load {args.model}")
    vocab = L.llama_model_get_vocab(model)
    rows = []
    for b in [int(x) for x in args.batch.split(",")]:
        toks = []
        for i in range(b):
            text = prompt(i).encode()
            buf = (L.llama_token * 256)()
            n = L.llama_tokenize(vocab, text, len(text), buf, 256, False, True)
            toks.append(list(buf[:n]))
        n_prompt = sum(len(t) for t in toks)
        cp = L.llama_context_default_params()
        cp.n_ctx = max(b * (max(len(t) for t in toks) + args.new_tokens + 8), 512)
        cp.n_batch = max(n_prompt, b, 512)
        cp.n_ubatch = cp.n_batch
        cp.n_seq_max = b
        cp.n_threads = args.threads
        cp.n_threads_batch = args.threads
        ctx = L.llama_init_from_model(model, cp)
        if not ctx:
            sys.exit(f"cannot create a context for batch {b}")
        samplers = []
        for i in range(b):
            ch = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
            L.llama_sampler_chain_add(ch, L.llama_sampler_init_top_p(0.95, 1))
            L.llama_sampler_chain_add(ch, L.llama_sampler_init_temp(0.8))
            L.llama_sampler_chain_add(ch, L.llama_sampler_init_dist(i))
            samplers.append(ch)
        batch = L.llama_batch_init(max(n_prompt, b), 0, 1)

        def run(new_tokens):
            L.llama_memory_clear(L.llama_get_memory(ctx), True)
            # Prefill: every prompt in one batch, logits at each prompt's last token.
            k = 0
            last = []
            for s, t in enumerate(toks):
                for p, tok in enumerate(t):
                    batch.token[k] = tok
                    batch.pos[k] = p
                    batch.n_seq_id[k] = 1
                    batch.seq_id[k][0] = s
                    batch.logits[k] = p == len(t) - 1
                    if p == len(t) - 1:
                        last.append(k)
                    k += 1
            batch.n_tokens = k
            t0 = time.perf_counter()
            if L.llama_decode(ctx, batch) != 0:
                sys.exit("llama_decode failed (prefill)")
            t_prefill = time.perf_counter() - t0
            pos = [len(t) for t in toks]
            generated = 0
            for step in range(new_tokens):
                nxt = [L.llama_sampler_sample(samplers[s], ctx, last[s]) for s in range(b)]
                generated += b
                if step == new_tokens - 1:
                    break
                for s in range(b):
                    batch.token[s] = nxt[s]
                    batch.pos[s] = pos[s]
                    batch.n_seq_id[s] = 1
                    batch.seq_id[s][0] = s
                    batch.logits[s] = True
                    pos[s] += 1
                batch.n_tokens = b
                last = list(range(b))
                if L.llama_decode(ctx, batch) != 0:
                    sys.exit("llama_decode failed (decode)")
            return time.perf_counter() - t0, t_prefill, generated

        run(4)  # warm-up
        wall, t_prefill, generated = run(args.new_tokens)
        row = {
            "engine": "llama.cpp",
            "version": L.__version__,
            "model": args.model,
            "dtype": "gguf (Q4_1 + Q8_0 kernels)",
            "batch": b,
            "new_tokens": args.new_tokens,
            "prompt_tokens": n_prompt,
            "generated_tokens": generated,
            "prompt_tps": n_prompt / t_prefill,
            "gen_tps": generated / wall,
            "decode_tps": (generated - b) / max(wall - t_prefill, 1e-9),
            "wall_s": wall,
            "threads": args.threads,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
        L.llama_batch_free(batch)
        for ch in samplers:
            L.llama_sampler_free(ch)
        L.llama_free(ctx)
    if args.out:
        with open(args.out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
