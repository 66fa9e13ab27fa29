"""Which frames a fingerspelling model sees, the same in training and in the exported graph: long sequences are
subsampled to at most ``max_frames`` frames (``frame_positions``: frame ``floor(i * T / max_frames)``; training
``select_frames``, the graph ``padded_frame_positions``, which pads shorter sequences to ``max_frames``), and how many
frames show a hand (``hand_frames``: fewer than ``min_hand_frames`` -> the fallback phrase)."""
from __future__ import annotations

import numpy as np
import torch

from aslkit import constants as C
from aslkit.tensor_ops import floor_div


def frame_positions(n_frames: int, max_frames: int) -> np.ndarray:
    """Frames kept of a sequence of ``n_frames``: all of them, or ``floor(i * n_frames / max_frames)`` for
    ``i < max_frames`` when it is longer."""
    if n_frames <= max_frames:
        return np.arange(n_frames)
    return (np.arange(max_frames) * n_frames) // max_frames


def select_frames(x: np.ndarray, max_frames: int) -> np.ndarray:
    """``x`` ``[T, ...]`` subsampled in time to at most ``max_frames`` frames (``frame_positions``)."""
    return x[frame_positions(len(x), max_frames)]


def padded_frame_positions(x: torch.Tensor, max_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Graph version of ``frame_positions`` for ``x`` ``[T, ...]`` with a static output length: source frame of
    each of the ``max_frames`` rows (clamped to ``T - 1``) and whether the row is a real frame (``i < T``); the
    quotient is exact in float16 builds too (``floor_div``)."""
    t = torch.ones_like(x[:, 0, 0]).sum()                                     # T as a float tensor (no Shape op)
    i = torch.arange(max_frames, dtype=x.dtype, device=x.device)
    pos = floor_div(i * torch.clamp(t, min=float(max_frames)), max_frames)
    return torch.minimum(pos, t - 1).long(), i < t


def hand_frames(x: np.ndarray | torch.Tensor, landmarks: np.ndarray | None = None):
    """Number of frames of ``x`` ``[T, P, 3]`` in which at least one hand point was detected."""
    landmarks = np.asarray(C.FS_130 if landmarks is None else landmarks)
    pos = np.flatnonzero(np.isin(landmarks, C.HANDS))
    if isinstance(x, torch.Tensor):
        seen = (~torch.isnan(x[:, torch.as_tensor(pos), 0])).to(x.dtype).amax(dim=1)
        return seen.sum()
    return int((~np.isnan(x[:, pos, 0])).any(axis=1).sum())


def grader_frames(inputs: torch.Tensor, n_landmarks: int, max_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grader rows ``[T, 3 * P]`` -> landmarks ``[max_frames, P, 3]`` (NaN rows after the sequence) and the
    real-frame mask: the frames training selects (``padded_frame_positions``)."""
    x = inputs.reshape(-1, 3, n_landmarks).permute(0, 2, 1)
    pos, valid = padded_frame_positions(x, max_frames)
    x = torch.where(valid[:, None, None], x[pos], torch.full_like(x[:1], float("nan")))
    return x, valid
