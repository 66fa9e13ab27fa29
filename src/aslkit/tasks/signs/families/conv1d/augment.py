"""The ISLR 1st-place augmentations of the conv1d family: time resampling, flip, affine, temporal mask and
spatial cutout, each a shared ``aslkit.transforms`` transform."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aslkit.transforms import (
    Compose,
    HorizontalFlip,
    RandomAffine,
    RandomTimeInterpolation,
    SpatialMask,
    SubsetLayout,
    TimeMask,
)


@dataclass
class Conv1DAugmentConfig:
    """Probabilities and ranges of the ISLR 1st-place augmentations, applied in this order: time resampling, flip,
    affine, temporal mask, spatial cutout. A masked frame has no point, so the features drop it (the mask
    removes a span of frames). Ranges are ``(low, high)`` drawn uniformly."""

    resample_p: float = 0.8
    resample_scale: tuple[float, float] = (0.5, 1.5)     # new length / old length
    resample_shift: tuple[float, float] = (0.0, 0.0)     # offset of the resampled grid (frames)
    flip_p: float = 0.5
    affine_p: float = 0.75
    affine_scale: tuple[float, float] = (0.8, 1.2)
    affine_shear: tuple[float, float] = (-0.15, 0.15)
    affine_shift: tuple[float, float] = (-0.1, 0.1)
    affine_degree: tuple[float, float] = (-30.0, 30.0)
    time_mask_p: float = 0.5
    time_mask_size: tuple[float, float] = (0.2, 0.4)     # share of the frames set to NaN (one span)
    spatial_mask_p: float = 0.5
    spatial_mask_size: tuple[float, float] = (0.2, 0.4)  # box side / extent of the points in x and in y


def conv1d_augment(cfg: Conv1DAugmentConfig | None = None, subset: np.ndarray | None = None) -> Compose:
    """The ISLR 1st-place per-sample augmentation of ``cfg`` for sequences of ``subset`` (default: the ``islr``
    cache subset)."""
    cfg = cfg or Conv1DAugmentConfig()
    layout = SubsetLayout.of(subset)
    return Compose([
        RandomTimeInterpolation(cfg.resample_p, cfg.resample_scale, cfg.resample_shift),
        HorizontalFlip(cfg.flip_p, layout=layout),
        RandomAffine(cfg.affine_p, cfg.affine_scale, cfg.affine_shift, cfg.affine_degree, cfg.affine_shear),
        TimeMask(cfg.time_mask_p, cfg.time_mask_size),
        SpatialMask(cfg.spatial_mask_p, cfg.spatial_mask_size),
    ])
