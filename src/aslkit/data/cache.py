"""The prepared cache on disk (both competitions): its file layout, atomic writes, shard manifests, and the reader.

Layout of a cache folder (written by ``aslkit.prepare`` through ``aslkit.data.sync``)::

    config.yaml          the resolved preparation config it was made with
    index.parquet        one row per prepared sequence (INDEX_COLUMNS), sorted by sequence_id
    folds.csv            sequence_id, participant_id, fold (same row order as the index)
    errors.csv           path, sequence_id, error: what skip_bad left out, one row per sequence (an empty
                         sequence_id: a whole file, every sequence of it; header only when none)
    prepared.json        summary and landmark subset; written last, so it marks a complete cache
    shards/<name>.npy    all frames of a shard's sequences, [n_frames, n_landmarks, 3] float32, NaNs kept
    shards/<name>.json   the shard's manifest: its source files (size, mtime_ns) and each sequence's length
    .prepare.lock        held by the process that prepares the cache (``cache_lock``)

A sequence is ``shard[start:start + length]`` of its shard; shards are opened with ``np.load(mmap_mode="r")`` so
the cache never has to fit in memory.
"""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import yaml
from filelock import FileLock, Timeout

from aslkit.constants import ROWS_PER_FRAME
from aslkit.data.errors import DataError, require_file

FORMAT_VERSION = 2                 # 2: errors.csv and shard manifests carry the sequence_id
INDEX = "index.parquet"
FOLDS = "folds.csv"
ERRORS = "errors.csv"
CONFIG = "config.yaml"
META = "prepared.json"
SHARDS = "shards"
LOCK = ".prepare.lock"
INDEX_COLUMNS = ["sequence_id", "participant_id", "sign", "label", "path", "length", "shard", "start"]
FOLD_COLUMNS = ["sequence_id", "participant_id", "fold"]
ERROR_COLUMNS = ["path", "sequence_id", "error"]


def shard_name(first_sequence_id: int) -> str:
    """Name of the shard that starts with ``first_sequence_id`` (stable when other shards change)."""
    return f"shard-{int(first_sequence_id):010d}"


def shard_files(root: str | Path, name: str) -> tuple[Path, Path]:
    """The ``.npy`` frames file and the ``.json`` manifest of shard ``name`` in cache folder ``root``."""
    folder = Path(root) / SHARDS
    return folder / f"{name}.npy", folder / f"{name}.json"


def _temp_path(path: Path) -> Path:
    """The temporary name a file is written under before it is moved into place."""
    return path.with_name(f".{path.name}.tmp")


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file next to ``path`` and move it into place (never half a file)."""
    path = Path(path)
    tmp = _temp_path(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def write_if_changed(path: str | Path, data: bytes) -> bool:
    """Atomically write ``data`` unless ``path`` already holds exactly it; True when the file was written."""
    path = Path(path)
    if path.is_file() and path.read_bytes() == data:
        return False
    write_atomic(path, data)
    return True


def save_array_atomic(path: str | Path, array: np.ndarray) -> Path:
    """``np.save`` to a temporary file, then move it to ``path``."""
    path = Path(path)
    tmp = _temp_path(path)
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)
    return path


def read_json(path: str | Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when the file is missing or not valid JSON (e.g. from an old crash)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def json_bytes(data: dict[str, Any]) -> bytes:
    """Deterministic JSON encoding (same data, same bytes) used for manifests and the summary."""
    return json.dumps(data, indent=1, sort_keys=True).encode()


def shard_is_current(root: str | Path, name: str, key: dict[str, Any], n_landmarks: int, skip_bad: bool) -> bool:
    """True when shard ``name``'s manifest holds exactly ``key`` and its frames file exists with the recorded shape
    ``[frames, n_landmarks, 3]`` (a shard with skipped files counts as current only while ``skip_bad`` is on).
    Shared by both competitions' preparation stages."""
    npy, manifest_path = shard_files(root, name)
    manifest = read_json(manifest_path)
    if manifest is None or {k: manifest.get(k) for k in key} != key:
        return False
    if manifest.get("errors") and not skip_bad:
        return False
    try:
        shape = np.load(npy, mmap_mode="r").shape
    except (OSError, ValueError):
        return False
    return shape == (manifest.get("frames"), n_landmarks, 3)


def write_shard(root: str | Path, name: str, key: dict[str, Any], arrays: list[np.ndarray],
                errors: list[list[str]], n_landmarks: int) -> None:
    """Write a shard's frames (``arrays`` concatenated) then its manifest (``key`` + shard, frames, lengths, errors),
    each atomically; the old manifest is removed first, so a manifest on disk always describes the frames next to
    it. Shared by both competitions' preparation stages."""
    npy, manifest = shard_files(root, name)
    manifest.unlink(missing_ok=True)
    frames = np.concatenate(arrays) if arrays else np.zeros((0, n_landmarks, 3), np.float32)
    save_array_atomic(npy, frames)
    info = {**key, "shard": name, "frames": int(len(frames)), "lengths": [len(a) for a in arrays], "errors": errors}
    write_atomic(manifest, json_bytes(info))


def manifest_rows(root: str | Path, name: str, sequence_ids: list[int]) -> tuple[pd.DataFrame, list[list[str]]]:
    """Shard, start and length of each sequence of a built shard (from its manifest) and what it skipped
    (``[path, sequence_id, error]`` rows)."""
    path = shard_files(root, name)[1]
    manifest = read_json(path)
    if manifest is None:
        raise DataError(path, "manifest missing after the build")
    lengths = np.asarray(manifest["lengths"], dtype=np.int64)
    rows = pd.DataFrame({"sequence_id": np.asarray(sequence_ids, dtype=np.int64), "length": lengths, "shard": name,
                         "start": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)})
    return rows, manifest["errors"]


@contextmanager
def cache_lock(root: str | Path) -> Iterator[None]:
    """Hold cache folder ``root``'s lock while preparing it: another process (a second torchrun rank, a command
    started by hand) waits here, then finds the cache up to date instead of racing on the same shards."""
    Path(root).mkdir(parents=True, exist_ok=True)
    lock = FileLock(Path(root) / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"{root}: another process is preparing this cache; waiting for it", flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def recorded_data_dir(root: str | Path) -> str:
    """The data folder a cache folder was prepared from (its ``config.yaml``), or "" when it holds no cache."""
    path = Path(root) / CONFIG
    if not path.is_file():
        return ""
    record = yaml.safe_load(path.read_text()) or {}
    return str(record.get("data_dir") or "") if isinstance(record, dict) else ""


def check_cache_owner(root: str | Path, data_dir: str | Path) -> None:
    """DataError naming the cache folder when it holds the cache of another data folder that still exists (two
    data folders of the same name must not share, and silently replace, one cache); a cache whose data folder has
    gone (a moved checkout) is taken over with a printed note."""
    recorded = recorded_data_dir(root)
    if not recorded or Path(recorded).resolve() == Path(data_dir).resolve():      # the same folder, links resolved
        return
    if Path(recorded).is_dir():
        raise DataError(root, f"holds the cache of {recorded}, not of {data_dir}; give out_dir=<another folder> "
                              f"(or prepared_dir= to train) for a cache of {data_dir}, or delete {root}")
    print(f"{root}: its data folder {recorded} is gone; preparing it again from {data_dir}", flush=True)


def cache_fingerprint(root: str | Path) -> str:
    """What a cache holds, as a short hash: its index (sequence ids, files, labels, lengths, shard positions) and
    folds. Runs record it (``data.json``); later stages compare it to catch a cache prepared again from other data
    or with other folds."""
    digest = hashlib.sha256()
    for name in (INDEX, FOLDS):
        digest.update(require_file(Path(root) / name, f"cache {name}").read_bytes())
    return digest.hexdigest()[:16]


class ShardedCache:
    """Read-only view of a prepared cache folder (either competition): ``prepared.json`` checked, ``.index``,
    ``.folds``, ``.errors``, and ``ds[i]``: sequence ``i`` of the index as ``[T, S, 3]`` float32 (NaNs kept) from
    memory-mapped shards, where S = ``len(ds.subset)`` landmarks (flat indices into the 543)."""

    kind = "prepared cache"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta = self._read_meta()
        self.subset = np.asarray(self.meta["subset"], dtype=np.int64)
        self.index = pd.read_parquet(require_file(self.path / INDEX, "cache index"))
        self.folds = pd.read_csv(require_file(self.path / FOLDS, "cache folds"))
        self._shard = self.index["shard"].to_numpy()
        self._start = self.index["start"].to_numpy(np.int64)
        self._length = self.index["length"].to_numpy(np.int64)
        self._open: dict[str, np.ndarray] = {}

    def _read_meta(self) -> dict[str, Any]:
        """``prepared.json``, checked to be complete and of this format version."""
        path = self.path / META
        meta = read_json(path)
        if meta is None:
            raise DataError(path, "missing or unreadable: not a complete prepared cache (run aslkit prepare)")
        if meta.get("format") != FORMAT_VERSION:
            raise DataError(path, f"cache format {meta.get('format')!r}, this kit reads {FORMAT_VERSION}; "
                                  "run aslkit prepare again")
        return meta

    @property
    def fingerprint(self) -> str:
        """``cache_fingerprint`` of this cache."""
        return cache_fingerprint(self.path)

    @property
    def errors(self) -> pd.DataFrame:
        """What skip_bad left out (path, sequence_id, error; an empty sequence_id: the whole file), as text;
        empty when none."""
        return pd.read_csv(self.path / ERRORS, dtype=str, keep_default_na=False)

    def __len__(self) -> int:
        return len(self.index)

    def shard(self, name: str) -> np.ndarray:
        """The memory-mapped frames of one shard, checked against the index."""
        if name not in self._open:
            npy, _ = shard_files(self.path, name)
            arr = np.load(require_file(npy, "cache shard"), mmap_mode="r")
            frames = int(self._length[self._shard == name].sum())
            if arr.ndim != 3 or arr.shape[1:] != (len(self.subset), 3) or arr.shape[0] < frames:
                raise DataError(npy, f"shape {arr.shape} does not match the index ({frames} frames of "
                                     f"{len(self.subset)} landmarks); run aslkit prepare again")
            self._open[name] = arr
        return self._open[name]

    def __getitem__(self, i: int) -> np.ndarray:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sequence {i} out of range for a cache of {n} sequences")
        start, length = self._start[i], self._length[i]
        return np.array(self.shard(self._shard[i])[start:start + length], dtype=np.float32)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}: {len(self)} sequences, {self.meta['n_frames']} frames, "
                f"{len(self.subset)} landmarks)")


def expand_to_full(x: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """A prepared sequence ``[T, S, 3]`` placed back into the 543-landmark layout (other landmarks NaN)."""
    full = np.full((x.shape[0], ROWS_PER_FRAME, 3), np.nan, dtype=np.float32)
    full[:, np.asarray(subset)] = x
    return full
