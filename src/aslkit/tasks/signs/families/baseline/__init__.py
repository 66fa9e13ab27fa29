"""The non-deep reference (no published solution: the floor every model must clear): per-recording statistics of
the dominant hand, its place relative to the nose and the lips in a few time bins (``features``) into a
scikit-learn logistic regression (``model``), fitted in one pass over the training recordings as they are (no
augmentation), validated, saved and converted like every other family."""
from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from aslkit.config import make_config
from aslkit.tasks.signs.families.baseline.features import SummaryConfig, SummaryFeatures
from aslkit.tasks.signs.families.baseline.model import LogisticConfig, SummaryLogistic
from aslkit.transforms import Compose, Transform

DESCRIPTION = "reference: hand/lip statistics in 4 time bins -> scikit-learn logistic regression (no deep learning)"

REFERENCE = True          # a yardstick in the zoo tables, not a member of the ensembles


# one pass of the closed-form fit; C chosen on fold 0 and confirmed on fold 1 (README, "Zoo results")
PRESETS: dict[str, dict[str, Any]] = {p: {"optim.epochs": 1} for p in ("ci", "quick", "full")}


def build_modules(cfg, subset: np.ndarray) -> tuple[nn.Module, nn.Module]:
    """``SummaryFeatures`` of ``cfg.features`` and an unfitted ``SummaryLogistic`` of ``cfg.model``."""
    features = SummaryFeatures(make_config(SummaryConfig, overrides=cfg.features), subset)
    return features, SummaryLogistic(make_config(LogisticConfig, overrides=cfg.model), features.feature_dim)


def build_augment(cfg, subset: np.ndarray) -> Transform:
    """No augmentation: the regression sees each training recording once, as recorded."""
    if cfg.augment:
        raise ValueError(f"the baseline family has no augmentation; remove augment={cfg.augment}")
    return Compose([])
