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
        sizes = [len(pos) for pos in self.part_positions.values()]
        groups = torch.repeat_interleave(torch.arange(len(sizes)), torch.as_tensor(sizes))
        self.register_buffer("groups", nn.functional.one_hot(groups).float(), persistent=False)  # [P, parts]

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
        x = x.float().transpose(1, 2)                         # [T, 3, P]: the points on the last axis
        present = x == x                                      # not NaN (one test for the mask and the zeros)
        valid = present.to(x.dtype)
        # where(present) instead of nan_to_num: the latter also tests for +-inf, 2 ms of TFLite ops at T = 160
        x = torch.where(present, x, torch.zeros_like(x))
        n = point_time_sum(valid).clamp(min=1.0)
        mean = point_time_sum(x) / n
        dev = (x - mean) * valid
        glob = dev / torch.sqrt(point_time_sum(dev * dev) / n).clamp(min=MIN_STD)
        local = group_standardise(glob[..., self.order], valid[..., self.order], self.groups)
        t = x.shape[0]
        return torch.cat([glob.transpose(1, 2).reshape(t, -1), local.transpose(1, 2).reshape(t, -1)], dim=1)


def point_time_sum(z: torch.Tensor) -> torch.Tensor:
    """``[T, 3, P]`` -> ``[1, 3, 1]``: the sum over frames and points (the points first: a last-axis reduction, the
    fast one in TFLite)."""
    return z.sum(dim=2, keepdim=True).sum(dim=0, keepdim=True)


def group_standardise(p: torch.Tensor, valid: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """``p`` ``[T, 3, K]`` (0 where not ``valid``) with each group of points (``groups`` ``[K, G]`` one-hot) centred
    on the mean of its valid values in each frame and axis and divided by their standard deviation (at least
    ``MIN_STD``); invalid values 0. Every group at once, by matrix products with ``groups``."""
    n = (valid @ groups).clamp(min=1.0)
    dev = (p - (p @ groups / n) @ groups.T) * valid
    std = torch.sqrt((dev * dev) @ groups / n).clamp(min=MIN_STD)
    return dev / (std @ groups.T)
