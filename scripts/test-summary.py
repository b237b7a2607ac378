#!/usr/bin/env python3
"""Per-crate test counts for scripts/test.sh.

  test-summary.py ARTIFACTS_JSON TEST_LOG [SKIP_LOG]

ARTIFACTS_JSON is `cargo test --no-run --message-format=json` output (it maps each test
executable to its package), TEST_LOG the output of the `cargo test` run itself (its
`Running ... (target/.../deps/name-hash)` / `Doc-tests crate` lines, each followed by a
`test result:` line). SKIP_LOG lists the allowed opt-outs that were taken (one per line;
see testdata::optional). Prints a table and exits non-zero if no test ran.
"""
import json
import os
import re
import sys
from collections import OrderedDict


def package_name(pkg):
    """The package name of a cargo package id: "path+file:///.../crates/serve#rzero-serve@0.1.0"
    (name after `#`), "path+file:///.../crates/model#0.1.0" (name = the folder) or the old
    "model 0.1.0 (path+...)". Doc-tests are named by the package's library (`rzero_serve`),
    so the package name, not the folder, keeps a crate's tests on one row."""
    m = re.search(r"#([A-Za-z0-9_.-]+)@", pkg) or re.search(r"/([A-Za-z0-9_.-]+)#", pkg)
    m = m or re.match(r"(\S+) ", pkg)
    return m.group(1) if m else pkg


def main():
    artifacts, log = sys.argv[1], sys.argv[2]
    skip_log = sys.argv[3] if len(sys.argv) > 3 else None
    exe_pkg = {}
    with open(artifacts) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            m = json.loads(line)
            if m.get("reason") == "compiler-artifact" and m.get("executable"):
                exe_pkg[os.path.basename(m["executable"])] = package_name(m["package_id"])
    counts = OrderedDict()
    current = None
    result = re.compile(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored")
    with open(log, errors="replace") as f:
        for line in f:
            m = re.search(r"Running .*\(([^)]*)\)", line)
            if m:
                current = exe_pkg.get(os.path.basename(m.group(1).strip()), "?")
                continue
            m = re.match(r"\s*Doc-tests (\S+)", line)
            if m:
                current = m.group(1).replace("_", "-")
                continue
            m = result.search(line)
            if m and current is not None:
                c = counts.setdefault(current, [0, 0, 0])
                for i in range(3):
                    c[i] += int(m.group(i + 1))
                current = None
    skips = []
    if skip_log and os.path.exists(skip_log):
        with open(skip_log) as f:
            skips = [l.rstrip("\n") for l in f if l.strip()]
    total = [0, 0, 0]
    print()
    print("tests run per crate:")
    print(f"  {'crate':<12} {'passed':>7} {'failed':>7} {'ignored':>8}")
    for k in sorted(counts):
        p, fl, ig = counts[k]
        total = [total[0] + p, total[1] + fl, total[2] + ig]
        print(f"  {k:<12} {p:>7} {fl:>7} {ig:>8}")
    print(f"  {'total':<12} {total[0]:>7} {total[1]:>7} {total[2]:>8}")
    print(f"  skipped (allowed opt-outs taken): {len(skips)}")
    for s in skips:
        print(f"    {s}")
    if total[0] + total[1] == 0:
        print("no test ran", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
