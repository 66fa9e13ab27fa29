"""Training recipes of the winning solutions, each a switch of the one training loop (``TrainConfig.recipe``).

- OUSM (I6): the k highest-loss samples of each batch do not count (``ousm_k``).
- AWP (ISLR 1st, F2): from ``awp_start`` of the epochs, the gradient is taken at adversarially perturbed weights.
- Knowledge distillation (I2-T, F5): a finished run is a frozen ``teacher`` (loaded by ``aslkit.train``);
  ``init_from`` starts the model from a run's weights (every tensor whose name and shape match: a 3-layer student
  gets the teacher's first 3 layers).
- Mean teacher (I6): the EMA of the weights (true average early on) is the teacher of a consistency loss, and the
  weights that are evaluated; a smaller ``student`` can train alongside against it (its own run folder).
- Model soup (I6): the uniform average of the last ``soup_last`` epochs' weights, saved as ``checkpoints/soup.pt``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aslkit.runs import RecipeConfig, checkpoint_path, load_checkpoint


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


def init_from_run(model: nn.Module, run: str | Path, checkpoint: str = "best") -> list[str]:
    """Copy into ``model`` every tensor of the run's checkpoint whose name and shape match; returns their names.
    A pretraining run's ``encoder`` checkpoint (its pretrained encoder, written by ``aslkit pretrain``) is taken
    in place of ``checkpoint`` when the run has one."""
    path = checkpoint_path(run, "encoder")
    path = path if path.is_file() else checkpoint_path(run, checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"recipe.init_from={run}: no checkpoint {path}")
    src = load_checkpoint(path)["model"]
    own = model.state_dict()
    copied = [k for k, v in src.items() if k in own and own[k].shape == v.shape]
    if not copied:
        raise ValueError(f"recipe.init_from={run}: no tensor of its model matches this model's names and shapes")
    model.load_state_dict({**own, **{k: src[k] for k in copied}})
    return copied


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


class RecipeRun:
    """What the loop asks the recipes at each step: the teachers' terms, whether AWP is on, the EMA step."""

    def __init__(self, cfg: Any, model: nn.Module, ema: Any, total_steps: int, device: torch.device,
                 teacher: nn.Module | None = None):
        r = self.cfg = cfg.recipe
        if (r.mean_teacher or r.student) and ema is None:
            raise ValueError("recipe.mean_teacher and recipe.student need an EMA teacher: set optim.ema_decay "
                             "(I6: 0.97)")
        self.ema, self.total_steps = ema, max(1, total_steps)
        self.fixed = [TeacherTerm(teacher.to(device), "kd", r.kd_weight, r.kd_temperature)] \
            if teacher is not None else []
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
    return dataclasses.replace(cfg, model={**cfg.model, **cfg.recipe.student}, recipe=RecipeConfig(),
                               run_name=str(Path(run).resolve() / "student"))


def soup_epochs(epochs: int, last: int) -> range:
    """The (0-based) epochs whose weights go into a soup of the last ``last`` epochs."""
    return range(max(0, epochs - last), epochs) if last > 0 else range(0)
