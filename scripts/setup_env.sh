#!/usr/bin/env bash
# Creates (or reuses) the kit's virtual environment: torch first (the pinned CPU wheel), then the exact pins of
# requirements.txt (and the video extra's, requirements-video.txt), then the kit in editable mode, the torchvision shim, and the venv's own Jupyter kernel.
# Re-installs only when a stamp of the inputs (requirements, pyproject, this script, the shim) changes.
# Usage: bash scripts/setup_env.sh        (ASLKIT_VENV to use another folder, PYTHON for the base interpreter)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ASLKIT_VENV:-$ROOT/.venv}"
BASE_PY="${PYTHON:-python3}"
SHIM="$ROOT/src/aslkit/compat/torchvision_shim.py"
STAMP="$VENV/.aslkit-setup-stamp"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)

hash_inputs() {
  cat "$ROOT/requirements.txt" "$ROOT/requirements-video.txt" "$ROOT/pyproject.toml" "$ROOT/scripts/setup_env.sh" "$SHIM" | sha256sum | cut -d' ' -f1
}
WANT="$(hash_inputs)"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "[setup] reusing $VENV (requirements unchanged)"
  exit 0
fi

echo "[setup] building $VENV (this takes a few minutes the first time)"
[ -x "$VENV/bin/python" ] || "$BASE_PY" -m venv "$VENV"
TORCH_PIN="$(grep -E '^torch==' "$ROOT/requirements.txt")"
"${PIP[@]}" install -q "$TORCH_PIN"                                      # alone first: takes the local CPU wheel
"${PIP[@]}" install -q -r "$ROOT/requirements.txt"
"${PIP[@]}" install -q -r "$ROOT/requirements-video.txt" -c "$ROOT/requirements.txt"   # the video extra (tests)
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cp "$SHIM" "$SITE/_aslkit_torchvision_shim.py"
echo "import _aslkit_torchvision_shim as _s; _s.install()" > "$SITE/_aslkit_torchvision_shim.pth"

# The venv's own kernel (absolute interpreter path); run_all.sh / run_tests.sh put this kernel dir first.
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (aslkit .venv)" >/dev/null
"$VENV/bin/python" -m pip check >/dev/null || { echo "[setup] pip check failed"; "$VENV/bin/python" -m pip check; exit 1; }
echo "$WANT" > "$STAMP"
echo "[setup] ready: $VENV"
