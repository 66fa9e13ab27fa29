#!/usr/bin/env bash
# The main job: sets up .venv if needed, resolves the data of the competitions (the kit's synthetic data when no
# real download is in input/<slug>/), and executes the notebooks headless with papermill: 00 (both competitions)
# once, 01-05 once per competition into logs/<run>/notebooks/<task>/ (run folders in logs/<run>/<task>/).
# Usage: ./run_all.sh [asl-signs] [asl-fingerspelling]   (default: both). Profile: ASLKIT_PROFILE=ci|quick|full
# (default quick). Models: ASLKIT_MODELS="ctc f1 f1@43" (the notebooks' `models`; name@seed: another seed of a
# family) for the tasks run, default: each task's zoo of the profile.
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
MODELS=()
if [ -n "${ASLKIT_MODELS:-}" ]; then
  read -r -a names <<< "$ASLKIT_MODELS"
  MODELS=(-y "models: [$(printf '"%s",' "${names[@]}" | sed 's/,$//')]")
fi
for task in "${TASKS[@]}"; do
  python -m aslkit data --task "$task" --preset "$PROFILE"
done
run_notebook() {  # notebook, output folder, extra papermill parameters...
  local nb="$1" out="$2"; shift 2
  echo "[run_all] $nb -> $out/"
  python -m papermill "$nb" "$out/$(basename "$nb")" -k python3 --cwd notebooks -p profile "$PROFILE" \
    -p run_dir "$(pwd)/$RUN" "$@" --log-output --no-progress-bar
}
mkdir -p "$RUN/notebooks"
run_notebook notebooks/00_data_tour.ipynb "$RUN/notebooks"          # both competitions in one notebook
for task in "${TASKS[@]}"; do
  mkdir -p "$RUN/notebooks/$task"
  for nb in notebooks/0[1-9]_*.ipynb; do
    run_notebook "$nb" "$RUN/notebooks/$task" -p task "$task" -p run "$(pwd)/$RUN/$task" "${MODELS[@]}"
  done
done
echo "[run_all] done: $RUN"
