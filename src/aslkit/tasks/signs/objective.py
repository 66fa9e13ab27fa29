"""What the one training loop needs from asl-signs: the cache's samples through the family's augmentation
(``SignsSampler``), the family's feature module and model, and cross-entropy with mixup, class weights and the
recipes' teacher terms (``ClassificationObjective``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from aslkit.recipes import TeacherTerm, consistency_per_sample, kd_per_sample, ousm_mean
from aslkit.runs import TrainConfig, data_record, save_array_atomic, write_csv_atomic
from aslkit.tasks.base import TaskParts
from aslkit.tasks.signs.families import FAMILIES
from aslkit.tensor_ops import MixPlan, batch_features, pack_landmarks


class ClassificationObjective:
    """One label per sample: cross-entropy with label smoothing and optional class weights, accuracy; input or
    manifold mixup of training batches (``loss`` config); ``score_key`` picks the best epoch."""

    score_key = "val_acc"
    train_stat = "train_acc"

    def __init__(self, label_smoothing: float = 0.0, loss_cfg: Any = None, class_weights: np.ndarray | None = None,
                 ousm_k: int = 0, features: nn.Module | None = None):
        self.features = features          # the family's feature module, run on whole batches by ``to``
        self.label_smoothing = label_smoothing
        self.loss_cfg = loss_cfg
        self.class_weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.ousm_k = ousm_k

    def train_step(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, rng: np.random.Generator,
                   teachers: Sequence[TeacherTerm] = ()) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs and loss of one training batch: mixed at the input (probability ``mixup_p``), else inside the
        model at a random mixing point (``manifold_mixup_p``, models with ``mix_points``), else plain; the label
        loss without the ``ousm_k`` worst samples, plus each teacher's term on the same (mixed) batch."""
        c = self.loss_cfg
        u_input, u_manifold = rng.random(), rng.random()
        points = getattr(getattr(model, "module", model), "mix_points", 0)
        x, mix, lam, perm = inputs, None, 1.0, None
        mixed = c is not None and (u_input < c.mixup_p or (points and u_manifold < c.manifold_mixup_p))
        if mixed and len(targets) >= 2:
            manifold = not u_input < c.mixup_p
            lam = float(rng.beta(*(2 * [c.manifold_alpha if manifold else c.mixup_alpha])))
            perm = torch.as_tensor(rng.permutation(len(targets)), device=targets.device)
            if manifold:
                mix = MixPlan(perm, lam, int(rng.integers(points)))
            else:
                x = lam * inputs + (1 - lam) * inputs[perm]
        outputs = forward_mixed(model, x, mix)
        per, norm = self.per_sample(outputs, targets)
        if perm is not None:
            per_b, norm_b = self.per_sample(outputs, targets[perm])
            per, norm = lam * per + (1 - lam) * per_b, lam * norm + (1 - lam) * norm_b
        loss = ousm_mean(per, self.ousm_k, norm)
        for t in teachers:
            with torch.no_grad():
                t_out = forward_mixed(t.module, x, mix)
            term = kd_per_sample(outputs, t_out, t.temperature) if t.kind == "kd" else \
                consistency_per_sample(outputs, t_out)
            loss = loss + t.weight * term.mean()
        return outputs, loss

    def per_sample(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample (class-weighted, smoothed) cross-entropy and its normaliser (the target's class weight)."""
        weight = None if self.class_weights is None else self.class_weights.to(outputs.device)
        per = nn.functional.cross_entropy(outputs.float(), targets, weight=weight,
                                          label_smoothing=self.label_smoothing, reduction="none")
        return per, (torch.ones_like(per) if weight is None else weight[targets])

    def collate(self, batch: list) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Raw samples -> (packed landmarks, lengths: ``pack_landmarks``), labels, sample rows."""
        seqs, labels, idx = zip(*batch)
        return pack_landmarks(seqs), torch.as_tensor(labels), torch.as_tensor(idx)

    def featurize(self, raw: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The model's inputs of a collated batch, on the device it lies on: the features of every sequence."""
        return batch_features(self.features, *raw)

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return model(inputs)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, inputs: Any, reduction: str = "mean"
             ) -> torch.Tensor:
        """Cross-entropy of a batch: summed, or averaged as weighted cross-entropy does (``"mean"``)."""
        per, norm = self.per_sample(outputs, targets)
        return per.sum() if reduction == "sum" else per.sum() / norm.sum()

    def hits(self, outputs: torch.Tensor, targets: torch.Tensor, inputs: Any) -> int:
        """Correct predictions in the batch (for the training progress)."""
        return int((outputs.argmax(1) == targets).sum())

    def predictions(self, outputs: torch.Tensor, inputs: Any) -> list:
        return list(outputs.float().cpu().numpy())

    def metrics(self, preds: list, idx: np.ndarray, index: pd.DataFrame, loss_sum: float) -> dict[str, float]:
        """Loss, accuracy and top-5 accuracy of the validation logits."""
        if not len(idx):
            return {"val_loss": float("nan"), "val_acc": float("nan"), "val_top5": float("nan")}
        logits, labels = np.stack(preds), index["label"].to_numpy()[idx]
        top5 = np.argsort(-logits, axis=1)[:, :5]
        return {"val_loss": loss_sum / len(idx), "val_acc": float((logits.argmax(1) == labels).mean()),
                "val_top5": float((top5 == labels[:, None]).any(1).mean())}

    def save_oof(self, run: Path, preds: list, idx: np.ndarray, index: pd.DataFrame) -> None:
        """``oof.csv`` (ids, label, prediction) and ``oof_logits.npy`` in the same order."""
        logits = np.stack(preds)
        rows = index.iloc[idx][["sequence_id", "participant_id", "label", "fold"]].reset_index(drop=True)
        rows["pred"] = logits.argmax(1)
        save_array_atomic(run / "oof_logits.npy", logits.astype(np.float32))
        write_csv_atomic(rows, run / "oof.csv", index=False)


def forward_mixed(model: nn.Module, x: torch.Tensor, mix: Any) -> torch.Tensor:
    """``model`` on batch ``x``, mixed inside at ``mix`` (a ``MixPlan``, clipped to the model's mixing points)."""
    if mix is None:
        return model(x)
    points = getattr(getattr(model, "module", model), "mix_points", 0)
    if not points:
        raise ValueError(f"{type(model).__name__} has no mixing points for manifold mixup")
    return model(x, mix=type(mix)(mix.perm, mix.lam, min(mix.point, points - 1)))


class SignsSampler:
    """Training samples of a prepared asl-signs cache through the family's augmentation; transforms that mix in
    another sequence of the same sign draw it from the training rows of that sign."""

    def __init__(self, prepared, labels: np.ndarray, transform):
        self.prepared, self.labels, self.transform = prepared, labels, transform
        self.pools: dict[int, np.ndarray] = {}

    def fit(self, rows: np.ndarray) -> np.ndarray:
        """Partners are drawn from these (training) rows only; returns ``rows``."""
        rows = np.unique(rows)
        self.pools = {int(c): rows[self.labels[rows] == c] for c in np.unique(self.labels[rows])}
        return rows

    def partner(self, i: int):
        """``rng -> sequence``: another training sequence of the sign of row ``i`` (itself when it is the only one)."""
        pool = self.pools.get(int(self.labels[i]), np.array([i]))
        others = pool[pool != i] if len(pool) > 1 else pool
        return lambda rng: np.asarray(self.prepared[int(rng.choice(others))], dtype=np.float32)

    def __call__(self, i: int, rng: np.random.Generator | None) -> tuple[np.ndarray, int]:
        x = np.asarray(self.prepared[i], dtype=np.float32)
        return (x if rng is None else self.transform(x, rng, self.partner(i))), int(self.labels[i])


def class_weights(logits: np.ndarray, labels: np.ndarray, power: float = 1.0, num_classes: int = 250) -> np.ndarray:
    """Per-class cross-entropy weights ``(1 + missed + false positives) ** power`` from validation logits, scaled to
    mean 1: ``missed`` = share of the class's samples predicted as another class (1 − recall), ``false positives`` =
    share of the predictions of this class that belong to another class (1 − precision, the classes it is confused
    with). Both are rates, so a weight is at most ``3 ** power`` times another's, even when a class absorbs many
    predictions. Classes without validation samples or predictions count as making no errors of that kind."""
    pred = logits.argmax(1)
    n = np.bincount(labels, minlength=num_classes).astype(np.float64)
    n_pred = np.bincount(pred, minlength=num_classes).astype(np.float64)
    missed = np.bincount(labels[pred != labels], minlength=num_classes) / np.maximum(n, 1)
    false_pos = np.bincount(pred[pred != labels], minlength=num_classes) / np.maximum(n_pred, 1)
    w = (1.0 + missed + false_pos) ** power
    return (w / w.mean()).astype(np.float32)


def class_weights_from_run(run: str | Path, power: float = 1.0) -> np.ndarray:
    """``class_weights`` of a finished asl-signs run's out-of-fold predictions."""
    run = Path(run)
    if not (run / "oof.csv").is_file() or not (run / "oof_logits.npy").is_file():
        raise FileNotFoundError(f"loss.class_weights_from={run}: needs oof.csv and oof_logits.npy (a run with a "
                                f"validation fold)")
    labels = pd.read_csv(run / "oof.csv")["label"].to_numpy()
    return class_weights(np.load(run / "oof_logits.npy"), labels, power)


def build_task(cfg: TrainConfig, prepared: Any) -> TaskParts:
    """asl-signs: the prepared cache, and the features, augmentation and model of the run's family."""
    features, model = FAMILIES.build_modules(cfg, prepared.subset)
    index = prepared.index.merge(prepared.folds[["sequence_id", "fold"]], on="sequence_id", how="left")
    sampler = SignsSampler(prepared, index["label"].to_numpy(), FAMILIES.build_augment(cfg, prepared.subset))
    weights = class_weights_from_run(cfg.loss.class_weights_from, cfg.loss.class_weight_power) \
        if cfg.loss.class_weights_from else None
    objective = ClassificationObjective(cfg.optim.label_smoothing, cfg.loss, weights, cfg.recipe.ousm_k, features)
    return TaskParts(prepared, index, features, model, objective, sampler, data_record(prepared), sampler.fit)
