"""What ``aslkit predict`` needs from asl-fingerspelling: a run's grader graph in torch, the sequences of a wide
parquet (or a ``.npy``) read exactly as the grader reads them, and the phrase the grader decodes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from aslkit import constants as C
from aslkit.data.errors import DataError, require_file
from aslkit.data.fs import columns_to_landmarks, landmarks_to_columns, write_wide_recording
from aslkit.data.islr import parquet_columns, read_recording_npy
from aslkit.tasks.fingerspelling.export import grader_decode, load_fs_grader_model, wide_columns
from aslkit.tasks.fingerspelling.grade import graded_sequences, held_out_rows

grader_module = load_fs_grader_model
write_recording = write_wide_recording     # ([T, 543, 3], file, sequence_id): a wide parquet of one sequence


def input_columns(module: nn.Module) -> list[str]:
    """The wide columns the graph reads (its ``inference_args.json``), in order."""
    return wide_columns(module.features.landmarks)


def read_inputs(path: str | Path, columns: list[str] | None, sequence_id: int | None = None
                ) -> list[tuple[int | str, np.ndarray]]:
    """The sequences of a wide parquet (all, or ``sequence_id``) with the selected ``columns``, as the grader clone
    reads them (``graded_sequences``), or a ``.npy`` ``[T, 543, 3]`` recording cut to the same columns."""
    path = require_file(path, "landmark file")
    columns = list(columns or C.FS_130_COLUMNS)
    if path.suffix == ".npy":
        return [(path.stem, landmarks_to_columns(read_recording_npy(path), columns))]
    if path.suffix != ".parquet":
        raise DataError(path, "expected a wide landmark .parquet (index sequence_id) or a .npy [T, 543, 3]")
    names = parquet_columns(path)
    if "landmark_index" in names and "sequence_id" not in names:
        raise DataError(path, "a long-format asl-signs recording; a fingerspelling model reads wide files (one "
                              "column per landmark and axis, index sequence_id)")
    ids = None if sequence_id is None else [int(sequence_id)]
    return list(graded_sequences(path, columns, ids).items())


def landmarks(path: str | Path, sequence_id: int | None) -> np.ndarray:
    """One sequence of a wide parquet (every landmark column it has) as ``[T, 543, 3]``, e.g. to animate it."""
    path = require_file(path, "landmark file")
    if path.suffix == ".npy":
        return read_recording_npy(path)
    present = set(parquet_columns(path))
    columns = [c for c in C.FS_COLUMNS if c in present]
    seqs = graded_sequences(path, columns, None if sequence_id is None else [int(sequence_id)])
    return columns_to_landmarks(next(iter(seqs.values())), columns)


def held_out(run: str | Path, k: int) -> pd.DataFrame:
    """The first ``k`` held-out phrases of a run: ``file``, ``sequence_id`` and the true phrase (``truth``)."""
    data, oof = held_out_rows(run, k)
    return pd.DataFrame({"file": [Path(data["data_dir"]) / p for p in oof["path"]],
                         "sequence_id": oof["sequence_id"].astype(int), "truth": oof["phrase"]})


def answer(outputs: np.ndarray, top_k: int = 5) -> dict:
    """The phrase the grader decodes from the output rows (argmax per row through the character map)."""
    return {"phrase": grader_decode(np.asarray(outputs))}


def answer_text(ans: dict) -> str:
    """The phrase, quoted."""
    return repr(ans["phrase"])
