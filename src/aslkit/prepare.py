"""``aslkit prepare``: read every asl-signs sequence once, in parallel, into a compact resumable cache.

The cache (layout in ``aslkit.data.cache``) keeps the raw float32 landmarks of one subset
(``constants.CACHE_SUBSETS``), exactly ``load_relevant_data_subset(path)[:, subset]``, in shards of about
``shard_size`` sequences, plus an index, cross-validation folds and the list of skipped files.

Shards: sequences are sorted by ``sequence_id`` and cut where the (hashed) sequence id says so (content-defined
chunking, sizes between ``shard_size // 2`` and ``2 * shard_size``, about ``shard_size`` on average). A shard is
named after its first sequence id, so adding, removing or changing one file rebuilds only the shard(s) around it.
Each shard's manifest records its source files' size and mtime_ns; a shard whose manifest still matches is kept, so
an interrupted run resumes and a repeated run writes nothing.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from aslkit import constants as C
from aslkit.config import PRESETS, save_config
from aslkit.data import cache
from aslkit.data.errors import DataError
from aslkit.data.islr import load_relevant_data_subset, read_train_csv
from aslkit.paths import input_root, resolve_data_dir

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


@dataclass
class ShardResult:
    """What a worker did with one shard: built it, or failed on a file (only when ``skip_bad`` is off)."""

    name: str
    n_sequences: int
    failure: tuple[str, str] | None = None   # (file, problem)


@dataclass
class PrepareReport:
    """Outcome of one preparation run."""

    path: Path
    n_sequences: int
    n_frames: int
    n_bytes: int
    seconds: float
    built: list[str] = field(default_factory=list)      # shards written by this run
    kept: list[str] = field(default_factory=list)       # shards that were up to date
    removed: list[str] = field(default_factory=list)    # shards no longer in the plan, deleted
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, error) of skipped files

    def summary(self) -> str:
        """One line for the log."""
        shards = (f"all {len(self.kept)} shards up to date" if not self.built else
                  f"{len(self.built)} shard(s) built, {len(self.kept)} up to date")
        removed = f", {len(self.removed)} removed" if self.removed else ""
        return (f"prepared {self.n_sequences} sequences, {self.n_frames} frames, {self.n_bytes / 2 ** 20:.1f} MB "
                f"in {self.seconds:.1f} s ({shards}{removed}; {len(self.skipped)} skipped) -> {self.path}")


# ---------------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------------
def check_config(cfg: PrepareConfig) -> None:
    """Raise ValueError naming the first invalid value of ``cfg``."""
    if cfg.task != C.SLUG_SIGNS:
        raise ValueError(f"prepare supports task {C.SLUG_SIGNS!r} only, got {cfg.task!r}")
    if cfg.subset not in C.CACHE_SUBSETS:
        raise ValueError(f"subset must be one of {sorted(C.CACHE_SUBSETS)}, got {cfg.subset!r}")
    if cfg.fold_method not in FOLD_METHODS:
        raise ValueError(f"fold_method must be one of {FOLD_METHODS}, got {cfg.fold_method!r}")
    for name, low in (("shard_size", 1), ("n_folds", 2), ("workers", 0)):
        if getattr(cfg, name) < low:
            raise ValueError(f"{name} must be at least {low}, got {getattr(cfg, name)}")


def default_out_dir(task: str, subset: str, data_dir: str | Path | None = None) -> Path:
    """``input/prepared/<name of the data folder>/<subset>`` (``<task>`` when not given): the real download and the
    quick synthetic copy are ``<task>``, other synthetic sizes ``<task>-<size>``, so each keeps its own cache."""
    return input_root() / "prepared" / (Path(data_dir).name if data_dir else task) / subset


def resolve_config(cfg: PrepareConfig) -> PrepareConfig:
    """A checked copy of ``cfg`` with ``data_dir`` and ``out_dir`` filled in as absolute paths."""
    check_config(cfg)
    data = resolve_data_dir(cfg.task, cfg.data_dir or None, synth_size=cfg.synth_size).path
    out = Path(cfg.out_dir).expanduser().resolve() if cfg.out_dir else default_out_dir(cfg.task, cfg.subset, data)
    return replace(cfg, data_dir=str(data), out_dir=str(out))


def worker_count(workers: int, n_jobs: int) -> int:
    """Processes to use: ``workers`` (0: all cores), never more than there are jobs."""
    return max(1, min(workers or os.cpu_count() or 1, n_jobs))


# ---------------------------------------------------------------------------------------------------------------
# Planning: which sequences go in which shard, and which shards are up to date
# ---------------------------------------------------------------------------------------------------------------
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


def file_stat(path: Path) -> tuple[int, int]:
    """``(size, mtime_ns)`` of a file, ``(-1, -1)`` when it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return -1, -1
    return int(st.st_size), int(st.st_mtime_ns)


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


# ---------------------------------------------------------------------------------------------------------------
# Building one shard (runs in a worker process)
# ---------------------------------------------------------------------------------------------------------------
def read_sequence(path: str | Path, subset: np.ndarray) -> np.ndarray:
    """``load_relevant_data_subset(path)[:, subset]`` (``[T, S, 3]`` float32, NaNs kept); any read failure is a
    DataError naming the file."""
    try:
        return np.ascontiguousarray(load_relevant_data_subset(path)[:, subset])
    except DataError:
        raise
    except (OSError, pa.ArrowException) as e:
        raise DataError(path, f"unreadable parquet ({type(e).__name__}: {e})") from e


def read_shard(job: ShardJob) -> tuple[list[np.ndarray], list[list[str]]]:
    """Every sequence of a shard (an empty array for a skipped file) and the ``[path, problem]`` of each skipped
    file; raises the first DataError unless ``job.skip_bad``."""
    subset = np.asarray(job.subset, dtype=np.int64)
    arrays, errors = [], []
    for rel in job.paths:
        try:
            arrays.append(read_sequence(Path(job.data_dir) / rel, subset))
        except DataError as e:
            if not job.skip_bad:
                raise
            errors.append([rel, e.problem])
            arrays.append(np.zeros((0, len(subset), 3), np.float32))
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


@contextmanager
def job_mapper(workers: int, n_jobs: int) -> Iterator[Callable]:
    """An unordered ``map`` over a process pool when more than one worker is useful, else the builtin ``map``;
    the pool is terminated when the block exits (also on an error or an interruption)."""
    n = worker_count(workers, n_jobs)
    if n == 1:
        yield map
        return
    with get_context("spawn" if os.name == "nt" else "fork").Pool(n) as pool:
        yield partial(pool.imap_unordered, chunksize=1)


def build_shards(jobs: list, workers: int, on_shard: Callable[[ShardResult], None] | None = None,
                 build: Callable[[Any], ShardResult] = build_shard, desc: str = "prepare") -> list[str]:
    """Build the given shards with ``build`` (a module-level function, run in worker processes) and a progress bar
    (in sequences: ``len(job.sequence_ids)``); DataError naming the file on a bad file."""
    built = []
    with tqdm(total=sum(len(j.sequence_ids) for j in jobs), unit="seq", desc=desc, disable=not jobs) as bar, \
            job_mapper(workers, len(jobs)) as mapper:
        for result in mapper(build, jobs):
            if result.failure:
                raise DataError(*result.failure)
            built.append(result.name)
            bar.update(result.n_sequences)
            if on_shard is not None:
                on_shard(result)
    return built


def orphan_files(out_dir: Path, jobs: list) -> list[Path]:
    """Files in ``shards/`` that belong to no planned shard (old shards, temporary files of an interrupted run)."""
    keep = {p.name for j in jobs for p in cache.shard_files(out_dir, j.name)}
    return sorted(f for f in (out_dir / cache.SHARDS).iterdir() if f.name not in keep)


def remove_orphans(orphans: list[Path]) -> list[str]:
    """Delete the orphan files; the names of the old shards among them."""
    for f in orphans:
        f.unlink()
    return sorted(f.stem for f in orphans if f.suffix == ".npy")


# ---------------------------------------------------------------------------------------------------------------
# Folds
# ---------------------------------------------------------------------------------------------------------------
def group_folds(groups: np.ndarray, n_folds: int) -> np.ndarray:
    """GroupKFold: each group (participant) goes whole to one fold; largest groups first, each to the fold with the
    fewest rows so far (ties: lowest fold, then lowest group id), so folds are balanced in rows."""
    ids, counts = np.unique(np.asarray(groups), return_counts=True)
    if len(ids) < n_folds:
        raise ValueError(f"cannot make {n_folds} group folds from {len(ids)} participant(s): {ids.tolist()}")
    totals = np.zeros(n_folds, dtype=np.int64)
    fold_of = {}
    for k in np.lexsort((ids, -counts)):
        f = int(np.argmin(totals))
        fold_of[ids[k]] = f
        totals[f] += counts[k]
    return np.array([fold_of[g] for g in groups], dtype=np.int64)


def random_folds(n: int, n_folds: int, seed: int) -> np.ndarray:
    """A seeded random split of ``n`` rows into ``n_folds`` folds whose sizes differ by at most one."""
    if n < n_folds:
        raise ValueError(f"cannot make {n_folds} folds from {n} sequence(s)")
    folds = np.empty(n, dtype=np.int64)
    folds[np.random.default_rng(seed).permutation(n)] = np.arange(n) % n_folds
    return folds


def make_folds(index: pd.DataFrame, cfg: PrepareConfig) -> pd.DataFrame:
    """``folds.csv`` rows (sequence_id, participant_id, fold) for the prepared index, by ``cfg.fold_method``."""
    if cfg.fold_method == "group":
        fold = group_folds(index["participant_id"].to_numpy(), cfg.n_folds)
    else:
        fold = random_folds(len(index), cfg.n_folds, cfg.seed)
    return pd.DataFrame({"sequence_id": index["sequence_id"], "participant_id": index["participant_id"],
                         "fold": fold})


# ---------------------------------------------------------------------------------------------------------------
# Index and outputs
# ---------------------------------------------------------------------------------------------------------------
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


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """A DataFrame as parquet file contents."""
    sink = pa.BufferOutputStream()
    df.to_parquet(sink, index=False)
    return sink.getvalue().to_pybytes()


def write_config(cfg: Any, out_dir: Path) -> bool:
    """Save the resolved config as ``config.yaml`` unless it is already there unchanged; True when written."""
    tmp = save_config(cfg, out_dir / f".tmp-{cache.CONFIG}")
    data = tmp.read_bytes()
    tmp.unlink()
    return cache.write_if_changed(out_dir / cache.CONFIG, data)


def summary_meta(cfg: PrepareConfig, index: pd.DataFrame, errors: pd.DataFrame, n_shards: int) -> dict[str, Any]:
    """``prepared.json``: what the cache holds (no timings, so a repeated run leaves it untouched)."""
    return {"format": cache.FORMAT_VERSION, "task": cfg.task, "subset_name": cfg.subset,
            "subset": [int(i) for i in C.CACHE_SUBSETS[cfg.subset]], "dtype": "float32",
            "n_sequences": int(len(index)), "n_frames": int(index["length"].sum()), "n_shards": n_shards,
            "n_skipped": int(len(errors))}


def write_outputs(cfg: PrepareConfig, index: pd.DataFrame, errors: pd.DataFrame, n_shards: int) -> None:
    """Index, folds, errors and config, then ``prepared.json`` last (each only when its contents changed)."""
    write_tables(cfg, index, make_folds(index, cfg), errors, summary_meta(cfg, index, errors, n_shards))


def write_tables(cfg: Any, index: pd.DataFrame, folds: pd.DataFrame, errors: pd.DataFrame,
                 meta: dict[str, Any]) -> None:
    """Write a cache's index, folds, errors and config, then ``meta`` as ``prepared.json`` last (each only when its
    contents changed); shared by both competitions' preparation stages."""
    out = Path(cfg.out_dir)
    cache.write_if_changed(out / cache.INDEX, parquet_bytes(index))
    cache.write_if_changed(out / cache.FOLDS, folds.to_csv(index=False).encode())
    cache.write_if_changed(out / cache.ERRORS, errors.to_csv(index=False).encode())
    write_config(cfg, out)
    cache.write_if_changed(out / cache.META, cache.json_bytes(meta))


def invalidate(out_dir: Path) -> None:
    """Remove the completion marker and the index before shards change, so no reader sees a mixed cache."""
    for name in (cache.META, cache.INDEX):
        (out_dir / name).unlink(missing_ok=True)


def shard_bytes(out_dir: Path, jobs: Iterable) -> int:
    """Total size of the shards' frame files."""
    return sum(cache.shard_files(out_dir, j.name)[0].stat().st_size for j in jobs)


# ---------------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------------
def sync_shards(out: Path, jobs: list, workers: int, up_to_date: Callable[[Any], bool],
                build: Callable[[Any], ShardResult], on_shard: Callable[[ShardResult], None] | None = None,
                desc: str = "prepare") -> tuple[list[str], list[str]]:
    """Bring the shards of ``jobs`` (each with ``.name`` and ``.sequence_ids``) in ``out`` up to date: invalidate
    the cache when anything will change, build the stale shards in parallel, delete orphan files; the names of the
    shards built and removed. Shared by both competitions' preparation stages."""
    stale = [j for j in jobs if not up_to_date(j)]
    orphans = orphan_files(out, jobs)
    if stale or orphans:
        invalidate(out)
    print(f"{desc}: {len(jobs) - len(stale)} of {len(jobs)} shards up to date, building {len(stale)}", flush=True)
    built = build_shards(stale, workers, on_shard, build=build, desc=desc)
    removed = remove_orphans(orphan_files(out, jobs))
    return built, removed


def build_cache(cfg: PrepareConfig, on_shard: Callable[[ShardResult], None] | None = None) -> PrepareReport:
    """Prepare (or bring up to date) the cache of ``cfg`` and report what was done.

    ``on_shard`` is called in this process after each shard is written (progress hooks; tests use it to simulate
    an interruption).
    """
    t0 = time.perf_counter()
    cfg = resolve_config(cfg)
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
    """Prepare the asl-signs cache of ``cfg`` (see module docstring), print a summary, return the cache folder."""
    report = build_cache(cfg, on_shard)
    print(report.summary(), flush=True)
    return report.path



def make_report(out: Path, index: pd.DataFrame, errors: pd.DataFrame, jobs: list, built: list[str],
                removed: list[str], t0: float) -> PrepareReport:
    """The report of one preparation run (shared by both competitions)."""
    built_set = set(built)
    return PrepareReport(out, len(index), int(index["length"].sum()), shard_bytes(out, jobs),
                         time.perf_counter() - t0, built, [j.name for j in jobs if j.name not in built_set],
                         removed, list(map(tuple, errors.to_numpy().tolist())))
