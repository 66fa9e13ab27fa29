"""I1 (ISLR 1st place): 118 points (lips, hands, nose, eyes), x, y and their lag-1 / lag-2 differences
(``aslkit.features_conv1d``) into a Conv1D + transformer hybrid with masked BatchNorm, ECA and late dropout
(``aslkit.models.conv1d``), trained with the 1st-place augmentations (``Conv1DAugmentConfig``).

The feature module's output is ``[max_len, 709]``: 708 features and the frame mask as the last channel.
The model's ``LateDropout`` is switched on by ``set_epoch(epoch)`` calls (0-based) from the training loop
(``train.set_epoch``; ``models.conv1d.set_epoch`` does the same); without them it stays off.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from aslkit.augment import Compose, HorizontalFlip, RandomAffine, RandomTimeInterpolation, SubsetLayout, Transform
from aslkit.augment_fs import SpatialMask, TimeMask
from aslkit.config import make_config

DESCRIPTION = "I1: 118 points x,y + lag-1/2 differences -> Conv1D (causal depthwise, ECA) + transformer hybrid"

PRESETS = {
    "ci": {"features": {"max_len": 24},
           "model": {"dim": 32, "blocks": 1, "heads": 2, "kernel": 5, "drop_path": 0.0, "late_dropout": 0.5,
                     "late_dropout_start": 1},
           "optim.lr": 2e-3},
    # quick synthetic set (3,000 train / 1,000 val): 0.18 M parameters, ~20 s/epoch on 2 idle cores, val acc 0.40
    # after 20 epochs (the 1st-place regularisation at full strength: 0.34)
    "quick": {"features": {"max_len": 40},
              "model": {"dim": 64, "blocks": 1, "heads": 4, "drop_path": 0.05, "attn_dropout": 0.1,
                        "late_dropout": 0.3, "late_dropout_start": 10},
              "augment": {"time_mask_p": 0.25, "spatial_mask_p": 0.25},
              "optim.epochs": 20, "optim.batch_size": 64, "optim.lr": 2e-3, "optim.optimizer": "ranger",
              "optim.schedule": "flat_cosine", "optim.flat_fraction": 0.3, "optim.label_smoothing": 0.1},
    # ISLR 1st place with max_len 380 instead of 384: 384 = 2 x dim makes square tensors that onnx2tf mis-lays-out
    # (float32 TFLite off by 0.08 at 384; see models.conv1d.check_static_widths)
    "full": {"features": {"max_len": 380},
             "model": {"dim": 192, "blocks": 2, "heads": 4, "kernel": 17, "drop_path": 0.2, "attn_dropout": 0.2,
                       "late_dropout": 0.8, "late_dropout_start": 15},
             "optim.epochs": 300, "optim.lr": 1e-3, "optim.optimizer": "ranger", "optim.schedule": "flat_cosine",
             "optim.flat_fraction": 0.0, "optim.label_smoothing": 0.1,
             "recipe.awp_lr": 0.2, "recipe.awp_start": 0.05},          # AWP 0.2 from epoch 15 of 300
}


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


def build_modules(cfg, subset: np.ndarray) -> tuple[nn.Module, nn.Module]:
    """``Conv1DFeatures`` of ``cfg.features`` and a ``Conv1DNet`` of ``cfg.model`` (its ``max_len`` is the
    features' ``max_len``)."""
    from aslkit.features_conv1d import Conv1DFeatureConfig, Conv1DFeatures
    from aslkit.models.conv1d import Conv1DConfig, Conv1DNet
    fcfg = make_config(Conv1DFeatureConfig, overrides=cfg.features)
    features = Conv1DFeatures(fcfg, subset)
    mcfg = make_config(Conv1DConfig, overrides={"max_len": fcfg.max_len, **cfg.model})
    if mcfg.max_len != fcfg.max_len:
        raise ValueError(f"model.max_len={mcfg.max_len} differs from features.max_len={fcfg.max_len}; set "
                         f"features.max_len only")
    return features, Conv1DNet(mcfg, features.feature_dim)


def build_augment(cfg, subset: np.ndarray) -> Transform:
    """``conv1d_augment`` with ``cfg.augment`` overrides of ``Conv1DAugmentConfig``."""
    return conv1d_augment(make_config(Conv1DAugmentConfig, overrides=cfg.augment), subset)
