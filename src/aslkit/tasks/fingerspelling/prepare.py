"""``prepare_fingerspelling``: read the asl-fingerspelling wide parquets once, in parallel, into a resumable cache.

Same layout, reader and guarantees as the asl-signs cache (``aslkit.data.cache``, ``aslkit.data.sync``): a second run
writes nothing, a changed file rebuilds only its shard, an interrupted run continues. Here one landmark parquet file
is one unit of work and one shard (``shards/<source>-<file_id>.npy``), read with ``read_fs_landmarks`` (one pyarrow
open, projected columns; bit-identical to the grader's pandas read, ``read_fs_sequences``) for the selected columns
only (default ``constants.FS_130_COLUMNS``: the 130 landmarks of the FS 1st place, all x then all y then all z) and
stored landmark-major as float32 ``[n_frames, 130, 3]`` (NaNs kept). A shard's manifest records its
file's size and mtime_ns and its sequence ids (in metadata order), so editing the file or its metadata rows rebuilds
it. A bad sequence (no frames in its file, a value that is not a number) stops the run with a DataError naming the
file and the sequence ids; with ``skip_bad`` only that sequence is left out (a row path, sequence_id, error of
``errors.csv``), and a file that cannot be read at all is left out whole (one row with an empty sequence_id).

Index (``INDEX_COLUMNS``): sequence_id, participant_id, file_id, phrase, phrase_len, source ("train" or
"supplemental"), length, shard, start; rows ordered by source (train first), file_id, sequence_id. Phrases are kept
as text; ``PreparedFS.phrase_ids(i)`` encodes them with the 59-character map.

Folds (``folds.csv``: sequence_id, participant_id, fold), over every indexed row (supplemental included):

* ``fold_method="group"``: ``n_folds`` participant folds (``aslkit.data.folds.group_folds``);
* ``fold_method="random5"``: a single hold-out split: fold 0 is a seeded random 5 % of the sequences (at least
  one), every other sequence has fold -1 (never validation). Validate on ``fold == 0``, train on ``fold != 0``.
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
from aslkit.data.folds import group_folds, random5_folds
from aslkit.data.fs import bad_sequences_text, encode_phrase, read_fs_landmarks, read_metadata
from aslkit.data.sync import (
    PrepareReport,
    ShardResult,
    file_stat,
    make_report,
    sync_shards,
    write_tables,
)
from aslkit.paths import resolve_cache_folders
from aslkit.tasks.base import require_task

FS_FOLD_METHODS = ("group", "random5")


FS_LANDMARKS = {"fs130": C.FS_130, "all": np.arange(C.ROWS_PER_FRAME)}


FS_INDEX_COLUMNS = ["sequence_id", "participant_id", "file_id", "phrase", "phrase_len", "source", "length",
                    "shard", "start"]


SOURCES = ("train", "supplemental")


@dataclass
class PrepareFSConfig:
    """asl-fingerspelling preparation: which data and landmarks, where the cache goes, workers and folds."""

    task: str = C.SLUG_FS
    data_dir: str = ""                 # empty: paths.resolve_data_dir (input/, /kaggle/input, else synthetic)
    out_dir: str = ""                  # empty: input/prepared/<data folder name>/<landmarks>
    landmarks: str = "fs130"           # a key of FS_LANDMARKS ("fs130": constants.FS_130)
    include_supplemental: bool = False  # also supplemental_landmarks/ (index column source="supplemental")
    workers: int = 0                   # 0: all cores (never more than there are files)
    n_folds: int = 4                   # group folds (ignored by random5)
    fold_method: str = "group"         # "group": by participant; "random5": fold 0 = seeded random 5 %, others -1
    seed: int = 0                      # seed of the random5 split
    skip_bad: bool = False             # skip bad sequences and unreadable files (errors.csv) instead of stopping
    synth_size: str = "quick"          # size of the synthetic fallback when no real data is found


PRESETS[PrepareFSConfig] = {
    "ci": {"synth_size": "ci"},
    "quick": {"synth_size": "quick"},
    "full": {"synth_size": "full", "include_supplemental": True},
}


@dataclass
class FSShardJob:
    """One landmark parquet file = one shard: its sequences (metadata order) and where it goes."""

    name: str
    path: str                      # relative to data_dir
    sequence_ids: list[int]
    stat: tuple[int, int]          # (size, mtime_ns) taken before reading; (-1, -1): missing
    data_dir: str
    out_dir: str
    landmarks: list[int]
    skip_bad: bool

    def key(self) -> dict[str, Any]:
        """What the shard's contents depend on; a manifest with the same key is up to date."""
        return {"format": cache.FORMAT_VERSION, "dtype": "float32", "subset": self.landmarks,
                "sources": [[self.path, *self.stat]], "sequence_ids": self.sequence_ids}


def check_fs_config(cfg: PrepareFSConfig) -> None:
    """Raise ValueError naming the first invalid value of ``cfg``."""
    require_task(cfg.task, C.SLUG_FS, "prepare_fingerspelling")
    if cfg.landmarks not in FS_LANDMARKS:
        raise ValueError(f"landmarks must be one of {sorted(FS_LANDMARKS)}, got {cfg.landmarks!r}")
    if cfg.fold_method not in FS_FOLD_METHODS:
        raise ValueError(f"fold_method must be one of {FS_FOLD_METHODS}, got {cfg.fold_method!r}")
    for name, low in (("n_folds", 2), ("workers", 0)):
        if getattr(cfg, name) < low:
            raise ValueError(f"{name} must be at least {low}, got {getattr(cfg, name)}")


def resolve_fs_config(cfg: PrepareFSConfig) -> PrepareFSConfig:
    """A checked copy of ``cfg`` with ``data_dir`` and ``out_dir`` filled in as absolute paths."""
    check_fs_config(cfg)
    data, out = resolve_cache_folders(cfg.task, cfg.data_dir, cfg.out_dir, cfg.synth_size, cfg.landmarks)
    return replace(cfg, data_dir=str(data), out_dir=str(out))


def landmark_list(cfg: PrepareFSConfig) -> list[int]:
    return [int(i) for i in FS_LANDMARKS[cfg.landmarks]]


def load_fs_table(data_dir: str | Path, include_supplemental: bool) -> pd.DataFrame:
    """Metadata rows (train, then supplemental when asked) with a ``source`` column, ordered by source, file_id,
    sequence_id; DataError for a sequence id listed twice."""
    parts = []
    for source in SOURCES[:2 if include_supplemental else 1]:
        df = read_metadata(data_dir, source)
        parts.append(df.assign(source=source, _order=SOURCES.index(source)))
    table = pd.concat(parts, ignore_index=True)
    dup = table["sequence_id"][table["sequence_id"].duplicated()]
    if len(dup):
        raise DataError(Path(data_dir), f"duplicate sequence_id(s) in the metadata: {sorted(set(dup))[:10]}")
    table = table.sort_values(["_order", "file_id", "sequence_id"], kind="stable").drop(columns="_order")
    return table.reset_index(drop=True)


def fs_shard_name(source: str, file_id: int) -> str:
    return f"{source}-{int(file_id):010d}"


def plan_fs_shards(table: pd.DataFrame, cfg: PrepareFSConfig) -> list[FSShardJob]:
    """One job per landmark file (in table order), with the file's current size and mtime_ns."""
    jobs = []
    for (source, path), rows in table.groupby(["source", "path"], sort=False):
        file_ids = rows["file_id"].unique()
        if len(file_ids) != 1:
            raise DataError(Path(cfg.data_dir) / path, f"listed with several file_ids: {file_ids.tolist()}")
        jobs.append(FSShardJob(fs_shard_name(source, file_ids[0]), path, rows["sequence_id"].tolist(),
                               file_stat(Path(cfg.data_dir) / path), cfg.data_dir, cfg.out_dir, landmark_list(cfg),
                               cfg.skip_bad))
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise DataError(Path(cfg.data_dir), "several landmark files share a (source, file_id)")
    return jobs


def fs_is_up_to_date(job: FSShardJob) -> bool:
    return cache.shard_is_current(job.out_dir, job.name, job.key(), len(job.landmarks), job.skip_bad)


def read_fs_shard(job: FSShardJob) -> tuple[list[np.ndarray], list[list]]:
    """The sequences of one file, ``[T, L, 3]`` float32 each, in ``job.sequence_ids`` order (an empty array for a
    bad sequence), and the ``[path, sequence_id, problem]`` of each bad sequence; DataError naming the file for a
    problem of the whole file, and for a bad sequence unless ``job.skip_bad``."""
    path = Path(job.data_dir) / job.path
    try:
        seqs, problems = read_fs_landmarks(path, C.fs_columns(job.landmarks), job.sequence_ids)
    except DataError:
        raise
    except (OSError, ValueError, pa.ArrowException) as e:
        raise DataError(path, f"unreadable parquet ({type(e).__name__}: {e})") from e
    if problems and not job.skip_bad:
        raise DataError(path, bad_sequences_text(problems))
    n = len(job.landmarks)
    arrays = [seqs[s] if s in seqs else np.zeros((0, n, 3), np.float32) for s in map(int, job.sequence_ids)]
    return arrays, [[job.path, sid, problem] for sid, problem in problems.items()]


def build_fs_shard(job: FSShardJob) -> ShardResult:
    """Read and write one file's shard (runs in a worker). A bad file or sequence is returned as a failure unless
    ``skip_bad``: then a bad sequence is written empty, or every sequence of an unreadable file, and the problem
    goes into the manifest (a whole file with an empty sequence_id)."""
    try:
        arrays, errors = read_fs_shard(job)
    except DataError as e:
        if not job.skip_bad:
            return ShardResult(job.name, len(job.sequence_ids), failure=(e.path, e.problem))
        arrays = [np.zeros((0, len(job.landmarks), 3), np.float32) for _ in job.sequence_ids]
        errors = [[job.path, "", e.problem]]
    cache.write_shard(job.out_dir, job.name, job.key(), arrays, errors, len(job.landmarks))
    return ShardResult(job.name, len(job.sequence_ids))


def make_fs_folds(index: pd.DataFrame, cfg: PrepareFSConfig) -> pd.DataFrame:
    if cfg.fold_method == "group":
        fold = group_folds(index["participant_id"].to_numpy(), cfg.n_folds)
    else:
        fold = random5_folds(len(index), cfg.seed)
    return pd.DataFrame({"sequence_id": index["sequence_id"], "participant_id": index["participant_id"],
                         "fold": fold})


def assemble_fs_index(table: pd.DataFrame, jobs: list[FSShardJob]) -> tuple[pd.DataFrame, pd.DataFrame]:
    parts = [cache.manifest_rows(j.out_dir, j.name, j.sequence_ids) for j in jobs]
    rows = pd.concat([p[0] for p in parts], ignore_index=True)
    errors = pd.DataFrame([e for p in parts for e in p[1]], columns=cache.ERROR_COLUMNS)
    index = table.merge(rows, on="sequence_id", how="inner", validate="one_to_one")
    index = index[~skipped_rows(index, errors)].reset_index(drop=True)
    index["phrase_len"] = index["phrase"].str.len().astype(np.int64)
    return index[FS_INDEX_COLUMNS], errors


def skipped_rows(index: pd.DataFrame, errors: pd.DataFrame) -> np.ndarray:
    """Rows of ``index`` that ``errors`` skipped: every sequence of a whole file (empty sequence_id) and each listed
    sequence."""
    whole = errors["sequence_id"].astype(str) == ""
    sids = pd.to_numeric(errors.loc[~whole, "sequence_id"]).astype(np.int64)
    return (index["path"].isin(errors.loc[whole, "path"]) | index["sequence_id"].isin(sids)).to_numpy(bool)


def fs_summary_meta(cfg: PrepareFSConfig, index: pd.DataFrame, errors: pd.DataFrame, n_shards: int,
                    n_skipped: int) -> dict:
    """``prepared.json``: what the cache holds; ``n_skipped`` rows of errors.csv (a file or a sequence each),
    ``n_skipped_sequences`` the sequences they left out."""
    return {"format": cache.FORMAT_VERSION, "task": cfg.task, "subset_name": cfg.landmarks,
            "subset": landmark_list(cfg), "dtype": "float32", "n_sequences": int(len(index)),
            "n_frames": int(index["length"].sum()), "n_shards": n_shards, "n_skipped": int(len(errors)),
            "n_skipped_sequences": n_skipped,
            "sources": sorted(index["source"].unique().tolist())}


def build_fs_cache(cfg: PrepareFSConfig, on_shard: Callable[[ShardResult], None] | None = None) -> PrepareReport:
    """Prepare (or bring up to date) the fingerspelling cache of ``cfg`` holding its lock (``cache.cache_lock``) and
    report what was done."""
    t0 = time.perf_counter()
    cfg = resolve_fs_config(cfg)
    with cache.cache_lock(cfg.out_dir):
        return sync_fs_cache(cfg, on_shard, t0)


def sync_fs_cache(cfg: PrepareFSConfig, on_shard: Callable[[ShardResult], None] | None, t0: float) -> PrepareReport:
    """``build_fs_cache`` of a resolved config, its cache's lock held."""
    out = Path(cfg.out_dir)
    (out / cache.SHARDS).mkdir(parents=True, exist_ok=True)
    table = load_fs_table(cfg.data_dir, cfg.include_supplemental)
    if len(table) == 0:
        raise DataError(Path(cfg.data_dir) / "train.csv", "no sequences")
    jobs = plan_fs_shards(table, cfg)
    print(f"prepare: {len(table)} sequences in {len(jobs)} files", flush=True)
    built, removed = sync_shards(out, jobs, cfg.workers, fs_is_up_to_date, build_fs_shard, on_shard)
    index, errors = assemble_fs_index(table, jobs)
    meta = fs_summary_meta(cfg, index, errors, len(jobs), len(table) - len(index))
    write_tables(cfg, index, make_fs_folds(index, cfg), errors, meta)
    return make_report(out, index, errors, jobs, built, removed, t0)


def prepare_fingerspelling(cfg: PrepareFSConfig,
                           on_shard: Callable[[ShardResult], None] | None = None) -> Path:
    """Prepare the asl-fingerspelling cache of ``cfg`` (see module docstring, ``build_fs_cache``), print a summary,
    return its folder."""
    report = build_fs_cache(cfg, on_shard)
    print(report.summary(), flush=True)
    return report.path


class PreparedFS(cache.ShardedCache):
    """Read-only view of a prepared asl-fingerspelling cache: ``ds[i]`` is sequence ``i`` of ``ds.index`` as
    ``[T, L, 3]`` float32 (NaNs kept); ``ds.columns`` the 3 * L wide columns it was read from (block order)."""

    @property
    def columns(self) -> list[str]:
        return C.fs_columns(self.subset)

    @property
    def config(self) -> PrepareFSConfig:
        return load_config(PrepareFSConfig, require_file(self.path / cache.CONFIG, "cache config"))

    def phrase_ids(self, i: int) -> np.ndarray:
        """The phrase of sequence ``i`` encoded with the 59-character map (int64)."""
        return encode_phrase(self.index["phrase"].iloc[i])
