"""I2 CNN (2nd place, CNN branch): the 80-point landmark "image" (time x points x xyz, ``features``) into a timm
EfficientNet-B0 (``model``), with I2's CNN augmentations (``augment``)."""
from __future__ import annotations

import numpy as np
from torch import nn

from aslkit.config import make_config
from aslkit.tasks.signs.families.cnn.augment import CNNAugmentConfig, cnn_augment
from aslkit.tasks.signs.families.cnn.features import ImageConfig, LandmarkImage, image_points
from aslkit.tasks.signs.families.cnn.model import CNNConfig, SignCNN
from aslkit.transforms import Transform

DESCRIPTION = "I2 CNN: 160 x 80 x 3 landmark image (nearest time resize) -> EfficientNet-B0"


PRESETS = {
    "ci": {"features": {"time_len": 32}, "model": {"backbone": "tinynet_e", "drop_rate": 0.0, "drop_path_rate": 0.0},
           "optim.lr": 3e-3},
    # quick: trial 0 of `aslkit tune ... tune_signs_cnn_quick` (fold 0 45.2 -> 55.5 %), confirmed on fold 1
    # (29.3 -> 39.1 %): README "Hyper-parameter search"; 75 epochs instead of the searched 25 from its learning curve
    # (fold 0 53.5 -> 69.0 %), confirmed on fold 1 (35.4 -> 61.7 %): README "Learning curves beyond the quick budget"
    "quick": {"features": {"time_len": 32}, "model": {"backbone": "tinynet_e", "drop_rate": 0.15,
                                                      "drop_path_rate": 0.0},
              "augment": {"time_mask_p": 0.6, "point_mask_p": 0.4, "affine_p": 0.25, "flip_p": 0.45},
              "optim.optimizer": "adamw", "optim.schedule": "onecycle", "optim.lr": 3.5e-3, "optim.epochs": 75,
              "optim.batch_size": 64, "optim.label_smoothing": 0.25},
    "full": {"optim.optimizer": "ranger", "optim.lr": 2.7e-3, "optim.schedule": "onecycle", "optim.epochs": 182,
             "optim.batch_size": 64, "optim.label_smoothing": 0.5, "loss.mixup_p": 0.49, "loss.mixup_alpha": 1.26},
}


def build_modules(cfg, subset: np.ndarray) -> tuple[nn.Module, nn.Module]:
    """``LandmarkImage`` of ``cfg.features`` and a ``SignCNN`` of ``cfg.model``."""
    features = LandmarkImage(make_config(ImageConfig, overrides=cfg.features), subset)
    return features, SignCNN(make_config(CNNConfig, overrides=cfg.model))


def build_augment(cfg, subset: np.ndarray) -> Transform:
    """``cnn_augment`` with ``cfg.augment`` overrides of ``CNNAugmentConfig`` (image columns from
    ``cfg.features``)."""
    points = image_points(make_config(ImageConfig, overrides=cfg.features).points)
    return cnn_augment(make_config(CNNAugmentConfig, overrides=cfg.augment), subset, points)
