"""``aslkit validate`` [notebook 03]: the OOF report of run folders (their validation predictions), by their task's
plug-in (asl-signs: accuracy per fold, participant and sign, confusions; fingerspelling: (N - D) / N tables)."""
from __future__ import annotations

from pathlib import Path

from aslkit.tasks.registry import plugin_of_run


def validate(runs: list[str | Path], out_dir: str | Path | None = None) -> dict:
    """Validation report of the runs' OOF predictions, written to ``<first run>/validation/`` (or ``out_dir``)."""
    return plugin_of_run(runs[0]).validate(runs, out_dir)


def validation_plots(runs: list[str | Path], report: dict) -> list:
    """The figures of a validation report (worst signs and confusions, or scores per participant and group)."""
    return plugin_of_run(runs[0]).validation_plots(runs, report)
