"""The landmark "image" of the asl-signs CNN family (the I2 CNN branch of the 2nd-place solution).

``LandmarkImage`` maps one sequence ``[T, S, 3]`` of a cache subset (float32, NaN where a landmark was not detected)
to a fixed-size image ``[L, P, 3]``: time along the rows, the ``P`` chosen points along the columns, x, y, z as the
three channels.

1. **Points.** ``P`` landmarks in a fixed order; by default ``constants.CNN_80`` (18 lips, 20 upper-body points,
   left hand, right hand).
2. **Normalisation.** One mean and one standard deviation (ddof 1, at least ``MIN_STD``) over every non-NaN value
   of the chosen points in the whole sequence (x, y and z together); NaN values become 0 after normalising.
3. **Time.** Nearest-neighbour resize to ``L`` rows: row ``i`` is source frame ``floor((i + 0.5) * T / L)``.

Exportable as the transformer family's features are: Gather-based resize with ``T`` read from a tensor, no boolean
indexing, no Python branch on data, static output shape. Keep ``L`` different from ``P`` and from the model's widths
(square tensors confuse onnx2tf's layout guessing, ``depstack.md`` rule 4).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from aslkit import constants as C
from aslkit.tensor_ops import check_landmarks, frame_count

MIN_STD = 1e-3   # lower bound of the normalisation std (coordinates are in [0, 1] image units)
MAX_TIME_LEN = 1024  # (i + 0.5) is exact in float16 up to here (the float16 TFLite build stores constants in fp16)
POINT_SETS: dict[str, np.ndarray] = {"cnn80": C.CNN_80}


@dataclass
class ImageConfig:
    """Settings of ``LandmarkImage``: the number of image rows (resized time) and which points are the columns.

    ``points`` names a point set: ``cnn80`` (I2's 80 points) or a ``+``-joined list of ``constants.LANDMARK_SETS``
    names such as ``lips+hands`` (in that order).
    """

    time_len: int = 160            # L: rows of the image (I2: 160)
    points: str = "cnn80"


def image_points(name: str) -> np.ndarray:
    """Flat landmark indices of the point set ``name`` (see ``ImageConfig.points``)."""
    if name in POINT_SETS:
        return np.asarray(POINT_SETS[name], dtype=np.int64)
    parts = [p.strip() for p in name.split("+")]
    unknown = [p for p in parts if p not in C.LANDMARK_SETS]
    if unknown or not parts:
        raise ValueError(f"unknown point set {name!r}: use one of {sorted(POINT_SETS)} or '+'-joined names of "
                         f"{sorted(C.LANDMARK_SETS)}")
    return np.concatenate([C.LANDMARK_SETS[p] for p in parts]).astype(np.int64)


def nearest_indices(frames: torch.Tensor, length: int, n_frames: torch.Tensor | None = None) -> torch.Tensor:
    """Source frame ``floor((i + 0.5) * T / length)`` ``[length]`` of each output row ``i`` for a nearest resize of
    the leading axis of ``frames`` (``T`` taken from a tensor, so it stays dynamic in an exported graph; the real
    length ``n_frames`` of a padded sequence).

    Computed as ``floor((2i + 1) T / 2L)`` with a true float32 division, which is exact here (a non-integer quotient
    is at least ``1 / 2L`` below the next integer). The divisor ``2L + min(T, 0)`` is computed at run time on purpose:
    a division by a constant becomes a product with its reciprocal in the converted graph, and a float16 TFLite
    build stores that in float16 (1/320 -> 0.003124), which moved rows to other frames (L = 160, T = 1000).
    """
    n = frame_count(frames, n_frames)
    den = torch.minimum(n, torch.zeros_like(n)) + 2 * length                    # 2L, not foldable (T >= 1)
    odd = torch.arange(1, 2 * length, 2, dtype=frames.dtype, device=frames.device)   # exact in float16
    return torch.minimum((odd * n / den).floor(), n - 1).long()


def normalise(x: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` minus the mean of the non-NaN values of ``ref`` (default: ``x`` itself), divided by their std (ddof 1,
    at least ``MIN_STD``); NaN values become 0. The statistics are of the whole tensor (one mean, one std)."""
    ref = x if ref is None else ref
    valid = 1.0 - torch.isnan(ref).to(ref.dtype)
    r0 = torch.where(torch.isnan(ref), torch.zeros_like(ref), ref)
    count = valid.sum()
    mean = r0.sum() / count.clamp(min=1.0)
    dev = (r0 - mean) * valid
    std = torch.sqrt((dev * dev).sum() / (count - 1.0).clamp(min=1.0)).clamp(min=MIN_STD)
    out = (x - mean) / std
    return torch.where(torch.isnan(out), torch.zeros_like(out), out)


class LandmarkImage(nn.Module):
    """``[T, S, 3]`` landmarks of a cache subset (NaN = missing) -> ``[L, P, 3]`` finite normalised image."""

    def __init__(self, cfg: ImageConfig | None = None, subset: np.ndarray | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ImageConfig()
        if not 1 <= cfg.time_len <= MAX_TIME_LEN:
            raise ValueError(f"time_len must be within 1..{MAX_TIME_LEN}, got {cfg.time_len}")
        self.subset = np.asarray(C.CACHE_SUBSETS["islr"] if subset is None else subset)
        self.num_points = len(self.subset)
        self.points = image_points(cfg.points)
        self.register_buffer("keep", torch.as_tensor(C.subset_positions(self.subset, self.points)), persistent=False)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """``(L, P, 3)``: the shape of one image."""
        return self.cfg.time_len, len(self.points), 3

    def forward(self, x: torch.Tensor, n_frames: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[T, S, 3]`` -> image ``[L, P, 3]`` (of the first ``n_frames`` frames when ``x`` is NaN-padded)."""
        if not torch.onnx.is_in_onnx_export():
            check_landmarks(x, self.num_points)
        pts = x.float().index_select(1, self.keep)                                 # [T, P, 3]
        rows = pts.index_select(0, nearest_indices(pts, self.cfg.time_len, n_frames))   # [L, P, 3], static
        return normalise(rows, pts)                     # statistics of the whole sequence
