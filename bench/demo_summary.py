#!/usr/bin/env python3
"""Per-iteration figures of an `rzero run` directory as JSON lines (for bench/results/demo.jsonl).

    python3 bench/demo_summary.py RUN_DIR [--label TEXT] [--date D] [--wall-s S] [--cpu-s S]

Per iteration: the Challenger's per-step reward, format-valid share and adv_nonzero_frac; the
dataset counts; the Solver's per-step reward and adv_nonzero_frac; eval pass@1 and the label
audit; stage seconds (wall) from the metric rows. --wall-s / --cpu-s add a total row.
"""
import argparse
import json
import os
import sys


def rows(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [json.loads(l) for l in f if l.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--label", default="")
    ap.add_argument("--wall-s", type=float)
    ap.add_argument("--cpu-s", type=float)
    ap.add_argument("--date", default="")
    a = ap.parse_args()
    m = rows(a.run)
    iters = sorted({r["iter"] for r in m})
    out = []
    for it in iters:
        rs = [r for r in m if r["iter"] == it]
        steps = lambda ph: sorted(
            (r for r in rs if r.get("phase") == ph and "update" not in r and "skipped" not in r),
            key=lambda r: r.get("step", 0),
        )
        ch, so = steps("challenger"), steps("solver")
        ds = [r for r in rs if r.get("phase") == "dataset"]
        ev = [r for r in rs if r.get("phase") == "eval"]
        au = [r for r in rs if r.get("phase") == "audit"]
        rnd = lambda x: None if x is None else round(x, 4)
        row = {"bench": "demo_iteration", "date": a.date, "label": a.label, "iter": it}
        if ch:
            row["challenger"] = {
                "steps": len(ch),
                "reward_mean_per_step": [rnd(r.get("reward_mean")) for r in ch],
                "format_valid_frac_per_step": [rnd(r.get("format_valid_frac")) for r in ch],
                "adv_nonzero_frac_per_step": [rnd(r.get("adv_nonzero_frac")) for r in ch],
                "seconds": round(sum(r.get("seconds", 0) for r in ch), 1),
            }
        if ds:
            d = ds[-1]
            row["dataset"] = {k: d.get(k) for k in ("generated", "valid", "kept", "truncated", "p_hat_hist")}
            row["dataset"]["seconds"] = round(d.get("seconds", 0), 1)
        if so:
            row["solver"] = {
                "steps": len(so),
                "reward_mean_per_step": [rnd(r.get("reward_mean")) for r in so],
                "accuracy_mean_per_step": [rnd(r.get("accuracy_mean")) for r in so],
                "adv_nonzero_frac_per_step": [rnd(r.get("adv_nonzero_frac")) for r in so],
                "seconds": round(sum(r.get("seconds", 0) for r in so), 1),
            }
        elif any(r.get("phase") == "solver" and "skipped" in r for r in rs):
            row["solver"] = {"skipped": True}
        for r in ev:
            row.setdefault("eval", {})[r["bench"]] = {"pass@1": rnd(r.get("pass@1")), "n": r.get("n")}
        for r in au:
            row["audit"] = {"label_accuracy": rnd(r.get("label_accuracy")), "n": r.get("n"),
                            "kept": r.get("kept"), "kept_label_accuracy": rnd(r.get("kept_label_accuracy"))}
        out.append(row)
    if a.wall_s is not None or a.cpu_s is not None:
        out.append({"bench": "demo_total", "date": a.date, "label": a.label,
                    "wall_s": a.wall_s, "cpu_s": a.cpu_s})
    for r in out:
        print(json.dumps(r, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
