"""F5's self-supervised pretraining of the fingerspelling encoder: data2vec 2.0 (Baevski et al., 2022).

The teacher (an EMA of the student's encoder, never trained by gradients) encodes the whole sequence; the student
encodes ``copies`` masked copies of it (F5: 8 copies, half of the frames masked in blocks) and regresses, through a
light convolutional decoder, the average of the teacher's top-k block outputs (each instance-normalised over time)
at the masked frames. One difference from data2vec 2.0: the student keeps every frame and sees a learned mask
vector in place of the masked ones (2.0 drops them from the encoder to save time), so the rotary positions and the
Conv1d stem see the sequence as fine-tuning does. Labels are unused; the phrases only ride along in the batches.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from aslkit.config import ConfigError, make_config
from aslkit.recipes import TeacherTerm
from aslkit.runs import TrainConfig, write_csv_atomic
from aslkit.tasks.base import TaskParts
from aslkit.tasks.fingerspelling.objective import build_task
from aslkit.tasks.fingerspelling.phrases import PhraseObjective

STUDENT = "student."               # the prefix of the student encoder's weights in a pretraining checkpoint


@dataclass
class Data2VecConfig:
    """data2vec 2.0 settings (``TrainConfig.pretrain`` overrides these)."""

    copies: int = 8                  # M: masked copies of every sequence the student sees per step (F5: 8)
    mask_ratio: float = 0.5          # R: share of each sequence's frames masked (F5: 0.5)
    mask_block: int = 8              # frames per masked block
    top_k: int = 8                   # teacher blocks averaged into the target (all of them when the model has fewer)
    decoder_layers: int = 4          # residual Conv1d -> LayerNorm -> GELU blocks of the decoder
    decoder_kernel: int = 5
    ema_start: float = 0.999         # teacher EMA decay at the first update ...
    ema_end: float = 0.99999         # ... annealed linearly to this one
    ema_anneal_steps: int = 75_000   # updates of the anneal (data2vec 2.0's audio setting)
    eval_seed: int = 0               # the validation masks (the same every epoch)


def check_data2vec(cfg: Data2VecConfig) -> None:
    """ConfigError naming the setting that cannot pretrain."""
    if cfg.copies < 1 or cfg.mask_block < 1 or cfg.top_k < 1 or cfg.decoder_layers < 0:
        raise ConfigError("pretrain.copies, pretrain.mask_block and pretrain.top_k must be at least 1 and "
                          f"pretrain.decoder_layers at least 0, got {dataclasses.asdict(cfg)}")
    if not 0.0 < cfg.mask_ratio < 1.0:
        raise ConfigError(f"pretrain.mask_ratio must lie in (0, 1), got {cfg.mask_ratio}")
    if cfg.decoder_kernel % 2 == 0:
        raise ConfigError(f"pretrain.decoder_kernel must be odd, got {cfg.decoder_kernel}")
    if not 0.0 <= cfg.ema_start <= cfg.ema_end <= 1.0:
        raise ConfigError(f"pretrain.ema_start <= pretrain.ema_end must lie in [0, 1], got {cfg.ema_start}, "
                          f"{cfg.ema_end}")


def block_mask(lengths: Sequence[int], width: int, ratio: float, block: int, rng: np.random.Generator) -> np.ndarray:
    """``[len(lengths), width]`` bool: for each sequence, ``round(ratio * length)`` (at least one) of its frames in
    blocks of ``block`` consecutive frames (the grid's offset random, blocks picked at random, the last one cut to
    the count); nothing beyond its length."""
    out = np.zeros((len(lengths), width), dtype=bool)
    for row, n in enumerate(int(n) for n in lengths):
        if n < 1:
            continue
        want = max(1, int(round(ratio * n)))
        offset = int(rng.integers(0, block))
        edges = np.unique(np.r_[0, np.arange(offset, n, block), n])
        for c in rng.permutation(len(edges) - 1):
            take = min(edges[c + 1] - edges[c], want - out[row].sum())
            out[row, edges[c]:edges[c] + take] = True
            if out[row].sum() >= want:
                break
    return out


def masked_instance_norm(h: torch.Tensor, valid: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``h`` ``[B, T, D]`` normalised per sequence and channel over its valid frames (``valid`` ``[B, T]``)."""
    w = valid.to(h.dtype).unsqueeze(-1)
    n = w.sum(1, keepdim=True).clamp(min=1.0)
    mean = (h * w).sum(1, keepdim=True) / n
    var = ((h - mean).pow(2) * w).sum(1, keepdim=True) / n
    return (h - mean) / torch.sqrt(var + eps) * w


def masked_mse(pred: torch.Tensor, target: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Mean squared error ``[B]`` of each row over its ``positions`` ``[B, T]`` (and the channels); 0 without any."""
    per_frame = (pred.float() - target.float()).pow(2).mean(-1) * positions
    return per_frame.sum(1) / positions.sum(1).clamp(min=1)


class DecoderBlock(nn.Module):
    """Conv1d over time -> LayerNorm -> GELU, added to its input."""

    def __init__(self, dim: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        y = self.conv((h * valid.unsqueeze(-1)).transpose(1, 2)).transpose(1, 2)
        return h + F.gelu(self.norm(y), approximate="tanh")


class ConvDecoder(nn.Module):
    """data2vec 2.0's light decoder: residual conv blocks over the student's states, then a linear projection."""

    def __init__(self, dim: int, layers: int, kernel: int):
        super().__init__()
        self.blocks = nn.ModuleList(DecoderBlock(dim, kernel) for _ in range(layers))
        self.out = nn.Linear(dim, dim)

    def forward(self, h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(h, valid)
        return self.out(h)


class Data2Vec(nn.Module):
    """Student encoder (trained; its CTC head removed), EMA teacher (a frozen copy, updated before each training
    forward from the student's current weights), mask vector and decoder. ``forward(x, mask, frames)`` ->
    (decoder output ``[M*B, T', dim]``, teacher target (the same for the M copies), masked output frames)."""

    def __init__(self, encoder: nn.Module, cfg: Data2VecConfig):
        super().__init__()
        check_data2vec(cfg)
        self.cfg = cfg
        encoder.head = nn.Identity()
        encoder.distill_head = None
        self.student = encoder
        self.teacher = copy.deepcopy(encoder).requires_grad_(False).eval()
        dim = encoder.cfg.dim
        self.mask_embedding = nn.Parameter(torch.randn(dim) * 0.02)
        self.decoder = ConvDecoder(dim, cfg.decoder_layers, cfg.decoder_kernel)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @property
    def ddp_find_unused_parameters(self) -> bool:
        """LayerDrop in the student leaves blocks out of some steps."""
        return self.student.ddp_find_unused_parameters

    def output_mask(self, mask: torch.Tensor) -> torch.Tensor:
        return self.student.output_mask(mask)

    def train(self, mode: bool = True) -> "Data2Vec":
        """Train or evaluate the student and decoder; the teacher always runs in evaluation mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def teacher_decay(self) -> float:
        """The EMA decay of the next update: ``ema_start`` to ``ema_end`` linearly over ``ema_anneal_steps``."""
        c = self.cfg
        done = min(1.0, float(self.updates) / max(c.ema_anneal_steps, 1))
        return c.ema_start + (c.ema_end - c.ema_start) * done

    @torch.no_grad()
    def update_teacher(self) -> None:
        """teacher <- decay * teacher + (1 - decay) * student, for every weight; buffers copied."""
        decay = self.teacher_decay()
        for t, s in zip(self.teacher.parameters(), self.student.parameters()):
            t.lerp_(s.detach().to(t.dtype), 1.0 - decay)
        for t, s in zip(self.teacher.buffers(), self.student.buffers()):
            t.copy_(s)
        self.updates += 1

    @torch.no_grad()
    def targets(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The mean of the teacher's top-k block outputs, each instance-normalised over the valid frames."""
        layers = self.teacher.encode(x, mask)[1]
        valid = self.output_mask(mask)
        top = layers[-min(self.cfg.top_k, len(layers)):]
        return torch.stack([masked_instance_norm(h.float(), valid) for h in top]).mean(0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, frames: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.training:
            self.update_teacher()
        copies = frames.shape[0] // x.shape[0]
        target = self.targets(x, mask).repeat(copies, 1, 1)
        xs, masks = x.repeat(copies, 1, 1), mask.repeat(copies, 1)
        h = self.student.encode(xs, masks, replace=(frames, self.mask_embedding))[0]
        valid = self.output_mask(masks)
        return self.decoder(h, valid.to(h.dtype)), target, self.output_mask(frames) & valid


class Data2VecObjective(PhraseObjective):
    """The loop's objective for pretraining: block masks drawn from the batch's random stream, the student's
    regression loss at the masked frames; validation = the same loss on the held-out participants with fixed masks
    (``neg_val_loss``, its negative, is the score). Batches are ``PhraseObjective``'s (the phrases ride along
    unused)."""

    score_key = "neg_val_loss"

    def __init__(self, cfg: Data2VecConfig, features: nn.Module):
        super().__init__(features=features)
        self.cfg = cfg

    def masks(self, mask: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """``[copies * B, T]`` block masks of the valid frames of ``mask`` ``[B, T]`` (copy-major, as ``repeat``)."""
        lengths = mask.sum(1).tolist() * self.cfg.copies
        frames = block_mask(lengths, mask.shape[1], self.cfg.mask_ratio, self.cfg.mask_block, rng)
        return torch.from_numpy(frames).to(mask.device)

    def train_step(self, model: nn.Module, inputs: tuple, targets: tuple, rng: np.random.Generator,
                   teachers: Sequence[TeacherTerm] = ()) -> tuple[tuple, torch.Tensor]:
        """Decoder output, target and positions, and the mean squared error over all masked frames of the batch."""
        x, mask = inputs[0], inputs[1]
        pred, target, positions = model(x, mask, self.masks(mask, rng))
        loss = masked_mse(pred, target, positions)
        weights = positions.sum(1).to(loss.dtype)
        return (pred, target, positions), (loss * weights).sum() / weights.sum().clamp(min=1)

    def forward(self, model: nn.Module, inputs: tuple) -> tuple:
        return model(inputs[0], inputs[1], self.masks(inputs[1], np.random.default_rng(self.cfg.eval_seed)))

    def sample_losses(self, outputs: tuple) -> torch.Tensor:
        """``[B]``: each sequence's masked-frame error, averaged over its copies."""
        pred, target, positions = outputs
        return masked_mse(pred, target, positions).reshape(self.cfg.copies, -1).mean(0)

    def loss(self, outputs: tuple, targets: tuple, inputs: tuple, reduction: str = "mean") -> torch.Tensor:
        losses = self.sample_losses(outputs)
        return losses.sum() if reduction == "sum" else losses.mean()

    def predictions(self, outputs: tuple, inputs: tuple) -> list[float]:
        return self.sample_losses(outputs).tolist()

    def metrics(self, preds: list, idx: np.ndarray, index: pd.DataFrame, loss_sum: float) -> dict[str, float]:
        """The mean masked-frame error of the held-out sequences and its negative as the score."""
        val = float(np.mean(preds)) if len(preds) else float("nan")
        return {"val_loss": val, "neg_val_loss": -val}

    def save_oof(self, run: Path, preds: list, idx: np.ndarray, index: pd.DataFrame) -> None:
        """``oof.csv``: sequence_id, participant_id, fold, masked_loss."""
        rows = index.iloc[idx][["sequence_id", "participant_id", "fold"]].reset_index(drop=True)
        write_csv_atomic(rows.assign(masked_loss=preds), run / "oof.csv", index=False)


def check_config(cfg: TrainConfig) -> None:
    """ConfigError naming the setting that cannot pretrain: a ``pretrain.*`` value, or a recipe that pretraining
    cannot combine with (they need labels or a second model)."""
    check_data2vec(make_config(Data2VecConfig, overrides=cfg.pretrain))
    r = cfg.recipe
    used = [k for k, v in (("recipe.teacher", r.teacher), ("recipe.student", r.student),
                           ("recipe.mean_teacher", r.mean_teacher), ("recipe.ousm_k", r.ousm_k),
                           ("recipe.awp_lr", r.awp_lr), ("recipe.soup_last", r.soup_last)) if v]
    if used:
        raise ConfigError(f"pretraining (stage=pretrain) cannot use {', '.join(used)}: turn them off")


def build_pretrain_task(cfg: TrainConfig, prepared: Any) -> TaskParts:
    """The fine-tuning parts of ``cfg`` (samples, features, augmentation, encoder) with the encoder wrapped in
    ``Data2Vec`` and the data2vec objective."""
    check_config(cfg)
    parts = build_task(cfg, prepared)
    pcfg = make_config(Data2VecConfig, overrides=cfg.pretrain)
    return dataclasses.replace(parts, model=Data2Vec(parts.model, pcfg), objective=Data2VecObjective(pcfg,
                                                                                                     parts.features))


def encoder_state(model_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The student encoder's weights of a pretraining checkpoint under the encoder's own names (no CTC head)."""
    return {k[len(STUDENT):]: v for k, v in model_state.items() if k.startswith(STUDENT)}


# TrainConfig overrides per profile on top of the training presets: every sequence of the cache (supplemental too),
# no CutMix or time flip (phrases are not learnt), a teacher EMA annealed over the run's length.
PRESETS: dict[str, dict[str, Any]] = {
    "ci": {"optim.epochs": 2, "augment.cutmix_p": 0.0, "augment.time_flip_p": 0.0,
           "pretrain": {"copies": 2, "decoder_layers": 1, "ema_start": 0.9, "ema_end": 0.99, "ema_anneal_steps": 50}},
    "quick": {"optim.epochs": 30, "optim.lr": 1e-3, "augment.cutmix_p": 0.0, "augment.time_flip_p": 0.0,
              "pretrain": {"copies": 4, "decoder_layers": 2, "ema_start": 0.99, "ema_end": 0.9995,
                           "ema_anneal_steps": 600}},
    "full": {"optim.epochs": 400, "optim.lr": 1e-3, "supplemental_weight": 1.0, "augment.cutmix_p": 0.0,
             "augment.time_flip_p": 0.0, "pretrain": {"ema_start": 0.999, "ema_end": 0.99999,
                                                      "ema_anneal_steps": 75_000}},
}
