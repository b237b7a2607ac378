#!/usr/bin/env python3
"""Cross-check of the reward crate against NLTK 3.9.1 + scikit-learn 1.7.0.

Build the helper first:
  CARGO_TARGET_DIR=target-reward cargo build --release -p reward --example cluster_jsonl
then run with a python that has nltk, scikit-learn and scipy:
  python crates/reward/scripts/crosscheck.py [--big]
Default: BLEU distances compared bit for bit with NLTK and partitions with scikit-learn on
realistic, tie-heavy, duplicate-heavy and whitespace-edge batches (n <= 512).
--big: partitions only (scikit-learn fed the Rust distances) at n = 2,500..3,000, which
exercises the two-thread nearest-neighbour scan.
"""
import os, sys
import json, random, subprocess, sys, glob
import numpy as np
from nltk.translate.bleu_score import sentence_bleu, SmoothingFunction
from sklearn.cluster import AgglomerativeClustering
EX = os.environ.get("CLUSTER_JSONL", os.path.join(os.path.dirname(__file__), "../../../target-reward/release/examples/cluster_jsonl"))
sm = SmoothingFunction().method1

def bench_questions():
    qs = []
    for f in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../data/benchmarks/*.jsonl"))):
        for line in open(f):
            qs.append(json.loads(line)["question"])
    return qs

def edit(q, rng):
    t = q.split()
    if not t: return q
    k = rng.randrange(3)
    if k == 0: t[rng.randrange(len(t))] = str(rng.randrange(100))
    elif k == 1 and len(t) > 1: del t[rng.randrange(len(t))]
    return " ".join(t)

def check(name, qs, full=True):
    inp = "".join(json.dumps({"question": q}) + "\n" for q in qs)
    out = json.loads(subprocess.run([EX, "--distances"], input=inp.encode(), capture_output=True, check=True).stdout)
    n = len(qs)
    toks = [q.split() for q in qs]
    D = np.zeros((n, n))
    cond = []
    for i in range(n):
        for j in range(i + 1, n):
            s = sentence_bleu([toks[j]], toks[i], smoothing_function=sm)
            D[i, j] = D[j, i] = 1 - s
            cond.append(1 - s)
    cond = np.array(cond)
    got = np.array(out["distances"])
    nbad = int((cond != got).sum())
    labels = AgglomerativeClustering(n_clusters=None, distance_threshold=0.5, metric="precomputed", linkage="average").fit_predict(D)
    a, b = list(labels), out["labels"]
    ok = len(set(zip(a, b))) == len(set(a)) == len(set(b))
    print(f"{name}: n={n} distance mismatches={nbad} maxdiff={np.abs(cond-got).max():.3e} clusters={len(set(a))} same_partition={ok}")
    return nbad == 0 and ok

rng = random.Random(0)
bq = bench_questions()
allok = True
# realistic: benchmark + edited copies
base = rng.sample(bq, 400)
qs = base + [edit(rng.choice(base), rng) for _ in range(112)]
rng.shuffle(qs)
allok &= check("bench+edits 512", qs)
# tie-heavy: tiny vocabulary, short
for seed in range(5):
    r = random.Random(seed)
    voc = ["a", "b", "c", "d"]
    qs = [" ".join(r.choice(voc) for _ in range(r.randrange(0, 7))) for _ in range(150)]
    allok &= check(f"tiny-vocab {seed}", qs)
# duplicates heavy
for seed in range(3):
    r = random.Random(100 + seed)
    pool = r.sample(bq, 30)
    qs = [edit(r.choice(pool), r) if r.random() < 0.5 else r.choice(pool) for _ in range(200)]
    allok &= check(f"dups {seed}", qs)
# whitespace edge cases
qs = ["a\u001fb c d", "a b c d", "a\u00a0b\u3000c d", "", "x", "x", "a\u200bb c d", "a\tb\nc  d e"] * 4
allok &= check("whitespace", qs)
print("ALL OK" if allok else "MISMATCH")

if "--big" in sys.argv:
    from scipy.spatial.distance import squareform
    def run(name, qs):
        inp = "".join(json.dumps({"question": q}) + "\n" for q in qs)
        out = json.loads(subprocess.run([EX, "--distances"], input=inp.encode(), capture_output=True, check=True).stdout)
        D = squareform(np.array(out["distances"]))
        a = AgglomerativeClustering(n_clusters=None, distance_threshold=0.5, metric="precomputed", linkage="average").fit_predict(D)
        b = out["labels"]
        ok = len(set(zip(a, b))) == len(set(a)) == len(set(b))
        print(f"{name}: n={len(qs)} clusters={len(set(a))} same_partition={ok}")
    pass
    r = random.Random(5)
    def edit(q):
        t = q.split()
        if len(t) < 2: return q
        t[r.randrange(len(t))] = str(r.randrange(100)); return " ".join(t)
    run("bench+edits 3000", [edit(r.choice(bq)) if r.random() < 0.4 else r.choice(bq) for _ in range(3000)])
    voc = ["a", "b", "c", "d", "e"]
    run("tiny-vocab 2600", [" ".join(r.choice(voc) for _ in range(r.randrange(0, 9))) for _ in range(2600)])
    run("pool-dups 2500", [edit(x) if r.random() < 0.5 else x for x in (r.choice(bq[:300]) for _ in range(2500))])
