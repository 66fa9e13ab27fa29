#!/usr/bin/env bash
# The main job: sets up .venv if needed, resolves the data of the competitions (the kit's synthetic data when no
# real download is in input/<slug>/), and executes every notebook headless with papermill, once per competition,
# into logs/<run>/notebooks/<task>/ (run folders in logs/<run>/<task>/).
# Usage: ./run_all.sh [asl-signs] [asl-fingerspelling]   (default: both). Profile: ASLKIT_PROFILE=ci|quick|full
# (default quick).
set -euo pipefail
cd "$(dirname "$0")"
TASKS=("$@")
[ ${#TASKS[@]} -eq 0 ] && TASKS=(asl-signs asl-fingerspelling)
for task in "${TASKS[@]}"; do
  case "$task" in asl-signs|asl-fingerspelling) ;; *) echo "unknown task '$task' (asl-signs or asl-fingerspelling)" >&2; exit 2;; esac
done
bash scripts/setup_env.sh
source scripts/env.sh
PROFILE="${ASLKIT_PROFILE:-quick}"
export ASLKIT_PROFILE="$PROFILE" ASLKIT_SYNTH_SIZE="${ASLKIT_SYNTH_SIZE:-$PROFILE}"
RUN="logs/run_all_${PROFILE}_$(date +%Y%m%d_%H%M%S)"
for task in "${TASKS[@]}"; do
  python -m aslkit data --task "$task" --preset "$PROFILE"
done
for task in "${TASKS[@]}"; do
  mkdir -p "$RUN/notebooks/$task"
  for nb in notebooks/[0-9][0-9]_*.ipynb; do
    echo "[run_all] $task: $nb -> $RUN/notebooks/$task/"
    python -m papermill "$nb" "$RUN/notebooks/$task/$(basename "$nb")" -k python3 --cwd notebooks \
      -p profile "$PROFILE" -p task "$task" -p run_dir "$(pwd)/$RUN" -p run "$(pwd)/$RUN/$task" \
      --log-output --no-progress-bar
  done
done
echo "[run_all] done: $RUN"
