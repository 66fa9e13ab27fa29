"""A trained asl-signs run as one module of the grader's input: raw ``[T, 543, 3]`` (NaNs) -> ``[250]`` logits,
preprocessing included (the module that is exported to TFLite)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from aslkit.runs import checkpoint_path, load_checkpoint, read_run_config, run_subset
from aslkit.tasks.signs.families import FAMILIES


class GraderModel(nn.Module):
    """Raw grader input ``[T, 543, 3]`` (NaNs) -> ``[num_classes]`` logits: landmark subset, features, model."""

    def __init__(self, subset: np.ndarray, features: nn.Module, model: nn.Module):
        super().__init__()
        self.register_buffer("subset", torch.as_tensor(np.asarray(subset), dtype=torch.long), persistent=False)
        self.features, self.model = features, model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[:, self.subset]
        return self.model(self.features(x).unsqueeze(0))[0]


def load_grader_model(run: str | Path, checkpoint: str = "best") -> GraderModel:
    """The trained model of a run folder (its config, data.json and checkpoint) as a ``GraderModel``."""
    subset = run_subset(run)
    features, model = FAMILIES.build_modules(read_run_config(run), subset)
    model.load_state_dict(load_checkpoint(checkpoint_path(run, checkpoint))["model"])
    return GraderModel(subset, features, model).eval()
