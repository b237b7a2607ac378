#!/usr/bin/env bash
# Create (or reuse) the Python venv of the test peers and print its python's path.
#
#   PY="$(bash scripts/py-venv.sh)"     # -> ~/.cache/rzero/venv-<hash>/bin/python
#
# The venv lives in ${RZERO_CACHE:-~/.cache/rzero}/venv-<first 16 hex of sha256 of
# scripts/py-requirements.txt>, so it is built once per set of pinned versions and cached
# (CI caches ~/.cache/rzero). Packages come from PyPI with `pip install -r`. A venv is only
# used once its install finished (a marker file), so an interrupted install is redone.
# Exit status: 0 with the path on stdout; non-zero with the reason on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

REQ="scripts/py-requirements.txt"
BASE_PY="${PYTHON:-python3}"
CACHE="${RZERO_CACHE:-${HOME:-/tmp}/.cache/rzero}"

die() { echo "py-venv: $*" >&2; exit 1; }

[ -f "$REQ" ] || die "$REQ not found"
command -v "$BASE_PY" >/dev/null 2>&1 || die "$BASE_PY not found (set PYTHON)"
HASH="$("$BASE_PY" -c 'import hashlib,sys;print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest()[:16])' "$REQ")"
VENV="${CACHE}/venv-${HASH}"
MARK="${VENV}/.rzero-complete"

if [ -f "$MARK" ] && [ -x "${VENV}/bin/python" ]; then
    echo "${VENV}/bin/python"
    exit 0
fi

mkdir -p "$CACHE" || die "cannot create $CACHE"
# One builder at a time (tests running in parallel may all ask for the venv).
if command -v flock >/dev/null 2>&1; then
    exec 9>"${VENV}.lock"
    flock 9
    if [ -f "$MARK" ] && [ -x "${VENV}/bin/python" ]; then
        echo "${VENV}/bin/python"
        exit 0
    fi
fi
rm -rf "$VENV"
START=$(date +%s)
echo "py-venv: creating ${VENV} from ${REQ} (first time only; torch is a large download)" >&2
"$BASE_PY" -m venv "$VENV" || die "python -m venv failed"
"${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$REQ" >&2 \
    || die "pip install -r $REQ failed (see above)"
"${VENV}/bin/python" - >&2 <<'PYEOF' || die "the new venv cannot import its packages"
import torch, transformers, peft, safetensors, nltk, sklearn, math_verify  # noqa: F401
print(f"py-venv: torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")
PYEOF
echo "$(date -u +%FT%TZ) $(( $(date +%s) - START ))s" > "$MARK"
echo "py-venv: ready in $(( $(date +%s) - START ))s" >&2
echo "${VENV}/bin/python"
