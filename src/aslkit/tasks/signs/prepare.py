"""asl-signs preparation (``aslkit prepare``): read every sequence once, in parallel, into a compact resumable cache.

The cache (layout in ``aslkit.data.cache``, built by the sync engine ``aslkit.data.sync``) keeps the raw float32
landmarks of one subset (``constants.CACHE_SUBSETS``), exactly ``load_relevant_data_subset(path)[:, subset]``, in
shards of about ``shard_size`` sequences, plus an index, cross-validation folds and the list of skipped files.

Shards: sequences are sorted by ``sequence_id`` and cut where the (hashed) sequence id says so (content-defined
chunking, sizes between ``shard_size // 2`` and ``2 * shard_size``, about ``shard_size`` on average). A shard is
named after its first sequence id, so adding, removing or changing one file rebuilds only the shard(s) around it.
Each shard's manifest records its source files' size and mtime_ns; a shard whose manifest still matches is kept, so
an interrupted run resumes and a repeated run writes nothing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from aslkit import constants as C
from aslkit.config import PRESETS, load_config
from aslkit.data import cache
from aslkit.data.errors import DataError, require_file
from aslkit.data.folds import group_folds, random_folds
from aslkit.data.islr import read_landmarks, read_train_csv
from aslkit.data.sync import (
    PrepareReport,
    ShardResult,
    file_stat,
    make_report,
    sync_shards,
    threaded_map,
    write_tables,
)
from aslkit.paths import resolve_cache_folders
from aslkit.tasks.base import require_task

FOLD_METHODS = ("group", "random")


@dataclass
class PrepareConfig:
    """``aslkit prepare``: which data, which landmarks, where the cache goes, shards, workers and folds."""

    task: str = C.SLUG_SIGNS
    data_dir: str = ""           # empty: paths.resolve_data_dir (input/, /kaggle/input, else synthetic)
    out_dir: str = ""            # empty: input/prepared/<data folder name>/<subset> (prepare.default_out_dir)
    subset: str = "islr"         # a key of constants.CACHE_SUBSETS
    shard_size: int = 2000       # sequences per shard (on average)
    workers: int = 0             # 0: all cores
    n_folds: int = 4
    fold_method: str = "group"   # "group": GroupKFold by participant; "random": seeded random split
    seed: int = 0                # seed of the random split
    skip_bad: bool = False       # skip unreadable files (listed in errors.csv) instead of stopping
    synth_size: str = "quick"    # size of the synthetic fallback when no real data is found


PRESETS[PrepareConfig] = {
    "ci": {"synth_size": "ci", "shard_size": 100},
    "quick": {"synth_size": "quick", "shard_size": 1000},
    "full": {"synth_size": "full", "shard_size": 2000},
}


@dataclass
class ShardJob:
    """One shard to check or build: its sequences, their source files and where it goes."""

    name: str
    sequence_ids: list[int]
    paths: list[str]                     # as in train.csv (relative to data_dir)
    stats: list[tuple[int, int]]         # (size, mtime_ns) of each source, taken before reading; (-1, -1): missing
    data_dir: str
    out_dir: str
    subset: list[int]
    skip_bad: bool

    def key(self) -> dict[str, Any]:
        """What the shard's contents depend on; a manifest with the same key is up to date."""
        sources = [[sid, p, *st] for sid, p, st in zip(self.sequence_ids, self.paths, self.stats)]
        return {"format": cache.FORMAT_VERSION, "dtype": "float32", "subset": self.subset, "sources": sources}


def check_config(cfg: PrepareConfig) -> None:
    """Raise ValueError naming the first invalid value of ``cfg``."""
    require_task(cfg.task, C.SLUG_SIGNS, "prepare")
    if cfg.subset not in C.CACHE_SUBSETS:
        raise ValueError(f"subset must be one of {sorted(C.CACHE_SUBSETS)}, got {cfg.subset!r}")
    if cfg.fold_method not in FOLD_METHODS:
        raise ValueError(f"fold_method must be one of {FOLD_METHODS}, got {cfg.fold_method!r}")
    for name, low in (("shard_size", 1), ("n_folds", 2), ("workers", 0)):
        if getattr(cfg, name) < low:
            raise ValueError(f"{name} must be at least {low}, got {getattr(cfg, name)}")


def resolve_config(cfg: PrepareConfig) -> PrepareConfig:
    """A checked copy of ``cfg`` with ``data_dir`` and ``out_dir`` filled in as absolute paths."""
    check_config(cfg)
    data, out = resolve_cache_folders(cfg.task, cfg.data_dir, cfg.out_dir, cfg.synth_size, cfg.subset)
    return replace(cfg, data_dir=str(data), out_dir=str(out))


def load_table(data_dir: str | Path) -> pd.DataFrame:
    """``train.csv`` with labels, sorted by sequence_id; DataError naming the file for duplicate sequence ids."""
    df = read_train_csv(data_dir)
    dup = df["sequence_id"][df["sequence_id"].duplicated()]
    if len(dup):
        raise DataError(Path(data_dir) / "train.csv", f"duplicate sequence_id(s): {sorted(set(dup))[:10]}")
    return df.sort_values("sequence_id", kind="stable").reset_index(drop=True)


def mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 hash of integers (uint64): a fixed, platform-independent pseudo-random function."""
    z = np.asarray(values).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def shard_starts(sequence_ids: np.ndarray, shard_size: int) -> list[int]:
    """Row positions (of the sorted ids) where shards begin: at an "anchor" id (hash divisible by
    ``ceil(shard_size / 2)``) once a shard holds ``shard_size // 2`` rows, and always at ``2 * shard_size`` rows."""
    low, high = max(1, shard_size // 2), 2 * shard_size
    anchor = mix64(sequence_ids) % np.uint64(max(1, shard_size - low)) == 0
    starts = [0]
    for i in range(1, len(sequence_ids)):
        size = i - starts[-1]
        if size >= high or (anchor[i] and size >= low):
            starts.append(i)
    return starts


def plan_shards(table: pd.DataFrame, cfg: PrepareConfig) -> list[ShardJob]:
    """The shards of the (sorted) table, each with its source files' current size and mtime_ns."""
    sids = table["sequence_id"].to_numpy(np.int64)
    bounds = shard_starts(sids, cfg.shard_size) + [len(table)]
    subset = [int(i) for i in C.CACHE_SUBSETS[cfg.subset]]
    jobs = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        paths = table["path"].iloc[a:b].tolist()
        stats = [file_stat(Path(cfg.data_dir) / p) for p in paths]
        jobs.append(ShardJob(cache.shard_name(sids[a]), sids[a:b].tolist(), paths, stats, cfg.data_dir,
                             cfg.out_dir, subset, cfg.skip_bad))
    return jobs


def is_up_to_date(job: ShardJob) -> bool:
    """True when the shard's manifest matches its sources and its frames file exists with the recorded shape
    (a shard with skipped files counts as up to date only while ``skip_bad`` is on)."""
    return cache.shard_is_current(job.out_dir, job.name, job.key(), len(job.subset), job.skip_bad)


def read_sequence(path: str | Path, subset: np.ndarray) -> np.ndarray:
    """``load_relevant_data_subset(path)[:, subset]`` (``[T, S, 3]`` float32, NaNs kept), bit for bit, through the
    fast reader ``read_landmarks``; any read failure is a DataError naming the file."""
    try:
        return read_landmarks(path, subset)
    except DataError:
        raise
    except (OSError, ValueError, pa.ArrowException) as e:   # ValueError: e.g. unparsable pandas metadata
        raise DataError(path, f"unreadable parquet ({type(e).__name__}: {e})") from e


def read_shard(job: ShardJob) -> tuple[list[np.ndarray], list[list]]:
    """Every sequence of a shard (an empty array for a skipped file) and the ``[path, sequence_id, problem]`` of
    each skipped file; raises the first DataError unless ``job.skip_bad``."""
    subset = np.asarray(job.subset, dtype=np.int64)

    def attempt(rel: str) -> tuple[np.ndarray | None, DataError | None]:
        try:
            return read_sequence(Path(job.data_dir) / rel, subset), None
        except DataError as e:
            return None, e

    arrays, errors = [], []
    with threaded_map(attempt, job.paths) as results:      # files read two at a time (sync.threaded_map)
        for rel, sid, (array, error) in zip(job.paths, job.sequence_ids, results):
            if error is not None:
                if not job.skip_bad:
                    raise error
                errors.append([rel, int(sid), error.problem])
                array = np.zeros((0, len(subset), 3), np.float32)
            arrays.append(array)
    return arrays, errors


def write_shard(job: ShardJob, arrays: list[np.ndarray], errors: list[list[str]]) -> None:
    """Write the frames then the manifest (each atomically; the old manifest is removed first, so a manifest on
    disk always describes the frames file next to it)."""
    cache.write_shard(job.out_dir, job.name, job.key(), arrays, errors, len(job.subset))


def build_shard(job: ShardJob) -> ShardResult:
    """Read and write one shard; a bad file (without ``skip_bad``) is returned as a failure, not raised, so that it
    crosses the process boundary intact."""
    try:
        arrays, errors = read_shard(job)
    except DataError as e:
        return ShardResult(job.name, len(job.paths), failure=(e.path, e.problem))
    write_shard(job, arrays, errors)
    return ShardResult(job.name, len(job.paths))


def make_folds(index: pd.DataFrame, cfg: PrepareConfig) -> pd.DataFrame:
    """``folds.csv`` rows (sequence_id, participant_id, fold) for the prepared index, by ``cfg.fold_method``."""
    if cfg.fold_method == "group":
        fold = group_folds(index["participant_id"].to_numpy(), cfg.n_folds)
    else:
        fold = random_folds(len(index), cfg.n_folds, cfg.seed)
    return pd.DataFrame({"sequence_id": index["sequence_id"], "participant_id": index["participant_id"],
                         "fold": fold})


def shard_rows(job: ShardJob) -> tuple[pd.DataFrame, list[list[str]]]:
    """Shard, start and length of each sequence of a built shard (from its manifest) and its skipped files."""
    return cache.manifest_rows(job.out_dir, job.name, job.sequence_ids)


def assemble_index(table: pd.DataFrame, jobs: list[ShardJob]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cache index (INDEX_COLUMNS, skipped files left out) and the skipped files (path, error)."""
    parts = [shard_rows(j) for j in jobs]
    rows = pd.concat([p[0] for p in parts], ignore_index=True)
    errors = pd.DataFrame([e for p in parts for e in p[1]], columns=cache.ERROR_COLUMNS)
    index = table.merge(rows, on="sequence_id", how="inner", validate="one_to_one")
    index = index[~index["path"].isin(errors["path"])].reset_index(drop=True)
    return index[cache.INDEX_COLUMNS], errors


def summary_meta(cfg: PrepareConfig, index: pd.DataFrame, errors: pd.DataFrame, n_shards: int) -> dict[str, Any]:
    """``prepared.json``: what the cache holds (no timings, so a repeated run leaves it untouched)."""
    return {"format": cache.FORMAT_VERSION, "task": cfg.task, "subset_name": cfg.subset,
            "subset": [int(i) for i in C.CACHE_SUBSETS[cfg.subset]], "dtype": "float32",
            "n_sequences": int(len(index)), "n_frames": int(index["length"].sum()), "n_shards": n_shards,
            "n_skipped": int(len(errors))}


def write_outputs(cfg: PrepareConfig, index: pd.DataFrame, errors: pd.DataFrame, n_shards: int) -> None:
    """Index, folds, errors and config, then ``prepared.json`` last (each only when its contents changed)."""
    write_tables(cfg, index, make_folds(index, cfg), errors, summary_meta(cfg, index, errors, n_shards))


def build_cache(cfg: PrepareConfig, on_shard: Callable[[ShardResult], None] | None = None) -> PrepareReport:
    """Prepare (or bring up to date) the cache of ``cfg`` holding its lock (``cache.cache_lock``: one process
    prepares, the others wait) and report what was done.

    ``on_shard`` is called in this process after each shard is written (progress hooks; tests use it to simulate
    an interruption).
    """
    t0 = time.perf_counter()
    cfg = resolve_config(cfg)
    with cache.cache_lock(cfg.out_dir):
        return sync_cache(cfg, on_shard, t0)


def sync_cache(cfg: PrepareConfig, on_shard: Callable[[ShardResult], None] | None, t0: float) -> PrepareReport:
    """``build_cache`` of a resolved config, its cache's lock held."""
    out = Path(cfg.out_dir)
    (out / cache.SHARDS).mkdir(parents=True, exist_ok=True)
    table = load_table(cfg.data_dir)
    if len(table) == 0:
        raise DataError(Path(cfg.data_dir) / "train.csv", "no sequences")
    jobs = plan_shards(table, cfg)
    print(f"prepare: {len(table)} sequences in {len(jobs)} shards", flush=True)
    built, removed = sync_shards(out, jobs, cfg.workers, is_up_to_date, build_shard, on_shard)
    index, errors = assemble_index(table, jobs)
    write_outputs(cfg, index, errors, len(jobs))
    return make_report(out, index, errors, jobs, built, removed, t0)


def prepare_signs(cfg: PrepareConfig, on_shard: Callable[[ShardResult], None] | None = None) -> Path:
    """Prepare the asl-signs cache of ``cfg`` (see module docstring, ``build_cache``), print a summary, return the
    cache folder."""
    report = build_cache(cfg, on_shard)
    print(report.summary(), flush=True)
    return report.path


class PreparedSigns(cache.ShardedCache):
    """Read-only view of a prepared asl-signs cache: ``ds[i]`` is sequence ``i`` of ``ds.index`` as
    ``[T, S, 3]`` float32 (NaNs kept), where S landmarks are the flat indices ``ds.subset``."""

    @property
    def config(self):
        """The ``PrepareConfig`` the cache was made with."""
        return load_config(PrepareConfig, require_file(self.path / cache.CONFIG, "cache config"))
