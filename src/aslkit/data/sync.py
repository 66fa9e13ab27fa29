"""The sync engine of the prepared caches of both competitions: plan shards, build the stale ones in parallel
worker processes, delete orphans, then write the index, folds, errors, config and ``prepared.json`` (last, so it
marks a complete cache), each only when its contents changed.

A competition's preparation stage (``aslkit.tasks.<task>.prepare``) supplies the shard jobs (each with ``.name``,
``.sequence_ids`` and a ``key()`` of what its contents depend on) and a module-level ``build(job) -> ShardResult``
run in the workers; the file layout and the reader are ``aslkit.data.cache``.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from aslkit.config import save_config
from aslkit.data import cache
from aslkit.data.errors import DataError


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
    skipped: list[tuple] = field(default_factory=list)   # rows of errors.csv: (path, sequence_id or "", error)
    n_skipped: int = 0                                     # sequences left out by skip_bad

    def summary(self) -> str:
        """One line for the log."""
        shards = (f"all {len(self.kept)} shards up to date" if not self.built else
                  f"{len(self.built)} shard(s) built, {len(self.kept)} up to date")
        removed = f", {len(self.removed)} removed" if self.removed else ""
        return (f"prepared {self.n_sequences} sequences, {self.n_frames} frames, {self.n_bytes / 2 ** 20:.1f} MB "
                f"in {self.seconds:.1f} s ({shards}{removed}; {self.skipped_text()}) -> {self.path}")

    def skipped_text(self) -> str:
        """How many sequences skip_bad left out, where they are listed and the first few of them."""
        if not self.skipped:
            return "none skipped"
        first = ", ".join(f"{p} (sequence_id {s})" if str(s) else f"{p} (whole file)" for p, s, _ in self.skipped[:3])
        more = f" and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
        return f"{self.n_skipped} sequence(s) skipped, listed in {self.path / cache.ERRORS}: {first}{more}"


def cpu_count() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it, e.g. a container's cpuset),
    else all of the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_count(workers: int, n_jobs: int) -> int:
    """Processes to use: ``workers`` (0: every core this process may use, ``cpu_count``), never more than there
    are jobs."""
    return max(1, min(workers or cpu_count(), n_jobs))


def file_stat(path: str | Path) -> tuple[int, int]:
    """``(size, mtime_ns)`` of a file, ``(-1, -1)`` when it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return -1, -1
    return int(st.st_size), int(st.st_mtime_ns)


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


READ_THREADS = 2   # files each worker reads at once


@contextmanager
def threaded_map(fn: Callable[[Any], Any], items: Iterable, threads: int = READ_THREADS) -> Iterator[Iterator]:
    """``map(fn, items)`` (results in order) run by ``threads`` threads, for the reads of a shard: pyarrow and
    numpy release the GIL while they decode and copy (one process reads about 1.7 times faster with two threads
    on two idle cores), so a worker left alone at the end of a run, its shard bigger than the others', still uses
    a second core; while every worker is busy it costs nothing measurable. Reads not yet started are cancelled
    when the block exits early (a bad file)."""
    pool = ThreadPoolExecutor(threads)
    try:
        yield pool.map(fn, items)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


SKIP_BAD_HINT = "skip_bad=true skips bad files and sequences instead, listing them in the cache's errors.csv"


def build_shards(jobs: list, workers: int, build: Callable[[Any], ShardResult],
                 on_shard: Callable[[ShardResult], None] | None = None, desc: str = "prepare") -> list[str]:
    """Build the given shards with ``build`` (a module-level function, run in worker processes) and a progress bar
    (in sequences: ``len(job.sequence_ids)``); DataError naming the file on a bad file (with ``SKIP_BAD_HINT``).
    The largest shards start first (the workers finish together), one shard per task; the names of the shards
    built are returned in the order of ``jobs``."""
    done = set()
    todo = sorted(jobs, key=lambda j: len(j.sequence_ids), reverse=True)
    with tqdm(total=sum(len(j.sequence_ids) for j in jobs), unit="seq", desc=desc, disable=not jobs) as bar, \
            job_mapper(workers, len(jobs)) as mapper:
        for result in mapper(build, todo):
            if result.failure:
                path, problem = result.failure
                raise DataError(path, f"{problem} ({SKIP_BAD_HINT})")
            done.add(result.name)
            bar.update(result.n_sequences)
            if on_shard is not None:
                on_shard(result)
    return [j.name for j in jobs if j.name in done]


def orphan_files(out_dir: Path, jobs: list) -> list[Path]:
    """Files in ``shards/`` that belong to no planned shard (old shards, temporary files of an interrupted run)."""
    keep = {p.name for j in jobs for p in cache.shard_files(out_dir, j.name)}
    return sorted(f for f in (out_dir / cache.SHARDS).iterdir() if f.name not in keep)


def remove_orphans(orphans: list[Path]) -> list[str]:
    """Delete the orphan files; the names of the old shards among them."""
    for f in orphans:
        f.unlink()
    return sorted(f.stem for f in orphans if f.suffix == ".npy")


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
    built = build_shards(stale, workers, build, on_shard, desc=desc)
    removed = remove_orphans(orphan_files(out, jobs))
    return built, removed


def make_report(out: Path, index: pd.DataFrame, errors: pd.DataFrame, jobs: list, built: list[str],
                removed: list[str], t0: float) -> PrepareReport:
    """The report of one preparation run (shared by both competitions)."""
    built_set = set(built)
    n_planned = sum(len(j.sequence_ids) for j in jobs)
    return PrepareReport(out, len(index), int(index["length"].sum()), shard_bytes(out, jobs),
                         time.perf_counter() - t0, built, [j.name for j in jobs if j.name not in built_set],
                         removed, list(map(tuple, errors.to_numpy().tolist())), n_planned - len(index))
