"""Per-recording summary features of the non-deep reference (``model_name=baseline``).

``SummaryFeatures`` maps one sequence ``[T, S, 3]`` of a cache subset (NaN = missing) to one vector ``[F]``:

1. **Dominant hand** (fewer missing points), the frame mirrored when it is the left one (``dominant_side``, the
   transformer family's rule), so every recording is read as right-handed.
2. **Per frame**: the hand's shape (its 21 points minus the wrist, divided by their mean x,y distance to the wrist:
   63 values), the wrist relative to the nose (x, y) and the 40 lip points relative to their centre (x, y), both
   divided by the recording's mouth size (RMS x,y distance of the lips to their centre), 145 values in all.
3. **Time bins**: the real frames split into ``bins`` equal spans (frame ``t`` of ``n`` is in bin ``k`` when
   ``k n <= t K < (k + 1) n``); per bin and value the mean and the standard deviation over the frames where its part
   was seen (0 when never), and per bin the share of frames with the hand and with the lips; then ``log(1 + n)``.

With the default 4 bins ``F = 4 * (2 * 145 + 2) + 1 = 1169``. Every op is export-friendly (masks as arithmetic,
static reshapes, the bin sums as masked reductions over time: no matrix product or transpose on the
dynamic time axis), so the vector is computed inside the TFLite graph too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from aslkit import constants as C
from aslkit.tensor_ops import check_landmarks, dominant_side, frame_count, real_frames

EPS = 1e-6
MIN_MOUTH = 1e-3          # lower bound of the mouth size (image units)
N_HAND = len(C.RIGHT_HAND)
N_LIPS = len(C.LIPS)
PARTS = {"hand shape": 3 * N_HAND, "wrist to nose": 2, "lips": 2 * N_LIPS}


@dataclass
class SummaryConfig:
    """Settings of ``SummaryFeatures``."""

    bins: int = 4             # equal time spans of the recording


class SummaryFeatures(nn.Module):
    """``[T, S, 3]`` landmarks of a cache subset -> ``[F]`` per-recording statistics (module docstring)."""

    def __init__(self, cfg: SummaryConfig | None = None, subset: np.ndarray | None = None):
        super().__init__()
        self.cfg = cfg = cfg or SummaryConfig()
        if cfg.bins < 1:
            raise ValueError(f"features.bins must be >= 1, got {cfg.bins}")
        self.subset = np.asarray(C.CACHE_SUBSETS["islr"] if subset is None else subset)
        self.num_points = len(self.subset)
        keep = np.concatenate([C.subset_positions(self.subset, C.RIGHT_HAND), C.subset_positions(self.subset, C.LIPS),
                               C.subset_positions(self.subset, C.NOSE[:1])])
        flip = C.subset_flip_permutation(self.subset)
        self.register_buffer("keep", torch.as_tensor(keep), persistent=False)
        self.register_buffer("keep_mirrored", torch.as_tensor(flip[keep]), persistent=False)
        part_of_column = np.repeat(np.arange(len(PARTS)), list(PARTS.values()))
        self.register_buffer("part_of_column", torch.as_tensor(part_of_column), persistent=False)

    @property
    def frame_dim(self) -> int:
        """Values per frame."""
        return sum(PARTS.values())

    @property
    def feature_dim(self) -> int:
        """F: the length of the output vector."""
        return self.cfg.bins * (2 * self.frame_dim + 2) + 1

    def frame_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per frame: the values ``[T, 145]``, their validity ``[T, 145]`` and the part presence ``[T, 2]`` (hand,
        lips)."""
        pts, v = dominant_side(x, self.keep, self.keep_mirrored, slice(0, N_HAND))
        hand, hv = pts[:, :N_HAND], v[:, :N_HAND]
        lips, lv = pts[:, N_HAND:N_HAND + N_LIPS], v[:, N_HAND:N_HAND + N_LIPS]
        nose, nv = pts[:, -1], v[:, -1]
        wrist, wv = hand[:, 0], hv[:, 0]
        rel = (hand - wrist.unsqueeze(1)) * (hv * wv.unsqueeze(1)).unsqueeze(-1)
        size = torch.linalg.vector_norm(rel[..., :2], dim=-1).sum(1) / (hv.sum(1) - 1).clamp(min=1.0)
        shape = rel / size.clamp(min=EPS).unsqueeze(-1).unsqueeze(-1)
        lip_n = lv.sum(1)
        centre = (lips * lv.unsqueeze(-1)).sum(1) / lip_n.clamp(min=1.0).unsqueeze(-1)
        lip_rel = (lips - centre.unsqueeze(1))[..., :2] * lv.unsqueeze(-1)
        mouth = torch.sqrt((lip_rel * lip_rel).sum() / (2 * lv.sum()).clamp(min=1.0)).clamp(min=MIN_MOUTH)
        to_nose = (wrist[:, :2] - nose[:, :2]) / mouth * (wv * nv).unsqueeze(-1)
        values = torch.cat([shape.reshape(-1, PARTS["hand shape"]), to_nose,                    # static widths only
                            (lip_rel / mouth).reshape(-1, PARTS["lips"])], dim=1)
        seen = torch.stack([wv, (lip_n > 0).to(x.dtype), wv * nv], dim=1)             # per part of PARTS
        return values, seen.index_select(1, self.part_of_column), seen[:, :2]

    def forward(self, x: torch.Tensor, n_frames: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[T, S, 3]`` -> ``[F]`` (of the first ``n_frames`` frames when ``x`` is NaN-padded)."""
        if not torch.onnx.is_in_onnx_export():
            check_landmarks(x, self.num_points)
        x = x.float()
        values, valid, present = self.frame_values(x)
        n = frame_count(x, n_frames).to(x.dtype)
        real = real_frames(x, n_frames)
        steps = torch.arange(x.shape[0], device=x.device, dtype=x.dtype) * self.cfg.bins        # t K
        means, stds, shares = [], [], []
        for k in range(self.cfg.bins):               # 2-D ops only: onnx2tf mislays 3-D [K, T, C] broadcasts
            member = ((steps >= k * n) & (steps < (k + 1) * n)).to(x.dtype)                   # [T]
            member = member if real is None else member * real
            w = valid * member.unsqueeze(1)                                                      # [T, 145]
            count = w.sum(0).clamp(min=1.0)
            means.append((values * w).sum(0) / count)
            dev = (values - means[-1]) * w                                                       # two-pass variance
            stds.append(torch.sqrt((dev * dev).sum(0) / count))
            shares.append((present * member.unsqueeze(1)).sum(0) / member.sum().clamp(min=1.0))
        return torch.cat(means + stds + shares + [torch.log1p(n).reshape(1)])
