"""What the one training loop needs from asl-fingerspelling: the cache's samples with outer CutMix and the
family's augmentation (``FSSampler``), supplemental rows by weight, and CTC over masked variable-length batches with
greedy decoding and Kaggle's normalised total Levenshtein score (``CTCObjective``)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from aslkit.config import make_config
from aslkit.data.fs import decode_indices, encode_phrase
from aslkit.recipes import TeacherTerm, ousm_mean
from aslkit.runs import TrainConfig, data_record
from aslkit.tasks.base import TaskParts
from aslkit.tasks.fingerspelling.align import aligned_cutmix, read_alignment
from aslkit.tasks.fingerspelling.augment import FSAugmentConfig, outer_cutmix, time_flip
from aslkit.tasks.fingerspelling.ctc_ops import ctc_loss, greedy_decode
from aslkit.tasks.fingerspelling.evaluate import fallback_phrase
from aslkit.tasks.fingerspelling.families import FAMILIES, attention_decoder
from aslkit.tasks.fingerspelling.frames import hand_frames, select_frames
from aslkit.tasks.fingerspelling.phrases import PhraseObjective
from aslkit.tasks.fingerspelling.seq2seq import Seq2SeqObjective, confidence_targets
from aslkit.transforms import check_p


class CTCObjective(PhraseObjective):
    """Phrases by CTC: the loss over masked variable-length batches and greedy decoding (the batches, fallback and
    score are ``PhraseObjective``'s)."""

    def __init__(self, fallback: str = "", min_hand_frames: int = 0, ousm_k: int = 0,
                 features: nn.Module | None = None):
        super().__init__(fallback, min_hand_frames, features)
        self.ousm_k = ousm_k

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

    def predictions(self, outputs: tuple, inputs: tuple) -> list[str]:
        texts = [decode_indices(s) for s in greedy_decode(outputs[0].float(), outputs[1])]
        hands = inputs[2].tolist()
        return [self.fallback if h < self.min_hand_frames else t for t, h in zip(texts, hands)]

class FSSampler:
    """Training samples of a prepared fingerspelling cache: outer CutMix with a partner of the same participant,
    the time flip (frames and phrase), the per-sample augmentation, the frame cap; target = (character ids, frames
    with a hand). A probability of 0 draws nothing, so the random stream of the other draws stays as it was."""

    def __init__(self, prepared, index: pd.DataFrame, transform, cutmix_p: float, max_frames: int,
                 time_flip_p: float = 0.0, alignment: dict[int, np.ndarray] | None = None):
        self.prepared, self.transform, self.cutmix_p, self.max_frames = prepared, transform, cutmix_p, max_frames
        self.time_flip_p = check_p("augment.time_flip_p", time_flip_p)
        self.alignment = alignment
        self.sequence_ids = index["sequence_id"].to_numpy() if alignment is not None else None
        self.phrases = index["phrase"].to_numpy()
        self.participants = index["participant_id"].to_numpy()
        self.partners: dict[int, np.ndarray] = {}
        self.stand_ins: dict[int, np.ndarray] = {}     # row -> the rows it stands for (one drawn per sample)

    def fit(self, rows: np.ndarray) -> None:
        """CutMix partners are drawn from these (training) rows only."""
        rows = np.unique(rows)
        self.partners = {int(p): rows[self.participants[rows] == p] for p in np.unique(self.participants[rows])}

    def one_per_phrase(self, rows: np.ndarray, is_supplemental: np.ndarray) -> np.ndarray:
        """Training rows with the supplemental ones replaced by one row per unique phrase, which stands for all of
        that phrase's supplemental rows: each epoch draws one of them at random (F1's supplemental sampling)."""
        supp = np.unique(rows[is_supplemental[rows]])
        groups = pd.Series(supp).groupby(self.phrases[supp]).groups.values()
        self.stand_ins = {int(supp[g[0]]): supp[np.asarray(g)] for g in groups}
        return np.sort(np.concatenate([rows[~is_supplemental[rows]], np.fromiter(self.stand_ins, np.int64)]))

    def cutmix(self, i: int, j: int, x: np.ndarray, phrase: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """Outer CutMix of row ``i`` (``x``, ``phrase``) with row ``j``: at aligned character boundaries when the
        sampler has an alignment (``align.aligned_cutmix``), else at one fraction of both (``outer_cutmix``)."""
        other, other_phrase = np.asarray(self.prepared[j], np.float32), str(self.phrases[j])
        if self.alignment is None:
            return outer_cutmix(x, phrase, other, other_phrase, rng)
        spans = [self.alignment.get(int(self.sequence_ids[r])) for r in (i, j)]
        return aligned_cutmix(x, phrase, spans[0], other, other_phrase, spans[1], rng)

    def __call__(self, i: int, rng: np.random.Generator | None) -> tuple[np.ndarray, tuple[np.ndarray, int]]:
        if rng is not None and i in self.stand_ins:
            i = int(rng.choice(self.stand_ins[i]))
        x, phrase = np.asarray(self.prepared[i], dtype=np.float32), str(self.phrases[i])
        if rng is not None:
            pool = self.partners.get(int(self.participants[i]), np.zeros(0, np.int64))
            if self.cutmix_p > 0 and rng.random() < self.cutmix_p and len(pool) > 1:
                x, phrase = self.cutmix(i, int(rng.choice(pool)), x, phrase, rng)
            if self.time_flip_p > 0 and rng.random() < self.time_flip_p:
                x, phrase = time_flip(x, phrase)
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


def build_objective(cfg: TrainConfig, features: nn.Module, model: nn.Module, index: pd.DataFrame,
                    acfg: FSAugmentConfig) -> PhraseObjective:
    """The objective of the run's family (its ``OBJECTIVE``): CTC, or attention decoders (``seq2seq``: the
    confidence head trained when ``recipe.confidence_from`` names earlier runs)."""
    if not attention_decoder(cfg.model_name):
        return CTCObjective(min_hand_frames=cfg.min_hand_frames, ousm_k=cfg.recipe.ousm_k, features=features)
    conf = confidence_targets(cfg.recipe.confidence_from, index) if cfg.recipe.confidence_from else None
    return Seq2SeqObjective(model.cfg, acfg.token_mask_p, conf, min_hand_frames=cfg.min_hand_frames,
                            features=features)


def build_task(cfg: TrainConfig, prepared: Any) -> TaskParts:
    """asl-fingerspelling: the prepared cache, the family's features, augmentation and model, fallback phrase."""
    if cfg.supplemental_per_phrase and cfg.supplemental_weight:
        raise ValueError(f"supplemental_per_phrase=true replaces supplemental_weight={cfg.supplemental_weight}: "
                         f"set one of them")
    features, model = FAMILIES.build_modules(cfg, prepared.subset)
    index = prepared.index.merge(prepared.folds[["sequence_id", "fold"]], on="sequence_id", how="left")
    acfg = make_config(FSAugmentConfig, overrides=cfg.augment)
    transform = FAMILIES.build_augment(cfg, prepared.subset)
    alignment = read_alignment(acfg.cutmix_alignment) if acfg.cutmix_alignment else None
    sampler = FSSampler(prepared, index, transform, acfg.cutmix_p, features.cfg.max_frames, acfg.time_flip_p,
                        alignment)
    objective = build_objective(cfg, features, model, index, acfg)
    is_supp = (index["source"] == "supplemental").to_numpy()
    data = data_record(prepared)

    def on_split(rows: np.ndarray) -> np.ndarray:
        sampler.fit(rows)
        objective.fallback = fallback_phrase(index["phrase"].to_numpy()[rows[~is_supp[rows]]] if
                                             (~is_supp[rows]).any() else index["phrase"].to_numpy()[rows])
        data["fallback_phrase"] = objective.fallback
        data["min_hand_frames"] = cfg.min_hand_frames
        if cfg.supplemental_per_phrase:
            return sampler.one_per_phrase(rows, is_supp)
        return weighted_rows(rows, is_supp, cfg.supplemental_weight, cfg.seed)

    return TaskParts(prepared, index, features, model, objective, sampler, data, on_split)
