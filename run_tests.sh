#!/usr/bin/env bash
# The test command: sets up .venv if needed, then ruff and the import contract, the unit tests and every notebook
# (nbval, ci profile).
# Extra arguments go to pytest, e.g.  ./run_tests.sh -k readers
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup_env.sh
source scripts/env.sh
export ASLKIT_PROFILE="${ASLKIT_PROFILE:-ci}"
# Tests and notebooks under test see only their own tree (synthetic ci data, their own logs), never input/ or logs/.
export ASLKIT_ROOT="${ASLKIT_ROOT:-$PWD/.test_root}"
export ASLKIT_SYNTH_SIZE="${ASLKIT_SYNTH_SIZE:-$ASLKIT_PROFILE}"
# The layout's rules first (seconds): ruff, and the import contract of pyproject.toml (layers, no cycles).
ruff check src tests benchmarks
lint-imports --no-cache
exec python -m pytest tests --nbval-lax --nbval-current-env notebooks "$@" </dev/null
