"""CTC loss over masked variable-length batches and greedy CTC decoding (59 characters + blank 59)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from aslkit.constants import CTC_BLANK


def ctc_loss(logits: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor,
             reduction: str = "mean") -> torch.Tensor:
    """CTC loss (blank 59), each sequence's loss divided by its target length, then averaged (``"mean"``) or
    summed (``"sum"``) over the batch, or per sequence (``"none"``); impossible alignments count 0."""
    log_probs = logits.float().log_softmax(-1).transpose(0, 1)                # [T, B, C]
    input_lengths = mask.long().sum(1)
    per = F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=CTC_BLANK, reduction="none",
                     zero_infinity=True) / target_lengths.clamp(min=1)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return per.mean() if reduction == "mean" else per.sum() if reduction == "sum" else per


def greedy_decode(logits: torch.Tensor, mask: torch.Tensor | None = None) -> list[list[int]]:
    """Best-path decoding: per-frame argmax over valid frames, repeats collapsed, blanks removed."""
    best = logits.argmax(-1)
    lengths = best.new_full((best.shape[0],), best.shape[1]) if mask is None else mask.long().sum(1)
    out = []
    for row, n in zip(best.tolist(), lengths.tolist()):
        seq, prev = [], None
        for t in row[:n]:
            if t != prev and t != CTC_BLANK:
                seq.append(t)
            prev = t
        out.append(seq)
    return out
