"""Per-frame features of the Conv1D + transformer family (the ISLR 1st-place preprocessing), exportable to TFLite.

``Conv1DFeatures`` maps one sequence ``[T, S, 3]`` of a cache subset (NaN = landmark not detected) to a fixed
``[max_len, 709]`` tensor: 708 feature channels and, last, a 0/1 frame mask.

1. **Points.** The 118 points ``constants.ISLR_118`` (40 lips, left hand, right hand, 4 nose, 16 + 16 eyes), x and
   y only. A point is missing in a frame when its x or y is NaN.
2. **Frames.** Frames where all 118 points are missing are dropped; the others keep their order (when no frame has
   a point, every frame is kept). The graph does this without boolean indexing: the ``r``-th kept frame is
   ``#{t : cumsum(valid)[t] <= r}``, a count, and the number of kept frames ``n`` stays a tensor.
3. **Normalisation.** Centre = NaN-mean over time of the lower-lip point (face landmark 17, one of the lips; 0.5
   in x and y when it is never seen). Scale = one scalar for both axes: the RMS distance of every valid x and y
   value of the 118 points to that centre (the NaN-std around the centre), at least ``MIN_SCALE``.
4. **Features** (on the kept frames, in their order): positions ``p[t]``, lag-1 differences ``p[t] - p[t-1]`` and
   lag-2 differences ``p[t] - p[t-2]``, each ``118 x 2``: 708 channels, in the order
   ``[positions | lag 1 | lag 2]``, each point-major (x, y of point 0, then point 1, ...). A difference is 0 at the
   start (``t < lag``) and where the point is missing in either frame; missing positions are 0.
5. **Static length.** ``max_len`` rows: when ``n > max_len`` kept frames, rows are the kept frames
   ``floor(i * n / max_len)`` (the rule of ``aslkit.tasks.fingerspelling.frames.frame_positions``); shorter
   sequences fill the first ``n`` rows and the rest is zeros. Channel 708 is 1 on real rows and 0 on padding.
   Differences are taken before this step, on consecutive kept frames.

Export rules (``depstack.md`` 5-6): Gather-based indexing, the frame count as a tensor, static reshapes, no dynamic
slices. ``max_len`` must not equal 2, 118, 236, 708 or 709, nor any model width (``check_static_widths``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from aslkit import constants as C
from aslkit.tensor_ops import check_landmarks, floor_div, real_frames

MIN_SCALE = 1e-3          # lower bound of the normalisation scale (image units)
CENTRE_FALLBACK = 0.5     # centre in x and y when the lower-lip point is never seen
CENTRE_FACE_POINT = 17    # face landmark of the centre: the middle of the lower lip (outer contour)
N_POINTS = len(C.ISLR_118)
LAGS = (1, 2)
N_GROUPS = 1 + len(LAGS)  # positions + one difference per lag
FEATURE_DIM = N_POINTS * 2 * N_GROUPS   # 708
FEATURE_SHAPES = (2, N_POINTS, N_POINTS * 2, FEATURE_DIM, FEATURE_DIM + 1)   # static widths of the feature graph


@dataclass
class Conv1DFeatureConfig:
    """Settings of ``Conv1DFeatures``."""

    max_len: int = 384      # static number of output rows (ISLR 1st place: 384)


def check_max_len(max_len: int) -> None:
    """ValueError unless ``max_len`` is a usable static frame count (1..2048 and no square tensor in the graph)."""
    if not 1 <= max_len <= 2048:
        raise ValueError(f"features.max_len must be in 1..2048 (exact in float16), got {max_len}")
    clash = [w for w in FEATURE_SHAPES if w in (max_len, N_GROUPS * max_len)]
    if clash:
        raise ValueError(f"features.max_len={max_len} makes a square tensor with the feature widths {clash}; choose "
                         f"another value (square tensors break the TFLite conversion)")


# ---------------------------------------------------------------------------------------------------------------
# Graph helpers
# ---------------------------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------------------------
# The module
# ---------------------------------------------------------------------------------------------------------------
class Conv1DFeatures(nn.Module):
    """``[T, S, 3]`` landmarks of a cache subset (NaN = missing) -> ``[max_len, 709]``: 708 features + frame mask."""

    def __init__(self, cfg: Conv1DFeatureConfig | None = None, subset: np.ndarray | None = None):
        super().__init__()
        self.cfg = cfg = cfg or Conv1DFeatureConfig()
        check_max_len(cfg.max_len)
        self.subset = np.asarray(C.CACHE_SUBSETS["islr"] if subset is None else subset)
        self.num_points = len(self.subset)
        self.length = cfg.max_len
        self.positions = C.subset_positions(self.subset, C.ISLR_118)
        self.centre_point = int(np.flatnonzero(C.ISLR_118 == C.flat("face", [CENTRE_FACE_POINT])[0])[0])
        cols = (3 * self.positions[:, None] + np.arange(2)).reshape(-1)             # x, y columns of [T, S * 3]
        self.register_buffer("keep", torch.as_tensor(cols), persistent=False)
        self.register_buffer("rows", torch.arange(cfg.max_len, dtype=torch.float32), persistent=False)
        self.register_buffer("lags", torch.tensor([0.0, *LAGS]).repeat_interleave(cfg.max_len), persistent=False)

    @property
    def feature_dim(self) -> int:
        """Feature channels (708); the output has one more, the frame mask."""
        return FEATURE_DIM

    @property
    def output_shape(self) -> tuple[int, int]:
        """``(max_len, 709)``."""
        return self.length, FEATURE_DIM + 1

    def points(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The 118 points' x, y ``[T, 118, 2]`` (0 where missing) and their validity ``[T, 118, 1]`` (0/1)."""
        xy = x.reshape(-1, self.num_points * 3).index_select(1, self.keep).reshape(-1, N_POINTS, 2)
        valid = 1.0 - torch.isnan(xy.sum(-1, keepdim=True)).to(xy.dtype)
        return torch.where(valid > 0, xy, torch.zeros_like(xy)), valid

    def centre_and_scale(self, p: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre ``[1, 1, 2]`` (mean of the lower-lip point, 0.5 when never seen) and scale ``[1, 1, 1]`` (RMS x,y
        distance of all valid points to the centre, at least ``MIN_SCALE``)."""
        lip_p, lip_v = p[:, self.centre_point], v[:, self.centre_point]                 # [T, 2], [T, 1]
        seen = lip_v.sum(0, keepdim=True)                                                # [1, 1]
        has = seen.clamp(max=1.0)
        mean = (lip_p * lip_v).sum(0, keepdim=True) / seen.clamp(min=1.0)
        centre = (has * mean + (1.0 - has) * CENTRE_FALLBACK).unsqueeze(0)              # [1, 1, 2]
        dev = (p - centre) * v
        count = v.sum(dim=(0, 1, 2), keepdim=True).clamp(min=1.0) * 2.0
        scale = torch.sqrt((dev * dev).sum(dim=(0, 1, 2), keepdim=True) / count)
        return centre, scale.clamp(min=MIN_SCALE)

    def frame_sources(self, frame_valid: torch.Tensor, real: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For the rows and their lag-1 and lag-2 predecessors (``[3 * max_len]``: rows, then lag 1, then lag 2): the
        source frame, whether that predecessor exists (0 at the start), and the row mask ``[max_len, 1]``; ``real``
        ``[T]`` marks the frames of a padded sequence (``tensor_ops.real_frames``)."""
        any_valid = frame_valid.amax(0, keepdim=True)
        fv = frame_valid + (1.0 - any_valid)                       # no frame with a point: keep them all
        fv = fv if real is None else fv * real
        n = fv.sum(0, keepdim=True)                                # kept frames, [1]
        cum = torch.cumsum(fv, 0)                                  # kept frames up to and including t
        m = torch.maximum(n, torch.full_like(n, float(self.length)))
        rank = torch.minimum(floor_div(self.rows * m, self.length), n - 1.0)
        wanted = rank.repeat(N_GROUPS) - self.lags                 # rank of the predecessor (< 0: none)
        exists = (wanted >= 0).to(fv.dtype)
        wanted = wanted.clamp(min=0.0)
        src = (cum.unsqueeze(0) <= wanted.unsqueeze(1)).to(fv.dtype).sum(1)   # index of the wanted-th kept frame
        mask = (self.rows < n).to(fv.dtype).unsqueeze(1)
        return src.long(), exists, mask

    def forward(self, x: torch.Tensor, n_frames: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[T, S, 3]`` -> ``[max_len, 709]`` (features, then the frame mask; of the first ``n_frames`` frames
        when ``x`` is NaN-padded)."""
        if not torch.onnx.is_in_onnx_export():
            check_landmarks(x, self.num_points)
        length = self.length
        p, v = self.points(x.float())
        centre, scale = self.centre_and_scale(p, v)
        p = (p - centre) / scale * v
        src, exists, mask = self.frame_sources(v.amax(dim=(1, 2)), real_frames(x, n_frames))
        width = N_POINTS * 2
        g = p.reshape(-1, width).index_select(0, src).reshape(N_GROUPS, length, width)
        gv = (v * torch.ones_like(p)).reshape(-1, width).index_select(0, src) * exists.unsqueeze(1)
        gv = gv.reshape(N_GROUPS, length, width)
        diffs = [(g[0] - g[k]) * gv[0] * gv[k] for k in range(1, N_GROUPS)]
        return torch.cat([torch.cat([g[0], *diffs], dim=-1) * mask, mask], dim=-1)
