"""What the conversion stage (``aslkit.export``) needs from an asl-signs run: its grader-input module (one run or a
one-file ensemble), the validation sequences read from the original parquet files, and the parity check
(argmax agreement and logit differences)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from aslkit.data.islr import load_relevant_data_subset
from aslkit.runs import checkpoint_path, is_ensemble
from aslkit.tasks.base import TaskExport, degenerate_inputs
from aslkit.tasks.signs.ensemble import member_checkpoints
from aslkit.tasks.signs.grade import LATENCY_LIMIT_MS, held_out_rows
from aslkit.tasks.signs.predict import grader_module


def validation_sequences(run: str | Path, limit: int = 0) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Raw grader inputs of a run's validation sequences, read from the original parquet files as Kaggle does."""
    data, oof = held_out_rows(run, limit)
    return [load_relevant_data_subset(Path(data["data_dir"]) / p) for p in oof["path"]], oof.drop(columns="path")


def compare_logits(outs: list[np.ndarray], ref: list[np.ndarray], oof: pd.DataFrame) -> dict:
    """asl-signs parity: argmax agreement and absolute logit differences (and the torch accuracy)."""
    out, r = np.stack(outs), np.stack(ref)
    diff = np.abs(out - r)
    rep = {"agreement": float((out.argmax(1) == r.argmax(1)).mean()), "max_abs_diff": float(diff.max()),
           "mean_abs_diff": float(diff.mean()), "n_parity": len(outs)}
    if "label" in oof:
        rep["torch_accuracy"] = float((r.argmax(1) == oof["label"].to_numpy()[:len(r)]).mean())
    return rep


def task_export(run: Path, checkpoint: str = "best", parity_limit: int = 0) -> TaskExport:
    """What ``aslkit convert`` needs from an asl-signs run or ensemble folder: the grader-input module (raw
    ``[T, 543, 3]``), edge cases, the validation sequences read as Kaggle does, and the logit comparison."""
    model = grader_module(run, checkpoint)
    sources = member_checkpoints(run) if is_ensemble(run) else [checkpoint_path(run, checkpoint)]
    seqs, oof = validation_sequences(run, parity_limit) if (run / "oof.csv").is_file() else ([], None)
    return TaskExport(model, torch.rand(23, 543, 3), (None, 543, 3), degenerate_inputs(), seqs, oof, compare_logits,
                      sources=sources, latency_budget_ms=LATENCY_LIMIT_MS)
