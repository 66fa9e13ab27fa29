"""asl-fingerspelling readers: metadata CSVs, the character map, phrase encoding and wide landmark parquets."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aslkit.constants import AXES, CHAR_TO_INDEX, CHARACTERS, FS_COLUMNS, ROWS_PER_FRAME, parse_fs_column
from aslkit.data.cache import write_atomic
from aslkit.data.errors import (
    DataError,
    int_column,
    non_numeric_cells,
    non_numeric_problem,
    require_columns,
    require_file,
)
from aslkit.data.islr import open_parquet, pandas_metadata, plain_floats

META_COLUMNS = ["path", "file_id", "sequence_id", "participant_id", "phrase"]
CHAR_MAP = "character_to_prediction_index.json"
METADATA_FILES = {"train": "train.csv", "supplemental": "supplemental_metadata.csv"}


def read_character_map(data_dir: str | Path) -> dict[str, int]:
    """``character_to_prediction_index.json`` as ``{char: index}``; must equal the kit's 59-character map."""
    path = require_file(Path(data_dir) / CHAR_MAP, "character map")
    try:
        mapping = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(path, f"not valid JSON ({e})") from e
    if mapping != CHAR_TO_INDEX:
        raise DataError(path, "character map differs from the official 59-character map")
    return mapping


def bad_characters(phrase: str) -> list[str]:
    """Characters of ``phrase`` that are not in the 59-character map."""
    return sorted({c for c in phrase if c not in CHAR_TO_INDEX})


def encode_phrase(phrase: str) -> np.ndarray:
    """Character indices of a phrase (int64); ValueError naming the characters outside the map."""
    bad = bad_characters(phrase)
    if bad:
        raise ValueError(f"phrase {phrase!r} has characters outside the map: {bad}")
    return np.array([CHAR_TO_INDEX[c] for c in phrase], dtype=np.int64)


def decode_indices(indices: Iterable[int]) -> str:
    """Phrase from character indices; indices outside 0..58 (blank, padding) are dropped, as the grader does."""
    return "".join(CHARACTERS[i] if 0 <= i < len(CHARACTERS) else "" for i in map(int, indices))


def read_metadata(data_dir: str | Path, which: str = "train") -> pd.DataFrame:
    """``train.csv`` or ``supplemental_metadata.csv`` (real column order kept), ids as int64, phrases checked."""
    if which not in METADATA_FILES:
        raise ValueError(f"which must be one of {sorted(METADATA_FILES)}, got {which!r}")
    path = require_file(Path(data_dir) / METADATA_FILES[which], f"{which} metadata")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    require_columns(path, df.columns, META_COLUMNS)
    df = df[list(df.columns)]
    for col in ("file_id", "sequence_id", "participant_id"):
        df[col] = int_column(path, df, col)
    for row, phrase in enumerate(df["phrase"]):
        bad = bad_characters(phrase)
        if bad:
            sid = df["sequence_id"].iloc[row]
            raise DataError(path, f"row {row + 2} (sequence_id {sid}): phrase {phrase!r} has characters "
                                  f"outside the map: {bad}")
        if not phrase:
            raise DataError(path, f"row {row + 2}: empty phrase")
    return df


def wide_to_landmarks(values: np.ndarray) -> np.ndarray:
    """Rows of all 1629 wide columns (official order: x block, y block, z block) as ``[T, 543, 3]``."""
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[1] != 3 * ROWS_PER_FRAME:
        raise ValueError(f"expected [T, {3 * ROWS_PER_FRAME}] wide rows, got {values.shape}")
    return values.reshape(len(values), 3, ROWS_PER_FRAME).transpose(0, 2, 1)


def blocks_to_landmarks(values: np.ndarray, n_landmarks: int) -> np.ndarray:
    """Rows of ``3 * n_landmarks`` wide columns in block order (all x, then all y, then all z, as
    ``constants.fs_columns`` names them) as landmark-major ``[T, n_landmarks, 3]`` float32 (C-contiguous)."""
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[1] != 3 * n_landmarks:
        raise ValueError(f"expected [T, {3 * n_landmarks}] wide rows, got {values.shape}")
    return np.ascontiguousarray(values.reshape(len(values), 3, n_landmarks).transpose(0, 2, 1), dtype=np.float32)


def landmarks_to_blocks(x: np.ndarray) -> np.ndarray:
    """Landmark-major ``[T, n_landmarks, 3]`` as wide rows ``[T, 3 * n_landmarks]`` in block order (all x, then all
    y, then all z): what the grader feeds for the columns of ``constants.fs_columns`` (inverse of
    ``blocks_to_landmarks``)."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"expected landmarks [T, n, 3], got {x.shape}")
    return np.ascontiguousarray(x.transpose(0, 2, 1).reshape(len(x), -1), dtype=np.float32)

def column_positions(columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Flat landmark index and axis (0, 1, 2) of each wide column name."""
    picks = [parse_fs_column(c) for c in columns]
    return np.array([lm for _, lm in picks], np.int64), np.array([AXES.index(a) for a, _ in picks], np.int64)


def landmarks_to_columns(x: np.ndarray, columns: list[str]) -> np.ndarray:
    """A ``[T, 543, 3]`` recording as the grader's float32 rows ``[T, len(columns)]`` of the named wide columns."""
    landmarks, axes = column_positions(columns)
    return np.ascontiguousarray(np.asarray(x)[:, landmarks, axes], dtype=np.float32)


def columns_to_landmarks(values: np.ndarray, columns: list[str]) -> np.ndarray:
    """Rows of the named wide columns as a float32 ``[T, 543, 3]`` recording, NaN where no column gives a value."""
    values = np.asarray(values)
    landmarks, axes = column_positions(columns)
    out = np.full((len(values), ROWS_PER_FRAME, 3), np.nan, np.float32)
    out[:, landmarks, axes] = values
    return out



EMPTY_SEQUENCE = "empty sequence: no frames"


def read_fs_sequences(pq_path: str | Path, selected_columns: list[str], sequence_ids: Iterable[int] | None = None
                      ) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """The good sequences of one wide parquet file as the grader reads them, and the problem of each bad one.

    ``pd.read_parquet(path, columns=selected_columns)``, then one float32 ``[n_frames, len(selected_columns)]``
    array per ``sequence_id`` (the index), columns in exactly the given order. A problem of the whole file
    (missing, unreadable, missing columns, wrong index) is a DataError naming it; a sequence with a value that is
    not a number, or one of ``sequence_ids`` without frames in the file, is left out and returned as
    ``{sequence_id: problem}`` (only those of ``sequence_ids`` when it is given).
    """
    path = require_file(pq_path, "landmark parquet")
    try:
        names = pq.read_schema(path).names
    except Exception as e:
        raise DataError(path, f"unreadable parquet ({type(e).__name__}: {e})") from e
    require_columns(path, names, list(selected_columns) + ["sequence_id"])
    df = pd.read_parquet(path, columns=list(selected_columns))
    if df.index.name != "sequence_id":
        raise DataError(path, f"index must be 'sequence_id', got {df.index.name!r}")
    df, values, problems = _float_rows(path, df)
    seqs = _split_by_id(df.index.to_numpy(), values)
    if sequence_ids is not None:
        wanted = [int(s) for s in sequence_ids]
        problems = {s: problems.get(s, EMPTY_SEQUENCE) for s in wanted if s not in seqs}
    return seqs, problems


ROW_BLOCK = 2048


def read_fs_landmarks(pq_path: str | Path, selected_columns: list[str], sequence_ids: Iterable[int] | None = None
                      ) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """``read_fs_sequences`` for wide columns in block order (all x, then all y, then all z of the same landmarks,
    as ``constants.fs_columns`` names them), each sequence already landmark-major: ``{sequence_id:
    blocks_to_landmarks(array, n_landmarks)}`` and the same problems, bit for bit (the parity tests check it).

    Read fast for the cache build: one open (schema, index and row count from the footer), the columns projected,
    decoded by pyarrow straight into one float32 ``[rows, n_landmarks, 3]`` array, the sequences as slices of it, no
    pandas. A file that is not the plain layout (index other than an integer ``sequence_id`` without nulls, columns
    that are not all float32 or all float64, text values) goes through ``read_fs_sequences`` itself, so it gets
    exactly its arrays, the same per-sequence problems (skip_bad) or the same DataError.
    """
    columns = list(selected_columns)
    if len(columns) % 3:
        raise ValueError(f"expected block-order columns (3 * n_landmarks), got {len(columns)}")
    n = len(columns) // 3
    path = require_file(pq_path, "landmark parquet")
    pf = open_parquet(path)
    schema = pf.schema_arrow
    require_columns(path, schema.names, columns + ["sequence_id"])
    meta = pandas_metadata(schema)
    if not (plain_floats(schema, columns, meta) and _plain_id_index(schema, meta)):
        return _landmarks_as_graded(path, columns, sequence_ids)
    table = pf.read(columns=columns + ["sequence_id"], use_threads=True)
    if table.column(n * 3).null_count:
        return _landmarks_as_graded(path, columns, sequence_ids)
    ids = table.column(n * 3).to_numpy()
    values = [column.to_numpy() for column in table.columns[:-1]]   # nulls become NaN (a copy), else zero-copy
    del table
    frames = np.empty((len(ids), n, 3), np.float32)
    for a in range(0, len(frames), ROW_BLOCK):                 # row blocks: the strided writes stay in cache
        block = frames[a:a + ROW_BLOCK]
        for j, v in enumerate(values):
            block[:, j % n, j // n] = v[a:a + ROW_BLOCK]
    seqs = _slice_by_id(ids, frames)
    problems: dict[int, str] = {}
    if sequence_ids is not None:
        problems = {s: EMPTY_SEQUENCE for s in (int(s) for s in sequence_ids) if s not in seqs}
    return seqs, problems


def _landmarks_as_graded(path: Path, columns: list[str], sequence_ids: Iterable[int] | None
                         ) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """``read_fs_landmarks``' fallback: ``read_fs_sequences`` (the grader's pandas read), made landmark-major."""
    seqs, problems = read_fs_sequences(path, columns, sequence_ids)
    return {sid: blocks_to_landmarks(a, len(columns) // 3) for sid, a in seqs.items()}, problems


def _plain_id_index(schema: pa.Schema, meta: dict | None) -> bool:
    """True when pandas would read the file's index (its pandas metadata ``meta``) as exactly its one integer
    column ``sequence_id``, of the same integer type."""
    i = schema.get_field_index("sequence_id")
    if meta is None or meta.get("index_columns") != ["sequence_id"] or i < 0:
        return False
    field = schema.field(i)
    entry = [c for c in meta.get("columns", []) if c.get("field_name") == "sequence_id"]
    return (pa.types.is_integer(field.type) and len(entry) == 1 and entry[0].get("name") == "sequence_id"
            and entry[0].get("numpy_type") == str(field.type))


def _slice_by_id(ids: np.ndarray, frames: np.ndarray) -> dict[int, np.ndarray]:
    """``_split_by_id(ids, frames)``: the rows of each id, in file order; views of ``frames`` when every id's rows
    are contiguous (the Kaggle layout), else gathered."""
    if len(ids) == 0:
        return {}
    starts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    run_ids = ids[np.concatenate([[0], starts])]
    if len(np.unique(run_ids)) != len(run_ids):
        return _split_by_id(ids, frames)
    bounds = [0, *starts.tolist(), len(ids)]
    return {int(s): frames[a:b] for s, a, b in zip(run_ids.tolist(), bounds[:-1], bounds[1:])}


def _float_rows(path: Path, df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, dict[int, str]]:
    """``df.to_numpy(dtype=np.float32)``; when some values are not numbers, the rows of the sequences that hold
    them are left out (the remaining frame and values are returned) and each such sequence's problem."""
    try:
        return df, df.to_numpy(dtype=np.float32), {}
    except (TypeError, ValueError) as e:
        ids = df.index.to_numpy()
        problems: dict[int, str] = {}
        for col, rows in non_numeric_cells(df).items():
            sids, first = np.unique(ids[rows], return_index=True)
            for sid, row in zip(sids.tolist(), rows[first]):
                problems.setdefault(int(sid), non_numeric_problem(df, col, row))
        if not problems:
            raise DataError(path, f"landmark values do not convert to float32 ({e})") from e
        df = df[~df.index.isin(list(problems))]
        return df, df.to_numpy(dtype=np.float32), problems


def _split_by_id(ids: np.ndarray, values: np.ndarray) -> dict[int, np.ndarray]:
    """Rows of ``values`` grouped by their id (first-seen order kept within an id), one array per id."""
    order = np.argsort(ids, kind="stable")
    uniq, starts = np.unique(ids[order], return_index=True)
    bounds = list(starts) + [len(ids)]
    return {int(u): values[order[bounds[k]:bounds[k + 1]]] for k, u in enumerate(uniq)}


def bad_sequences_text(problems: dict[int, str]) -> str:
    """One message for the bad sequences of a file: each problem with its first sequence ids."""
    by_problem: dict[str, list[int]] = {}
    for sid, problem in problems.items():
        by_problem.setdefault(problem, []).append(sid)
    return "; ".join(f"{problem} for sequence_id(s) {sids[:10]}" for problem, sids in by_problem.items())


def read_fs_file(pq_path: str | Path, selected_columns: list[str],
                 sequence_ids: Iterable[int] | None = None) -> dict[int, np.ndarray]:
    """Sequences of one wide parquet file as the grader reads them (``read_fs_sequences``); any bad sequence
    (of ``sequence_ids`` when given, else of the file) is a DataError naming the file and the sequence ids."""
    seqs, problems = read_fs_sequences(pq_path, selected_columns, sequence_ids)
    if problems:
        raise DataError(pq_path, bad_sequences_text(problems))
    return seqs


# Writers of the Kaggle layout (the synthetic data, video landmarks)
def wide_frame(sequences: list[tuple[int, np.ndarray]]) -> pd.DataFrame:
    """Sequences ``(sequence_id, [T, 543, 3])`` as the Kaggle wide table: index sequence_id, frame, x.., y.., z.."""
    ids, frames, blocks = [], [], []
    for sid, lm in sequences:
        T = lm.shape[0]
        ids.append(np.full(T, sid, dtype=np.int64))
        frames.append(np.arange(T, dtype=np.int16))
        blocks.append(landmarks_to_blocks(lm))                                    # x block, y block, z block
    df = pd.DataFrame(np.concatenate(blocks), columns=FS_COLUMNS)
    df.insert(0, "frame", np.concatenate(frames))
    df.index = pd.Index(np.concatenate(ids), name="sequence_id")
    return df


def write_wide_recording(landmarks: np.ndarray, path: str | Path, sequence_id: int = 0) -> Path:
    """One recording ``[T, 543, 3]`` (NaN = missing) as a Kaggle wide parquet of one sequence, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sink = pa.BufferOutputStream()
    wide_frame([(int(sequence_id), np.asarray(landmarks))]).to_parquet(sink)
    return write_atomic(path, sink.getvalue().to_pybytes())
