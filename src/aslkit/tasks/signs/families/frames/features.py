"""Frame features of the I6 family (6th place): 100 normalised points per kept frame, a frame mask, fixed length.

``FramesFeatures`` maps one sequence ``[T, S, 3]`` (float32, NaN where a landmark was not detected; ``S`` points of
a cache subset such as ``constants.CACHE_SUBSETS["islr"]``) to a fixed matrix ``[L, 7 * P + 1]`` (``P = 100``):

1. **Points** (``POINT_PARTS`` order): left hand 21, right hand 21, lips 21, face 25 (18 silhouette points, 2
   cheeks, then the left eye, right eye, left eyebrow, right eyebrow and nose groups, each averaged into one point
   over its detected members), arms 12.
2. **Frames.** Frames without any detected hand point are dropped (when no frame shows a hand, every frame is kept).
   Of the ``n`` kept frames every ``s``-th one is taken, ``s = n // L + 1`` (I6's stride, so at most ``L`` frames),
   in time order, and the rest of the ``L`` rows is padding.
3. **Normalisation.** One mean and one standard deviation per axis over every detected value of the taken frames
   (the std at least ``min_std``); missing points become 0.
4. **Output columns** (``FEATURE_BLOCKS``): ``[0, 3P)`` the normalised points, point-major (``reshape(L, P, 3)``);
   ``[3P, 6P)`` the same points centred on their part's mean in the frame (I6 centres each part before its MLP;
   done here because the model graph converts reliably only without 4-D reductions); ``[6P, 7P)`` the point
   validity (1 = detected); ``7P`` the frame mask (1 = a taken frame, 0 = padding). Padding rows are all zero.

Every op follows the torch -> ONNX -> onnx2tf rules of ``depstack.md`` sections 5-6: no boolean indexing and no
data-dependent branch; the frame selection is a cumulative count of the kept frames compared with the stride
positions (arithmetic on tensors), then a Gather; ``reshape`` with static sizes only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from aslkit import constants as C
from aslkit.tensor_ops import check_landmarks, nan_to_zero, real_frames

# Points of one frame, in output order: (part, number of points).
POINT_PARTS: tuple[tuple[str, int], ...] = (("left_hand", 21), ("right_hand", 21), ("lips", 21), ("face", 25),
                                            ("arms", 12))
NUM_POINTS = sum(n for _, n in POINT_PARTS)
AVERAGED_GROUPS = ("left_eye", "right_eye", "left_eyebrow", "right_eyebrow", "nose")
# Landmark types of the model's type embedding (one id per point).
POINT_TYPES = ("left_hand", "right_hand", "lips", "silhouette", "cheeks", "averaged", "arms")
# Column blocks of a feature row: (name, width).
FEATURE_BLOCKS: tuple[tuple[str, int], ...] = (("points", 3 * NUM_POINTS), ("centred", 3 * NUM_POINTS),
                                               ("valid", NUM_POINTS), ("mask", 1))
FEATURE_DIM = sum(w for _, w in FEATURE_BLOCKS)


def part_slices() -> dict[str, slice]:
    """Where each part of ``POINT_PARTS`` sits along the point axis."""
    out, start = {}, 0
    for name, n in POINT_PARTS:
        out[name] = slice(start, start + n)
        start += n
    return out


def raw_landmarks() -> np.ndarray:
    """Flat indices of the 83 points taken as they are (hands, lips, silhouette, cheeks)."""
    return np.concatenate([C.LEFT_HAND, C.RIGHT_HAND, C.flat("face", C.I6_LIPS_FACE),
                           C.flat("face", C.I6_SILHOUETTE_FACE), C.flat("face", C.I6_CHEEKS_FACE)])


def averaged_landmarks() -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Flat indices of the averaged groups, concatenated, and each group's ``(start, stop)`` in that list."""
    groups = [np.asarray(C.I6_AVERAGED[g]) for g in AVERAGED_GROUPS]
    bounds = np.cumsum([0] + [len(g) for g in groups])
    return np.concatenate(groups), [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def point_types() -> np.ndarray:
    """Type id (index in ``POINT_TYPES``) of each of the ``NUM_POINTS`` points."""
    sizes = {"left_hand": 21, "right_hand": 21, "lips": len(C.I6_LIPS_FACE), "silhouette": len(C.I6_SILHOUETTE_FACE),
             "cheeks": len(C.I6_CHEEKS_FACE), "averaged": len(AVERAGED_GROUPS), "arms": len(C.I6_ARMS)}
    types = np.concatenate([np.full(sizes[t], i) for i, t in enumerate(POINT_TYPES)]).astype(np.int64)
    assert len(types) == NUM_POINTS
    return types


@dataclass
class FramesFeatureConfig:
    """Settings of ``FramesFeatures`` (the registry variants ``frames25`` / ``frames80`` set ``max_len``)."""

    max_len: int = 25          # L: output rows (taken frames + padding)
    min_std: float = 1e-3      # lower bound of the per-axis normalisation std (image units)


class FramesFeatures(nn.Module):
    """``[T, S, 3]`` landmarks of a cache subset (NaN = missing) -> ``[L, 7 * P + 1]`` (points, part-centred points,
    validity, frame mask)."""

    def __init__(self, cfg: FramesFeatureConfig | None = None, subset: np.ndarray | None = None):
        super().__init__()
        self.cfg = cfg = cfg or FramesFeatureConfig()
        if cfg.max_len < 1:
            raise ValueError(f"features.max_len must be >= 1, got {cfg.max_len}")
        if not cfg.min_std > 0:
            raise ValueError(f"features.min_std must be > 0, got {cfg.min_std}")
        self.subset = np.asarray(C.CACHE_SUBSETS["islr"] if subset is None else subset)
        self.num_points = len(self.subset)
        self.length = cfg.max_len
        averaged, self.groups = averaged_landmarks()
        for name, idx in {"raw_pos": raw_landmarks(), "avg_pos": averaged, "arm_pos": C.I6_ARMS}.items():
            self.register_buffer(name, torch.as_tensor(C.subset_positions(self.subset, idx)), persistent=False)
        self.register_buffer("steps", torch.arange(self.length, dtype=torch.float32), persistent=False)

    @property
    def feature_dim(self) -> int:
        """Width of the output: ``7 * P + 1``."""
        return FEATURE_DIM

    def points(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``P`` points ``[T, P, 3]`` of every frame (0 where missing) and their validity ``[T, P]``."""
        raw, v_raw = nan_to_zero(x.index_select(1, self.raw_pos))
        grp, v_grp = nan_to_zero(x.index_select(1, self.avg_pos))
        means, valid = [], []
        for a, b in self.groups:
            count = v_grp[:, a:b].sum(1, keepdim=True)                               # [T, 1]
            means.append(grp[:, a:b].sum(1) / count.clamp(min=1.0))
            valid.append((count > 0).to(x.dtype))
        arms, v_arms = nan_to_zero(x.index_select(1, self.arm_pos))
        pts = torch.cat([raw, torch.stack(means, 1), arms], dim=1)
        return pts, torch.cat([v_raw, torch.cat(valid, 1), v_arms], dim=1)

    def frame_sources(self, v: torch.Tensor, real: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Source frame ``[L]`` (long; 0 on padding rows) and frame mask ``[L]`` of the taken frames, given the point
        validity ``[T, P]``: frames with a hand (all frames when none has one), every ``n // L + 1``-th of them;
        ``real`` ``[T]`` marks the frames of a padded sequence (``tensor_ops.real_frames``)."""
        hands = part_slices()["right_hand"].stop                                      # hands are the first points
        has_hand = (v[:, :hands].sum(1) > 0).to(v.dtype)                              # [T]
        keep = torch.maximum(has_hand, (has_hand.sum() < 0.5).to(v.dtype))
        keep = keep if real is None else keep * real
        n = keep.sum()                                                                 # >= 1 when T >= 1
        stride = torch.floor((n + 0.5) / self.length) + 1.0                           # n // L + 1, exact in float
        target = self.steps * stride                                                   # [L] ranks to take
        mask = (target < n).to(v.dtype)
        rank = torch.cumsum(keep, 0) - 1.0                                             # rank among kept frames
        frame = torch.cumsum(torch.ones_like(keep), 0) - 1.0                           # 0..T-1
        match = (rank.unsqueeze(0) == target.unsqueeze(1)).to(v.dtype) * keep.unsqueeze(0)   # [L, T], one 1 a row
        src = (match * frame.unsqueeze(0)).sum(1)
        return src.to(torch.long), mask

    def forward(self, x: torch.Tensor, n_frames: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[T, S, 3]`` -> features ``[L, 7 * P + 1]`` (of the first ``n_frames`` frames when ``x`` is
        NaN-padded)."""
        if not torch.onnx.is_in_onnx_export():
            check_landmarks(x, self.num_points)
        x = x.float()
        pts, v = self.points(x)
        src, mask = self.frame_sources(v, real_frames(x, n_frames))
        pts = pts.index_select(0, src)                                                 # [L, P, 3], static L
        v = v.index_select(0, src) * mask.unsqueeze(1)
        w = v.unsqueeze(-1)
        count = v.sum().clamp(min=1.0)
        mean = (pts * w).sum(dim=(0, 1)) / count                                      # [3]
        dev = (pts - mean) * w
        std = torch.sqrt((dev * dev).sum(dim=(0, 1)) / count).clamp(min=self.cfg.min_std)
        norm = dev / std
        flat = (self.length, 3 * NUM_POINTS)
        return torch.cat([norm.reshape(flat), part_centred(norm, v).reshape(flat), v, mask.unsqueeze(1)], dim=1)


def part_centred(pts: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Points ``[L, P, 3]`` minus the mean of their part's detected points in the same frame (0 where missing)."""
    out = []
    for s in part_slices().values():
        p, w = pts[:, s], v[:, s].unsqueeze(-1)
        centre = (p * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp(min=1.0)
        out.append((p - centre) * w)
    return torch.cat(out, dim=1)


def split_features(f: torch.Tensor) -> dict[str, torch.Tensor]:
    """A batch of feature matrices ``[B, L, 7P + 1]`` as its ``FEATURE_BLOCKS`` (``[B, L, width]`` each; static
    slices of the last axis)."""
    if not torch.onnx.is_in_onnx_export() and (f.dim() != 3 or f.shape[-1] != FEATURE_DIM):
        raise ValueError(f"expected frame features [B, L, {FEATURE_DIM}], got shape {list(f.shape)}")
    out, start = {}, 0
    for name, width in FEATURE_BLOCKS:
        out[name] = f[..., start:start + width]
        start += width
    return out
