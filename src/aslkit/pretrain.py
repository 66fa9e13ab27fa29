"""Stage ``aslkit pretrain``: self-supervised pretraining of a task's encoder (fingerspelling: F5's data2vec 2.0)
in the one training loop, into a run folder like any other (resumable). When it ends, the run holds
``checkpoints/encoder.pt``: the pretrained encoder under the fine-tuned model's names, which
``recipe.init_from=<this run>`` starts a training run from (the task head starts fresh)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aslkit.config import ConfigError, parse_overrides
from aslkit.runs import TrainConfig, atomic_save, checkpoint_path, is_finished, load_checkpoint, read_run_config
from aslkit.tasks.registry import has_pretraining, pretrain_stage
from aslkit.train import make_train_config, train

PRETRAIN_TASK_DEFAULT = "asl-fingerspelling"


def make_pretrain_config(preset: str | None = None, overrides: Any = None) -> TrainConfig:
    """The training config of ``preset`` (task from ``overrides``, default asl-fingerspelling) with the task's
    pretraining preset on top, ``stage=pretrain``, then ``overrides``."""
    ov = parse_overrides(overrides)
    task = str(ov.get("task", PRETRAIN_TASK_DEFAULT))
    stage = pretrain_stage(task)
    if preset and preset not in stage.presets:
        raise ConfigError(f"unknown pretraining preset {preset!r}; known: {sorted(stage.presets)}")
    extra = stage.presets[preset] if preset else {}
    if ov.get("stage", "pretrain") != "pretrain":
        raise ConfigError(f"aslkit pretrain runs stage=pretrain, got stage={ov['stage']!r}")
    cfg = make_train_config(preset, {**extra, **ov, "task": task, "stage": "pretrain"})
    stage.check_config(cfg)
    return cfg


def pretrain(cfg: TrainConfig | None = None, resume: str | Path | None = None, overwrite: bool = False) -> Path:
    """Pretrain (or ``resume``) a run; returns its folder, which then holds ``checkpoints/encoder.pt``."""
    cfg = read_run_config(resume) if resume is not None else (cfg or make_pretrain_config())
    if cfg.stage != "pretrain":
        raise ConfigError(f"{resume or 'config'}: stage={cfg.stage!r}, not a pretraining run (aslkit train trains it)")
    run = train(resume=resume) if resume is not None else train(cfg, overwrite=overwrite)
    if int(os.environ.get("RANK", "0")) == 0:
        write_encoder(run, cfg.task)
    return run


def write_encoder(run: str | Path, task: str) -> Path:
    """``checkpoints/encoder.pt`` of a pretraining run: the encoder of its last weights under the fine-tuned model's
    names (the last, not the best: the validation loss is measured against a teacher that keeps moving, so its
    minimum is no sign of the best encoder; data2vec and F5 keep the last)."""
    last = load_checkpoint(checkpoint_path(run, "last"))
    state = pretrain_stage(task).encoder_state(last["model"])
    atomic_save({"model": state, "epoch": last["epoch"]}, checkpoint_path(run, "encoder"))
    print(f"{run}: pretrained encoder ({len(state)} tensors, epoch {last['epoch']}) -> checkpoints/encoder.pt")
    return checkpoint_path(run, "encoder")


def pretrain_run(task: str, profile: str, run_name: str | Path, data_dir: str = "", epochs: int = -1,
                 overrides: dict | None = None) -> Path | None:
    """The notebooks' pretraining: ``profile``'s pretraining config into ``run_name`` (``epochs`` >= 1 replaces the
    preset's), resuming an interrupted run and keeping a finished one; None (and a line saying so) when ``epochs``
    is 0 or ``task`` has no pretraining stage."""
    if not has_pretraining(task) or epochs == 0:
        print(f"{task}: no pretraining stage" if not has_pretraining(task) else "pretraining skipped (epochs=0)")
        return None
    ov = {"task": task, "run_name": str(Path(run_name).resolve()), "data_dir": data_dir, **(overrides or {}),
          **({"optim.epochs": epochs} if epochs > 0 else {})}
    cfg = make_pretrain_config(profile, ov)
    run = Path(cfg.run_name)
    if checkpoint_path(run, "encoder").is_file() and is_finished(run, cfg.optim.epochs):
        print(f"{run}: already pretrained ({cfg.optim.epochs} epochs)")
        return run
    return pretrain(resume=run) if checkpoint_path(run, "last").is_file() else pretrain(cfg, overwrite=True)
