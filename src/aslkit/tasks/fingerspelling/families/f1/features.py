"""Per-frame inputs of F1's model (the 1st place): every landmark kept, no dominant-hand choice.

``F1Features`` maps one sequence ``[T, P, 3]`` (default the 130 landmarks of ``constants.FS_130``; NaN = missing) to
``[T, 2 * P * 3]``:

1. one mean and standard deviation per axis over every non-missing value of the sequence, missing values -> 0
   (F1's ``Preprocessing``): the first ``P * 3`` columns, point-major (x, y, z of each point);
2. each part (left hand, right hand, face = lips + nose + eyes, pose = arms) normalised again per frame by the mean
   and standard deviation of its present values in that frame (F1 does this inside the model): the next ``P * 3``
   columns, in the order of ``part_positions`` (one mean and deviation per axis).

Missing points stay 0 in both. All-NaN padding frames leave every statistic unchanged and give zero rows, so a
batch of padded sequences equals each sequence alone (``tensor_ops.batch_features``). Longer sequences are
subsampled to ``max_frames`` by the kit's frame selection (``..frames``; F1 resized them linearly), the same in
training and in the exported graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from aslkit import constants as C

MIN_STD = 1e-3


@dataclass
class F1FeatureConfig:
    """Settings of ``F1Features``."""

    max_frames: int = 384         # longer sequences are subsampled to this many frames (F1: 384)


def part_landmarks() -> dict[str, np.ndarray]:
    """F1's four parts as flat landmark indices (the face: everything of it in the subset)."""
    return {"left_hand": C.LEFT_HAND, "right_hand": C.RIGHT_HAND,
            "face": np.concatenate([C.LIPS, C.NOSE, C.RIGHT_EYE, C.LEFT_EYE]),
            "pose": np.concatenate([C.RIGHT_ARM, C.LEFT_ARM])}


class F1Features(nn.Module):
    """``[T, P, 3]`` landmarks -> ``[T, 2 * P * 3]``: globally normalised points, then per-part per-frame ones."""

    def __init__(self, cfg: F1FeatureConfig | None = None, landmarks: np.ndarray | None = None):
        super().__init__()
        self.cfg = cfg or F1FeatureConfig()
        self.landmarks = np.asarray(C.FS_130 if landmarks is None else landmarks)
        self.part_positions = {name: C.subset_positions(self.landmarks, np.intersect1d(idx, self.landmarks))
                               for name, idx in part_landmarks().items()}
        order = np.concatenate(list(self.part_positions.values()))
        if sorted(order.tolist()) != list(range(len(self.landmarks))):
            raise ValueError("F1Features: the subset's landmarks must split into hands, face and pose exactly")
        self.register_buffer("order", torch.as_tensor(order), persistent=False)

    @property
    def num_points(self) -> int:
        return len(self.landmarks)

    @property
    def part_sizes(self) -> dict[str, int]:
        """Points per part, in the order of the part columns."""
        return {name: len(pos) for name, pos in self.part_positions.items()}

    @property
    def feature_dim(self) -> int:
        return 2 * self.num_points * 3

    def forward(self, x: torch.Tensor, n_frames: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.num_points or x.shape[2] != 3:
            raise ValueError(f"expected landmarks [T, {self.num_points}, 3], got {list(x.shape)}")
        x = x.float()
        missing = torch.isnan(x)
        valid = (~missing).to(x.dtype)
        # where(isnan) instead of nan_to_num: the latter also tests for +-inf, 2 ms of TFLite ops at T = 160
        glob = standardise(torch.where(missing, torch.zeros_like(x), x), valid, dims=(0, 1))
        out, start = [], 0
        parts = glob[:, self.order]
        part_valid = valid[:, self.order]
        for size in self.part_sizes.values():
            out.append(standardise(parts[:, start:start + size], part_valid[:, start:start + size], dims=(1,)))
            start += size
        t = x.shape[0]
        return torch.cat([glob.reshape(t, -1), torch.cat(out, dim=1).reshape(t, -1)], dim=1)


def standardise(p: torch.Tensor, valid: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``p`` ``[T, K, 3]`` minus the mean over ``dims`` of its ``valid`` values, divided by their standard deviation
    (at least ``MIN_STD``); invalid values 0."""
    n = valid.sum(dim=dims, keepdim=True).clamp(min=1.0)
    mean = (p * valid).sum(dim=dims, keepdim=True) / n
    dev = (p - mean) * valid
    std = torch.sqrt((dev * dev).sum(dim=dims, keepdim=True) / n).clamp(min=MIN_STD)
    return dev / std
