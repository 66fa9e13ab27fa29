"""I2-T (2nd place, transformer branch): hand-crafted per-frame features of the lips and the dominant hand
(``features``) into a BERT / DeBERTa-v2 encoder with conditional position encoding (``model``), trained with
I2-T's augmentation (``augment``)."""
from __future__ import annotations

import numpy as np
from torch import nn

from aslkit.config import make_config
from aslkit.tasks.signs.families.transformer.augment import AugmentConfig, default_signs_augment
from aslkit.tasks.signs.families.transformer.features import FeatureConfig, SignFeatures
from aslkit.tasks.signs.families.transformer.model import SignTransformer, TransformerConfig
from aslkit.transforms import Transform

DESCRIPTION = "I2-T: 972 hand-crafted features per frame -> BERT with CPE"


PRESETS = {
    "ci": {"model": {"hidden": 64, "layers": 2, "heads": 2, "intermediate": 128}},
    # quick: size for 2 CPU cores; learning rate, epochs, smoothing, dropout and augmentation from an Optuna search on
    # fold 0 (logs/tune_transformer_quick, experiments/spaces/tune_signs_transformer_quick.yaml), confirmed on fold 1
    # (README, "Presets chosen by a search").
    # Before: lr 1e-3, 24 epochs, smoothing 0.2, dropout 0.1, affine 0.8, lip 0.5.
    "quick": {"features": {"max_len": 32}, "model": {"hidden": 128, "layers": 3, "heads": 4, "intermediate": 256,
                                                     "dropout": 0.15},
              "optim.lr": 2.5e-3, "optim.epochs": 40, "optim.label_smoothing": 0.25,
              "augment": {"affine_p": 0.6, "lip_flip_p": 0.3}},
    "full": {"optim.ema_decay": 0.999},
}


def build_modules(cfg, subset: np.ndarray) -> tuple[nn.Module, nn.Module]:
    """``SignFeatures`` of ``cfg.features`` and a ``SignTransformer`` of ``cfg.model``."""
    fcfg = make_config(FeatureConfig, overrides=cfg.features)
    features = SignFeatures(fcfg, subset)
    mcfg = make_config(TransformerConfig, overrides={"max_len": fcfg.max_len, **cfg.model})
    return features, SignTransformer(mcfg, features.feature_dim)


def build_augment(cfg, subset: np.ndarray) -> Transform:
    """I2-T's augmentation (``default_signs_augment``) with ``cfg.augment`` overrides of ``AugmentConfig``."""
    return default_signs_augment(make_config(AugmentConfig, overrides=cfg.augment), subset)
