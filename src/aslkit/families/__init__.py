"""The asl-signs model zoo: every model family the kit trains, selectable by ``model_name``.

A family is a module that defines

* ``DESCRIPTION``: one line for tables;
* ``PRESETS``: ``{profile: TrainConfig overrides}`` applied after the task's preset (model, features, augment,
  optimiser settings of that family for ``ci``, ``quick`` and ``full``);
* ``build_modules(cfg, subset) -> (features, model)``: the feature module (one raw sequence ``[T, S, 3]`` of the
  cache ``subset``, NaN = missing, to a fixed-shape tensor; exportable to TFLite) and the model (a batch of those
  tensors to ``[B, 250]`` logits; ``forward(x, mix=None)`` when it supports manifold mixup);
* ``build_augment(cfg, subset) -> Transform``: the per-sample training augmentation of raw sequences.

Names map to a module and fixed overrides (a variant such as I6's two sequence lengths is a name of its own).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class FamilyEntry:
    """Where a family lives and the overrides that make the variant."""

    module: str
    overrides: dict = field(default_factory=dict)


FAMILIES: dict[str, FamilyEntry] = {
    "transformer": FamilyEntry("aslkit.families.transformer"),
    "cnn": FamilyEntry("aslkit.families.cnn"),
    "frames25": FamilyEntry("aslkit.families.frames", {"features.max_len": 25}),
    "frames80": FamilyEntry("aslkit.families.frames", {"features.max_len": 80}),
    "conv1d": FamilyEntry("aslkit.families.conv1d"),
}
DEFAULT_FAMILY = "transformer"


def family_module(name: str) -> ModuleType:
    """The module of family ``name`` (ValueError naming the known families)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model_name {name!r}; known asl-signs families: {sorted(FAMILIES)}")
    return importlib.import_module(FAMILIES[name].module)


def family_presets(name: str, profile: str | None) -> list[dict[str, Any]]:
    """The overrides family ``name`` adds to a config: its profile preset, then the variant's fixed overrides."""
    mod = family_module(name)
    out = []
    if profile:
        if profile not in mod.PRESETS:
            raise KeyError(f"family {name!r} has no preset {profile!r}; known: {sorted(mod.PRESETS)}")
        out.append(mod.PRESETS[profile])
    out.append(FAMILIES[name].overrides)
    return out


def build_modules(cfg, subset: np.ndarray) -> tuple[nn.Module, nn.Module]:
    """The feature module (eval mode) and the untrained model of an asl-signs run config."""
    features, model = family_module(cfg.model_name).build_modules(cfg, np.asarray(subset))
    return features.eval(), model


def build_augment(cfg, subset: np.ndarray):
    """The per-sample training augmentation of the run config's family."""
    return family_module(cfg.model_name).build_augment(cfg, np.asarray(subset))


# ------------------------------------------------------------------------------------------------------------------
# Manifold mixup (a batch mixed inside the model)
# ------------------------------------------------------------------------------------------------------------------
@dataclass
class MixPlan:
    """Mix hidden states ``lam * h + (1 - lam) * h[perm]`` at mixing point ``point`` of the model."""

    perm: torch.Tensor
    lam: float
    point: int


def apply_mix(h: torch.Tensor, plan: MixPlan | None, point: int) -> torch.Tensor:
    """``h`` mixed by ``plan`` when ``plan`` is for ``point``, else ``h`` unchanged."""
    if plan is None or plan.point != point:
        return h
    return plan.lam * h + (1.0 - plan.lam) * h[plan.perm]
