#!/usr/bin/env python3
"""Peer for `rzero bench cluster`: R-Zero's repetition-penalty clustering in Python.

Computes what R-Zero's `examples/reward_function/caller_penalty.py` computes for a batch:
for every pair i < j, `sentence_bleu([s[j].split()], s[i].split(),
smoothing_function=SmoothingFunction().method1)`, distance 1 - bleu mirrored into a full
matrix, then `AgglomerativeClustering(n_clusters=None, distance_threshold=t,
metric="precomputed", linkage="average").fit_predict`.

Usage: cluster_peer.py QUESTIONS.jsonl [--threshold 0.5] [--distances OUT.npy]
Input lines carry a "question" field. Prints one JSON object: n, bleu_seconds,
cluster_seconds, seconds, labels. Exit status 3 when nltk/scikit-learn are missing.
"""

import argparse
import json
import sys
import time

try:
    import numpy as np
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from sklearn.cluster import AgglomerativeClustering
except ImportError as e:  # the Rust side reports "peer unavailable"
    print(json.dumps({"error": f"missing python package: {e}"}))
    sys.exit(3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("--threshold", type=float, default=0.5)
    args = ap.parse_args()
    with open(args.input, encoding="utf-8") as f:
        questions = [json.loads(line)["question"] for line in f if line.strip()]
    n = len(questions)

    t0 = time.perf_counter()
    smoother = SmoothingFunction().method1
    tokens = [q.split() for q in questions]
    dist = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            score = sentence_bleu([tokens[j]], tokens[i], smoothing_function=smoother)
            dist[i, j] = dist[j, i] = 1 - score
    t1 = time.perf_counter()
    if n >= 2:
        labels = AgglomerativeClustering(
            n_clusters=None,
            distance_threshold=args.threshold,
            metric="precomputed",
            linkage="average",
        ).fit_predict(dist)
        labels = [int(x) for x in labels]
    else:
        labels = [0] * n
    t2 = time.perf_counter()
    print(json.dumps({
        "n": n,
        "bleu_seconds": t1 - t0,
        "cluster_seconds": t2 - t1,
        "seconds": t2 - t0,
        "labels": labels,
    }))


if __name__ == "__main__":
    main()
