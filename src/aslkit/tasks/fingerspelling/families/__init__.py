"""The asl-fingerspelling model families, selectable by ``model_name`` (default ``ctc``, F5's encoder).

Each family is a folder with its presets and build functions (``__init__``), its feature module (``features``,
exported inside the grader graph) and its model (``model``); the augmentations are F1/F5's (``..augment``).
"""
from __future__ import annotations

from aslkit import constants as C
from aslkit.tasks.base import FamilyEntry, FamilyRegistry

FAMILIES = FamilyRegistry(C.SLUG_FS, {"ctc": FamilyEntry("aslkit.tasks.fingerspelling.families.ctc"),
                                      "f1": FamilyEntry("aslkit.tasks.fingerspelling.families.f1")}, default="ctc")


def attention_decoder(model_name: str) -> bool:
    """Whether family ``model_name`` decodes with attention decoders (``OBJECTIVE = "seq2seq"``: trained by
    ``..seq2seq``, exported as ``decoder_graph``, ensembled by averaging decoder logits); else CTC."""
    return getattr(FAMILIES.module(model_name), "OBJECTIVE", "ctc") == "seq2seq"
