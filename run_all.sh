#!/usr/bin/env bash
# The main job: sets up .venv if needed, resolves the data of both competitions (the kit's synthetic data when no
# real download is in input/<slug>/), and executes every notebook headless with papermill into logs/<run>/notebooks/.
# Profile: ASLKIT_PROFILE=ci|quick|full (default quick).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup_env.sh
source scripts/env.sh
PROFILE="${ASLKIT_PROFILE:-quick}"
export ASLKIT_PROFILE="$PROFILE" ASLKIT_SYNTH_SIZE="${ASLKIT_SYNTH_SIZE:-$PROFILE}"
RUN="logs/run_all_${PROFILE}_$(date +%Y%m%d_%H%M%S)"
mkdir -p "$RUN/notebooks"
for task in asl-signs asl-fingerspelling; do
  python -m aslkit data --task "$task" --preset "$PROFILE"
done
for nb in notebooks/[0-9][0-9]_*.ipynb; do
  echo "[run_all] $nb -> $RUN/notebooks/"
  python -m papermill "$nb" "$RUN/notebooks/$(basename "$nb")" -k python3 --cwd notebooks -p profile "$PROFILE" \
    -p run_dir "$(pwd)/$RUN" -p run "$(pwd)/$RUN/asl-signs" \
    --log-output --no-progress-bar
done
echo "[run_all] done: $RUN"
