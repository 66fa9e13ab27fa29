"""I1 (ISLR 1st place): 118 points (lips, hands, nose, eyes), x, y and their lag-1 / lag-2 differences
(``features``) into a Conv1D + transformer hybrid with masked BatchNorm, ECA and late dropout
(``model``), trained with the 1st-place augmentations (``augment``).

The feature module's output is ``[max_len, 709]``: 708 features and the frame mask as the last channel.
The model's ``LateDropout`` is switched on by ``set_epoch(epoch)`` calls (0-based) from the training loop
(``train.set_epoch``; ``model.set_epoch`` does the same); without them it stays off.
"""
from __future__ import annotations

import numpy as np
from torch import nn

from aslkit.config import make_config
from aslkit.tasks.signs.families.conv1d.augment import Conv1DAugmentConfig, conv1d_augment
from aslkit.tasks.signs.families.conv1d.features import Conv1DFeatureConfig, Conv1DFeatures
from aslkit.tasks.signs.families.conv1d.model import Conv1DConfig, Conv1DNet
from aslkit.transforms import Transform

DESCRIPTION = "I1: 118 points x,y + lag-1/2 differences -> Conv1D (causal depthwise, ECA) + transformer hybrid"


PRESETS = {
    "ci": {"features": {"max_len": 24},
           "model": {"dim": 32, "blocks": 1, "heads": 2, "kernel": 5, "drop_path": 0.0, "late_dropout": 0.5,
                     "late_dropout_start": 1},
           "optim.lr": 2e-3},
    # quick synthetic set: 0.18 M parameters; trial 0 of `aslkit tune ... tune_signs_conv1d_quick` (fold 0
    # 39.7 -> 48.7 %), confirmed on fold 1 (46.9 -> 57.3 %): README "Hyper-parameter search"
    "quick": {"features": {"max_len": 40},
              "model": {"dim": 64, "blocks": 1, "heads": 4, "drop_path": 0.08, "attn_dropout": 0.1,
                        "late_dropout": 0.3, "late_dropout_start": 10},
              "augment": {"time_mask_p": 0.45, "spatial_mask_p": 0.5, "resample_p": 0.5, "affine_p": 0.55},
              "optim.epochs": 40, "optim.batch_size": 64, "optim.lr": 3.5e-3, "optim.optimizer": "ranger",
              "optim.schedule": "flat_cosine", "optim.flat_fraction": 0.3, "optim.label_smoothing": 0.25},
    # ISLR 1st place with max_len 380 instead of 384: 384 = 2 x dim makes square tensors that onnx2tf mis-lays-out
    # (float32 TFLite off by 0.08 at 384; see model.check_static_widths)
    "full": {"features": {"max_len": 380},
             "model": {"dim": 192, "blocks": 2, "heads": 4, "kernel": 17, "drop_path": 0.2, "attn_dropout": 0.2,
                       "late_dropout": 0.8, "late_dropout_start": 15},
             "optim.epochs": 300, "optim.lr": 1e-3, "optim.optimizer": "ranger", "optim.schedule": "flat_cosine",
             "optim.flat_fraction": 0.0, "optim.label_smoothing": 0.1,
             "recipe.awp_lr": 0.2, "recipe.awp_start": 0.05},          # AWP 0.2 from epoch 15 of 300
}


def build_modules(cfg, subset: np.ndarray) -> tuple[nn.Module, nn.Module]:
    """``Conv1DFeatures`` of ``cfg.features`` and a ``Conv1DNet`` of ``cfg.model`` (its ``max_len`` is the
    features' ``max_len``)."""
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
