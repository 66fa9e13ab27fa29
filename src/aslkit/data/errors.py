"""The error every reader raises for bad input: it names the file (or value) and what is wrong."""
from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad or missing competition data; the message starts with the offending file."""

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
    missing = [c for c in required if c not in set(present)]
    if missing:
        shown = ", ".join(missing[:8]) + (f" … ({len(missing)} in all)" if len(missing) > 8 else "")
        raise DataError(path, f"missing columns: {shown}")
