"""The asl-signs model zoo: every model family the kit trains, selectable by ``model_name``.

Each family is a folder with its presets, build functions and augmentation (``__init__``), its feature module
(``features``: one raw sequence ``[T, S, 3]`` of the cache subset, NaN = missing, to a fixed-shape tensor; exported
inside the TFLite graph), its model (``model``: a batch of those tensors to ``[B, 250]`` logits;
``forward(x, mix=None)`` when it supports manifold mixup) and its augmentation (``augment``).
"""
from __future__ import annotations

from aslkit import constants as C
from aslkit.tasks.base import FamilyEntry, FamilyRegistry

FAMILIES = FamilyRegistry(C.SLUG_SIGNS, {
    "baseline": FamilyEntry("aslkit.tasks.signs.families.baseline"),
    "transformer": FamilyEntry("aslkit.tasks.signs.families.transformer"),
    "cnn": FamilyEntry("aslkit.tasks.signs.families.cnn"),
    "frames25": FamilyEntry("aslkit.tasks.signs.families.frames", {"features.max_len": 25}),
    "frames80": FamilyEntry("aslkit.tasks.signs.families.frames", {"features.max_len": 80}),
    "conv1d": FamilyEntry("aslkit.tasks.signs.families.conv1d"),
}, default="transformer")
