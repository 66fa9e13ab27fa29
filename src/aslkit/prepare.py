"""``aslkit prepare`` [notebook 01]: read every sequence of a competition once into a compact, resumable cache with
cross-validation folds, through the task's plug-in (``aslkit.tasks.<task>.prepare``; the shared layout, reader and
sync engine are ``aslkit.data.cache`` / ``aslkit.data.sync``)."""
from __future__ import annotations

from typing import Any

import pandas as pd

from aslkit.config import make_config
from aslkit.tasks.registry import plugin


def prepare_config(task: str, preset: str | None = None, overrides: Any = None) -> Any:
    """The preparation config of ``task``: defaults, the named preset, then ``overrides``."""
    return make_config(plugin(task).prepare_config, preset, overrides)


def prepare(task: str, preset: str | None = None, overrides: Any = None) -> Any:
    """Prepare (or bring up to date) the cache of ``task`` with ``preset`` and ``overrides``; returns the opened
    cache."""
    task_plugin = plugin(task)
    return task_plugin.open_cache(task_plugin.prepare(prepare_config(task, preset, overrides)))


def fold_summary(prepared) -> pd.DataFrame:
    """Sequences, participants and mean frames per fold of a prepared cache."""
    folds = prepared.folds.merge(prepared.index[["sequence_id", "length"]], on="sequence_id")
    return folds.groupby("fold").agg(sequences=("sequence_id", "size"), participants=("participant_id", "nunique"),
                                     mean_frames=("length", "mean"))


def example_rows(prepared: Any, k: int = 4) -> pd.DataFrame:
    """``k`` example rows of a prepared cache worth plotting (different signs, or phrases), each with a ``title``."""
    return plugin(prepared.meta["task"]).example_rows(prepared, k)
