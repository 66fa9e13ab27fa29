"""The training loop (``aslkit train``): one loop for every model, device-agnostic, resumable, seeded.

- Ranger (RAdam + Lookahead, from timm), flat learning rate then cosine annealing, label smoothing, gradient
  clipping, optional EMA of the weights; CUDA + AMP when present; DDP under ``torchrun`` (gloo on CPU).
- Deterministic on CPU: the data order and every augmentation draw are functions of (seed, epoch, sample), and
  the checkpoint carries the RNG states, so ``--resume`` continues exactly where the last epoch ended.
- Every run writes ``logs/<run>/``: config.yaml, metrics.csv, checkpoints/{last,best}.pt (atomic), oof.csv +
  oof_logits.npy (validation predictions of the best epoch), plots/.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from aslkit.config import PRESETS, load_config, make_config, save_config
from aslkit.paths import logs_root


@dataclass
class OptimConfig:
    """Optimiser and schedule (I2-T: Ranger, 45 flat + 25 cosine epochs)."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    epochs: int = 70
    flat_fraction: float = 45 / 70
    batch_size: int = 64
    label_smoothing: float = 0.2
    clip_grad: float = 5.0
    ema_decay: float = 0.0           # 0: no EMA
    amp: bool = True                 # used only on CUDA


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.yaml`` in the run folder."""

    task: str = "asl-signs"
    run_name: str = ""               # folder under logs/ (or an absolute path); empty: <task>_<model>_fold<k>_<time>
    prepared_dir: str = ""           # empty: prepare (or reuse) the default cache
    data_dir: str = ""
    synth_size: str = "quick"
    fold: int = 0                    # validation fold; -1 trains on everything
    seed: int = 42
    workers: int = 0                 # DataLoader workers (0: in the main process)
    device: str = "auto"             # auto | cpu | cuda
    model_name: str = "transformer"
    model: dict = field(default_factory=dict)      # overrides of the model family's config
    features: dict = field(default_factory=dict)   # overrides of the feature config
    augment: dict = field(default_factory=dict)    # overrides of the augmentation config
    optim: OptimConfig = field(default_factory=OptimConfig)
    max_train_samples: int = 0       # > 0: subsample the training set (smoke tests)


PRESETS[TrainConfig] = {
    "ci": {"synth_size": "ci", "optim.epochs": 3, "optim.batch_size": 32,
           "model": {"hidden": 64, "layers": 2, "heads": 2, "intermediate": 128}},
    "quick": {"synth_size": "quick", "optim.epochs": 24, "optim.batch_size": 64, "workers": 1,
              "features": {"max_len": 32}, "model": {"hidden": 128, "layers": 3, "heads": 4, "intermediate": 256}},
    "full": {"synth_size": "full", "optim.epochs": 70, "optim.ema_decay": 0.999},
}


# ------------------------------------------------------------------------------------------------------------------
# Distributed helpers
# ------------------------------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------------------
class EpochDataset(Dataset):
    """Samples of a prepared dataset through augmentation and features; draws depend on (seed, epoch, index)."""

    def __init__(self, source, indices: np.ndarray, transform, features: nn.Module, labels: np.ndarray,
                 seed: int):
        self.source, self.indices, self.transform = source, np.asarray(indices), transform
        self.features, self.labels, self.seed = features, labels, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        idx = int(self.indices[i])
        x = np.asarray(self.source[idx], dtype=np.float32)
        if self.transform is not None:
            x = self.transform(x, np.random.default_rng([self.seed, self.epoch, idx]))
        with torch.no_grad():
            feats = self.features(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        return feats, int(self.labels[idx]), idx


def make_loader(ds: EpochDataset, batch_size: int, shuffle: bool, d: Dist, workers: int, seed: int
                ) -> DataLoader:
    """Loader whose order depends only on (seed, epoch) (``DistributedSampler`` also for one process)."""
    sampler = DistributedSampler(ds, num_replicas=d.world, rank=d.rank, shuffle=shuffle, seed=seed,
                                 drop_last=shuffle)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      drop_last=shuffle, pin_memory=d.device.type == "cuda")


# ------------------------------------------------------------------------------------------------------------------
# Optimiser, schedule, EMA
# ------------------------------------------------------------------------------------------------------------------
def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Ranger: RAdam wrapped in Lookahead (timm's implementation)."""
    from timm.optim import create_optimizer_v2
    return create_optimizer_v2(model, opt="lookahead_radam", lr=cfg.lr, weight_decay=cfg.weight_decay)


def flat_cosine(total_steps: int, flat_fraction: float):
    """LR multiplier: 1 for the first ``flat_fraction`` of the steps, then cosine down to 0."""
    flat = int(total_steps * flat_fraction)

    def f(step: int) -> float:
        if step < flat:
            return 1.0
        t = (step - flat) / max(1, total_steps - flat)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return f


def build_ema(model: nn.Module, decay: float):
    """timm's ModelEmaV3 of the weights, or None when ``decay`` is 0."""
    if decay <= 0:
        return None
    from timm.utils import ModelEmaV3
    return ModelEmaV3(model, decay=decay)


# ------------------------------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------------------------------
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
    """A kit checkpoint, loaded with ``weights_only=True``."""
    return torch.load(path, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------------------------------------------------------
# The asl-signs task: data, features, augmentation, model
# ------------------------------------------------------------------------------------------------------------------
@dataclass
class TaskParts:
    """What the loop needs from a task."""

    source: Any                     # indexable: i -> raw landmarks [T, S, 3]
    index: pd.DataFrame             # one row per sample: sequence_id, participant_id, label, fold
    features: nn.Module
    transform: Any
    model: nn.Module
    num_classes: int
    data: dict = field(default_factory=dict)      # where the data came from (saved as data.json in the run)


def signs_modules(cfg: TrainConfig, subset: np.ndarray) -> tuple[nn.Module, nn.Module]:
    """The feature module and the (untrained) model of an asl-signs run config."""
    from aslkit.features import FeatureConfig, SignFeatures
    from aslkit.models import SignTransformer, TransformerConfig
    fcfg = make_config(FeatureConfig, overrides=cfg.features)
    features = SignFeatures(fcfg, subset).eval()
    mcfg = make_config(TransformerConfig, overrides={"max_len": fcfg.max_len, **cfg.model})
    return features, SignTransformer(mcfg, features.feature_dim)


def build_signs(cfg: TrainConfig, prepared: Any = None) -> TaskParts:
    """asl-signs: the prepared cache, I2-T features and augmentations, and the transformer."""
    from aslkit.augment import AugmentConfig, default_signs_augment
    prepared = prepared if prepared is not None else open_prepared(cfg)
    features, model = signs_modules(cfg, prepared.subset)
    index = prepared.index.merge(prepared.folds[["sequence_id", "fold"]], on="sequence_id", how="left")
    transform = default_signs_augment(make_config(AugmentConfig, overrides=cfg.augment), prepared.subset)
    data = {"prepared_dir": str(prepared.path), "data_dir": str(prepared.config.data_dir),
            "subset": [int(i) for i in prepared.subset]}
    return TaskParts(prepared, index, features, transform, model, model.cfg.num_classes, data)


def open_prepared(cfg: TrainConfig):
    """The prepared cache of ``cfg`` (prepared now when missing or out of date)."""
    from aslkit.data.cache import PreparedSigns
    from aslkit.prepare import PrepareConfig, prepare_signs
    if cfg.prepared_dir:
        return PreparedSigns(cfg.prepared_dir)
    pcfg = make_config(PrepareConfig, overrides={"data_dir": cfg.data_dir, "synth_size": cfg.synth_size,
                                                 "seed": 0})
    return PreparedSigns(prepare_signs(pcfg))


# ------------------------------------------------------------------------------------------------------------------
# The loop
# ------------------------------------------------------------------------------------------------------------------
def run_dir_for(cfg: TrainConfig) -> Path:
    """``logs/<run_name>``, or ``run_name`` itself when absolute (a name from task, model, fold and time when empty)."""
    name = cfg.run_name or f"{cfg.task}_{cfg.model_name}_fold{cfg.fold}_{time.strftime('%Y%m%d_%H%M%S')}"
    return Path(name) if Path(name).is_absolute() else logs_root() / name


def _split(index: pd.DataFrame, fold: int, max_train: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the training and validation samples."""
    val = np.flatnonzero(index["fold"].to_numpy() == fold) if fold >= 0 else np.array([], dtype=np.int64)
    train = np.setdiff1d(np.arange(len(index)), val)
    if max_train and len(train) > max_train:
        train = np.sort(np.random.default_rng(seed).choice(train, max_train, replace=False))
    return train, val


def train_epoch(model, loader, optimizer, scheduler, ema, cfg: OptimConfig, d: Dist, scaler, epoch: int
                ) -> dict[str, float]:
    """One pass over the training data; returns mean loss and accuracy (this process's share)."""
    model.train()
    crit = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    tot_loss, tot_ok, n = 0.0, 0, 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not d.main or not loader)
    for feats, labels, _ in bar:
        feats, labels = feats.to(d.device), labels.to(d.device)
        with torch.autocast(d.device.type, enabled=scaler.is_enabled()):
            logits = model(feats)
            loss = crit(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema is not None:
            ema.update(model)
        tot_loss += loss.item() * len(labels)
        tot_ok += int((logits.argmax(1) == labels).sum())
        n += len(labels)
        bar.set_postfix(loss=f"{tot_loss / n:.3f}", acc=f"{tot_ok / n:.3f}")
    return {"train_loss": tot_loss / max(n, 1), "train_acc": tot_ok / max(n, 1)}


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Logits and sample indices of every batch of ``loader``."""
    model.eval()
    out, idx = [], []
    for feats, _, i in loader:
        out.append(model(feats.to(device)).float().cpu().numpy())
        idx.append(i.numpy())
    if not out:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(out), np.concatenate(idx)


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Loss, accuracy and top-5 accuracy of logits against integer labels."""
    if len(labels) == 0:
        return {"val_loss": float("nan"), "val_acc": float("nan"), "val_top5": float("nan")}
    t = torch.from_numpy(logits)
    loss = float(nn.functional.cross_entropy(t, torch.from_numpy(labels)))
    top5 = np.argsort(-logits, axis=1)[:, :5]
    return {"val_loss": loss, "val_acc": float((logits.argmax(1) == labels).mean()),
            "val_top5": float((top5 == labels[:, None]).any(1).mean())}


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def train(cfg: TrainConfig | None = None, resume: str | Path | None = None, parts: TaskParts | None = None) -> Path:
    """Train (or ``resume`` the run folder of) one model; returns the run folder."""
    if resume is not None:
        run = Path(resume)
        cfg = load_config(TrainConfig, run / "config.yaml")
    else:
        cfg = cfg or TrainConfig()
        run = run_dir_for(cfg)
    d = setup_distributed(cfg.device)
    seed_everything(cfg.seed)
    parts = parts or build_signs(cfg)
    labels = parts.index["label"].to_numpy()
    tr_idx, va_idx = _split(parts.index, cfg.fold, cfg.max_train_samples, cfg.seed)
    ds_train = EpochDataset(parts.source, tr_idx, parts.transform, parts.features, labels, cfg.seed)
    ds_val = EpochDataset(parts.source, va_idx, None, parts.features, labels, cfg.seed)
    o = cfg.optim
    train_loader = make_loader(ds_train, o.batch_size, True, d, cfg.workers, cfg.seed)
    val_loader = make_loader(ds_val, o.batch_size, False, Dist(0, 1, d.device), cfg.workers, cfg.seed)
    model = parts.model.to(d.device)
    optimizer = build_optimizer(model, o)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, flat_cosine(o.epochs * len(train_loader),
                                                                         o.flat_fraction))
    ema = build_ema(model, o.ema_decay)
    scaler = torch.amp.GradScaler(d.device.type, enabled=o.amp and d.device.type == "cuda")
    state = {"epoch": 0, "best": -1.0, "history": []}
    if resume is not None and (run / "checkpoints" / "last.pt").is_file():
        state = _restore(run / "checkpoints" / "last.pt", model, optimizer, scheduler, ema, scaler)
    elif resume is not None:
        print(f"{run}: no checkpoint yet, starting from the first epoch")
    elif d.main:
        run.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run / "config.yaml")
        (run / "data.json").write_text(json.dumps(parts.data, indent=1))
    net = nn.parallel.DistributedDataParallel(model) if d.world > 1 else model
    if d.main:
        print(f"run {run}: {len(tr_idx)} train / {len(va_idx)} val samples, {o.epochs} epochs, "
              f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, device {d.device}")
    for epoch in range(state["epoch"], o.epochs):
        t0 = time.time()
        ds_train.epoch = epoch
        train_loader.sampler.set_epoch(epoch)
        row = {"epoch": epoch + 1, **train_epoch(net, train_loader, optimizer, scheduler, ema, o, d, scaler, epoch)}
        if d.main:
            eval_model = ema.module if ema is not None else model
            logits, idx = predict(eval_model, val_loader, d.device)
            row.update(classification_metrics(logits, labels[idx]))
            row.update(lr=optimizer.param_groups[0]["lr"], seconds=round(time.time() - t0, 2))
            state["history"].append(row)
            _log_epoch(run, state, row, logits, idx, parts, model, ema)
            state["epoch"] = epoch + 1
            atomic_save(_checkpoint(state, model, optimizer, scheduler, ema, scaler), run / "checkpoints" / "last.pt")
        if d.world > 1:
            dist.barrier()
    if d.main:
        from aslkit.evaluate import plot_learning_curves
        plot_learning_curves(pd.DataFrame(state["history"]), run / "plots" / "learning_curves.png")
    if d.world > 1:
        _write_rank_summary(run, model, d)
        dist.destroy_process_group()
    return run


def _log_epoch(run: Path, state: dict, row: dict, logits: np.ndarray, idx: np.ndarray, parts: TaskParts,
               model: nn.Module, ema) -> None:
    """Append the metrics row, print it, and keep the best checkpoint and its validation predictions."""
    pd.DataFrame(state["history"]).to_csv(run / "metrics.csv", index=False)
    score = row["val_acc"] if not math.isnan(row["val_acc"]) else -row["train_loss"]
    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    if score > state["best"]:
        state["best"] = score
        weights = (ema.module if ema is not None else model).state_dict()
        atomic_save({"model": weights, "epoch": row["epoch"], "score": score}, run / "checkpoints" / "best.pt")
        if len(idx):
            _save_oof(run, logits, idx, parts.index)


def _save_oof(run: Path, logits: np.ndarray, idx: np.ndarray, index: pd.DataFrame) -> None:
    """Validation predictions: ``oof.csv`` (ids, label, prediction) and ``oof_logits.npy`` in the same order."""
    rows = index.iloc[idx][["sequence_id", "participant_id", "label", "fold"]].reset_index(drop=True)
    rows["pred"] = logits.argmax(1)
    rows.to_csv(run / "oof.csv", index=False)
    np.save(run / "oof_logits.npy", logits.astype(np.float32))


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


def _write_rank_summary(run: Path, model: nn.Module, d: Dist) -> None:
    """Each DDP rank writes a checksum of its final weights (they must agree)."""
    total = float(sum(p.detach().double().sum() for p in model.parameters()))
    (run / f"rank{d.rank}.json").write_text(json.dumps({"rank": d.rank, "param_sum": total}))
