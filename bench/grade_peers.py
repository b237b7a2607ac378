#!/usr/bin/env python3
"""Grades the same cases as `rzero bench grade` with the Python graders R-Zero uses.

Install (once):  pip install math-verify==0.7.0 mathruler==0.1.0 pylatexenc tqdm
                 (mathruler.grader imports pylatexenc, tqdm and sympy without declaring them)
Run:             python3 bench/grade_peers.py --cases CASES.jsonl   (prints one JSON object)

Each case line: {"pred", "gold", "expected", "pred_mode", "gold_mode"} where a mode of
"response" means the side is a full solution. math_verify: verify(parse(gold), parse(pred))
(parse extracts from full text itself). mathruler: grade_answer(pred, gold) on bare answers,
with extract_boxed_content for "response" sides, as R-Zero calls it. Timing is one process
(one core), per case wall time with time.perf_counter.
"""
import argparse
import json
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", required=True)
    args = ap.parse_args()
    cases = [json.loads(l) for l in open(args.cases) if l.strip()]

    from math_verify import parse, verify
    from mathruler.grader import extract_boxed_content, grade_answer

    def mv(c):
        return bool(verify(parse(c["gold"]), parse(c["pred"])))

    def mr(c):
        def side(s, mode):
            if mode == "response":
                b = extract_boxed_content(s)
                return None if b == "None" else b
            return s
        p, g = side(c["pred"], c["pred_mode"]), side(c["gold"], c["gold_mode"])
        if p is None or g is None:
            return False
        return bool(grade_answer(p, g))

    out = {}
    for name, fn in [("math_verify==0.7.0", mv), ("mathruler==0.1.0", mr)]:
        correct = 0
        worst = 0.0
        over = 0
        errors = 0
        t0 = time.perf_counter()
        for c in cases:
            t = time.perf_counter()
            try:
                r = fn(c)
            except Exception:
                r = False
                errors += 1
            dt = time.perf_counter() - t
            worst = max(worst, dt)
            over += dt > 0.05
            correct += r == c["expected"]
        total = time.perf_counter() - t0
        out[name] = {
            "cases": len(cases),
            "correct": correct,
            "accuracy": correct / len(cases),
            "grades_per_s": len(cases) / total,
            "worst_ms": worst * 1e3,
            "over_50ms": over,
            "errors": errors,
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
