#!/usr/bin/env python3
"""The Python side of the peer round-trip tests (crates/cli/tests/peers.rs).

Run with the venv of scripts/py-venv.sh (pinned torch, transformers, peft, safetensors).
Everything is float32 on one CPU thread with eager attention. Each command prints one JSON
object on stdout.

  peer.py logprobs MODEL_DIR ITEMS_JSONL [--adapter DIR] [--merged-out DIR]
      Per-token log-probs of each item ({"prompt_ids", "completion_ids"}) the way `rzero score`
      defines them: log_softmax(logits at position len(prompt)+i-1)[completion_ids[i]], one
      unpadded forward per item. With --adapter, the model is
      peft.PeftModel.from_pretrained(base, DIR); with --merged-out, merge_and_unload() is then
      saved there (save_pretrained, safetensors) and the log-probs are those of the merged model
      too (both are printed).
      -> {"logprobs": [[...], ...], "merged_logprobs": [[...], ...] | null, "versions": {...}}

  peer.py save-bf16 MODEL_DIR OUT_DIR MAX_SHARD_SIZE
      Loads MODEL_DIR, casts to bfloat16 and save_pretrained(OUT_DIR, max_shard_size=...,
      safe_serialization=True) (sharded safetensors + index), and copies the tokenizer files.
      -> {"shards": [file names], "dtype": "torch.bfloat16", "versions": {...}}
      (The test then runs `logprobs OUT_DIR ...`: transformers reloads the bf16 files and
      computes in float32, as rzero does.)
"""
import json
import os
import shutil
import sys

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
import torch  # noqa: E402
import transformers  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


def versions():
    v = {"python": sys.version.split()[0], "torch": torch.__version__,
         "transformers": transformers.__version__}
    try:
        import peft
        v["peft"] = peft.__version__
    except ImportError:
        pass
    return v


def load(path, dtype=torch.float32):
    m = transformers.AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, attn_implementation="eager")
    m.eval()
    return m


def read_items(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@torch.no_grad()
def logprobs(model, items):
    out = []
    for it in items:
        p, c = it["prompt_ids"], it["completion_ids"]
        ids = torch.tensor([p + c], dtype=torch.long)
        logits = model(input_ids=ids).logits[0].float()
        lp = torch.log_softmax(logits, dim=-1)
        out.append([lp[len(p) + i - 1, t].item() for i, t in enumerate(c)])
    return out


def cmd_logprobs(args):
    model_dir, items_path = args[0], args[1]
    adapter = merged_out = None
    rest = args[2:]
    while rest:
        if rest[0] == "--adapter":
            adapter, rest = rest[1], rest[2:]
        elif rest[0] == "--merged-out":
            merged_out, rest = rest[1], rest[2:]
        else:
            raise SystemExit(f"peer.py logprobs: unknown argument {rest[0]}")
    items = read_items(items_path)
    model = load(model_dir)
    if adapter:
        import peft
        model = peft.PeftModel.from_pretrained(model, adapter)
        model.eval()
    res = {"logprobs": logprobs(model, items), "merged_logprobs": None, "versions": versions()}
    if merged_out:
        merged = model.merge_and_unload()
        merged.save_pretrained(merged_out, safe_serialization=True)
        res["merged_logprobs"] = logprobs(merged, items)
    print(json.dumps(res))


def cmd_save_bf16(args):
    src, out, shard = args
    model = load(src).to(torch.bfloat16)
    model.save_pretrained(out, max_shard_size=shard, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), os.path.join(out, f))
    shards = sorted(f for f in os.listdir(out) if f.endswith(".safetensors"))
    print(json.dumps({"shards": shards, "dtype": str(next(model.parameters()).dtype),
                      "versions": versions()}))


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "logprobs":
        cmd_logprobs(args)
    elif cmd == "save-bf16":
        cmd_save_bf16(args)
    else:
        raise SystemExit(f"peer.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
