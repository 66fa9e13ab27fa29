"""F5 (5th place): per-frame features of the dominant hand, arms and lips (``features``) into a Conv1d-stem +
rotary transformer encoder with a CTC head (``model``), trained with F1/F5's augmentations."""
from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from aslkit.config import make_config
from aslkit.tasks.fingerspelling.augment import FS_LIGHT_AUGMENT, FSAugmentConfig, default_fs_augment
from aslkit.tasks.fingerspelling.families.ctc.features import FSFeatureConfig, FSFeatures
from aslkit.tasks.fingerspelling.families.ctc.model import CTCConfig, CTCEncoder
from aslkit.transforms import Compose

DESCRIPTION = "F5: dominant hand, arms and lips per frame -> Conv1d stem + rotary transformer -> CTC head"


PRESETS: dict[str, dict[str, Any]] = {
    "ci": {"features": {"max_frames": 100}, "augment": FS_LIGHT_AUGMENT,
           "model": {"dim": 32, "layers": 1, "heads": 2, "stride": 2}},
    # quick: a strided stem (half the frames); dropout and augmentation from the fold-0 search, confirmed on fold 1
    # (README, "Presets chosen by a search"); before: dropout 0.05, FS_LIGHT_AUGMENT with lip mirror 0.5
    "quick": {"features": {"max_frames": 200},
              "augment": {**FS_LIGHT_AUGMENT, "resample_p": 0.5, "affine_p": 0.55, "lip_flip_p": 0.45, "cutmix_p": 0.5,
                          "time_mask_p": 0.2},
              "model": {"dim": 128, "layers": 3, "heads": 4, "ffn_mult": 2, "stride": 2, "dropout": 0.1,
                        "layerdrop": 0.0}},
    "full": {"model": {"stride": 2}},
}


def build_modules(cfg, landmarks: np.ndarray | None = None) -> tuple[nn.Module, nn.Module]:
    """The feature module and the (untrained) CTC encoder of an asl-fingerspelling run config."""
    fcfg = make_config(FSFeatureConfig, overrides=cfg.features)
    features = FSFeatures(fcfg, landmarks).eval()
    mcfg = make_config(CTCConfig, overrides={"max_len": fcfg.max_frames, **cfg.model})
    if mcfg.max_len < fcfg.max_frames:
        raise ValueError(f"model.max_len={mcfg.max_len} is shorter than features.max_frames={fcfg.max_frames}")
    check_static_widths(fcfg.max_frames, mcfg, features.feature_dim)
    return features, CTCEncoder(mcfg, features.feature_dim)


def check_static_widths(max_frames: int, mcfg, feature_dim: int) -> None:
    """ValueError when the graph's static frame count equals one of the model's widths: onnx2tf then guesses the
    layout of square ``[max_frames, width]`` tensors wrongly (the parity gate fails). Pick another max_frames."""
    rows = -(-max_frames // mcfg.stride)
    widths = {"model.dim": mcfg.dim, "3 x model.dim (qkv)": 3 * mcfg.dim, "model.ffn_mult x dim": mcfg.ffn_mult *
              mcfg.dim, "head size": mcfg.dim // mcfg.heads, "classes": mcfg.num_classes, "features": feature_dim}
    clash = [name for name, w in widths.items() if w in (max_frames, rows)]
    if clash:
        raise ValueError(f"features.max_frames={max_frames} (model rows {rows}) equals the width of {clash}; choose "
                         f"another value "
                         f"(square tensors break the TFLite conversion)")


def build_augment(cfg, subset: np.ndarray) -> Compose:
    """F1/F5's per-sample augmentation (``default_fs_augment``) with ``cfg.augment`` overrides of ``FSAugmentConfig``
    (outer CutMix, which needs a second sample, is the sampler's)."""
    return default_fs_augment(make_config(FSAugmentConfig, overrides=cfg.augment))
