"""One-file ensembles of asl-signs runs (``aslkit convert RUN RUN ...``).

An ensemble folder (``logs/<name>/``) holds ``ensemble.json`` (member run folders, their weights and where the
weights came from), the ``data.json`` of its members, and, when the weights were fitted on out-of-fold predictions,
the ensemble's ``oof.csv`` / ``oof_logits.npy``; ``aslkit convert``, ``submit`` and ``score`` treat it like a run.

The exported graph runs every member on the raw ``[T, 543, 3]`` input, each with its own preprocessing, and adds
their logits with the fitted weights, without softmax (I2 found that consistently better than averaging
probabilities). Weights are fitted on the out-of-fold logits of runs trained on one fold and can then be applied
to members trained on all data (I2's procedure: ``weights_from``).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from aslkit import constants as C
from aslkit.paths import logs_root
from aslkit.runs import (
    ENSEMBLE_FILE,
    checkpoint_path,
    ensemble_record,
    is_run_folder,
    read_data_record,
    read_run_config,
    run_task,
    save_array_atomic,
    write_csv_atomic,
    write_data_record,
    write_json_atomic,
)
from aslkit.tasks.signs.graph import load_grader_model


@dataclass
class EnsembleConfig:
    """Members of an ensemble and how its weights are chosen."""

    runs: list[str] = field(default_factory=list)          # member run folders (the models that are exported)
    weights_from: list[str] = field(default_factory=list)  # fold runs whose OOF logits fit the weights, one per
                                                           # member in the same order (default: the members)
    weights: list[float] = field(default_factory=list)     # explicit weights (skip fitting)
    name: str = ""                                         # folder under logs/ (or absolute); default from members
    checkpoint: str = "best"
    grid_step: float = 0.05                                 # simplex grid of the weight search


# ------------------------------------------------------------------------------------------------------------------
# Weights
# ------------------------------------------------------------------------------------------------------------------
def aligned_oof(runs: list[str | Path]) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """The OOF rows of the first run and every run's OOF logits in that row order (ValueError when the runs were
    validated on different sequences)."""
    frames, logits = [], []
    for run in map(Path, runs):
        if not (run / "oof.csv").is_file() or not (run / "oof_logits.npy").is_file():
            raise FileNotFoundError(f"{run}: no oof.csv / oof_logits.npy (ensemble weights are fitted on runs with a "
                                    f"validation fold)")
        frames.append(pd.read_csv(run / "oof.csv"))
        logits.append(np.load(run / "oof_logits.npy"))
    ref = frames[0]
    out = [logits[0]]
    for run, f, z in zip(runs[1:], frames[1:], logits[1:]):
        if set(f["sequence_id"]) != set(ref["sequence_id"]):
            raise ValueError(f"{run}: validated on other sequences than {runs[0]} (train every member on the same "
                             f"fold of the same prepared data)")
        pos = pd.Series(np.arange(len(f)), index=f["sequence_id"]).loc[ref["sequence_id"]].to_numpy()
        out.append(z[pos])
    return ref, out


def simplex_grid(n: int, step: float) -> np.ndarray:
    """All weight vectors of ``n`` non-negative multiples of ``step`` that sum to 1."""
    k = int(round(1 / step))
    rows = [c for c in itertools.product(range(k + 1), repeat=n - 1) if sum(c) <= k]
    return np.array([[*c, k - sum(c)] for c in rows], dtype=np.float64) / k


def weighted_logits(logits: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The weighted sum ``[N, C]`` of the members' logits."""
    return np.tensordot(weights, np.stack(logits), axes=1)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of ``logits [N, C]`` on ``labels``."""
    return float((logits.argmax(1) == labels).mean())


def fit_weights(logits: list[np.ndarray], labels: np.ndarray, step: float = 0.05) -> np.ndarray:
    """Weights of the members' logits (non-negative, sum 1) that maximise the accuracy of their weighted sum on
    ``labels``; ties go to the lower cross-entropy. An exhaustive simplex grid for up to four members, coordinate
    ascent over the same grid steps beyond."""
    z = np.stack([np.asarray(x, np.float64) for x in logits])                 # [M, N, C]
    if len(z) == 1:
        return np.ones(1)

    def key(w: np.ndarray) -> tuple[float, float]:
        s = np.tensordot(w, z, axes=1)
        acc = accuracy(s, labels)
        s = s - s.max(1, keepdims=True)
        nll = float(np.mean(np.log(np.exp(s).sum(1)) - s[np.arange(len(labels)), labels]))
        return acc, -nll

    if len(z) <= 4:
        grid = simplex_grid(len(z), step)
        return grid[max(range(len(grid)), key=lambda i: key(grid[i]))]
    w = np.full(len(z), 1 / len(z))
    for _ in range(10):
        before = key(w)
        for i in range(len(z)):
            cands = [np.clip(w + d * (np.eye(len(z))[i] - w), 0, None) for d in np.linspace(-1, 1, 21)]
            w = max(cands, key=key)
        if key(w) <= before:
            break
    return w / w.sum()


def cross_fitted_accuracy(logits: list[np.ndarray], labels: np.ndarray, participants: np.ndarray,
                          step: float = 0.05) -> float:
    """Accuracy of the weighted members when the weights scoring each half of the participants are fitted on the
    other half: the ensemble's accuracy without the optimism of weights fitted on the sequences they are scored on."""
    ids = np.unique(participants)
    first = np.isin(participants, ids[: len(ids) // 2])
    right = 0
    for fit_rows, score_rows in ((first, ~first), (~first, first)):
        w = fit_weights([z[fit_rows] for z in logits], labels[fit_rows], step)
        right += int((weighted_logits([z[score_rows] for z in logits], w).argmax(1) == labels[score_rows]).sum())
    return right / len(labels)


# ------------------------------------------------------------------------------------------------------------------
# The folder and the graph
# ------------------------------------------------------------------------------------------------------------------
def _member_names(runs: list[Path]) -> list[str]:
    names = []
    for r in runs:
        names.append(read_run_config(r).model_name if is_run_folder(r) else r.name)
    return names


def make_ensemble(cfg: EnsembleConfig) -> Path:
    """Create the ensemble folder of ``cfg``: fit (or take) the weights, write ensemble.json, data.json and, when the
    members have OOF predictions, the ensemble's OOF files. Returns the folder."""
    runs = [Path(r) for r in cfg.runs]
    if len(runs) < 2:
        raise ValueError(f"an ensemble needs at least two runs, got {cfg.runs}")
    for r in runs:
        if not is_run_folder(r) or run_task(r) != C.SLUG_SIGNS:
            raise ValueError(f"{r}: not an asl-signs run folder (ensembles are for asl-signs)")
    fit_runs = [Path(r) for r in (cfg.weights_from or cfg.runs)]
    if len(fit_runs) != len(runs):
        raise ValueError(f"weights_from names {len(fit_runs)} runs for {len(runs)} members")
    rec = {"task": C.SLUG_SIGNS, "members": [str(r.resolve()) for r in runs], "families": _member_names(runs),
           "checkpoint": cfg.checkpoint}
    if cfg.weights:
        if len(cfg.weights) != len(runs) or min(cfg.weights) < 0:
            raise ValueError(f"weights {cfg.weights} must be {len(runs)} non-negative numbers")
        weights, rec["weights_source"] = np.asarray(cfg.weights, np.float64), "given"
    else:
        oof, logits = aligned_oof(fit_runs)
        weights = fit_weights(logits, oof["label"].to_numpy(), cfg.grid_step)
        rec["weights_source"] = [str(r.resolve()) for r in fit_runs]
        labels = oof["label"].to_numpy()
        rec["fit_member_oof_accuracy"] = [accuracy(z, labels) for z in logits]
        rec["fit_oof_accuracy"] = accuracy(weighted_logits(logits, weights), labels)
        if oof["participant_id"].nunique() > 1:
            rec["fit_oof_accuracy_cross_fitted"] = cross_fitted_accuracy(
                logits, labels, oof["participant_id"].to_numpy(), cfg.grid_step)
    rec["weights"] = [float(w) for w in weights]
    name = cfg.name or "ensemble_" + "+".join(rec["families"]) + time.strftime("_%Y%m%d_%H%M%S")
    out = Path(name) if Path(name).is_absolute() else logs_root() / name
    out.mkdir(parents=True, exist_ok=True)
    write_data_record(out, read_data_record(runs[0]))
    if all((r / "oof.csv").is_file() for r in runs):
        oof, logits = aligned_oof(runs)
        z = weighted_logits(logits, weights).astype(np.float32)
        oof = oof.assign(pred=z.argmax(1))
        save_array_atomic(out / "oof_logits.npy", z)
        write_csv_atomic(oof, out / "oof.csv", index=False)
        labels = oof["label"].to_numpy()
        rec["oof_accuracy"] = accuracy(z, labels)
        rec["member_oof_accuracy"] = [accuracy(x, labels) for x in logits]
    write_json_atomic(out / ENSEMBLE_FILE, rec)
    print(f"ensemble {out}: " + ", ".join(f"{f} x {w:.2f}" for f, w in zip(rec["families"], weights))
          + (f"; OOF accuracy {rec['oof_accuracy']:.4f} (members {rec['member_oof_accuracy']})"
             if "oof_accuracy" in rec else ""))
    return out


class EnsembleGraderModel(nn.Module):
    """Raw grader input ``[T, 543, 3]`` -> the weighted sum of the members' logits (no softmax)."""

    def __init__(self, members: list[nn.Module], weights: list[float]):
        super().__init__()
        if len(members) != len(weights):
            raise ValueError(f"{len(members)} members but {len(weights)} weights")
        self.members = nn.ModuleList(members)
        self.weights = [float(w) for w in weights]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        out = None
        for w, m in zip(self.weights, self.members):
            if w == 0.0:
                continue                                              # a zero-weight member is left out of the graph
            y = w * m(inputs)
            out = y if out is None else out + y
        return out


def member_checkpoints(folder: str | Path) -> list[Path]:
    """The checkpoint files of an ensemble's members (what its graph is built from)."""
    rec = ensemble_record(folder)
    return [checkpoint_path(r, rec.get("checkpoint", "best")) for r in rec["members"]]


def load_ensemble_model(folder: str | Path) -> EnsembleGraderModel:
    """The ``EnsembleGraderModel`` of an ensemble folder (its members' checkpoints)."""
    rec = ensemble_record(folder)
    members = [load_grader_model(r, rec.get("checkpoint", "best")) for r in rec["members"]]
    return EnsembleGraderModel(members, rec["weights"]).eval()
