"""The error every reader raises for bad input: it names the file (or value) and what is wrong; the checks that
find such input in CSV columns and landmark values (used by the readers of both competitions)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


class DataError(ValueError):
    """Bad or missing input: competition data, a prepared cache, a run's files; the message starts with the
    offending file or folder."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        return (DataError, (self.path, self.problem))


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise DataError when it does not exist."""
    p = Path(path)
    if not p.is_file():
        raise DataError(p, f"missing {what} (not found)")
    return p


def require_columns(path: str | Path, present, required) -> None:
    """Raise DataError naming the file and every required column that is absent."""
    present = set(present)
    missing = [c for c in required if c not in present]
    if missing:
        shown = ", ".join(missing[:8]) + (f" … ({len(missing)} in all)" if len(missing) > 8 else "")
        raise DataError(path, f"missing columns: {shown}")


def int_column(path: str | Path, df: pd.DataFrame, col: str) -> pd.Series:
    """Column ``col`` of a CSV read as text (``dtype=str, keep_default_na=False``) as int64; DataError naming the
    file, the column and the first offending CSV lines and values."""
    try:
        return df[col].astype(np.int64)
    except (ValueError, TypeError, OverflowError) as e:
        bad = np.flatnonzero(~df[col].str.fullmatch(r"\s*[+-]?\d+\s*").to_numpy(bool))
        if not len(bad):
            raise DataError(path, f"column {col!r} is not int64 ({e})") from e
        shown = ", ".join(f"line {i + 2}: {df[col].iat[i]!r}" for i in bad[:5])
        raise DataError(path, f"column {col!r} must hold integers; {len(bad)} row(s) do not, first {shown} "
                              f"(CSV line numbers, the header is line 1)") from e


def non_numeric_cells(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row positions of the values that do not convert to float32 (as ``frame.to_numpy(dtype=np.float32)``
    converts them), per column that has any; numeric columns are not looked at. For the error path only."""
    cells = {}
    for col in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[col]):
            continue
        values = frame[col].to_numpy(dtype=object)
        maybe = np.flatnonzero(pd.isna(pd.to_numeric(frame[col], errors="coerce")).to_numpy(bool))
        bad = [i for i in maybe if not _converts(values[i])]
        if bad:
            cells[col] = np.asarray(bad, dtype=np.int64)
    return cells


def _converts(value: object) -> bool:
    """True when numpy converts ``value`` to float32 (None becomes NaN; text that is not a number fails)."""
    try:
        np.asarray([value], dtype=object).astype(np.float32)
    except (TypeError, ValueError):
        return False
    return True


def non_numeric_problem(frame: pd.DataFrame, col: str, row: int) -> str:
    """The problem of the non-numeric value of column ``col`` at row position ``row``."""
    return f"non-numeric value {frame[col].iat[int(row)]!r} in column {col!r}"
