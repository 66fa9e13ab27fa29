"""What ``aslkit predict`` needs from asl-signs: a run's grader-input module (one run or a one-file ensemble), one
recording read exactly as the grader reads it, and the top-k signs of the model's outputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from aslkit import constants as C
from aslkit.data.errors import DataError, require_file
from aslkit.data.islr import (
    LONG_COLUMNS,
    load_relevant_data_subset,
    parquet_columns,
    read_recording_npy,
    write_long_recording,
)
from aslkit.runs import is_ensemble
from aslkit.tasks.signs.ensemble import load_ensemble_model
from aslkit.tasks.signs.grade import held_out_rows
from aslkit.tasks.signs.graph import load_grader_model


def grader_module(run: str | Path, checkpoint: str = "best") -> nn.Module:
    """The torch module of a run or one-file ensemble folder on the grader's input: ``[T, 543, 3]`` -> logits."""
    return load_ensemble_model(run) if is_ensemble(run) else load_grader_model(run, checkpoint)


def input_columns(module: nn.Module) -> None:
    """asl-signs graphs read every landmark of the long-format file: no selected columns."""
    return None


def read_inputs(path: str | Path, columns: list[str] | None = None, sequence_id: int | None = None
                ) -> list[tuple[int | str, np.ndarray]]:
    """One recording as the grader feeds it, ``[(id, [T, 543, 3])]``: a long-format parquet (read by the grader's own
    ``load_relevant_data_subset``; its id is the file name, the sequence_id in the Kaggle layout) or a ``.npy``."""
    path = require_file(path, "recording")
    if sequence_id is not None:
        raise DataError(path, "--sequence-id picks a phrase of a fingerspelling file; an asl-signs file holds one "
                              "recording")
    if path.suffix == ".npy":
        return [(path.stem, read_recording_npy(path))]
    if path.suffix != ".parquet":
        raise DataError(path, "expected a long-format landmark .parquet or a .npy [T, 543, 3]")
    names = parquet_columns(path)
    if "x_right_hand_0" in names or "sequence_id" in names:
        raise DataError(path, f"a fingerspelling (wide) landmark file; an asl-signs model reads one long-format "
                              f"recording (columns {', '.join(LONG_COLUMNS)})")
    stem = path.stem
    return [(int(stem) if stem.isdigit() else stem, load_relevant_data_subset(path))]


def landmarks(path: str | Path, sequence_id: int | None = None) -> np.ndarray:
    """The recording as ``[T, 543, 3]`` (what the graph reads), e.g. to animate it."""
    return read_inputs(path, None, sequence_id)[0][1]


def held_out(run: str | Path, k: int) -> pd.DataFrame:
    """The first ``k`` held-out recordings of a run: ``file``, ``sequence_id`` (None: one recording per file) and the
    true sign (``truth``)."""
    data, oof = held_out_rows(run, k)
    return pd.DataFrame({"file": [Path(data["data_dir"]) / p for p in oof["path"]], "sequence_id": None,
                         "truth": [C.signs()[i] for i in oof["label"]]})


def write_recording(landmarks: np.ndarray, path: str | Path, sequence_id: int = 0) -> Path:
    """A recording ``[T, 543, 3]`` as an asl-signs long-format parquet (one recording per file)."""
    return write_long_recording(landmarks, path)


def answer(outputs: np.ndarray, top_k: int = 5) -> dict:
    """The top-k signs of one output row of logits, with their softmax probabilities."""
    logits = np.asarray(outputs, dtype=np.float64).reshape(-1)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    names = C.signs()
    order = np.argsort(-probs, kind="stable")[:top_k]
    return {"top": [{"sign": names[i], "index": int(i), "probability": float(probs[i])} for i in order]}


def answer_text(ans: dict) -> str:
    """One line: the signs with their probabilities, best first."""
    return ", ".join(f"{t['sign']} {t['probability']:.3f}" for t in ans["top"])
