"""CTC loss over masked variable-length batches, greedy CTC decoding (59 characters + blank 59), and the forced
alignment of a known phrase (Viterbi over the CTC lattice, F5's alignment for CutMix at character boundaries)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
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


def _lattice_labels(targets: Sequence[int], blank: int) -> tuple[np.ndarray, np.ndarray]:
    """The CTC lattice of a target: labels of its 2L + 1 states (blank, c1, blank, c2, ..., blank) and whether each
    state may be entered from two states back (a character different from the one before the blank between)."""
    ext = np.full(2 * len(targets) + 1, blank, np.int64)
    ext[1::2] = np.asarray(targets, np.int64)
    skip = np.zeros(len(ext), bool)
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    return ext, skip


def ctc_forced_align(log_probs: np.ndarray, targets: Sequence[int], blank: int = CTC_BLANK
                     ) -> tuple[np.ndarray, float]:
    """The most likely CTC path of a known target through per-frame log probabilities ``[T, C]`` (Viterbi over the
    CTC lattice): the lattice state of every frame (``2k + 1`` = character k, even = a blank) and the path's log
    probability. ValueError when ``T`` frames cannot hold the target (its length plus its repeated neighbours)."""
    log_probs = np.asarray(log_probs, np.float64)
    if len(targets) == 0:
        if not len(log_probs):
            raise ValueError("0 frames cannot hold a CTC path")
        return np.zeros(len(log_probs), np.int64), float(log_probs[:, blank].sum())
    ext, skip = _lattice_labels(targets, blank)
    n_frames, n_states = len(log_probs), len(ext)
    needed = len(targets) + int(np.sum(np.asarray(targets)[1:] == np.asarray(targets)[:-1]))
    if n_frames < needed:
        raise ValueError(f"{n_frames} frames cannot hold a CTC path of {len(targets)} characters ({needed} needed)")
    emit = log_probs[:, ext]                                                  # [T, S]
    score = np.full(n_states, -np.inf)
    score[:2] = emit[0, :2]
    back = np.zeros((n_frames, n_states), np.int8)                            # 0: stay, 1: from s-1, 2: from s-2
    for t in range(1, n_frames):
        options = np.stack([score, np.r_[-np.inf, score[:-1]], np.where(skip, np.r_[-np.inf, -np.inf, score[:-2]],
                                                                         -np.inf)])
        back[t] = options.argmax(0)
        score = options.max(0) + emit[t]
    end = n_states - 1 if score[-1] >= score[-2] else n_states - 2
    states = np.empty(n_frames, np.int64)
    states[-1] = end
    for t in range(n_frames - 1, 0, -1):
        states[t - 1] = states[t] - back[t, states[t]]
    return states, float(score[end])


def character_spans(states: np.ndarray, n_chars: int) -> np.ndarray:
    """First and last frame ``[n_chars, 2]`` of every character of a forced alignment (``ctc_forced_align``)."""
    spans = np.empty((n_chars, 2), np.int64)
    for k in range(n_chars):
        frames = np.flatnonzero(states == 2 * k + 1)
        spans[k] = frames[0], frames[-1]
    return spans
