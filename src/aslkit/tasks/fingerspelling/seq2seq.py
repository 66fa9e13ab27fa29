"""What the one training loop needs for attention-decoder models (F1's, ``model_name=f1``): teacher-forced
cross-entropy of the phrase decoder and of the reversed-phrase decoder, the confidence head's BCE towards an earlier
run's OOF quality, decoder-input token masking, and greedy decoding (with the fallback phrase for hand-less or
low-confidence inputs) for validation. The model's config gives the sizes and weights (``max_phrase``,
``reverse_weight``, ``confidence_weight``, ``confidence_threshold``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import Levenshtein
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from aslkit import constants as C
from aslkit.config import ConfigError
from aslkit.data.errors import DataError
from aslkit.data.fs import decode_indices
from aslkit.tasks.fingerspelling.ctc_ops import ctc_loss
from aslkit.tasks.fingerspelling.phrases import PhraseObjective

IGNORE = -100                      # cross-entropy target of padding


def confidence_targets(runs: str, index: pd.DataFrame) -> np.ndarray:
    """Per row of ``index``: the clipped normalised Levenshtein score ``clip(1 - d / len(phrase), 0, 1)`` of the
    OOF prediction of the given run folders (comma-separated; F1: the folds of a first model), NaN where none
    predicted the sequence. DataError naming a run without ``oof.csv``."""
    score = pd.Series(np.nan, index=index["sequence_id"].to_numpy(), dtype=float)
    for run in (r.strip() for r in runs.split(",") if r.strip()):
        path = Path(run) / "oof.csv"
        if not path.is_file():
            raise DataError(path, "no OOF predictions (recipe.confidence_from needs a finished fingerspelling run)")
        oof = pd.read_csv(path, keep_default_na=False)
        d = np.array([Levenshtein.distance(str(p), str(t)) for p, t in zip(oof["pred"], oof["phrase"])], float)
        n = np.maximum(oof["phrase"].astype(str).str.len().to_numpy(), 1)
        found = pd.Series(np.clip(1.0 - d / n, 0.0, 1.0), index=oof["sequence_id"].to_numpy())
        found = found[found.index.isin(score.index)]
        score.loc[found.index] = found.to_numpy()
    return score.to_numpy()


def decoder_io(ids: torch.Tensor, lengths: torch.Tensor, max_phrase: int, reverse: bool, mask_p: float,
               rng: np.random.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs ``[START, c1, .., cn]`` and targets ``[c1, .., cn, END]`` ``[B, L + 1]`` of the flat character
    ids of a batch (each phrase cut to ``max_phrase``, reversed with ``reverse``), padded with ``TOKEN_PAD`` /
    ``IGNORE``; with ``rng``, each character of the inputs becomes ``TOKEN_MASK`` with probability ``mask_p``."""
    phrases = [p[:max_phrase].flip(0) if reverse else p[:max_phrase] for p in torch.split(ids, lengths.tolist())]
    width = max((len(p) for p in phrases), default=0) + 1
    inputs = torch.full((len(phrases), width), C.TOKEN_PAD, dtype=torch.long)
    targets = torch.full((len(phrases), width), IGNORE, dtype=torch.long)
    for i, p in enumerate(phrases):
        inputs[i, 0], inputs[i, 1:len(p) + 1] = C.TOKEN_START, p
        targets[i, :len(p)], targets[i, len(p)] = p, C.TOKEN_END
    if rng is not None and mask_p > 0:
        chars = torch.from_numpy(rng.random(inputs.shape) < mask_p) & (targets != IGNORE)
        chars[:, 0] = False                                                  # the start token stays
        inputs = torch.where(chars & (inputs != C.TOKEN_PAD), torch.full_like(inputs, C.TOKEN_MASK), inputs)
    return inputs.to(ids.device), targets.to(ids.device)


def phrase_of(tokens: Sequence[int]) -> str:
    """The phrase of greedy tokens: the characters before the first end token."""
    tokens = list(tokens)
    return decode_indices(tokens[:tokens.index(C.TOKEN_END)] if C.TOKEN_END in tokens else tokens)


class Seq2SeqObjective(PhraseObjective):
    """F1's losses and decoding on the shared phrase batches (targets gain each row's confidence target)."""

    def __init__(self, cfg: Any, token_mask_p: float = 0.0, confidence: np.ndarray | None = None,
                 fallback: str = "", min_hand_frames: int = 0, features: nn.Module | None = None):
        super().__init__(fallback, min_hand_frames, features)
        self.cfg, self.token_mask_p, self.confidence = cfg, token_mask_p, confidence

    @property
    def uses_confidence(self) -> bool:
        """Whether the confidence head is trained (and so answers the fallback below the threshold)."""
        return self.confidence is not None

    def collate(self, batch: list) -> tuple[tuple, tuple, torch.Tensor]:
        raw, (ids, lengths), idx = super().collate(batch)
        conf = (torch.as_tensor(self.confidence[idx.numpy()], dtype=torch.float32) if self.uses_confidence
                else torch.full((len(idx),), float("nan")))
        return raw, (ids, lengths, conf), idx

    def train_step(self, model: nn.Module, inputs: tuple, targets: tuple, rng: np.random.Generator,
                   teachers: Sequence = ()) -> tuple[tuple, torch.Tensor]:
        """``(1 - w_c) ((1 - w_r) CE + w_r CE_reversed) + w_c BCE``, the BCE over rows with a confidence target
        (without any, the CE terms alone); with ``ctc_weight`` w, the CE terms become ``(1 - w) CE terms + w CTC``
        (F2's joint CTC / attention training)."""
        if teachers:
            raise ConfigError("model_name=f1 takes no teacher (recipe.teacher / recipe.mean_teacher)")
        x, mask = inputs[0], inputs[1]
        ids, lengths, conf_target = targets
        c = self.cfg
        fwd_in, fwd_out = decoder_io(ids, lengths, c.max_phrase, False, self.token_mask_p, rng)
        rev_in, rev_out = decoder_io(ids, lengths, c.max_phrase, True, self.token_mask_p, rng)
        logits, rev_logits, conf, ctc_logits = model(x, mask, fwd_in, rev_in)
        ce = F.cross_entropy(logits.float().flatten(0, 1), fwd_out.flatten(), ignore_index=IGNORE)
        ce_rev = F.cross_entropy(rev_logits.float().flatten(0, 1), rev_out.flatten(), ignore_index=IGNORE)
        loss = (1 - c.reverse_weight) * ce + c.reverse_weight * ce_rev
        if ctc_logits is not None:
            loss = (1 - c.ctc_weight) * loss + c.ctc_weight * ctc_loss(ctc_logits, mask, ids, lengths)
        has = ~torch.isnan(conf_target)
        if has.any():
            bce = F.binary_cross_entropy_with_logits(conf.float()[has], conf_target[has])
            loss = (1 - c.confidence_weight) * loss + c.confidence_weight * bce
        return (logits,), loss

    def forward(self, model: nn.Module, inputs: tuple) -> tuple:
        """(model, encoder states, mask, greedy tokens, confidence) of a validation batch."""
        net = getattr(model, "module", model)
        memory = net.encoder(inputs[0], inputs[1])
        confidence = torch.sigmoid(net.confidence(memory[:, 0]).squeeze(-1).float())
        return net, memory, inputs[1], net.greedy(memory, inputs[1]), confidence

    def loss(self, outputs: tuple, targets: tuple, inputs: tuple, reduction: str = "mean") -> torch.Tensor:
        """Teacher-forced cross-entropy of the phrase decoder, per phrase (mean over its tokens)."""
        net, memory, mask = outputs[:3]
        tokens_in, tokens_out = decoder_io(targets[0], targets[1], self.cfg.max_phrase, False, 0.0, None)
        logits = net.decoder(tokens_in, memory, mask).float()
        per_token = F.cross_entropy(logits.transpose(1, 2), tokens_out, ignore_index=IGNORE, reduction="none")
        per_phrase = per_token.sum(1) / (tokens_out != IGNORE).sum(1).clamp(min=1)
        return per_phrase.sum() if reduction == "sum" else per_phrase.mean()

    def predictions(self, outputs: tuple, inputs: tuple) -> list[str]:
        texts = [phrase_of(t) for t in outputs[3].tolist()]
        low = (outputs[4] < self.cfg.confidence_threshold).tolist() if self.uses_confidence else [False] * len(texts)
        hands = inputs[2].tolist()
        return [self.fallback if h < self.min_hand_frames or lo else t for t, h, lo in zip(texts, hands, low)]
