"""The asl-signs plug-in: what the stages need from this competition, in one ``TaskPlugin``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aslkit import constants as C
from aslkit.tasks.base import TaskPlugin, TaskPredict
from aslkit.tasks.signs import evaluate, export, grade, objective, predict
from aslkit.tasks.signs.ensemble import EnsembleConfig, make_ensemble
from aslkit.tasks.signs.families import FAMILIES
from aslkit.tasks.signs.prepare import PrepareConfig, PreparedSigns, prepare_signs, resolve_config

# Task-level TrainConfig overrides per profile; the family's own preset (``families/<family>``) is applied after.
PRESETS: dict[str, dict[str, Any]] = {
    "ci": {"synth_size": "ci", "optim.epochs": 3, "optim.batch_size": 32},
    "quick": {"synth_size": "quick", "optim.epochs": 24, "optim.batch_size": 64, "workers": -1,
              "threads": -1},
    "full": {"synth_size": "full", "optim.epochs": 70, "workers": -1, "threads": -1},
}


# The zoo of each profile; the non-deep reference comes first in every table and stays out of the ensembles.
DEFAULT_MODELS: dict[str, list[str]] = {"ci": ["baseline", "transformer", "conv1d"],
                                        "quick": ["baseline", "transformer", "cnn", "frames25", "conv1d"],
                                        "full": ["baseline", "transformer", "cnn", "frames25", "frames80", "conv1d"]}


def zoo_members(profile: str, models: list[str] | None = None) -> list[str]:
    """Model names of an experiment: ``models`` or the profile's default zoo."""
    return list(models) if models else list(DEFAULT_MODELS[profile])


def prepare_overrides(cfg: Any) -> dict:
    """The preparation overrides of a run config that names no prepared cache: its data folder and synthetic size."""
    return {"data_dir": cfg.data_dir, "synth_size": cfg.synth_size}


def cache_mismatch(cfg: Any, prepared_cfg: Any) -> str:
    """What an asl-signs cache lacks for a run: nothing (every run reads the same sequences and labels)."""
    return ""


def example_rows(prepared: Any, k: int = 4) -> pd.DataFrame:
    """``k`` example rows of the index, one per sign, each with a ``title``."""
    return prepared.index.drop_duplicates("sign").head(k).assign(title=lambda d: d["sign"])


def ensemble_of(runs: list, name: str | Path = "", weights_from: list | None = None,
                weights: list[float] | None = None) -> Path:
    """The one-file ensemble folder of member runs: weights fitted on their OOF logits (or on the ``weights_from``
    runs', or ``weights`` as given); ``name`` under logs/ or absolute (default from the members)."""
    return make_ensemble(EnsembleConfig(runs=[str(r) for r in runs], name=str(name),
                                        weights_from=[str(r) for r in weights_from or []], weights=list(weights or [])))


PLUGIN = TaskPlugin(
    slug=C.SLUG_SIGNS, presets=PRESETS, families=FAMILIES,
    default_subset=np.asarray(C.CACHE_SUBSETS[PrepareConfig.subset]),
    prepare_config=PrepareConfig, prepare=prepare_signs, open_cache=PreparedSigns,
    prepare_overrides=prepare_overrides, resolve_prepare=resolve_config, cache_mismatch=cache_mismatch,
    build_task=objective.build_task,
    score_key=objective.ClassificationObjective.score_key, task_export=export.task_export,
    score_run=grade.score_run, score_table=grade.score_table, validate=evaluate.validate,
    validation_plots=evaluate.validation_plots, oof_summary=evaluate.oof_summary, example_rows=example_rows,
    zoo_members=zoo_members, tune_space="signs", make_ensemble=ensemble_of,
    predict=TaskPredict(predict.grader_module, predict.input_columns, predict.read_inputs, predict.answer,
                        predict.answer_text, predict.landmarks, predict.held_out, predict.write_recording))
