"""asl-signs (ISLR) readers: train.csv, the label map, and one long-format landmark parquet."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from aslkit.constants import ROWS_PER_FRAME
from aslkit.data.errors import (
    DataError,
    int_column,
    non_numeric_cells,
    non_numeric_problem,
    require_columns,
    require_file,
)

TRAIN_COLUMNS = ["path", "participant_id", "sequence_id", "sign"]
LONG_COLUMNS = ["frame", "row_id", "type", "landmark_index", "x", "y", "z"]
LABEL_MAP = "sign_to_prediction_index_map.json"


def read_label_map(data_dir: str | Path) -> dict[str, int]:
    """``sign_to_prediction_index_map.json`` as ``{sign: index}``."""
    path = require_file(Path(data_dir) / LABEL_MAP, "label map")
    try:
        mapping = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(path, f"not valid JSON ({e})") from e
    if sorted(mapping.values()) != list(range(len(mapping))):
        raise DataError(path, "prediction indices are not 0..n-1")
    return mapping


def read_train_csv(data_dir: str | Path, label_map: dict[str, int] | None = None) -> pd.DataFrame:
    """``train.csv`` with a ``label`` column added; every sign must be in the label map."""
    data_dir = Path(data_dir)
    path = require_file(data_dir / "train.csv", "train.csv")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    require_columns(path, df.columns, TRAIN_COLUMNS)
    label_map = read_label_map(data_dir) if label_map is None else label_map
    unknown = sorted(set(df["sign"]) - set(label_map))
    if unknown:
        raise DataError(path, f"unknown sign(s) not in {LABEL_MAP}: {unknown[:10]}")
    df = df[TRAIN_COLUMNS].copy()
    for col in ("participant_id", "sequence_id"):
        df[col] = int_column(path, df, col)
    df["label"] = df["sign"].map(label_map).astype(np.int64)
    return df


def load_relevant_data_subset(pq_path: str | Path) -> np.ndarray:
    """One sequence as Kaggle's grader loads it: ``[n_frames, 543, 3]`` float32, NaNs kept.

    Same read and reshape as the public evaluation code, with a clear error for a missing file, missing x/y/z
    columns, an empty sequence, a row count that is not a multiple of 543, or a value that is not a number.
    """
    path = require_file(pq_path, "landmark parquet")
    try:
        names = pq.read_schema(path).names
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataError(path, f"unreadable parquet ({type(e).__name__}: {e})") from e
    require_columns(path, names, ["x", "y", "z"])
    data_columns = ["x", "y", "z"]
    data = pd.read_parquet(path, columns=data_columns)
    if len(data) == 0:
        raise DataError(path, "empty sequence (0 rows)")
    if len(data) % ROWS_PER_FRAME:
        raise DataError(path, f"{len(data)} rows is not a multiple of {ROWS_PER_FRAME} landmarks per frame")
    n_frames = int(len(data) / ROWS_PER_FRAME)
    values = data.values.reshape(n_frames, ROWS_PER_FRAME, len(data_columns))
    try:
        return values.astype(np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(path, text_values_problem(data)) from e


def text_values_problem(data: pd.DataFrame) -> str:
    """What is wrong with a long-format table whose x/y/z values do not all convert to float32: the first column
    with a non-numeric value, that value, its parquet row (0-based) and how many rows have one."""
    cells = non_numeric_cells(data)
    if not cells:
        return "landmark values do not convert to float32"
    col, rows = next(iter(cells.items()))
    n_rows = len(np.unique(np.concatenate(list(cells.values()))))
    return f"{non_numeric_problem(data, col, rows[0])} at parquet row {rows[0]} (0-based; {n_rows} row(s) in all)"


def read_long_parquet(pq_path: str | Path) -> pd.DataFrame:
    """The whole long-format table (all seven columns), validated like ``load_relevant_data_subset``."""
    path = require_file(pq_path, "landmark parquet")
    df = pd.read_parquet(path)
    require_columns(path, df.columns, LONG_COLUMNS)
    if len(df) == 0 or len(df) % ROWS_PER_FRAME:
        raise DataError(path, f"{len(df)} rows is not a positive multiple of {ROWS_PER_FRAME}")
    return df
