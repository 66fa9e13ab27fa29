# Sourced by run_all.sh and run_tests.sh after setup: puts the venv first on PATH (onnx2tf calls onnxsim by PATH)
# and makes Jupyter (papermill, nbval) find the venv's own kernel before any user-level one.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VIRTUAL_ENV="${ASLKIT_VENV:-$ROOT/.venv}"
export PATH="$VIRTUAL_ENV/bin:$PATH"
export JUPYTER_PATH="$VIRTUAL_ENV/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
export PYTHONHASHSEED="${PYTHONHASHSEED:-0}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
