"""``aslkit train`` [notebook 02]: one training loop for every model of both competitions, device-agnostic,
resumable, seeded.

- Ranger (RAdam + Lookahead, from timm), flat learning rate then cosine annealing, label smoothing, gradient
  clipping, optional EMA of the weights; CUDA + AMP when present; DDP under ``torchrun`` (gloo on CPU).
- Deterministic on CPU: the data order and every augmentation draw are functions of (seed, epoch, sample), and
  the checkpoint carries the RNG states, so ``--resume`` continues exactly where the last epoch ended.
- What a run needs comes from its task's plug-in through ``aslkit.tasks.registry`` (data, sampler, features,
  model, objective); the recipes are switches (``aslkit.recipes``); the run folder and its files are
  ``aslkit.runs``.
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from aslkit.config import PROFILES, ConfigError, apply_overrides, load_config, make_config, parse_overrides
from aslkit.data.cache import CONFIG as CACHE_CONFIG
from aslkit.data.cache import expand_to_full
from aslkit.data.sync import cpu_count
from aslkit.plotting import save_learning_curves
from aslkit.recipes import RecipeRun, TeacherTerm, init_from_run, soup_epochs, student_config, uniform_soup
from aslkit.runs import (
    METRICS_FILE,
    OptimConfig,
    TrainConfig,
    atomic_save,
    check_train_config,
    checkpoint_path,
    claim_run_folder,
    link_teacher,
    load_checkpoint,
    read_run_config,
    rng_states,
    run_dir_for,
    set_rng_states,
    soup_path,
    start_run_folder,
    write_csv_atomic,
    write_json_atomic,
)
from aslkit.tasks.base import TaskParts
from aslkit.tasks.registry import build_modules, build_task, load_run_model, plugin


def make_train_config(preset: str | None = None, overrides: Any = None) -> TrainConfig:
    """``TrainConfig`` of the task named in ``overrides`` (default asl-signs): defaults, that task's preset, the
    preset of the model family named by ``model_name`` (the task's default family when none is named), then the
    overrides (``task=asl-fingerspelling`` selects the fingerspelling presets)."""
    ov = parse_overrides(overrides)
    task_plugin = plugin(str(ov.get("task", TrainConfig.task)))
    if preset and preset not in task_plugin.presets:
        raise ConfigError(f"unknown preset {preset!r} for {task_plugin.slug}; known: {sorted(task_plugin.presets)}")
    cfg = apply_overrides(TrainConfig(task=task_plugin.slug), task_plugin.presets[preset] if preset else {})
    families = task_plugin.families
    cfg = apply_overrides(cfg, {"model_name": families.resolve(str(ov.get("model_name", cfg.model_name)))})
    for extra in families.presets(cfg.model_name, preset):
        cfg = apply_overrides(cfg, extra)
    return apply_overrides(cfg, ov)


def flatten_overrides(mapping: dict, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted ``key: value`` overrides (``{"optim": {"lr": 3e-3}}`` -> ``{"optim.lr": 3e-3}``),
    so that a partial sub-config updates the preset's values instead of replacing them."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten_overrides(value, name + "."))
        else:
            out[name] = value
    return out


def read_experiment(path: str | Path) -> tuple[str | None, dict[str, Any]]:
    """An experiment file (YAML): its ``preset`` (or None) and its TrainConfig overrides, nested or dotted. A run's
    saved ``config.yaml`` is an experiment file too (every key set). ValueError naming the file when it is not a
    mapping or names an unknown preset."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such experiment file")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: an experiment file is a mapping of TrainConfig keys (and an optional preset)")
    data.pop("_class", None)
    preset = data.pop("preset", None)
    if preset is not None and preset not in PROFILES:
        raise ValueError(f"{path}: preset {preset!r} is not one of {PROFILES}")
    return preset, flatten_overrides(data)


def experiment_config(path: str | Path, preset: str | None = None, overrides: Any = None) -> TrainConfig:
    """``make_train_config`` of an experiment file: its preset (``preset`` wins when given), its overrides, then
    ``overrides`` (e.g. the command line's ``key=value``)."""
    file_preset, file_overrides = read_experiment(path)
    return make_train_config(preset or file_preset, {**file_overrides, **parse_overrides(overrides)})


def open_prepared(cfg: TrainConfig) -> Any:
    """The prepared cache of a run config: ``prepared_dir``, or the default cache of its data folder. A default cache
    that exists is brought up to date with the settings it was prepared with (its folds, shards and ``skip_bad``
    stay as they are); a missing one is prepared with the defaults. ValueError naming the cache and the setting when
    it lacks what the run asks for (e.g. supplemental sequences)."""
    task_plugin = plugin(cfg.task)
    if cfg.prepared_dir:
        return task_plugin.open_cache(cfg.prepared_dir)
    asked = make_config(task_plugin.prepare_config, overrides=task_plugin.prepare_overrides(cfg))
    out = Path(task_plugin.resolve_prepare(asked).out_dir)
    pcfg = load_config(task_plugin.prepare_config, out / CACHE_CONFIG) if (out / CACHE_CONFIG).is_file() else asked
    problem = task_plugin.cache_mismatch(cfg, pcfg)
    if problem:
        raise ValueError(f"{out}: {problem}; prepare a cache that has it and pass prepared_dir=<its folder>")
    return task_plugin.open_cache(task_plugin.prepare(pcfg))


def check_fold(index: pd.DataFrame, fold: int, where: str) -> None:
    """ValueError when ``fold`` (>= 0) has no validation rows in the cache ``where``: a run must not train without
    validation by accident (``fold=-1`` trains on everything on purpose)."""
    if fold < 0 or (index["fold"].to_numpy() == fold).any():
        return
    folds = sorted(int(f) for f in set(index["fold"]) if f >= 0)
    raise ValueError(f"fold={fold}: the prepared cache {where} has no such validation fold (its folds: {folds}); "
                     f"pick one of them, or fold=-1 to train on every sequence")


def load_teacher(run: str | Path, student_cfg: TrainConfig) -> nn.Module:
    """The frozen model of run folder ``run`` (``recipe.teacher``); it must read the student's features (same task,
    family and feature config), since it sees the student's batches."""
    cfg, _, model = load_run_model(run)
    theirs, mine = [(c.task, c.model_name, c.features) for c in (cfg, student_cfg)]
    if theirs != mine:
        raise ValueError(f"recipe.teacher={run}: the teacher reads other inputs than this run (task, model_name, "
                         f"features: {theirs} vs {mine})")
    return model.eval().requires_grad_(False)


@dataclass
class Dist:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> Dist:
    """Initialise DDP when launched by torchrun (``WORLD_SIZE`` > 1): NCCL on CUDA, gloo on CPU."""
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    dev = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    return Dist(rank, world, dev)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch; deterministic algorithms where torch offers them."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


class EpochDataset(Dataset):
    """Raw (augmented) landmark samples of a task through ``sample(row, rng)``; the objective's ``featurize``
    computes the features of whole batches (``BatchCollate``, ``device_inputs``). Items are ``(position, epoch)``
    (``EpochSampler``), so that a loader worker never holds a stale epoch; with ``augment``, the random draws of a
    sample depend only on (seed, epoch, row)."""

    def __init__(self, sample, rows: np.ndarray, seed: int, augment: bool):
        self.sample, self.rows = sample, np.asarray(rows)
        self.seed, self.augment = seed, augment
        order = np.argsort(self.rows, kind="stable")             # k-th copy of a repeated row: its own draws
        first = np.searchsorted(self.rows[order], self.rows[order])
        self.copy = np.empty(len(self.rows), np.int64)
        self.copy[order] = np.arange(len(self.rows)) - first

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: tuple[int, int]):
        i, epoch = item
        row = int(self.rows[i])
        key = [self.seed, epoch, row] + ([int(self.copy[i])] if self.copy[i] else [])
        rng = np.random.default_rng(key) if self.augment else None
        x, target = self.sample(row, rng)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), target, row


class EpochSampler(Sampler):
    """A ``DistributedSampler``'s positions, each with the epoch it is drawn for (``EpochDataset`` items)."""

    def __init__(self, positions: DistributedSampler):
        self.positions = positions

    def set_epoch(self, epoch: int) -> None:
        self.positions.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.positions.epoch
        return ((int(i), epoch) for i in self.positions)

    def __len__(self) -> int:
        return len(self.positions)


class Landmarks(NamedTuple):
    """A collated batch whose features are still to be computed (on the training device, ``device_inputs``)."""

    raw: Any


class BatchCollate:
    """The loader's ``collate_fn``: the objective's padded landmarks, featurized right there (in the loader workers,
    on the CPU) or marked as ``Landmarks`` for the training device."""

    def __init__(self, objective: Any, featurize: bool):
        self.objective, self.featurize = objective, featurize

    def __call__(self, batch: list) -> tuple[Any, Any, torch.Tensor]:
        raw, targets, idx = self.objective.collate(batch)
        return (self.objective.featurize(raw) if self.featurize else Landmarks(raw)), targets, idx


def features_in_loader(cfg: TrainConfig) -> bool:
    """Whether the loader computes the batch features (``features_on=loader``) rather than the training step, on
    the training device (``auto``, ``device``)."""
    return cfg.features_on == "loader"


def to_device(tree: Any, device: torch.device) -> Any:
    """Every tensor of a (nested) tuple on ``device`` (non-blocking: loaders pin memory on CUDA)."""
    if torch.is_tensor(tree):
        return tree.to(device, non_blocking=True)
    if isinstance(tree, tuple):
        moved = [to_device(t, device) for t in tree]
        return type(tree)(*moved) if hasattr(tree, "_fields") else tuple(moved)
    return tree


def device_inputs(obj: Any, inputs: Any, targets: Any, device: torch.device) -> tuple[Any, Any]:
    """A loader batch's model inputs and targets on ``device``, its features computed there when the loader left
    them (``Landmarks``)."""
    inputs, targets = to_device(inputs, device), to_device(targets, device)
    return (obj.featurize(inputs.raw) if isinstance(inputs, Landmarks) else inputs), targets


def loader_workers(workers: int, d: Dist) -> int:
    """DataLoader worker processes: ``workers``, or with -1 by the device of this rank: on CUDA one per CPU core
    beyond the training process; on the CPU a quarter of its cores (none on two), since the training process's own
    threads do most of the work there (``benchmarks/train_speed.py``: on two cores a worker next to a training
    process slows both)."""
    if workers >= 0:
        return workers
    cores = max(1, cpu_count() // d.world)
    return cores - 1 if d.device.type == "cuda" else cores // 4


def make_loader(ds: EpochDataset, batch_size: int, shuffle: bool, d: Dist, workers: int, seed: int,
                collate=None) -> DataLoader:
    """Loader whose order depends only on (seed, epoch) (``DistributedSampler`` also for one process), with pinned
    memory on CUDA (batches are copied ``non_blocking``). Workers are not persistent: PyTorch draws a seed from the
    global generator each time a loader starts, and persistent workers skip that draw after the first epoch, which
    would make the model's random stream (dropout) depend on the number of workers."""
    sampler = EpochSampler(DistributedSampler(ds, num_replicas=d.world, rank=d.rank, shuffle=shuffle, seed=seed,
                                              drop_last=shuffle))
    n = loader_workers(workers, d)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=n, collate_fn=collate,
                      drop_last=shuffle and len(ds) >= batch_size * d.world, pin_memory=d.device.type == "cuda")


OPTIMIZERS = {"ranger": "lookahead_radam", "adamw": "adamw"}


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Ranger (RAdam wrapped in Lookahead) or AdamW, from timm (no weight decay on biases and norms; frozen weights
    left out). ``layer_decay`` < 1: timm's layer-wise groups (the model's ``group_matcher``), each group's learning
    rate scaled by its factor (the schedules then scale every group alike)."""
    from timm.optim import create_optimizer_v2
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"optim.optimizer must be one of {sorted(OPTIMIZERS)}, got {cfg.optimizer!r}")
    decay = cfg.layer_decay if cfg.layer_decay < 1.0 else None
    if decay is not None and not hasattr(model, "group_matcher"):
        raise ConfigError(f"optim.layer_decay={cfg.layer_decay}: {type(model).__name__} has no layer groups "
                          f"(group_matcher); leave it at 1")
    optimizer = create_optimizer_v2(model, opt=OPTIMIZERS[cfg.optimizer], lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    layer_decay=decay)
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr * group.get("lr_scale", 1.0)
    return optimizer


def warmup_cosine(total_steps: int, warmup_fraction: float):
    """LR multiplier: linear warmup over ``warmup_fraction`` of the steps, then cosine down to 0."""
    warm = max(1, int(total_steps * warmup_fraction))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return f


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    """The learning-rate schedule of ``cfg.schedule`` (stepped once per batch)."""
    if cfg.schedule == "flat_cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, flat_cosine(total_steps, cfg.flat_fraction))
    if cfg.schedule == "warmup_cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, cfg.warmup_fraction))
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=max(1, total_steps),
                                                   pct_start=cfg.warmup_fraction, cycle_momentum=False)
    raise ValueError(f"optim.schedule must be flat_cosine, warmup_cosine or onecycle, got {cfg.schedule!r}")


def flat_cosine(total_steps: int, flat_fraction: float):
    """LR multiplier: 1 for the first ``flat_fraction`` of the steps, then cosine down to 0."""
    flat = int(total_steps * flat_fraction)

    def f(step: int) -> float:
        if step < flat:
            return 1.0
        t = (step - flat) / max(1, total_steps - flat)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return f


def build_ema(model: nn.Module, decay: float, true_average: bool = False):
    """timm's ModelEmaV3 of the weights, or None when ``decay`` is 0; with ``true_average`` (mean teacher), the
    decay at the n-th update (``update(model, step=n)``) is ``min(decay, 1 - 1/n)``."""
    if decay <= 0:
        return None
    from timm.utils import ModelEmaV3
    if true_average:
        return ModelEmaV3(model, decay=decay, use_warmup=True, warmup_gamma=1.0, warmup_power=1.0)
    return ModelEmaV3(model, decay=decay)


def _split(index: pd.DataFrame, fold: int, max_train: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the training and validation samples (validation: the fold's rows, without supplemental
    rows when the index has a ``source`` column; those are never trained on either)."""
    in_fold = index["fold"].to_numpy() == fold if fold >= 0 else np.zeros(len(index), bool)
    primary = (index["source"] != "supplemental").to_numpy() if "source" in index else np.ones(len(index), bool)
    val = np.flatnonzero(in_fold & primary)
    train = np.flatnonzero(~in_fold)
    if max_train and len(train) > max_train:
        train = np.sort(np.random.default_rng(seed).choice(train, max_train, replace=False))
    return train, val


def set_epoch(model: nn.Module, epoch: int) -> None:
    """Tell every submodule with a ``set_epoch`` method (e.g. late dropout) which epoch starts."""
    for m in model.modules():
        if m is not model and callable(getattr(m, "set_epoch", None)):
            m.set_epoch(epoch)


def train_epoch(model, loader, optimizer, scheduler, ema, parts: TaskParts, cfg: OptimConfig, d: Dist, scaler,
                epoch: int, seed: int = 0, rec: RecipeRun | None = None, student: CoTrainedStudent | None = None
                ) -> dict[str, float]:
    """One pass over the training data; returns mean loss (and accuracy for classification) of this process.
    Batch-level random draws (mixup) depend only on (seed, epoch, batch, rank); a ``student`` takes the same
    batches with the same draws. With ``cfg.grad_accumulation`` = k the optimiser steps after every k batches (and
    after the last one), each batch's loss divided by k."""
    model.train()
    set_epoch(model, epoch)
    obj = parts.objective
    tot_loss, tot_ok, n = 0.0, 0, 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not d.main or not loader)
    for step, (inputs, targets, idx) in enumerate(bar):
        inputs, targets = device_inputs(obj, inputs, targets, d.device)
        key, update = [seed, epoch, step, d.rank], epoch * len(loader) + step
        teachers = rec.terms(update) if rec is not None else []
        outputs, loss = _forward_loss(model, obj, inputs, targets, key, teachers, scaler)
        k = cfg.grad_accumulation
        if step % k == 0:
            optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss / k if k > 1 else loss).backward()
        if rec is not None and rec.awp_on(epoch):
            _awp_backward(rec, model, optimizer, obj, inputs, targets, key, teachers, scaler)
        if (step + 1) % k == 0 or step + 1 == len(loader):
            _optimizer_step(model, optimizer, scheduler, scaler, cfg.clip_grad)
            if ema is not None:
                ema.update(model, step=rec.ema_step(update) if rec is not None else None)
        if student is not None:
            student.step(obj, inputs, targets, key, ema.module, set_epoch_to=epoch if step == 0 else None)
        b = len(idx)
        tot_loss += loss.item() * b
        tot_ok += obj.hits(outputs, targets, inputs)
        n += b
        bar.set_postfix(loss=f"{tot_loss / n:.3f}")
    row = {"train_loss": tot_loss / max(n, 1)}
    if obj.train_stat:
        row[obj.train_stat] = tot_ok / max(n, 1)
    return row


def closed_form(model: nn.Module) -> bool:
    """Whether ``model`` is fitted in one pass over all training samples (``model.fit(inputs, targets)``, e.g. the
    non-deep reference's logistic regression) instead of by gradient steps."""
    return bool(getattr(model, "closed_form", False))


def check_closed_form(model: nn.Module, cfg: TrainConfig, d: Dist) -> None:
    """ConfigError naming the setting when a closed-form model meets a gradient-step setting it cannot honour."""
    if not closed_form(model):
        return
    r = cfg.recipe
    steps = {"optim.ema_decay": cfg.optim.ema_decay, "recipe.teacher": r.teacher, "recipe.student": r.student,
             "recipe.mean_teacher": r.mean_teacher, "recipe.awp_lr": r.awp_lr, "recipe.ousm_k": r.ousm_k,
             "loss.mixup_p": cfg.loss.mixup_p, "loss.manifold_mixup_p": cfg.loss.manifold_mixup_p,
             "more than one process (torchrun)": d.world > 1}
    used = [k for k, v in steps.items() if v]
    if used:
        raise ConfigError(f"model_name={cfg.model_name!r} is fitted in one pass, not by gradient steps: "
                          f"turn off {', '.join(used)}")


def fit_epoch(model: nn.Module, loader: DataLoader, parts: TaskParts, d: Dist) -> dict[str, float]:
    """One pass of a closed-form model: every training batch's inputs and targets (features computed as for any
    model) gathered and given to ``model.fit`` at once; returns its training loss and statistic."""
    inputs, targets = [], []
    for x, t, _ in tqdm(loader, desc="features", leave=False, disable=not d.main):
        x, t = device_inputs(parts.objective, x, t, d.device)
        inputs.append(x)
        targets.append(t)
    return model.fit(torch.cat(inputs), torch.cat(targets))


class MixedPrecision(torch.amp.GradScaler):
    """A run's mixed precision (``optim.amp``, CUDA only): bf16 autocast where the GPU supports it (no loss scaling
    needed), else fp16 autocast with this gradient scaler; off on the CPU."""

    def __init__(self, amp: bool, device: torch.device):
        self.autocast_on = amp and device.type == "cuda"
        bf16 = self.autocast_on and torch.cuda.is_bf16_supported()
        self.autocast_dtype = torch.bfloat16 if bf16 else torch.float16
        super().__init__(device.type, enabled=self.autocast_on and not bf16)

    def autocast(self, device_type: str) -> torch.autocast:
        return torch.autocast(device_type, dtype=self.autocast_dtype, enabled=self.autocast_on)


def _forward_loss(model, obj, inputs, targets, key: list[int], teachers: list[TeacherTerm], scaler: MixedPrecision):
    """The objective's training step with the batch's own random draws (the same for every call with ``key``)."""
    with scaler.autocast(next(model.parameters()).device.type):
        return obj.train_step(model, inputs, targets, np.random.default_rng(key), teachers)


def _awp_backward(rec: RecipeRun, model, optimizer, obj, inputs, targets, key, teachers, scaler) -> None:
    """Replace the gradient by the one at adversarially perturbed weights (same batch, same draws)."""
    rec.awp.perturb()
    optimizer.zero_grad(set_to_none=True)
    _, adv_loss = _forward_loss(model, obj, inputs, targets, key, teachers, scaler)
    scaler.scale(adv_loss).backward()
    rec.awp.restore()


def _optimizer_step(model, optimizer, scheduler, scaler, clip: float) -> None:
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(model.parameters(), clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, parts: TaskParts, device: torch.device
            ) -> tuple[list, np.ndarray, float]:
    """Per-sample predictions (the objective's kind), their sample rows, and the summed loss over ``loader``."""
    model.eval()
    obj = parts.objective
    preds, rows, loss_sum = [], [], 0.0
    for inputs, targets, idx in loader:
        inputs, targets = device_inputs(obj, inputs, targets, device)
        outputs = obj.forward(model, inputs)
        loss_sum += float(obj.loss(outputs, targets, inputs, reduction="sum"))
        preds += obj.predictions(outputs, inputs)
        rows.append(idx.numpy())
    return preds, (np.concatenate(rows) if rows else np.zeros(0, np.int64)), loss_sum


def train(cfg: TrainConfig | None = None, resume: str | Path | None = None, parts: TaskParts | None = None,
          on_epoch: Callable[[dict], None] | None = None, overwrite: bool = False) -> Path:
    """Train (or ``resume`` the run folder of) one model; returns the run folder. A fresh run refuses a run folder
    that is not empty unless ``overwrite`` (which empties it). ``on_epoch`` gets each epoch's metrics row on the main
    process once the epoch's checkpoint is saved; an exception it raises ends the run there, still resumable (how
    ``aslkit tune`` prunes a trial; single process only)."""
    if resume is not None:
        run = Path(resume)
        cfg = read_run_config(run)
    else:
        cfg = cfg or TrainConfig()
        run = run_dir_for(cfg)
    check_train_config(cfg)
    d = setup_distributed(cfg.device)
    with torch_threads(training_threads(cfg, d)):
        return _train(cfg, run, resume, parts, on_epoch, overwrite, d)


def training_threads(cfg: TrainConfig, d: Dist) -> int:
    """Torch threads of a training process: ``cfg.threads``; with -1 on the CPU, the cores of this rank not taken
    by loader workers (two busy processes on two cores each wanting both, as torch's default does, run far slower
    than one thread each); 0 keeps torch's default."""
    if cfg.threads >= 0 or d.device.type == "cuda":
        return cfg.threads
    cores = max(1, cpu_count() // d.world)
    return max(1, cores - loader_workers(cfg.workers, d))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads (0: unchanged), then restore the number before."""
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(cfg: TrainConfig, run: Path, resume: str | Path | None, parts: TaskParts | None,
           on_epoch: Callable[[dict], None] | None, overwrite: bool, d: Dist) -> Path:
    """The body of ``train`` (its threads set)."""
    if resume is None:
        _claim(run, overwrite, d)
    seed_everything(cfg.seed)
    parts = parts or build_task(cfg, open_prepared(cfg))
    check_fold(parts.index, cfg.fold, parts.data.get("prepared_dir", "?"))
    tr_idx, va_idx = _split(parts.index, cfg.fold, cfg.max_train_samples, cfg.seed)
    if parts.on_split is not None:
        tr_idx = parts.on_split(tr_idx)
    ds_train = EpochDataset(parts.sample, tr_idx, cfg.seed, augment=True)
    ds_val = EpochDataset(parts.sample, va_idx, cfg.seed, augment=False)
    in_loader = features_in_loader(cfg)
    parts.features.to(torch.device("cpu") if in_loader else d.device)
    o = cfg.optim
    collate = BatchCollate(parts.objective, in_loader)
    train_loader = make_loader(ds_train, o.batch_size, True, d, cfg.workers, cfg.seed, collate)
    val_loader = make_loader(ds_val, o.batch_size, False, Dist(0, 1, d.device), cfg.workers, cfg.seed, collate)
    model = parts.model.to(d.device)
    check_closed_form(model, cfg, d)
    copied = init_from_run(model, cfg.recipe.init_from) if cfg.recipe.init_from and resume is None else []
    optimizer = build_optimizer(model, o)
    total_steps = o.epochs * -(-len(train_loader) // o.grad_accumulation)       # optimiser steps
    scheduler = build_scheduler(optimizer, o, total_steps)
    ema = build_ema(model, o.ema_decay, true_average=cfg.recipe.mean_teacher or bool(cfg.recipe.student))
    scaler = MixedPrecision(o.amp, d.device)
    teacher = load_teacher(cfg.recipe.teacher, cfg) if cfg.recipe.teacher else None
    rec = RecipeRun(cfg, model, ema, total_steps, d.device, teacher)
    state = {"epoch": 0, "best": -math.inf, "history": []}
    if resume is not None and checkpoint_path(run, "last").is_file():
        state = _restore(checkpoint_path(run, "last"), model, optimizer, scheduler, ema, scaler)
    elif resume is not None:
        print(f"{run}: no checkpoint yet, starting from the first epoch")
    elif d.main:
        start_run_folder(run, cfg, parts.data, copied)
    student = CoTrainedStudent(cfg, run, parts, d, total_steps, resume is not None) if cfg.recipe.student else None
    net = nn.parallel.DistributedDataParallel(
        model, find_unused_parameters=getattr(model, "ddp_find_unused_parameters", False)) if d.world > 1 else model
    if d.main:
        print(f"run {run}: {len(tr_idx)} train / {len(va_idx)} val samples, {o.epochs} epochs, "
              f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, device {d.device}")
    for epoch in range(state["epoch"], o.epochs):
        t0 = time.time()
        train_loader.sampler.set_epoch(epoch)
        row = {"epoch": epoch + 1, **(fit_epoch(model, train_loader, parts, d) if closed_form(model) else train_epoch(
            net, train_loader, optimizer, scheduler, ema, parts, o, d, scaler, epoch, cfg.seed, rec, student))}
        if d.main:
            row.update(lr=max(g["lr"] for g in optimizer.param_groups))   # the top layer's (layer_decay)
            _validate_epoch(run, cfg, state, row, eval_model_of(model, ema), val_loader, parts, d, t0)
            if student is not None:
                student.end_epoch(epoch, val_loader, parts, d)
            state["epoch"] = epoch + 1
            atomic_save(_checkpoint(state, model, optimizer, scheduler, ema, scaler), checkpoint_path(run, "last"))
            if on_epoch is not None:
                on_epoch(row)
        if d.world > 1:
            dist.barrier()
    if d.main:
        save_learning_curves(pd.DataFrame(state["history"]), run / "plots" / "learning_curves.png")
        if cfg.recipe.soup_last:
            make_soup(run, cfg, eval_model_of(model, ema), val_loader, parts, d.device)
    if d.world > 1:
        _write_rank_summary(run, model, d, None if student is None else student.model)
        dist.destroy_process_group()
    return run


def _claim(run: Path, overwrite: bool, d: Dist) -> None:
    """Every rank checks that a fresh run may write ``run`` before the main rank (alone) empties or fills it."""
    if not overwrite:
        claim_run_folder(run)
    if d.world > 1:
        dist.barrier()
    if overwrite and d.main:
        claim_run_folder(run, overwrite=True)


def _validate_epoch(run: Path, cfg: TrainConfig, state: dict, row: dict, eval_model: nn.Module,
                    val_loader: DataLoader, parts: TaskParts, d: Dist, t0: float) -> None:
    """Validate the evaluated weights, log the epoch, keep the best checkpoint and the soup's epoch weights."""
    preds, idx, loss_sum = predict(eval_model, val_loader, parts, d.device)
    row.update(parts.objective.metrics(preds, idx, parts.index, loss_sum))
    row.update(lr=row.pop("lr"), seconds=round(time.time() - t0, 2))
    state["history"].append(row)
    _log_epoch(run, state, row, preds, idx, parts, eval_model)
    epoch = row["epoch"] - 1
    if epoch in soup_epochs(cfg.optim.epochs, cfg.recipe.soup_last):
        atomic_save({"model": eval_model.state_dict(), "epoch": epoch + 1}, soup_path(run, epoch))


def eval_model_of(model: nn.Module, ema) -> nn.Module:
    """The weights a run evaluates: the EMA when there is one."""
    return ema.module if ema is not None else model


def make_soup(run: Path, cfg: TrainConfig, model: nn.Module, val_loader: DataLoader, parts: TaskParts,
              device: torch.device) -> dict:
    """``checkpoints/soup.pt``: the uniform average of the saved last-epoch weights, and ``soup.json``: its
    validation metrics next to the best epoch's (convert it with ``checkpoint=soup``)."""
    epochs = [e for e in soup_epochs(cfg.optim.epochs, cfg.recipe.soup_last) if soup_path(run, e).is_file()]
    soup = uniform_soup([load_checkpoint(soup_path(run, e))["model"] for e in epochs])
    atomic_save({"model": soup, "epochs": [e + 1 for e in epochs]}, checkpoint_path(run, "soup"))
    model = copy.deepcopy(model)
    model.load_state_dict(soup)
    preds, idx, loss_sum = predict(model, val_loader, parts, device)
    key = parts.objective.score_key
    best = max((r[key] for r in pd.read_csv(run / METRICS_FILE).to_dict("records")), default=float("nan"))
    record = {"epochs": [e + 1 for e in epochs], **parts.objective.metrics(preds, idx, parts.index, loss_sum),
              f"best_epoch_{key}": best}
    write_json_atomic(run / "soup.json", record)
    print(f"soup of epochs {record['epochs']}: {key}={record[key]:.4f} (best epoch {best:.4f})")
    return record


class CoTrainedStudent:
    """A model trained in the same loop on the same batches against the run's EMA teacher and the labels (the I6
    student): its own optimiser, schedule and ordinary run folder ``<run>/student`` (with a ``teacher`` link)."""

    def __init__(self, cfg: TrainConfig, run: Path, parts: TaskParts, d: Dist, total_steps: int, resume: bool):
        self.cfg, self.kd_weight = student_config(cfg, run), cfg.recipe.student_kd_weight
        self.run = Path(self.cfg.run_name)
        self.model = build_modules(self.cfg, np.array(parts.data["subset"]))[1].to(d.device)
        self.net = nn.parallel.DistributedDataParallel(self.model, find_unused_parameters=getattr(
            self.model, "ddp_find_unused_parameters", False)) if d.world > 1 else self.model
        o = self.cfg.optim
        self.optimizer = build_optimizer(self.model, o)
        self.scheduler = build_scheduler(self.optimizer, o, total_steps)
        self.scaler = MixedPrecision(o.amp, d.device)
        self.state, self.loss_sum, self.n = {"epoch": 0, "best": -math.inf, "history": []}, 0.0, 0
        last = checkpoint_path(self.run, "last")
        if resume and last.is_file():
            self.state = _restore(last, self.model, self.optimizer, self.scheduler, None, self.scaler)
        elif d.main:
            start_run_folder(self.run, self.cfg, parts.data)
            link_teacher(self.run, "..")

    def step(self, obj, inputs, targets, key: list[int], teacher: nn.Module, set_epoch_to: int | None) -> None:
        """One update on the batch the run just took (same random draws), distilling ``teacher``."""
        self.net.train()
        if set_epoch_to is not None:
            set_epoch(self.net, set_epoch_to)
        term = TeacherTerm(teacher, "kd", self.kd_weight, 1.0)
        _, loss = _forward_loss(self.net, obj, inputs, targets, key, [term], self.scaler)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        _optimizer_step(self.net, self.optimizer, self.scheduler, self.scaler, self.cfg.optim.clip_grad)
        self.loss_sum, self.n = self.loss_sum + loss.item(), self.n + 1

    def end_epoch(self, epoch: int, val_loader: DataLoader, parts: TaskParts, d: Dist) -> None:
        """Validate, log to the student's run folder, save its checkpoints."""
        preds, idx, loss_sum = predict(self.model, val_loader, parts, d.device)
        row = {"epoch": epoch + 1, "train_loss": self.loss_sum / max(self.n, 1),
               **parts.objective.metrics(preds, idx, parts.index, loss_sum),
               "lr": self.optimizer.param_groups[0]["lr"]}
        self.loss_sum, self.n = 0.0, 0
        self.state["history"].append(row)
        _log_epoch(self.run, self.state, row, preds, idx, parts, self.model, tag="student")
        self.state["epoch"] = epoch + 1
        atomic_save(_checkpoint(self.state, self.model, self.optimizer, self.scheduler, None, self.scaler),
                    checkpoint_path(self.run, "last"))


def _log_epoch(run: Path, state: dict, row: dict, preds: list, idx: np.ndarray, parts: TaskParts,
               model: nn.Module, tag: str = "") -> None:
    """Append the metrics row, print it, and keep the best checkpoint (``model``'s weights, the evaluated ones) and
    its validation predictions."""
    write_csv_atomic(pd.DataFrame(state["history"]), run / METRICS_FILE, index=False)
    key = parts.objective.score_key
    score = row[key] if not math.isnan(row[key]) else -row["train_loss"]
    print((f"[{tag}] " if tag else "") + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                                 for k, v in row.items()), flush=True)
    if score > state["best"]:
        state["best"] = score
        atomic_save({"model": model.state_dict(), "epoch": row["epoch"], "score": score}, checkpoint_path(run, "best"))
        if len(idx):
            parts.objective.save_oof(run, preds, idx, parts.index)


def _checkpoint(state: dict, model, optimizer, scheduler, ema, scaler) -> dict:
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "ema": None if ema is None else ema.module.state_dict(), "scaler": scaler.state_dict(),
            "epoch": state["epoch"], "best": state["best"], "history": json.dumps(state["history"]),
            "rng": rng_states()}


def _restore(path: Path, model, optimizer, scheduler, ema, scaler) -> dict:
    """Load everything ``_checkpoint`` saved; returns the loop state."""
    ck = load_checkpoint(path)
    model.load_state_dict(ck["model"])
    optimizer.load_state_dict(ck["optimizer"])
    scheduler.load_state_dict(ck["scheduler"])
    if ema is not None and ck["ema"] is not None:
        ema.module.load_state_dict(ck["ema"])
    scaler.load_state_dict(ck["scaler"])
    set_rng_states(ck["rng"])
    print(f"resumed {path} at epoch {ck['epoch']}")
    return {"epoch": ck["epoch"], "best": ck["best"], "history": json.loads(ck["history"])}


def _write_rank_summary(run: Path, model: nn.Module, d: Dist, student: nn.Module | None = None) -> None:
    """Each DDP rank writes a checksum of its final weights, and of its student's (they must agree)."""
    def total(m: nn.Module) -> float:
        return float(sum(p.detach().double().sum() for p in m.parameters()))
    record = {"rank": d.rank, "param_sum": total(model)}
    if student is not None:
        record["student_param_sum"] = total(student)
    write_json_atomic(run / f"rank{d.rank}.json", record)


def sample_draws(cfg: TrainConfig, prepared: Any, row: int, k: int = 4) -> tuple[list[np.ndarray], list[str]]:
    """One training sample of a run config as stored and after ``k`` random draws of its augmentation, in the full
    543-landmark layout (for ``plotting.plot_frames``), with titles."""
    parts = build_task(cfg, prepared)
    subset = parts.source.subset
    draws = [parts.sample(row, None)[0]] + [parts.sample(row, np.random.default_rng(s))[0] for s in range(k)]
    return [expand_to_full(x, subset) for x in draws], ["original"] + [f"draw {s}" for s in range(k)]
