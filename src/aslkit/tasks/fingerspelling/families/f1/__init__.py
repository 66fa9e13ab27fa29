"""F1 (1st place): every landmark, globally and per part normalised (``features``), into a Conv2d landmark-image
stem + Squeezeformer encoder with a phrase decoder, a reversed-phrase decoder and a confidence head (``model``),
trained with cross-entropy (``..seq2seq``) and F1/F5's augmentations."""
from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from aslkit.config import make_config
from aslkit.tasks.fingerspelling.augment import FS_LIGHT_AUGMENT, FSAugmentConfig, default_fs_augment
from aslkit.tasks.fingerspelling.families.f1.features import F1FeatureConfig, F1Features
from aslkit.tasks.fingerspelling.families.f1.model import F1Config, F1Model
from aslkit.transforms import Compose

DESCRIPTION = "F1: Conv2d landmark-image stem + Squeezeformer -> attention decoders (+ reversed) + confidence head"
OBJECTIVE = "seq2seq"           # trained by ..seq2seq.Seq2SeqObjective (the default: CTC)

F1_FLIP = {"flip_p": 0.5, "lip_flip_p": 0.0}     # F1 mirrors the whole frame (both hands kept), not the lips

PRESETS: dict[str, dict[str, Any]] = {
    "ci": {"features": {"max_frames": 100}, "augment": {**FS_LIGHT_AUGMENT, **F1_FLIP},
           "model": {"dim": 32, "blocks": 1, "heads": 2, "conv_kernel": 7, "stem_channels": 8,
                     "decoder_layers": 1, "decoder_heads": 2, "decoder_ffn": 64}},
    # quick: 32 epochs = the CTC encoder's quick training time (9 min on 2 cores; an F1 epoch takes 2.5x a CTC one);
    # 160 frames (longer sequences resized; half the quick phrases are under 132 frames): an epoch takes 17 s instead
    # of 23 s at 200 frames, so 32 epochs fit instead of 21; chosen on fold 0, confirmed on fold 1 (README)
    "quick": {"features": {"max_frames": 160}, "optim.epochs": 32,
              "augment": {**FS_LIGHT_AUGMENT, **F1_FLIP, "resample_p": 0.5, "affine_p": 0.55, "cutmix_p": 0.5},
              "model": {"dim": 96, "blocks": 3, "heads": 4, "conv_kernel": 15, "stem_channels": 16,
                        "decoder_layers": 1, "decoder_heads": 4, "decoder_ffn": 192}},
    # F1's sizes and schedule (AdamW 4.5e-3 at an effective batch of 512, weight decay 0.08, clip 4, 400 epochs) and
    # its supplemental sampling (one random sequence per unique supplemental phrase per epoch)
    "full": {"features": {"max_frames": 384}, "optim.optimizer": "adamw", "optim.schedule": "warmup_cosine",
             "optim.lr": 4.5e-3, "optim.weight_decay": 0.08, "optim.clip_grad": 4.0, "optim.epochs": 400,
             "optim.batch_size": 64, "optim.grad_accumulation": 8, "optim.warmup_fraction": 0.025,
             "supplemental_weight": 0.0, "supplemental_per_phrase": True, "augment": F1_FLIP},
}


def build_modules(cfg, landmarks: np.ndarray | None = None) -> tuple[nn.Module, nn.Module]:
    """The feature module and the (untrained) F1 model of an asl-fingerspelling run config."""
    features = F1Features(make_config(F1FeatureConfig, overrides=cfg.features), landmarks).eval()
    mcfg = make_config(F1Config, overrides={"max_len": features.cfg.max_frames, **cfg.model})
    if mcfg.max_len < features.cfg.max_frames:
        raise ValueError(f"model.max_len={mcfg.max_len} is shorter than features.max_frames="
                         f"{features.cfg.max_frames}")
    return features, F1Model(mcfg, features.part_sizes)


def build_augment(cfg, subset: np.ndarray) -> Compose:
    """F1/F5's per-sample augmentation with ``cfg.augment`` overrides (CutMix and time flip are the sampler's)."""
    return default_fs_augment(make_config(FSAugmentConfig, overrides=cfg.augment))
