"""The registry of competitions: slug -> plug-in, and the few things every stage asks of "the task of this config
or run folder". The only place that dispatches on a task."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from aslkit import constants as C
from aslkit.config import ConfigError
from aslkit.runs import (
    CONFIG_FILE,
    DATA_FILE,
    TrainConfig,
    checkpoint_path,
    load_checkpoint,
    read_run_config,
    run_subset,
    run_task,
)
from aslkit.tasks.base import TaskParts, TaskPlugin, TaskPretrain
from aslkit.tflite import submission_files

TASKS: dict[str, str] = {C.SLUG_SIGNS: "aslkit.tasks.signs.plugin",
                         C.SLUG_FS: "aslkit.tasks.fingerspelling.plugin"}
DEFAULT_TASK = C.SLUG_SIGNS


def plugin(task: str) -> TaskPlugin:
    """The plug-in of competition ``task`` (ValueError naming the known ones)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    return importlib.import_module(TASKS[task]).PLUGIN


def plugin_of_run(run: str | Path) -> TaskPlugin:
    """The plug-in of a run folder's competition."""
    return plugin(run_task(run))


def plugin_of_submission(submission: str | Path) -> TaskPlugin:
    """The plug-in whose submissions hold exactly the files of ``submission`` beside ``model.tflite`` (asl-signs:
    none; fingerspelling: ``inference_args.json``); ValueError naming the zip when none does."""
    files = submission_files(submission)
    for task in TASKS:
        if sorted(plugin(task).predict.submission_files) == files:
            return plugin(task)
    raise ValueError(f"{submission}: holds {files} beside model.tflite, which is no competition's submission layout")


def reference_run(run: str | Path) -> bool:
    """Whether a run folder holds a reference model (the non-deep baseline: a yardstick, not an ensemble member)."""
    return plugin_of_run(run).families.is_reference(read_run_config(run).model_name)


def ensemble_candidate(run: str | Path) -> bool:
    """Whether a run folder can join its task's one-file ensemble: no reference, and a model the task ensembles
    (fingerspelling: attention decoders only)."""
    can = plugin_of_run(run).can_ensemble
    return not reference_run(run) and (can is None or can(Path(run)))


def build_task(cfg: TrainConfig, prepared: Any) -> TaskParts:
    """The ``TaskParts`` of a run config on an opened prepared cache (its pretraining parts for ``stage=pretrain``)."""
    if cfg.stage == "pretrain":
        return pretrain_stage(cfg.task).build_task(cfg, prepared)
    return plugin(cfg.task).build_task(cfg, prepared)


def has_pretraining(task: str) -> bool:
    """Whether competition ``task`` has a pretraining stage (``aslkit pretrain``)."""
    return plugin(task).pretrain is not None


def pretrain_stage(task: str) -> TaskPretrain:
    """The pretraining stage of competition ``task`` (ConfigError when it has none)."""
    stage = plugin(task).pretrain
    if stage is None:
        raise ConfigError(f"task {task!r} has no pretraining stage (stage=pretrain); tasks with one: "
                          f"{sorted(t for t in TASKS if has_pretraining(t))}")
    return stage


def build_modules(cfg: TrainConfig, subset: np.ndarray) -> tuple[nn.Module, nn.Module]:
    """The feature module and the (untrained) model of a run config of either task (its family: ``model_name``)."""
    return plugin(cfg.task).families.build_modules(cfg, subset)


def load_run_model(run: str | Path, checkpoint: str = "best") -> tuple[TrainConfig, nn.Module, nn.Module]:
    """(config, feature module, model with the checkpoint's weights) of a finished run folder, either task."""
    run = Path(run)
    for need in (run / CONFIG_FILE, run / DATA_FILE, checkpoint_path(run, checkpoint)):
        if not need.is_file():
            raise FileNotFoundError(f"{run}: not a finished run folder (missing {need.relative_to(run)})")
    cfg = read_run_config(run)
    features, model = build_modules(cfg, run_subset(run))
    model.load_state_dict(load_checkpoint(checkpoint_path(run, checkpoint))["model"])
    return cfg, features, model
