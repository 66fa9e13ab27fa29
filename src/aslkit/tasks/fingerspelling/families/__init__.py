"""The asl-fingerspelling model families, selectable by ``model_name`` (default ``ctc``, F5's encoder).

Each family is a folder with its presets and build functions (``__init__``), its feature module (``features``,
exported inside the grader graph) and its model (``model``); the augmentations are F1/F5's (``..augment``).
"""
from __future__ import annotations

from aslkit import constants as C
from aslkit.tasks.base import FamilyEntry, FamilyRegistry

FAMILIES = FamilyRegistry(C.SLUG_FS, {"ctc": FamilyEntry("aslkit.tasks.fingerspelling.families.ctc"),
                                      "f1": FamilyEntry("aslkit.tasks.fingerspelling.families.f1")}, default="ctc")
