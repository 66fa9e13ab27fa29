"""asl-signs (ISLR) readers: train.csv, the label map, and one long-format landmark parquet."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aslkit.constants import LANDMARK_INDEX, LANDMARK_TYPES, ROWS_PER_FRAME
from aslkit.data.cache import write_atomic
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
XYZ = ["x", "y", "z"]
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


def parquet_columns(path: str | Path) -> list[str]:
    """The column names of a parquet file, [] when it cannot be read (the reader that follows names the problem)."""
    try:
        return pq.read_schema(path).names
    except Exception:  # pyarrow raises several types for corrupt files
        return []


def load_relevant_data_subset(pq_path: str | Path) -> np.ndarray:
    """One sequence as Kaggle's grader loads it: ``[n_frames, 543, 3]`` float32, NaNs kept.

    Literally the public evaluation code's read (``pd.read_parquet(path, columns=["x", "y", "z"])``, ``.values``
    reshaped, ``astype(np.float32)``), with a clear error for a missing file, missing x/y/z columns, an empty
    sequence, a row count that is not a multiple of 543, or a value that is not a number. The grader clone and the
    export use it; the cache build reads the same arrays faster with ``read_landmarks``.
    """
    path = require_file(pq_path, "landmark parquet")
    try:
        names = pq.read_schema(path).names
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataError(path, f"unreadable parquet ({type(e).__name__}: {e})") from e
    require_columns(path, names, XYZ)
    data = pd.read_parquet(path, columns=XYZ)
    n_frames = whole_frames(path, len(data))
    values = data.values.reshape(n_frames, ROWS_PER_FRAME, len(XYZ))
    try:
        return values.astype(np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(path, text_values_problem(data)) from e


def read_recording_npy(path: str | Path) -> np.ndarray:
    """A recording saved with numpy, ``[T, 543, 3]`` (NaN = missing), as float32; DataError naming the file when it
    is not a numeric array of that shape with at least one frame."""
    path = require_file(path, "recording")
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(path, f"not a plain numpy array ({e})") from e
    if x.ndim != 3 or x.shape[1:] != (ROWS_PER_FRAME, 3) or len(x) == 0 or not np.issubdtype(x.dtype, np.number):
        raise DataError(path, f"expected a numeric array [T, {ROWS_PER_FRAME}, 3] with T >= 1, got {x.dtype} "
                              f"{list(x.shape)}")
    return x.astype(np.float32)


def whole_frames(path: Path, n_rows: int) -> int:
    """Frames of a long-format table of ``n_rows`` rows; DataError when it is empty or not whole frames."""
    if n_rows == 0:
        raise DataError(path, "empty sequence (0 rows)")
    if n_rows % ROWS_PER_FRAME:
        raise DataError(path, f"{n_rows} rows is not a multiple of {ROWS_PER_FRAME} landmarks per frame")
    return n_rows // ROWS_PER_FRAME


def open_parquet(path: Path) -> pq.ParquetFile:
    """The parquet file (its footer read once: schema and row count); DataError when it cannot be read. Column
    chunks are read as they are decoded (``pre_buffer=False``: measured faster for local files, which is what the
    cache is built from)."""
    try:
        return pq.ParquetFile(path, pre_buffer=False)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataError(path, f"unreadable parquet ({type(e).__name__}: {e})") from e


def pandas_metadata(schema: pa.Schema) -> dict | None:
    """The file's pandas metadata (``{}`` when it has none; None when it cannot be parsed)."""
    try:
        return schema.pandas_metadata or {}
    except ValueError:
        return None


def plain_floats(schema: pa.Schema, columns: list[str], pandas_meta: dict | None) -> bool:
    """True when ``columns`` are distinct, each appears once in ``schema``, all with one type, float32 or float64,
    and the file's pandas metadata (``pandas_meta``, ``{}`` when none) gives them no other dtype: then pandas
    reads them as numpy float columns and pyarrow's numpy conversion gives exactly its values (nulls the same
    NaN). Anything else (text, integers, mixed widths, extension dtypes, unparsable metadata) is for the pandas
    read."""
    if pandas_meta is None or len(set(columns)) != len(columns):
        return False
    types = set()
    for name in columns:
        i = schema.get_field_index(name)              # -1: absent or duplicated
        if i < 0:
            return False
        types.add(schema.field(i).type)
    if len(types) != 1 or types.pop() not in (pa.float32(), pa.float64()):
        return False
    wanted = set(columns)
    return all(c.get("numpy_type") in ("float32", "float64") for c in pandas_meta.get("columns", [])
               if c.get("field_name") in wanted)


def read_landmarks(pq_path: str | Path, subset: np.ndarray | None = None) -> np.ndarray:
    """``load_relevant_data_subset(path)[:, subset]`` (all 543 landmarks when ``subset`` is None), bit for bit
    (NaNs included; the parity tests check it), read fast for the cache build: one open, x/y/z projected, decoded
    by pyarrow straight into float32 numpy, the subset taken before the cast, no pandas. The same DataError as
    ``load_relevant_data_subset`` for a bad file; any file whose x/y/z are not plain float columns (text values,
    integers, mixed widths) is read by ``load_relevant_data_subset`` itself, so it gets exactly the grader's
    values or the same error."""
    path = require_file(pq_path, "landmark parquet")
    pf = open_parquet(path)
    schema = pf.schema_arrow
    require_columns(path, schema.names, XYZ)
    n_frames = whole_frames(path, pf.metadata.num_rows)
    if not plain_floats(schema, XYZ, pandas_metadata(schema)):
        frames = load_relevant_data_subset(path)
        return frames if subset is None else np.ascontiguousarray(frames[:, subset])
    table = pf.read(columns=XYZ, use_threads=False)
    if table.num_rows != n_frames * ROWS_PER_FRAME:
        raise DataError(path, f"unreadable parquet ({table.num_rows} rows read, the footer says "
                              f"{n_frames * ROWS_PER_FRAME})")
    keep = slice(None) if subset is None else np.asarray(subset)
    out = np.empty((n_frames, ROWS_PER_FRAME if subset is None else len(keep), len(XYZ)), np.float32)
    for i, column in enumerate(table.columns):
        out[:, :, i] = column.to_numpy().reshape(n_frames, ROWS_PER_FRAME)[:, keep]
    return out


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


# Writers of the Kaggle layout (the synthetic data, video landmarks)
_ROW_SUFFIX = np.array([f"-{t}-{i}" for t, i in zip(LANDMARK_TYPES, LANDMARK_INDEX)], dtype=object)


def long_table(landmarks: np.ndarray, first_frame: int) -> pa.Table:
    """One sequence ``[T, 543, 3]`` as the Kaggle long-format table (frame, row_id, type, landmark_index, x, y, z)."""
    T = landmarks.shape[0]
    frames = np.repeat(np.arange(first_frame, first_frame + T, dtype=np.int16), ROWS_PER_FRAME)
    row_id = pc.binary_join_element_wise(pc.cast(pa.array(frames), pa.string()),
                                         pa.array(np.tile(_ROW_SUFFIX, T), pa.string()), "")
    xyz = landmarks.astype(np.float32).astype(np.float64).reshape(-1, 3)
    return pa.table({
        "frame": pa.array(frames, pa.int16()), "row_id": row_id,
        "type": pa.array(np.tile(LANDMARK_TYPES, T), pa.string()),
        "landmark_index": pa.array(np.tile(LANDMARK_INDEX, T), pa.int16()),
        "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})


def write_long_recording(landmarks: np.ndarray, path: str | Path) -> Path:
    """One recording ``[T, 543, 3]`` (NaN = missing) as a Kaggle long-format parquet, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sink = pa.BufferOutputStream()
    pq.write_table(long_table(np.asarray(landmarks), 0), sink)
    return write_atomic(path, sink.getvalue().to_pybytes())
