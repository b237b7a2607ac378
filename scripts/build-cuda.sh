#!/usr/bin/env bash
# Builds rzero with CUDA (`--features cuda`, candle's CUDA backend) for sm_90 (H100/H200).
#
#   bash scripts/build-cuda.sh           release binary: target-cuda/release/rzero
#   bash scripts/build-cuda.sh --check   `cargo check --features cuda` only (what CI runs)
#   bash scripts/build-cuda.sh --env     print the environment exports and exit (for `eval`)
#
# With a system CUDA toolkit (nvcc on PATH, or CUDA_HOME / CUDA_PATH set) that toolkit is used.
# Otherwise the toolkit comes from PyPI (docs: ../shared/docs/gpu.md), installed once into a
# venv cached under ~/.cache/rzero/cuda-venv (about 1.2 GB), and a CUDA root of symlinks is
# made beside it (~/.cache/rzero/cuda-root: bin/, include/, lib64/ with unversioned library
# names, and lib64/stubs/libcuda.so, a stub of the driver built with the C compiler: the
# link step needs libcuda.so; at run time the GPU machine's driver is loaded).
#
# The build uses its own target dir (target-cuda, or $CARGO_TARGET_DIR) so that it does not
# invalidate the CPU build. CUDA_COMPUTE_CAP defaults to 90.
#
# Running the binary: on the GPU machine, libcuda.so.1 comes with the driver and the CUDA 13
# libraries (cublas, cublasLt, curand, cudart, nvrtc) from PyTorch's site-packages/nvidia/cu13/lib
# or the toolkit; `scripts/gpu-check.sh` finds them. On a machine without a GPU the binary runs
# (CPU devices only) with LD_LIBRARY_PATH=~/.cache/rzero/cuda-root/lib64/stubs:~/.cache/rzero/cuda-root/lib64.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=build
case "${1:-}" in
    "") ;;
    --check) mode=check ;;
    --env) mode=env ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--check|--env]" >&2; exit 2 ;;
esac

CACHE="${RZERO_CUDA_CACHE:-$HOME/.cache/rzero}"
VENV="$CACHE/cuda-venv"
ROOT="$CACHE/cuda-root"
TOOLKIT_SPEC="cuda-toolkit[cublas,cudart,curand,nvrtc,nvcc,crt,nvvm,cccl]==13.0.2"

log() { echo "build-cuda: $*" >&2; }

system_cuda() {
    local home="${CUDA_HOME:-${CUDA_PATH:-}}"
    if [ -n "$home" ] && [ -x "$home/bin/nvcc" ]; then
        echo "$home"
    elif command -v nvcc >/dev/null 2>&1; then
        dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")"
    fi
}

pypi_cuda() {
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    local nv
    nv=$(ls -d "$VENV"/lib/python3*/site-packages/nvidia/cu13 2>/dev/null | head -n1 || true)
    if [ -z "$nv" ] || [ ! -x "$nv/bin/nvcc" ] || [ ! -e "$nv/lib/libcublas.so.13" ]; then
        log "installing the CUDA toolkit from PyPI ($TOOLKIT_SPEC, about 1.2 GB)"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "$TOOLKIT_SPEC" >&2
        nv=$(ls -d "$VENV"/lib/python3*/site-packages/nvidia/cu13 | head -n1)
    fi
    # The CUDA root: bin and include as links, lib64 a folder of links with unversioned names.
    mkdir -p "$ROOT/lib64/stubs"
    ln -sfn "$nv/bin" "$ROOT/bin"
    ln -sfn "$nv/include" "$ROOT/include"
    ln -sfn "$nv/nvvm" "$ROOT/nvvm"
    local f base
    for f in "$nv"/lib/*.so* "$nv"/lib/*.a; do
        [ -e "$f" ] || continue
        base=$(basename "$f")
        ln -sfn "$f" "$ROOT/lib64/$base"
        case "$base" in
            *.so.*) ln -sfn "$f" "$ROOT/lib64/${base%%.so.*}.so" ;;
        esac
    done
    # libcuda.so: a stub exporting every driver entry point cudarc declares; each returns
    # CUDA_ERROR_NO_DEVICE (100), so the binary starts on a machine without a GPU and
    # reports that CUDA is not usable.
    if [ ! -e "$ROOT/lib64/stubs/libcuda.so" ]; then
        local sys
        sys=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs 2>/dev/null | tail -n1 || true)
        if [ -z "$sys" ]; then
            log "fetching crates (cudarc) to list the driver's entry points"
            cargo fetch --locked >&2
            sys=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs | tail -n1)
        fi
        local tmp
        tmp=$(mktemp -d)
        grep -oE 'pub unsafe fn cu[A-Za-z0-9_]+\(' "$sys" | sed -E 's/pub unsafe fn (cu[A-Za-z0-9_]+)\(/\1/' |
            sort -u | awk '{print "int " $1 "(void) { return 100; }"}' >"$tmp/stub.c"
        cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$tmp/libcuda.so" "$tmp/stub.c"
        mv "$tmp/libcuda.so" "$ROOT/lib64/stubs/libcuda.so"
        rm -rf "$tmp"
        log "built the libcuda.so stub ($(grep -c . <<<"$(nm -D --defined-only "$ROOT/lib64/stubs/libcuda.so" | grep ' T cu')") entry points)"
    fi
    ln -sfn libcuda.so "$ROOT/lib64/stubs/libcuda.so.1"
    echo "$ROOT"
}

CUDA_ROOT_DIR=$(system_cuda)
if [ -n "$CUDA_ROOT_DIR" ]; then
    log "using the system CUDA toolkit at $CUDA_ROOT_DIR"
else
    CUDA_ROOT_DIR=$(pypi_cuda)
    log "using the PyPI CUDA toolkit at $CUDA_ROOT_DIR"
fi

export CUDA_ROOT="$CUDA_ROOT_DIR" CUDA_PATH="$CUDA_ROOT_DIR" CUDA_HOME="$CUDA_ROOT_DIR"
export PATH="$CUDA_ROOT_DIR/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
# The check keeps its build under ~/.cache (CI keeps that folder between runs, a fresh clone
# does not keep target-cuda/): nvcc's build of candle's kernels is then done once per machine.
if [ "$mode" = check ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rzero/target-cuda-check}"
else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target-cuda}"
fi
libs="$CUDA_ROOT_DIR/lib64"
[ -d "$CUDA_ROOT_DIR/lib64/stubs" ] && libs="$libs:$CUDA_ROOT_DIR/lib64/stubs"
export LIBRARY_PATH="$libs${LIBRARY_PATH:+:$LIBRARY_PATH}"

if [ "$mode" = env ]; then
    for v in CUDA_ROOT CUDA_PATH CUDA_HOME PATH CUDA_COMPUTE_CAP CARGO_TARGET_DIR LIBRARY_PATH; do
        printf 'export %s=%q\n' "$v" "${!v}"
    done
    printf 'export LD_LIBRARY_PATH=%q\n' "$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    exit 0
fi

nvcc --version | tail -n 2 >&2
start=$(date +%s)
if [ "$mode" = check ]; then
    cargo check --locked --workspace --features rzero-cli/cuda
    log "cargo check --features cuda: OK in $(($(date +%s) - start)) s"
else
    cargo build --locked --release -p rzero-cli --features cuda
    bin="$CARGO_TARGET_DIR/release/rzero"
    log "built $bin ($(du -h "$bin" | cut -f1)) in $(($(date +%s) - start)) s"
    log "run it here (CPU devices only): LD_LIBRARY_PATH=$libs $bin --help"
fi
