"""What the one training loop needs from each competition.

A task is a ``TaskParts``: the prepared data and its index, ``sample(i, rng)`` (one raw training sample with its
augmentation, or without when ``rng`` is None), the feature module and the model, and an ``Objective`` that turns
samples into batches, losses, predictions, metrics and the run's out-of-fold file.

* asl-signs: I2-T features into the transformer, cross-entropy, accuracy (``ClassificationObjective``);
* asl-fingerspelling: F5 features into the CTC encoder, variable-length batches with frame masks, CTC loss, greedy
  decoding and Kaggle's normalised total Levenshtein score (``CTCObjective``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from aslkit import constants as C
from aslkit.augment_fs import outer_cutmix
from aslkit.config import make_config
from aslkit.data.fs import decode_indices, encode_phrase
from aslkit.features_fs import hand_frames, select_frames
from aslkit.models.ctc import ctc_loss, greedy_decode
from aslkit.recipes import TeacherTerm, consistency_per_sample, kd_per_sample, ousm_mean

Sample = Callable[[int, "np.random.Generator | None"], tuple[np.ndarray, Any]]


@dataclass
class TaskParts:
    """What the loop needs from a task."""

    source: Any                     # indexable: i -> raw landmarks [T, S, 3]
    index: pd.DataFrame             # one row per sample: sequence_id, participant_id, fold (+ task columns)
    features: nn.Module
    model: nn.Module
    objective: Objective
    sample: Sample                  # (row, rng or None) -> (raw landmarks, target)
    data: dict = field(default_factory=dict)      # where the data came from (saved as data.json in the run)
    on_split: Callable[[np.ndarray], np.ndarray] | None = None   # training rows -> rows to sample (e.g. weights)


# ------------------------------------------------------------------------------------------------------------------
# Objectives
# ------------------------------------------------------------------------------------------------------------------
class ClassificationObjective:
    """One label per sample: cross-entropy with label smoothing and optional class weights, accuracy; input or
    manifold mixup of training batches (``loss`` config); ``score_key`` picks the best epoch."""

    score_key = "val_acc"
    train_stat = "train_acc"

    def __init__(self, label_smoothing: float = 0.0, loss_cfg: Any = None, class_weights: np.ndarray | None = None,
                 ousm_k: int = 0):
        self.label_smoothing = label_smoothing
        self.loss_cfg = loss_cfg
        self.class_weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.ousm_k = ousm_k

    def train_step(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, rng: np.random.Generator,
                   teachers: Sequence[TeacherTerm] = ()) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs and loss of one training batch: mixed at the input (probability ``mixup_p``), else inside the
        model at a random mixing point (``manifold_mixup_p``, models with ``mix_points``), else plain; the label
        loss without the ``ousm_k`` worst samples, plus each teacher's term on the same (mixed) batch."""
        from aslkit.families import MixPlan
        c = self.loss_cfg
        u_input, u_manifold = rng.random(), rng.random()
        points = getattr(getattr(model, "module", model), "mix_points", 0)
        x, mix, lam, perm = inputs, None, 1.0, None
        if c is not None and len(targets) >= 2 and (u_input < c.mixup_p or (points and u_manifold < c.manifold_mixup_p)):
            manifold = not u_input < c.mixup_p
            lam = float(rng.beta(*(2 * [c.manifold_alpha if manifold else c.mixup_alpha])))
            perm = torch.as_tensor(rng.permutation(len(targets)), device=targets.device)
            if manifold:
                mix = MixPlan(perm, lam, int(rng.integers(points)))
            else:
                x = lam * inputs + (1 - lam) * inputs[perm]
        outputs = _run(model, x, mix)
        per, norm = self.per_sample(outputs, targets)
        if perm is not None:
            per_b, norm_b = self.per_sample(outputs, targets[perm])
            per, norm = lam * per + (1 - lam) * per_b, lam * norm + (1 - lam) * norm_b
        loss = ousm_mean(per, self.ousm_k, norm)
        for t in teachers:
            with torch.no_grad():
                t_out = _run(t.module, x, mix)
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

    def collate(self, batch: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats, labels, idx = zip(*batch)
        return torch.stack(feats), torch.as_tensor(labels), torch.as_tensor(idx)

    def to(self, inputs: torch.Tensor, targets: torch.Tensor, device: torch.device):
        return inputs.to(device), targets.to(device)

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
        rows.to_csv(run / "oof.csv", index=False)
        np.save(run / "oof_logits.npy", logits.astype(np.float32))


class CTCObjective:
    """Phrases: CTC loss over masked variable-length batches, greedy decoding, Kaggle's (N - D) / N score.

    Targets are ``(character ids, hand frames)``; a sample with fewer than ``min_hand_frames`` frames showing a hand
    is predicted as ``fallback`` (as the exported graph does).
    """

    score_key = "val_score"
    train_stat = None

    def __init__(self, fallback: str = "", min_hand_frames: int = 0, ousm_k: int = 0):
        self.fallback, self.min_hand_frames, self.ousm_k = fallback, min_hand_frames, ousm_k

    def collate(self, batch: list) -> tuple[tuple, tuple, torch.Tensor]:
        feats, targets, idx = zip(*batch)
        lengths = torch.as_tensor([len(f) for f in feats])
        x = nn.utils.rnn.pad_sequence(list(feats), batch_first=True)
        mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        ids = [torch.as_tensor(t[0], dtype=torch.long) for t in targets]
        hands = torch.as_tensor([t[1] for t in targets])
        return (x, mask, hands), (torch.cat(ids), torch.as_tensor([len(i) for i in ids])), torch.as_tensor(idx)

    def to(self, inputs: tuple, targets: tuple, device: torch.device):
        return tuple(t.to(device) for t in inputs), tuple(t.to(device) for t in targets)

    def train_step(self, model: nn.Module, inputs: tuple, targets: tuple, rng: np.random.Generator,
                   teachers: Sequence[TeacherTerm] = ()) -> tuple[tuple, torch.Tensor]:
        """Outputs and CTC loss of one training batch (without the ``ousm_k`` worst sequences), plus each teacher's
        term: ``kd`` trains the model's distillation head (its main head when it has none) on the teacher's greedy
        labels (F5); ``consistency`` is the MSE of the per-frame softmax over valid frames."""
        net = getattr(model, "module", model)
        x, mask = inputs[0], inputs[1]
        head = any(t.kind == "kd" for t in teachers) and getattr(net.cfg, "distill_head", False)
        logits, d_logits = model(x, mask, distill=True) if head else (model(x, mask), None)
        out_mask = net.output_mask(mask)
        loss = ousm_mean(ctc_loss(logits, out_mask, targets[0], targets[1], reduction="none"), self.ousm_k)
        for t in teachers:
            with torch.no_grad():
                t_logits = t.module(x, mask)
            if t_logits.shape != logits.shape:
                raise ValueError(f"teacher outputs {tuple(t_logits.shape)} do not match the model's "
                                 f"{tuple(logits.shape)} (same features and stride needed)")
            if t.kind == "kd":
                ids = [torch.as_tensor(s, dtype=torch.long) for s in greedy_decode(t_logits.float(), out_mask)]
                lengths = torch.as_tensor([len(i) for i in ids], device=x.device)
                flat = torch.cat(ids).to(x.device) if ids else lengths.new_zeros(0)
                term = ctc_loss(logits if d_logits is None else d_logits, out_mask, flat, lengths)
            else:
                frame = (logits.float().softmax(-1) - t_logits.float().softmax(-1)).pow(2).mean(-1)
                term = (frame * out_mask).sum() / out_mask.sum().clamp(min=1)
            loss = loss + t.weight * term
        return (logits, out_mask), loss

    def forward(self, model: nn.Module, inputs: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and their frame mask (the model may downsample time)."""
        return model(inputs[0], inputs[1]), getattr(model, "module", model).output_mask(inputs[1])

    def loss(self, outputs: tuple, targets: tuple, inputs: tuple, reduction: str = "mean") -> torch.Tensor:
        return ctc_loss(outputs[0], outputs[1], targets[0], targets[1], reduction=reduction)

    def hits(self, outputs: tuple, targets: tuple, inputs: tuple) -> int:
        return 0

    def predictions(self, outputs: tuple, inputs: tuple) -> list[str]:
        texts = [decode_indices(s) for s in greedy_decode(outputs[0].float(), outputs[1])]
        hands = inputs[2].tolist()
        return [self.fallback if h < self.min_hand_frames else t for t, h in zip(texts, hands)]

    def metrics(self, preds: list, idx: np.ndarray, index: pd.DataFrame, loss_sum: float) -> dict[str, float]:
        """Mean CTC loss and the normalised total Levenshtein score of the validation phrases."""
        if not len(idx):
            return {"val_loss": float("nan"), "val_score": float("nan")}
        from aslkit.evaluate_fs import fs_score
        return {"val_loss": loss_sum / len(idx), "val_score": fs_score(index["phrase"].to_numpy()[idx], preds)}

    def save_oof(self, run: Path, preds: list, idx: np.ndarray, index: pd.DataFrame) -> None:
        """``oof.csv``: sequence_id, participant_id, fold, phrase, pred, length (frames)."""
        rows = index.iloc[idx][["sequence_id", "participant_id", "fold", "phrase", "length"]].reset_index(drop=True)
        rows.insert(4, "pred", preds)
        rows.to_csv(run / "oof.csv", index=False)


Objective = ClassificationObjective | CTCObjective


# ------------------------------------------------------------------------------------------------------------------
# asl-signs
# ------------------------------------------------------------------------------------------------------------------
def task_modules(cfg, subset: np.ndarray) -> tuple[nn.Module, nn.Module]:
    """The feature module and the (untrained) model of a run config of either task."""
    return fs_modules(cfg, subset) if cfg.task == C.SLUG_FS else signs_modules(cfg, subset)


def signs_modules(cfg, subset: np.ndarray) -> tuple[nn.Module, nn.Module]:
    """The feature module and the (untrained) model of an asl-signs run config (its family: ``cfg.model_name``)."""
    from aslkit.families import build_modules
    return build_modules(cfg, subset)


def open_prepared(cfg):
    """The prepared cache of a run config (prepared now when missing or out of date), for either task."""
    if cfg.task == C.SLUG_FS:
        from aslkit.prepare_fs import PrepareFSConfig, PreparedFS, prepare_fingerspelling
        if cfg.prepared_dir:
            return PreparedFS(cfg.prepared_dir)
        pcfg = make_config(PrepareFSConfig, overrides={"data_dir": cfg.data_dir, "synth_size": cfg.synth_size,
                                                       "include_supplemental": cfg.supplemental_weight > 0})
        return PreparedFS(prepare_fingerspelling(pcfg))
    from aslkit.data.cache import PreparedSigns
    from aslkit.prepare import PrepareConfig, prepare_signs
    if cfg.prepared_dir:
        return PreparedSigns(cfg.prepared_dir)
    pcfg = make_config(PrepareConfig, overrides={"data_dir": cfg.data_dir, "synth_size": cfg.synth_size, "seed": 0})
    return PreparedSigns(prepare_signs(pcfg))


def _run(model: nn.Module, x: torch.Tensor, mix: Any) -> torch.Tensor:
    """``model`` on batch ``x``, mixed inside at ``mix`` (a ``MixPlan``, clipped to the model's mixing points)."""
    if mix is None:
        return model(x)
    points = getattr(getattr(model, "module", model), "mix_points", 0)
    if not points:
        raise ValueError(f"{type(model).__name__} has no mixing points for manifold mixup")
    return model(x, mix=type(mix)(mix.perm, mix.lam, min(mix.point, points - 1)))


def _data_record(prepared) -> dict:
    return {"prepared_dir": str(prepared.path), "data_dir": str(prepared.config.data_dir),
            "subset": [int(i) for i in prepared.subset]}


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


def build_signs(cfg, prepared: Any = None) -> TaskParts:
    """asl-signs: the prepared cache, and the features, augmentation and model of the run's family."""
    from aslkit.families import build_augment
    prepared = prepared if prepared is not None else open_prepared(cfg)
    features, model = signs_modules(cfg, prepared.subset)
    index = prepared.index.merge(prepared.folds[["sequence_id", "fold"]], on="sequence_id", how="left")
    sampler = SignsSampler(prepared, index["label"].to_numpy(), build_augment(cfg, prepared.subset))
    weights = class_weights_from_run(cfg.loss.class_weights_from, cfg.loss.class_weight_power) \
        if cfg.loss.class_weights_from else None
    objective = ClassificationObjective(cfg.optim.label_smoothing, cfg.loss, weights, cfg.recipe.ousm_k)
    return TaskParts(prepared, index, features, model, objective, sampler, _data_record(prepared), sampler.fit)


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


# ------------------------------------------------------------------------------------------------------------------
# asl-fingerspelling
# ------------------------------------------------------------------------------------------------------------------
def fs_modules(cfg, landmarks: np.ndarray | None = None) -> tuple[nn.Module, nn.Module]:
    """The feature module and the (untrained) CTC encoder of an asl-fingerspelling run config."""
    from aslkit.features_fs import FSFeatureConfig, FSFeatures
    from aslkit.models.ctc import CTCConfig, CTCEncoder
    fcfg = make_config(FSFeatureConfig, overrides=cfg.features)
    features = FSFeatures(fcfg, landmarks).eval()
    mcfg = make_config(CTCConfig, overrides={"max_len": fcfg.max_frames, **cfg.model})
    if mcfg.max_len < fcfg.max_frames:
        raise ValueError(f"model.max_len={mcfg.max_len} is shorter than features.max_frames={fcfg.max_frames}")
    check_static_widths(fcfg.max_frames, mcfg, features.feature_dim)
    return features, CTCEncoder(mcfg, features.feature_dim)


def check_static_widths(max_frames: int, mcfg, feature_dim: int) -> None:
    """ValueError when the graph's static frame count equals one of the model's widths: onnx2tf then guesses the
    layout of square ``[max_frames, width]`` tensors wrongly (the parity gate fails). Pick another max_frames."""
    rows = -(-max_frames // mcfg.stride)
    widths = {"model.dim": mcfg.dim, "3 x model.dim (qkv)": 3 * mcfg.dim, "model.ffn_mult x dim": mcfg.ffn_mult *
              mcfg.dim, "head size": mcfg.dim // mcfg.heads, "classes": mcfg.num_classes, "features": feature_dim}
    clash = [name for name, w in widths.items() if w in (max_frames, rows)]
    if clash:
        raise ValueError(f"features.max_frames={max_frames} (model rows {rows}) equals the width of {clash}; choose "
                         f"another value "
                         f"(square tensors break the TFLite conversion)")


class FSSampler:
    """Training samples of a prepared fingerspelling cache: outer CutMix with a partner of the same participant,
    the per-sample augmentation, the frame cap; target = (character ids, frames with a hand)."""

    def __init__(self, prepared, index: pd.DataFrame, transform, cutmix_p: float, max_frames: int):
        self.prepared, self.transform, self.cutmix_p, self.max_frames = prepared, transform, cutmix_p, max_frames
        self.phrases = index["phrase"].to_numpy()
        self.participants = index["participant_id"].to_numpy()
        self.partners: dict[int, np.ndarray] = {}

    def fit(self, rows: np.ndarray) -> None:
        """CutMix partners are drawn from these (training) rows only."""
        rows = np.unique(rows)
        self.partners = {int(p): rows[self.participants[rows] == p] for p in np.unique(self.participants[rows])}

    def __call__(self, i: int, rng: np.random.Generator | None) -> tuple[np.ndarray, tuple[np.ndarray, int]]:
        x, phrase = np.asarray(self.prepared[i], dtype=np.float32), str(self.phrases[i])
        if rng is not None:
            pool = self.partners.get(int(self.participants[i]), np.zeros(0, np.int64))
            if self.cutmix_p > 0 and rng.random() < self.cutmix_p and len(pool) > 1:
                j = int(rng.choice(pool))
                x, phrase = outer_cutmix(x, phrase, np.asarray(self.prepared[j], np.float32), str(self.phrases[j]),
                                         rng)
            x = self.transform(x, rng)
        x = select_frames(x, self.max_frames)
        return x, (encode_phrase(phrase), hand_frames(x, self.prepared.subset))


def weighted_rows(rows: np.ndarray, is_supplemental: np.ndarray, weight: float, seed: int) -> np.ndarray:
    """Training rows with every supplemental row taken ``weight`` times on average (floor(weight) copies, plus one
    more for a seeded random fraction); train rows once."""
    supp = rows[is_supplemental[rows]]
    base = rows[~is_supplemental[rows]]
    whole, frac = int(np.floor(weight)), weight - np.floor(weight)
    extra = np.random.default_rng(seed).random(len(supp)) < frac
    return np.sort(np.concatenate([base, np.repeat(supp, whole), supp[extra]]))


def build_fingerspelling(cfg, prepared: Any = None) -> TaskParts:
    """asl-fingerspelling: the prepared cache, F5 features, F1/F5 augmentations, CTC encoder, fallback phrase."""
    from aslkit.augment_fs import FSAugmentConfig, default_fs_augment
    from aslkit.evaluate_fs import fallback_phrase
    prepared = prepared if prepared is not None else open_prepared(cfg)
    features, model = fs_modules(cfg, prepared.subset)
    index = prepared.index.merge(prepared.folds[["sequence_id", "fold"]], on="sequence_id", how="left")
    acfg = make_config(FSAugmentConfig, overrides=cfg.augment)
    sampler = FSSampler(prepared, index, default_fs_augment(acfg), acfg.cutmix_p, features.cfg.max_frames)
    objective = CTCObjective(min_hand_frames=cfg.min_hand_frames, ousm_k=cfg.recipe.ousm_k)
    is_supp = (index["source"] == "supplemental").to_numpy()
    data = _data_record(prepared)

    def on_split(rows: np.ndarray) -> np.ndarray:
        sampler.fit(rows)
        objective.fallback = fallback_phrase(index["phrase"].to_numpy()[rows[~is_supp[rows]]] if
                                             (~is_supp[rows]).any() else index["phrase"].to_numpy()[rows])
        data["fallback_phrase"] = objective.fallback
        data["min_hand_frames"] = cfg.min_hand_frames
        return weighted_rows(rows, is_supp, cfg.supplemental_weight, cfg.seed)

    return TaskParts(prepared, index, features, model, objective, sampler, data, on_split)


def build_task(cfg, prepared: Any = None) -> TaskParts:
    """The ``TaskParts`` of ``cfg.task``."""
    builders = {C.SLUG_SIGNS: build_signs, C.SLUG_FS: build_fingerspelling}
    if cfg.task not in builders:
        raise ValueError(f"unknown task {cfg.task!r}; expected one of {sorted(builders)}")
    return builders[cfg.task](cfg, prepared)


def save_data_record(run: Path, parts: TaskParts) -> None:
    """``data.json``: where the run's data came from (and task extras such as the fallback phrase)."""
    (run / "data.json").write_text(json.dumps(parts.data, indent=1))


# ------------------------------------------------------------------------------------------------------------------
# What the notebooks show, for either task
# ------------------------------------------------------------------------------------------------------------------
def prepare_task(task: str, profile: str | None, overrides: dict | None = None):
    """Prepare (or reuse) the cache of ``task`` with the profile's preset; returns the opened cache."""
    if task == C.SLUG_FS:
        from aslkit.prepare_fs import PrepareFSConfig, PreparedFS, prepare_fingerspelling
        return PreparedFS(prepare_fingerspelling(make_config(PrepareFSConfig, profile, overrides)))
    from aslkit.data.cache import PreparedSigns
    from aslkit.prepare import PrepareConfig, prepare_signs
    return PreparedSigns(prepare_signs(make_config(PrepareConfig, profile, overrides)))


def fold_summary(prepared) -> pd.DataFrame:
    """Sequences, participants and mean frames per fold of a prepared cache."""
    folds = prepared.folds.merge(prepared.index[["sequence_id", "length"]], on="sequence_id")
    return folds.groupby("fold").agg(sequences=("sequence_id", "size"), participants=("participant_id", "nunique"),
                                     mean_frames=("length", "mean"))


def example_rows(prepared, k: int = 4) -> pd.DataFrame:
    """``k`` example rows of the index: different signs (asl-signs) or the first phrases (fingerspelling), each
    with a ``title``."""
    index = prepared.index
    if "sign" in index:
        return index.drop_duplicates("sign").head(k).assign(title=lambda d: d["sign"])
    return index[index["length"] > 20].head(k).assign(title=lambda d: d["phrase"])


def sample_draws(parts: TaskParts, row: int, k: int = 4) -> tuple[list[np.ndarray], list[str]]:
    """One training sample as stored and after ``k`` random draws of its task's augmentation, in the full
    543-landmark layout (for ``plotting.plot_frames``), with titles."""
    from aslkit.data.cache import expand_to_full
    subset = parts.source.subset
    draws = [parts.sample(row, None)[0]] + [parts.sample(row, np.random.default_rng(s))[0] for s in range(k)]
    return [expand_to_full(x, subset) for x in draws], ["original"] + [f"draw {s}" for s in range(k)]
