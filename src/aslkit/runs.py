"""The run folder: what a training run is (``TrainConfig`` and its parts) and every file it keeps.

A run is a folder ``logs/<run>/`` (or an absolute path), owned by this module::

    config.yaml              the resolved TrainConfig (``read_run_config``)
    data.json                where the data came from: prepared cache, data folder, landmark subset, task extras
                             such as the fallback phrase (``read_data_record`` / ``write_data_record``)
    init.json                the tensors copied from another run (``recipe.init_from``)
    metrics.csv              one row per epoch
    checkpoints/last.pt      everything needed to resume; best.pt the best epoch's evaluated weights;
                             epoch_<e>.pt / soup.pt for model soups (``checkpoint_path``, ``soup_path``)
    oof.csv (+ oof_logits.npy)   validation predictions of the best epoch
    plots/, validation/, export/, submission.zip, score.json   written by the later stages

Files are written atomically (a temporary file, then a rename) and checkpoints are loaded with
``weights_only=True``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import random
import shutil
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import torch
import yaml

from aslkit.config import load_config, save_config
from aslkit.data.cache import write_atomic
from aslkit.data.errors import DataError
from aslkit.paths import logs_root


@dataclass
class OptimConfig:
    """Optimiser and schedule (I2-T: Ranger, 45 flat + 25 cosine epochs; F5: AdamW, warmup + cosine)."""

    optimizer: str = "ranger"        # ranger (RAdam + Lookahead) | adamw
    schedule: str = "flat_cosine"    # flat_cosine | warmup_cosine | onecycle
    lr: float = 1e-3
    weight_decay: float = 0.01
    epochs: int = 70
    flat_fraction: float = 45 / 70   # flat_cosine: share of the steps at the full learning rate
    warmup_fraction: float = 0.1     # warmup_cosine and onecycle: share of the steps warming up
    batch_size: int = 64
    label_smoothing: float = 0.2
    clip_grad: float = 5.0
    ema_decay: float = 0.0           # 0: no EMA
    grad_accumulation: int = 1       # batches per optimiser step (F1: 8 x 64 = 512)
    layer_decay: float = 1.0         # < 1: layer-wise learning-rate decay (each layer below the top gets this
                                     # factor more; models with timm layer groups), e.g. fine-tuning a pretrained run
    amp: bool = True                 # used only on CUDA

    def warmup_epochs(self) -> int:
        """Epochs of learning-rate warmup at the start of the schedule (none for flat_cosine)."""
        return 0 if self.schedule == "flat_cosine" else math.ceil(self.epochs * self.warmup_fraction)


@dataclass
class LossConfig:
    """Batch-level mixing and class weights of classification runs (asl-signs).

    Input mixup mixes the feature tensors of two samples (I2's CNN); manifold mixup mixes hidden states at a random
    mixing point of a model that has ``mix_points`` (I6); the loss is the same mix of the two labels' losses.
    Weighted cross-entropy up-weights the classes a finished run predicted poorly or confused others with (I2).
    """

    mixup_p: float = 0.0             # share of training batches mixed at the input
    mixup_alpha: float = 1.0         # the mixing weight ~ Beta(alpha, alpha)
    manifold_mixup_p: float = 0.0    # share of training batches mixed inside the model
    manifold_alpha: float = 0.4
    class_weights_from: str = ""     # a run folder with oof.csv + oof_logits.npy; empty: unweighted
    class_weight_power: float = 1.0  # weights = (1 + (1 - recall) + (1 - precision)) ** power, mean 1


@dataclass
class RecipeConfig:
    """Switches of the training recipes; every default leaves the loop as it is."""

    ousm_k: int = 0                  # drop the k highest-loss samples of each batch (I6: 3)
    awp_lr: float = 0.0              # AWP step, relative to each weight's norm (ISLR 1st: 0.2); 0: off
    awp_eps: float = 0.01            # perturbation bound, relative to each weight's magnitude
    awp_start: float = 0.15          # share of the epochs before AWP starts
    teacher: str = ""                # a finished run folder (same task and features): distil its predictions
    kd_weight: float = 1.0           # weight of the distillation term
    kd_temperature: float = 1.0      # softmax temperature of classification distillation
    init_from: str = ""              # a run folder whose matching weights initialise the model
    mean_teacher: bool = False       # the EMA (optim.ema_decay, I6: 0.97) is a consistency teacher
    consistency_weight: float = 5.0  # weight of the mean-teacher consistency MSE (I6: 5)
    consistency_rampup: float = 0.25  # share of the steps of the sigmoid ramp-up of that weight
    student: dict = field(default_factory=dict)   # model overrides of a student trained alongside (I6); empty: none
    student_kd_weight: float = 1.0   # the student's distillation weight (teacher: the EMA, else the model)
    soup_last: int = 0               # > 0: uniform soup of the last N epochs' weights (I6: 10)
    confidence_from: str = ""        # fingerspelling f1: run folders (comma-separated) whose OOF quality trains the
                                     # confidence head (F1's two rounds); empty: the head is off


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.yaml`` in the run folder."""

    task: str = "asl-signs"
    stage: str = "train"             # train | pretrain (self-supervised, ``aslkit pretrain``; fingerspelling)
    run_name: str = ""               # folder under logs/ (or an absolute path); empty: <task>_<model>_fold<k>_<time>
    prepared_dir: str = ""           # empty: prepare (or reuse) the default cache
    data_dir: str = ""
    synth_size: str = "quick"
    fold: int = 0                    # validation fold; -1 trains on everything
    seed: int = 42
    workers: int = 0                 # DataLoader workers (0: in the training process; -1: by device, on CUDA one
                                     # per core beyond the training process, on the CPU a quarter of the cores)
    threads: int = 0                 # torch threads of the training process (0: torch's default; -1 on the CPU: the
                                     # cores not taken by loader workers)
    features_on: str = "auto"        # where batch features are computed: auto / device (the training step, on the
                                     # training device) or loader (its workers: a CPU with cores to spare)
    device: str = "auto"             # auto | cpu | cuda
    model_name: str = ""             # a model family of the task (empty: its default family)
    model: dict = field(default_factory=dict)      # overrides of the model family's config
    features: dict = field(default_factory=dict)   # overrides of the feature config
    augment: dict = field(default_factory=dict)    # overrides of the augmentation config
    pretrain: dict = field(default_factory=dict)   # overrides of the task's pretraining config (stage=pretrain)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    max_train_samples: int = 0       # > 0: subsample the training set (smoke tests)
    supplemental_weight: float = 0.0  # fingerspelling: mean copies of each supplemental sequence per epoch (0: none)
    supplemental_per_phrase: bool = False  # fingerspelling: one random supplemental sequence per unique phrase per
                                           # epoch instead (F1's sampling)
    min_hand_frames: int = 3         # fingerspelling: fewer frames with a hand -> the fallback phrase


CONFIG_FILE = "config.yaml"
ENSEMBLE_FILE = "ensemble.json"                # a one-file ensemble folder: its members (no config.yaml)
DATA_FILE = "data.json"
INIT_FILE = "init.json"
METRICS_FILE = "metrics.csv"
CHECKPOINTS = "checkpoints"


def run_dir_for(cfg: TrainConfig) -> Path:
    """``logs/<run_name>``, or ``run_name`` itself when absolute (a name from task, model, fold and time when empty)."""
    name = cfg.run_name or f"{cfg.task}_{cfg.model_name}_fold{cfg.fold}_{time.strftime('%Y%m%d_%H%M%S')}"
    return Path(name) if Path(name).is_absolute() else logs_root() / name


def write_json_atomic(path: str | Path, record: Any) -> Path:
    """``record`` as indented JSON, written atomically (``data.cache.write_atomic``)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, json.dumps(record, indent=1).encode())


@contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """A temporary path next to ``path`` (same suffix) to write to; renamed onto ``path`` when the block ends without
    an error, deleted otherwise, so ``path`` is always the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv_atomic(frame: pd.DataFrame, path: str | Path, **to_csv: Any) -> Path:
    """``frame.to_csv(path, **to_csv)``, atomically."""
    with atomic_target(path) as tmp:
        frame.to_csv(tmp, **to_csv)
    return Path(path)


def save_array_atomic(path: str | Path, array: np.ndarray) -> Path:
    """``np.save(path, array)`` (``path`` ends in .npy), atomically."""
    with atomic_target(path) as tmp:
        np.save(tmp, array)
    return Path(path)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_states() -> dict[str, Any]:
    """Python, numpy and torch RNG states as tensors/lists (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "numpy_pos": int(np_state[2]), "python": list(random.getstate()[1]), "python_version": random.getstate()[0]}


def set_rng_states(s: dict[str, Any]) -> None:
    """Restore what ``rng_states`` captured."""
    torch.set_rng_state(s["torch"])
    np.random.set_state(("MT19937", s["numpy_keys"].numpy().astype(np.uint32), s["numpy_pos"], 0, 0.0))
    random.setstate((s["python_version"], tuple(s["python"]), None))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A kit checkpoint, loaded with ``weights_only=True``; DataError naming the file when it is missing or
    unreadable (truncated by a kill, or not a checkpoint)."""
    if not Path(path).is_file():
        raise DataError(path, "missing checkpoint (not found)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise DataError(path, f"unreadable checkpoint, truncated or not a checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from e


def checkpoint_path(run: str | Path, name: str = "best") -> Path:
    """``<run>/checkpoints/<name>.pt`` (``best``, ``last``, ``soup`` or ``epoch_<e>``)."""
    return Path(run) / CHECKPOINTS / f"{name}.pt"


def soup_path(run: str | Path, epoch: int) -> Path:
    """The checkpoint of (0-based) ``epoch``'s weights kept for a model soup."""
    return checkpoint_path(run, f"epoch_{epoch + 1:03d}")


def read_run_config(run: str | Path) -> TrainConfig:
    """The ``TrainConfig`` a run folder was trained with (FileNotFoundError naming the folder when it has none)."""
    path = Path(run) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run}: not a run folder (no {CONFIG_FILE}); give the folder that aslkit train wrote")
    return load_config(TrainConfig, path)


FEATURES_ON = ("auto", "loader", "device")
STAGES = ("train", "pretrain")


def check_train_config(cfg: TrainConfig) -> None:
    """ValueError naming the setting when a run config cannot train (before anything is written)."""
    for name, value in (("optim.epochs", cfg.optim.epochs), ("optim.batch_size", cfg.optim.batch_size),
                        ("optim.grad_accumulation", cfg.optim.grad_accumulation)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if cfg.features_on not in FEATURES_ON:
        raise ValueError(f"features_on must be one of {FEATURES_ON}, got {cfg.features_on!r}")
    if cfg.stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {cfg.stage!r}")
    if cfg.optim.grad_accumulation > 1 and (cfg.recipe.awp_lr or cfg.recipe.student):
        raise ValueError("optim.grad_accumulation > 1 cannot be combined with recipe.awp_lr or recipe.student")
    if not 0.0 < cfg.optim.layer_decay <= 1.0:
        raise ValueError(f"optim.layer_decay must lie in (0, 1], got {cfg.optim.layer_decay}")


def run_task(run: str | Path) -> str:
    """The competition of a run folder (from its config.yaml), or of an ensemble folder (its ensemble.json);
    asl-signs when it has neither."""
    cfg, ens = Path(run) / CONFIG_FILE, Path(run) / ENSEMBLE_FILE
    if cfg.is_file():
        return yaml.safe_load(cfg.read_text()).get("task", "asl-signs")
    return json.loads(ens.read_text()).get("task", "asl-signs") if ens.is_file() else "asl-signs"


def is_ensemble(run: str | Path) -> bool:
    """Whether a folder is a one-file ensemble folder (``ensemble.json``: its members, instead of a config)."""
    return (Path(run) / ENSEMBLE_FILE).is_file()


def ensemble_record(folder: str | Path) -> dict:
    """An ensemble folder's ``ensemble.json`` (members, their families and weights, the checkpoint)."""
    return json.loads((Path(folder) / ENSEMBLE_FILE).read_text())


def data_record(prepared: Any) -> dict:
    """The ``data.json`` record of a prepared cache: its folder and fingerprint, the data folder it was read from,
    its subset."""
    return {"prepared_dir": str(prepared.path), "cache_fingerprint": prepared.fingerprint,
            "data_dir": str(prepared.config.data_dir), "subset": [int(i) for i in prepared.subset]}


def write_data_record(run: str | Path, data: dict) -> Path:
    """``data.json``: where the run's data came from (and task extras such as the fallback phrase)."""
    return write_json_atomic(Path(run) / DATA_FILE, data)


def read_data_record(run: str | Path) -> dict:
    """A run folder's ``data.json`` (FileNotFoundError naming the folder when it has none)."""
    path = Path(run) / DATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run}: no {DATA_FILE} (not a run folder, or its training never started)")
    return json.loads(path.read_text())


def run_cache(run: str | Path, open_cache: Callable[[str], Any]) -> tuple[dict, Any]:
    """A run's ``data.json`` and the prepared cache it was trained on (opened with ``open_cache``); DataError naming
    the cache when it is gone or was prepared again since (its fingerprint differs), instead of wrong rows later."""
    data = read_data_record(run)
    try:
        prepared = open_cache(data["prepared_dir"])
    except DataError as e:
        raise DataError(e.path, f"{e.problem} (the cache run {run} was trained on)") from e
    recorded = data.get("cache_fingerprint")
    if recorded and recorded != prepared.fingerprint:
        raise DataError(prepared.path, f"prepared again since run {run} was trained on it (fingerprint "
                                       f"{prepared.fingerprint}, the run saw {recorded}); prepare it as it was, or "
                                       f"train the run again")
    return data, prepared


def run_subset(run: str | Path) -> np.ndarray:
    """The landmark subset (flat indices into the 543) the run's model reads."""
    return np.array(read_data_record(run)["subset"])


def claim_run_folder(run: Path, overwrite: bool = False) -> None:
    """Make sure a fresh run may write ``run``: FileExistsError when it holds anything (a finished or interrupted
    run, its exports) unless ``overwrite``, which empties it first (so no stale export outlives its checkpoint)."""
    if not run.is_dir() or not any(run.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{run}: the run folder is not empty; continue it with aslkit train --resume {run}, pick "
                              f"another run_name, or start it again with --overwrite")
    shutil.rmtree(run)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def start_run_folder(run: Path, cfg: TrainConfig, data: dict, copied: list[str] = ()) -> None:
    """config.yaml, data.json, and init.json when the weights started from another run."""
    run.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run / CONFIG_FILE)
    write_data_record(run, data)
    if copied:
        write_json_atomic(run / INIT_FILE, {"from": cfg.recipe.init_from, "tensors": list(copied)})
        print(f"initialised {len(copied)} tensors from {cfg.recipe.init_from}")


def is_run_folder(run: str | Path) -> bool:
    """True when ``run`` holds a run's ``config.yaml`` (its training has started)."""
    return (Path(run) / CONFIG_FILE).is_file()


def is_finished(run: str | Path, epochs: int) -> bool:
    """True when the run folder logged all ``epochs``."""
    metrics = Path(run) / METRICS_FILE
    return metrics.is_file() and len(pd.read_csv(metrics)) >= epochs


def link_teacher(run: Path, target: str) -> None:
    """``<run>/teacher``: a relative link to the run this one learned from (kept when it exists)."""
    if not (run / "teacher").exists():
        (run / "teacher").symlink_to(target, target_is_directory=True)
