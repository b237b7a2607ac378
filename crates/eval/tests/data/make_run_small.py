"""Writes run_small/: a small, realistic rzero run directory (2 iterations) used by the
report tests. Deterministic (fixed seed); the numbers are made up but shaped like a real run:
rising Challenger reward, Solver accuracy vs pseudo-labels rising within each iteration,
p̂ spread over [0.1, 1], label accuracy falling as p̂ falls.
Run: python3 make_run_small.py (from this folder)."""
import json, os, random

rng = random.Random(7)
root = "run_small"
os.makedirs(root, exist_ok=True)

def dump(path, obj):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")

def jsonl(path, rows):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

with open(os.path.join(root, "config.toml"), "w") as f:
    f.write('''# rzero run configuration (resolved)
seed = 42
iterations = 2
base_model = "HuggingFaceTB/SmolLM2-135M-Instruct"

[challenger]
group_size = 4
prompts_per_step = 16
steps = 5
temperature = 1.0
top_p = 0.99
max_new_tokens = 1024

[dataset]
questions = 40
m = 10
keep_band = [0.3, 0.8]

[solver]
group_size = 5
steps = 8
lr = 1e-6
kl_coef = 0.01

[eval]
benchmarks = ["gsm8k", "math500", "amc23"]
limit = 50
audit_limit = 40
''')

dump(os.path.join(root, "state.json"), {"iteration": 2, "stage": "done", "seed": 42})

metrics = []
problems = [
    ("A bag has {a} red and {b} blue marbles. Two are drawn without replacement. What is the probability both are red? Express your answer as a common fraction.", None),
    ("Find the sum of all positive integers $n$ such that $n^2 - {a}n + {b}$ is a perfect square.", None),
    ("Let $f(x) = x^3 - {a}x + {b}$. Compute $f(f(1))$.", None),
    ("How many ordered pairs $(x, y)$ of integers satisfy $x^2 + y^2 = {c}$?", None),
    ("A rectangle has perimeter {c} and area {a}{b}. What is the length of its diagonal?", None),
    ("What is the remainder when $7^{{{c}}}$ is divided by {a}?", None),
    ("In triangle $ABC$, $AB = {a}$, $BC = {b}$, and $\\angle B = 60^\\circ$. Find $AC^2$.", None),
    ("The arithmetic mean of {a} consecutive odd integers is {c}. What is the largest of them?", None),
]

for it in (1, 2):
    for step in range(5):
        t = (it - 1) * 5 + step
        valid = min(0.98, 0.55 + 0.07 * t + rng.uniform(-0.03, 0.03))
        r_unc = min(0.48, 0.18 + 0.025 * t + rng.uniform(-0.02, 0.02))
        r_rep = max(0.03, 0.22 - 0.015 * t + rng.uniform(-0.015, 0.015))
        reward = valid * r_unc + (1 - valid) * -1.0 - r_rep
        metrics.append({"iter": it, "phase": "challenger", "step": step, "reward_mean": round(reward, 4),
                        "r_unc_mean": round(r_unc, 4), "r_rep_mean": round(r_rep, 4),
                        "format_valid_frac": round(valid, 4), "kl": round(0.0004 * (step + 1) + rng.uniform(0, 0.0003), 6),
                        "loss": round(rng.uniform(-0.05, 0.05), 5), "response_len_mean": round(410 - 12 * t + rng.uniform(-15, 15), 1)})
    generated = 48
    valid_n = 40
    ds = []
    qs = []
    for i in range(valid_n):
        tmpl = problems[i % len(problems)][0]
        q = tmpl.format(a=rng.randint(2, 9), b=rng.randint(2, 9), c=rng.randint(10, 60))
        gold = str(rng.randint(1, 120))
        # p̂ = k/10; the Solver of iteration 2 agrees with itself more often.
        k = rng.choice([1, 2, 3, 3, 4, 5, 5, 6, 6, 7, 8, 9, 10, 10] if it == 1 else [2, 3, 4, 5, 6, 7, 7, 8, 8, 9, 10, 10, 10])
        label = gold if rng.random() < 0.35 + 0.06 * k else str(int(gold) + rng.randint(1, 9))
        others = [str(rng.randint(1, 120)) for _ in range(10 - k)]
        answers = [label] * k + [o if rng.random() > 0.2 else None for o in others]
        rng.shuffle(answers)
        extracted = [a for a in answers if a is not None]
        p_hat = round(k / len(extracted), 4)
        kept = 0.3 <= p_hat <= 0.8
        ds.append({"question": q, "label": label, "p_hat": p_hat, "answers": answers, "kept": kept})
        qs.append({"question": q, "answer": gold})
    jsonl(os.path.join(root, f"iter_{it}", "questions.jsonl"), qs)
    jsonl(os.path.join(root, f"iter_{it}", "dataset.jsonl"), ds)
    metrics.append({"iter": it, "phase": "dataset", "generated": generated, "valid": valid_n,
                    "kept": sum(d["kept"] for d in ds)})
    for step in range(8):
        acc = min(0.95, 0.42 + 0.05 * step + 0.08 * (it - 1) + rng.uniform(-0.03, 0.03))
        fmt = min(1.0, 0.7 + 0.03 * step + 0.1 * (it - 1))
        metrics.append({"iter": it, "phase": "solver", "step": step, "reward_mean": round(0.9 * acc + 0.1 * fmt, 4),
                        "accuracy_mean": round(acc, 4), "format_mean": round(fmt, 4),
                        "kl": round(0.0003 * (step + 1) + rng.uniform(0, 0.0002), 6), "loss": round(rng.uniform(-0.03, 0.03), 5),
                        "response_len_mean": round(300 + 9 * step + 20 * it + rng.uniform(-10, 10), 1)})

benches = [("gsm8k", 0.18), ("math500", 0.09), ("amc23", 0.05)]
for it in (0, 1, 2):
    rows = []
    for name, base in benches:
        p = round(base + 0.025 * it + rng.uniform(-0.01, 0.01), 4)
        rows.append({"name": name, "n": 50 if name != "amc23" else 40, "pass@1": p, "mean@k": None, "maj@k": None, "k": 0,
                     "no_answer_frac": round(0.3 - 0.05 * it, 3), "response_chars_mean": 900.0 + 40 * it})
    avg = round(sum(r["pass@1"] for r in rows) / len(rows), 6)
    res = {"model": "iter_%d/solver" % it if it else "HuggingFaceTB/SmolLM2-135M-Instruct",
           "options": {"model": "", "limit": 50, "samples": 0, "temperature": 0.6, "top_p": 0.95, "top_k": None,
                       "max_new_tokens": 1024, "batch_size": 64, "seed": 42},
           "benchmarks": rows, "average": {"pass@1": avg, "mean@k": None, "maj@k": None}}
    dump(os.path.join(root, f"iter_{it}", "eval", "results.json"), res)
    for r in rows:
        metrics.append({"iter": it, "phase": "eval", "bench": r["name"], "pass@1": r["pass@1"]})
    metrics.append({"iter": it, "phase": "eval", "bench": "average", "pass@1": avg})

    # Audit: label accuracy by band; falls as iterations go (harder questions not involved here,
    # the benchmark slice is fixed), kept band in the middle.
    lo_n, mid_n, hi_n = 14 - 2 * it, 16, 10 + 2 * it
    lo_c = round(lo_n * (0.2 + 0.02 * it)); mid_c = round(mid_n * (0.45 + 0.03 * it)); hi_c = round(hi_n * (0.8 + 0.03 * it))
    n = lo_n + mid_n + hi_n
    bands = [{"band": "0-0.3", "lo": 0.0, "hi": 0.3, "n": lo_n, "correct": lo_c, "accuracy": lo_c / lo_n},
             {"band": "0.3-0.8", "lo": 0.3, "hi": 0.8, "n": mid_n, "correct": mid_c, "accuracy": mid_c / mid_n},
             {"band": "0.8-1", "lo": 0.8, "hi": 1.0, "n": hi_n, "correct": hi_c, "accuracy": hi_c / hi_n}]
    hist = [0] * 11
    for b, cnt in ((range(0, 3), lo_n), (range(3, 9), mid_n), (range(9, 11), hi_n)):
        for j in range(cnt):
            hist[list(b)[j % len(b)]] += 1
    audit = {"model": res["model"], "options": {"model": res["model"], "limit": 40, "m": 10, "temperature": 1.0, "top_p": 1.0,
             "top_k": 40, "max_new_tokens": 1024, "filter": {"low": 0.3, "high": 0.8, "reference_content_filter": True}, "batch_size": 32, "seed": 42},
             "n": n, "labeled": n - 2, "label_accuracy": (lo_c + mid_c + hi_c) / n, "kept": mid_n,
             "kept_label_accuracy": mid_c / mid_n, "sample_accuracy": round(0.11 + 0.02 * it, 4), "bands": bands,
             "p_hat_hist": hist, "per_bench": [{"name": "gsm8k", "n": n, "label_accuracy": (lo_c + mid_c + hi_c) / n,
             "kept": mid_n, "kept_label_accuracy": mid_c / mid_n}]}
    dump(os.path.join(root, f"iter_{it}", "audit.json"), audit)
    metrics.append({"iter": it, "phase": "audit", "n": n, "label_accuracy": audit["label_accuracy"], "kept": mid_n,
                    "kept_label_accuracy": audit["kept_label_accuracy"]})

os.makedirs(os.path.join(root, "logs"), exist_ok=True)
with open(os.path.join(root, "logs", "run.log"), "w") as f:
    f.write("2026-11-25T18:00:00Z INFO iteration 1 challenger\n")
jsonl(os.path.join(root, "metrics.jsonl"), metrics)
