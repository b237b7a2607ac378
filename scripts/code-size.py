#!/usr/bin/env python3
"""Code-size counts for issue #20's acceptance: source files over 700 lines and functions
over 120 lines in crates/*/src, excluding `#[cfg(test)]` modules (tests; also when kept in
their own `*_tests.rs` file) and files under tests/ or benches/. Prints the offenders and the totals.

usage: python3 scripts/code-size.py [--max-file 700] [--max-fn 120] [ROOT]
       python3 scripts/code-size.py --per-commit A..B [ROOT]   (non-test delta per commit and crate)
"""
import argparse
import pathlib
import re
import subprocess
import sys


def blank_strings_and_comments(src: str) -> str:
    """Same length, with comment and literal contents replaced by spaces (newlines kept)."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', src[i:i + 300]) and not (i and (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'r(#*)"', src[i:])
            end = '"' + m.group(1)
            j = src.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "'":
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|\\.|[^\\'])'", src[i:i + 16])
            if m:
                out.append(" " * m.end())
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def match_brace(text: str, open_idx: int) -> int:
    depth = 0
    for j in range(open_idx, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(text) - 1


def test_ranges(text: str):
    """Character ranges of `#[cfg(test)] mod x { ... }` blocks."""
    ranges = []
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        ranges.append((m.start(), match_brace(text, m.end() - 1)))
    return ranges


def functions(text: str):
    """(name, start line, line count) of every fn with a body."""
    res = []
    for m in re.finditer(r"\bfn\s+(\w+)", text):
        # the body starts at the first `{` at paren/bracket depth 0 before any `;`
        depth, j = 0, m.end()
        while j < len(text):
            ch = text[j]
            if ch in "([<":
                depth += 1 if ch != "<" else 0
            elif ch in ")]":
                depth -= 1
            elif ch == ";" and depth == 0:
                j = -1
                break
            elif ch == "{" and depth == 0:
                break
            j += 1
        if j < 0 or j >= len(text):
            continue
        end = match_brace(text, j)
        l0 = text.count("\n", 0, m.start()) + 1
        l1 = text.count("\n", 0, end) + 1
        res.append((m.group(1), l0, l1 - l0 + 1, m.start()))
    return res


def count(name: str, src: str):
    """(lines, test lines, blanked text, test ranges) of one source file named `name`."""
    text = blank_strings_and_comments(src)
    lines = src.count("\n") + (0 if src.endswith("\n") else 1)
    tr = test_ranges(text)
    if name == "tests.rs" or name.endswith("_tests.rs"):
        tr = [(0, len(text))]  # a test module in its own file
    test_lines = min(lines, sum(text.count("\n", s, e) + 1 for s, e in tr))
    return lines, test_lines, text, tr


SRC = re.compile(r"^crates/([^/]+)/src/.*\.rs$")


def git(root, *args):
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True).stdout


def per_commit(root, rev_range):
    """Non-test line delta per crate of each non-merge commit in `rev_range` against its
    first parent (files under crates/*/src, counted as above), as TSV: commit, crate deltas,
    total, subject; then the sum and what the merges added (range total minus the sum)."""
    def nontest(rev, path):
        r = subprocess.run(["git", "-C", str(root), "show", f"{rev}:{path}"],
                           capture_output=True, text=True)
        if r.returncode:
            return 0  # absent at rev
        lines, test_lines, _, _ = count(pathlib.PurePath(path).name, r.stdout)
        return lines - test_lines

    def delta(a, b):
        d = {}
        for path in git(root, "diff", "--no-renames", "--name-only", a, b, "--", "crates").split():
            m = SRC.match(path)
            if m:
                d[m.group(1)] = d.get(m.group(1), 0) + nontest(b, path) - nontest(a, path)
        return d

    total = {}
    print("commit\tdelta\tper crate\tsubject")
    for c in git(root, "rev-list", "--reverse", "--no-merges", rev_range).split():
        d = delta(f"{c}^", c)
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
        crates = " ".join(f"{k}{v:+d}" for k, v in sorted(d.items()) if v)
        subject = git(root, "log", "-1", "--format=%s", c).strip()
        print(f"{c[:7]}\t{sum(d.values()):+d}\t{crates}\t{subject}")
    a, b = rev_range.split("..")
    whole = delta(a, b)
    print(f"sum of commits\t{sum(total.values()):+d}")
    print(f"merges (range minus sum)\t{sum(whole.values()) - sum(total.values()):+d}")
    print(f"range {rev_range}\t{sum(whole.values()):+d}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-file", type=int, default=700)
    ap.add_argument("--max-fn", type=int, default=120)
    ap.add_argument("--per-commit", metavar="A..B",
                    help="instead: each non-merge commit's non-test line delta per crate")
    ap.add_argument("root", nargs="?", default=".")
    a = ap.parse_args()
    root = pathlib.Path(a.root)
    if a.per_commit:
        return per_commit(root, a.per_commit)
    files = sorted(p for p in root.glob("crates/*/src/**/*.rs"))
    total = total_nontest = 0
    big_files, big_fns = [], []
    for p in files:
        lines, test_lines, text, tr = count(p.name, p.read_text())
        total += lines
        total_nontest += lines - test_lines
        rel = p.relative_to(root)
        if lines - test_lines > a.max_file:
            big_files.append((lines - test_lines, lines, str(rel)))
        for name, l0, cnt, pos in functions(text):
            if any(s <= pos <= e for s, e in tr):
                continue
            if cnt > a.max_fn:
                big_fns.append((cnt, f"{rel}:{l0} {name}"))
    print(f"files over {a.max_file} lines (non-test lines / all lines):")
    for nt, al, f in sorted(big_files, reverse=True):
        print(f"  {nt:5} {al:5}  {f}")
    print(f"functions over {a.max_fn} lines:")
    for cnt, f in sorted(big_fns, reverse=True):
        print(f"  {cnt:5}  {f}")
    print(f"files: {len(files)}  lines: {total}  non-test lines: {total_nontest}")
    print(f"files > {a.max_file}: {len(big_files)}  functions > {a.max_fn}: {len(big_fns)}")


if __name__ == "__main__":
    sys.exit(main())
