"""Training recipes of the winning solutions, each a switch of the one training loop (``TrainConfig.recipe``).

- OUSM (I6): the k highest-loss samples of each batch do not count (``ousm_k``).
- AWP (ISLR 1st, F2): from ``awp_start`` of the epochs, the gradient is taken at adversarially perturbed weights.
- Knowledge distillation (I2-T, F5): a finished run is a frozen ``teacher``; ``init_from`` starts the model from a
  run's weights (every tensor whose name and shape match: a 3-layer student gets the teacher's first 3 layers).
- Mean teacher (I6): the EMA of the weights (true average early on) is the teacher of a consistency loss, and the
  weights that are evaluated; a smaller ``student`` can train alongside against it (its own run folder).
- Model soup (I6): the uniform average of the last ``soup_last`` epochs' weights, saved as ``checkpoints/soup.pt``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["RecipeConfig", "TeacherTerm", "ousm_mean", "AWP", "consistency_ramp",
           "kd_per_sample", "consistency_per_sample", "load_run_model", "init_from_run", "uniform_soup"]


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


@dataclass
class TeacherTerm:
    """A frozen model whose outputs on the batch enter the loss: ``kd`` (distillation) or ``consistency`` (MSE of
    the softmax outputs, mean teacher), with a weight that may depend on training progress."""

    module: nn.Module
    kind: str = "kd"
    weight: float = 1.0
    temperature: float = 1.0


def ousm_mean(per_sample: torch.Tensor, k: int, norm: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of per-sample losses without the ``k`` largest (OUSM): their sum over the sum of ``norm`` (per-sample
    normalisers, e.g. the class weights of weighted cross-entropy; default 1). All samples count when ``k`` is 0 or
    would leave none."""
    norm = torch.ones_like(per_sample) if norm is None else norm.to(per_sample.dtype)
    if 0 < k < len(per_sample):
        keep = per_sample.detach().argsort()[: len(per_sample) - k]
        per_sample, norm = per_sample[keep], norm[keep]
    return per_sample.sum() / norm.sum().clamp(min=1e-12)


def kd_per_sample(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-sample KL(teacher || student) of the softened class distributions, times T² (Hinton et al.)."""
    t = temperature
    log_p = (student.float() / t).log_softmax(-1)
    log_q = (teacher.float() / t).log_softmax(-1)
    return (log_q.exp() * (log_q - log_p)).sum(-1) * t * t


def consistency_per_sample(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared difference of the softmax outputs (mean-teacher consistency)."""
    diff = student.float().softmax(-1) - teacher.float().softmax(-1)
    return diff.pow(2).flatten(1).mean(1)


def consistency_ramp(progress: float, rampup: float) -> float:
    """Sigmoid ramp-up ``exp(-5 (1 - t)²)`` over the first ``rampup`` share of training (1 afterwards)."""
    if rampup <= 0:
        return 1.0
    t = min(max(progress / rampup, 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


# ------------------------------------------------------------------------------------------------------------------
# AWP
# ------------------------------------------------------------------------------------------------------------------
class AWP:
    """Adversarial weight perturbation: weights (tensors with more than one dimension: no biases or norms) move by
    ``lr · ‖w‖ · g/‖g‖`` along their gradient, bounded to ``w ± eps·|w|``; ``restore`` puts the originals back."""

    def __init__(self, model: nn.Module, lr: float, eps: float):
        self.lr, self.eps = lr, eps
        self.params = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
        self.backup: list[torch.Tensor] = []

    @torch.no_grad()
    def perturb(self) -> None:
        """Move the weights (their ``.grad`` must hold the clean gradient); remembers the originals."""
        self.backup = [p.detach().clone() for p in self.params]
        for p, w in zip(self.params, self.backup):
            if p.grad is None:
                continue
            g_norm = p.grad.float().norm()
            if not torch.isfinite(g_norm) or g_norm == 0:
                continue
            step = self.lr * p.grad / (g_norm + 1e-12) * (w.float().norm() + 1e-12)
            bound = self.eps * w.abs()
            p.add_(step.to(p.dtype)).copy_(torch.minimum(torch.maximum(p, w - bound), w + bound))

    @torch.no_grad()
    def restore(self) -> None:
        """The weights from before ``perturb``."""
        for p, w in zip(self.params, self.backup):
            p.copy_(w)
        self.backup = []


# ------------------------------------------------------------------------------------------------------------------
# Run folders as teachers and starting points
# ------------------------------------------------------------------------------------------------------------------
def load_run_model(run: str | Path, checkpoint: str = "best") -> tuple[Any, nn.Module, nn.Module]:
    """(config, feature module, model with the checkpoint's weights) of a finished run folder, either task."""
    import json

    import numpy as np

    from aslkit.config import load_config
    from aslkit.tasks import task_modules
    from aslkit.train import TrainConfig, load_checkpoint
    run = Path(run)
    for need in ("config.yaml", "data.json", f"checkpoints/{checkpoint}.pt"):
        if not (run / need).is_file():
            raise FileNotFoundError(f"{run}: not a finished run folder (missing {need})")
    cfg = load_config(TrainConfig, run / "config.yaml")
    subset = np.array(json.loads((run / "data.json").read_text())["subset"])
    features, model = task_modules(cfg, subset)
    model.load_state_dict(load_checkpoint(run / "checkpoints" / f"{checkpoint}.pt")["model"])
    return cfg, features, model


def load_teacher(run: str | Path, student_cfg: Any) -> nn.Module:
    """The frozen model of run folder ``run``; it must read the student's features (same task, family and feature
    config), since it sees the student's batches."""
    cfg, _, model = load_run_model(run)
    theirs, mine = [(c.task, c.model_name, c.features) for c in (cfg, student_cfg)]
    if theirs != mine:
        raise ValueError(f"recipe.teacher={run}: the teacher reads other inputs than this run (task, model_name, "
                         f"features: {theirs} vs {mine})")
    return model.eval().requires_grad_(False)


def init_from_run(model: nn.Module, run: str | Path, checkpoint: str = "best") -> list[str]:
    """Copy into ``model`` every tensor of the run's checkpoint whose name and shape match; returns their names."""
    from aslkit.train import load_checkpoint
    path = Path(run) / "checkpoints" / f"{checkpoint}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"recipe.init_from={run}: no checkpoint {path}")
    src = load_checkpoint(path)["model"]
    own = model.state_dict()
    copied = [k for k, v in src.items() if k in own and own[k].shape == v.shape]
    if not copied:
        raise ValueError(f"recipe.init_from={run}: no tensor of its model matches this model's names and shapes")
    model.load_state_dict({**own, **{k: src[k] for k in copied}})
    return copied


# ------------------------------------------------------------------------------------------------------------------
# Model soup
# ------------------------------------------------------------------------------------------------------------------
def uniform_soup(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform average of state dicts (floating tensors averaged in float64; others from the last state)."""
    if not states:
        raise ValueError("uniform_soup needs at least one state dict")
    out = {}
    for k, last in states[-1].items():
        if last.is_floating_point():
            out[k] = (sum(s[k].double() for s in states) / len(states)).to(last.dtype)
        else:
            out[k] = last.clone()
    return out


# ------------------------------------------------------------------------------------------------------------------
# The recipes during one run
# ------------------------------------------------------------------------------------------------------------------
class RecipeRun:
    """What the loop asks the recipes at each step: the teachers' terms, whether AWP is on, the EMA step."""

    def __init__(self, cfg: Any, model: nn.Module, ema: Any, total_steps: int, device: torch.device):
        r = self.cfg = cfg.recipe
        if (r.mean_teacher or r.student) and ema is None:
            raise ValueError("recipe.mean_teacher and recipe.student need an EMA teacher: set optim.ema_decay "
                             "(I6: 0.97)")
        self.ema, self.total_steps = ema, max(1, total_steps)
        self.fixed = [TeacherTerm(load_teacher(r.teacher, cfg).to(device), "kd", r.kd_weight, r.kd_temperature)] \
            if r.teacher else []
        self.awp = AWP(model, r.awp_lr, r.awp_eps) if r.awp_lr > 0 else None
        self.awp_from = int(math.ceil(r.awp_start * cfg.optim.epochs))

    def terms(self, step: int) -> list[TeacherTerm]:
        """The teachers of update ``step`` (0-based): the fixed teacher, and the EMA with its ramped weight."""
        out = list(self.fixed)
        if self.cfg.mean_teacher:
            w = self.cfg.consistency_weight * consistency_ramp(step / self.total_steps, self.cfg.consistency_rampup)
            out.append(TeacherTerm(self.ema.module, "consistency", w))
        return out

    def awp_on(self, epoch: int) -> bool:
        return self.awp is not None and epoch >= self.awp_from

    def ema_step(self, step: int) -> int | None:
        """The step timm's EMA gets: the 1-based update count for a mean teacher (decay ``min(d, 1 - 1/n)``: the
        true average early on), else None (the constant decay)."""
        return step + 1 if self.cfg.mean_teacher or self.cfg.student else None


def student_config(cfg: Any, run: Path) -> Any:
    """The config of the student trained alongside run ``run``: the model overrides of ``recipe.student``, no
    recipes of its own, run folder ``<run>/student``."""
    import dataclasses
    return dataclasses.replace(cfg, model={**cfg.model, **cfg.recipe.student}, recipe=RecipeConfig(),
                               run_name=str(Path(run).resolve() / "student"))


def soup_epochs(epochs: int, last: int) -> range:
    """The (0-based) epochs whose weights go into a soup of the last ``last`` epochs."""
    return range(max(0, epochs - last), epochs) if last > 0 else range(0)


def soup_path(run: Path, epoch: int) -> Path:
    return Path(run) / "checkpoints" / f"epoch_{epoch + 1:03d}.pt"


# ------------------------------------------------------------------------------------------------------------------
# Three-stage distillation (I2-T)
# ------------------------------------------------------------------------------------------------------------------
def distill_chain(run: str | Path, preset: str | None = None, overrides: Any = None,
                  layers: tuple[int, ...] = (4, 4, 3), layers_key: str = "model.layers") -> list[Path]:
    """Train the stages of I2-T's distillation into ``<run>/stage<k>``: stage 1 from the labels; every later stage
    distils the one before (``recipe.teacher``, linked as ``teacher``) and, when it has fewer layers, starts from
    that teacher's first layers (``recipe.init_from``). Finished stages are kept, unfinished ones resumed."""
    from aslkit.config import parse_overrides
    from aslkit.train import make_train_config, train
    run = Path(run).resolve()
    base, stages = parse_overrides(overrides), []
    for k, n in enumerate(layers, 1):
        out = run / f"stage{k}"
        ov = {**base, layers_key: n, "run_name": str(out)}
        if stages:
            ov["recipe.teacher"] = str(stages[-1])
            if n < layers[k - 2]:
                ov["recipe.init_from"] = str(stages[-1])
        cfg = make_train_config(preset, ov)
        if not _finished(out, cfg.optim.epochs):
            train(resume=out) if (out / "config.yaml").is_file() else train(cfg)
        if stages and not (out / "teacher").exists():
            (out / "teacher").symlink_to(f"../{stages[-1].name}", target_is_directory=True)
        stages.append(out)
    return stages


def _finished(run: Path, epochs: int) -> bool:
    """True when the run folder logged all ``epochs``."""
    import pandas as pd
    metrics = run / "metrics.csv"
    return metrics.is_file() and len(pd.read_csv(metrics)) >= epochs
