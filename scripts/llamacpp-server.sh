#!/usr/bin/env bash
# Start llama.cpp's OpenAI-compatible server (llama-cpp-python's `llama_cpp.server`) on the
# SmolLM2 GGUF, for the remote-rollout test against a real llama.cpp server.
#
#   scripts/llamacpp-server.sh [--port 8081] [--model GGUF] [--background]
#
# First run: creates a virtualenv in ${RZERO_CACHE:-~/.cache/rzero}/llamacpp-venv and installs
# `llama-cpp-python[server]` from PyPI; PyPI ships it as a source package, so this builds
# llama.cpp (CPU only; about 10-15 minutes on 2 cores). Then:
#
#   RZERO_LLAMACPP_URL=http://127.0.0.1:8081 cargo test -p remote --test llamacpp -- --nocapture
#
# With --background the server is started with nohup, its log goes to
# ${RZERO_CACHE}/llamacpp-server.log, its pid to ${RZERO_CACHE}/llamacpp-server.pid, and the
# script returns once /v1/models answers (or fails after 120 s).
set -euo pipefail

CACHE="${RZERO_CACHE:-${HOME:-/tmp}/.cache/rzero}"
VENV="${CACHE}/llamacpp-venv"
PORT=8081
HOST=127.0.0.1
MODEL=""
BACKGROUND=0
while [ $# -gt 0 ]; do
    case "$1" in
        --port) PORT="$2"; shift 2 ;;
        --host) HOST="$2"; shift 2 ;;
        --model) MODEL="$2"; shift 2 ;;
        --background) BACKGROUND=1; shift ;;
        *) echo "llamacpp-server: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -z "$MODEL" ]; then
    MODEL="$(bash "$(dirname "$0")/fetch-smollm2.sh")"
fi
[ -f "$MODEL" ] || { echo "llamacpp-server: no model file $MODEL" >&2; exit 1; }

if [ ! -x "${VENV}/bin/python" ] || ! "${VENV}/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
    mkdir -p "$CACHE"
    python3 -m venv "$VENV"
    echo "llamacpp-server: building llama-cpp-python from source (takes a while)..." >&2
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
        "${VENV}/bin/pip" install --no-binary llama-cpp-python 'llama-cpp-python[server]' >&2
fi

# logits_all is needed for logprobs; n_ctx matches SmolLM2's 8192-token context; the alias is
# the `model` name clients send.
ARGS=(-m llama_cpp.server --model "$MODEL" --model_alias smollm2 --host "$HOST" --port "$PORT"
      --n_ctx 8192 --logits_all true --n_threads "${LLAMACPP_THREADS:-2}")
if [ "$BACKGROUND" = 0 ]; then
    exec "${VENV}/bin/python" "${ARGS[@]}"
fi
LOG="${CACHE}/llamacpp-server.log"
nohup "${VENV}/bin/python" "${ARGS[@]}" >"$LOG" 2>&1 &
echo $! >"${CACHE}/llamacpp-server.pid"
for _ in $(seq 1 240); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://${HOST}:${PORT}/v1/models', timeout=2)" 2>/dev/null; then
        echo "http://${HOST}:${PORT}"
        exit 0
    fi
    sleep 0.5
done
echo "llamacpp-server: the server did not come up; see $LOG" >&2
exit 1
