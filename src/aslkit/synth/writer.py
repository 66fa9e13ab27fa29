"""Writes synthetic datasets in the exact Kaggle download layouts of asl-signs and asl-fingerspelling.

The output folder is marked as the generator's own before anything else is written: the marker ``.aslkit_synth.json``
says ``"in progress"`` with the settings, every data file appears whole (written under a temporary name, then renamed),
and the marker is replaced by the completed record just before ``train.csv``, the last file. So a killed run leaves a
folder that is recognisably the generator's own and never reads as complete data, and the next run of the same
settings resumes it (each file is deterministic, so a file already there is skipped) to byte-identical output.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from aslkit import constants as C
from aslkit.config import SYNTH_SIZES, SynthSize
from aslkit.data.fs import wide_frame
from aslkit.data.islr import long_table
from aslkit.data.sync import cpu_count
from aslkit.synth.body import render, sample_signer
from aslkit.synth.signs import lexicon, perform_sign
from aslkit.synth.spelling import perform_phrase, random_phrase

GENERATOR_VERSION = 1
MARKER = ".aslkit_synth.json"
_TASK_CODE = {C.SLUG_SIGNS: 1, C.SLUG_FS: 2}
_TMP = ".aslkit-tmp"                                     # suffix of a file being written (renamed when whole)
_IN_PROGRESS, _COMPLETE = "in progress", "complete"      # the marker's status
_LAST = "train.csv"                                      # written last, after the completed marker


def _rng(seed: int, task: str, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _TASK_CODE[task], *map(int, keys)])


def _unique_ids(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    ids = set()
    while len(ids) < n:
        ids.update(int(i) for i in rng.integers(lo, hi, n - len(ids)))
    return rng.permutation(np.array(sorted(ids), dtype=np.int64))


def used_signs(size: SynthSize) -> list[str]:
    """Glosses a size generates: all 250, or an evenly spread subset."""
    allg = list(C.signs())
    if size.islr_signs >= len(allg):
        return allg
    return [allg[i] for i in np.linspace(0, len(allg) - 1, size.islr_signs).round().astype(int)]


# ----------------------------------------------------------------------------------------------------------------
# asl-signs
# ----------------------------------------------------------------------------------------------------------------
def _islr_job(args: tuple) -> list[dict]:
    """Generate and write the recordings of one participant (runs in a worker)."""
    out, seed, p_idx, pid, jobs = args
    signer = sample_signer(_rng(seed, C.SLUG_SIGNS, p_idx), pid, C.SLUG_SIGNS)
    lex = lexicon()
    rows = []
    folder = Path(out) / "train_landmark_files" / str(pid)
    folder.mkdir(parents=True, exist_ok=True)
    for k, (sign, sid) in enumerate(jobs):
        target = folder / f"{sid}.parquet"
        if not target.is_file():                                   # else written whole by an interrupted run
            rng = _rng(seed, C.SLUG_SIGNS, p_idx, k, 7)
            lm = render(signer, perform_sign(lex[sign], signer, rng), rng)
            table = long_table(lm, int(rng.integers(0, 60)))
            _write_whole(target, partial(pq.write_table, table, use_dictionary=["type"]))
        rows.append({"path": f"train_landmark_files/{pid}/{sid}.parquet", "participant_id": pid,
                     "sequence_id": int(sid), "sign": sign})
    return rows


def write_signs(out: Path, size: SynthSize, seed: int, workers: int) -> dict[str, pd.DataFrame]:
    """Write asl-signs: the real label map and one long parquet per recording; return its CSV tables by file name
    (train.csv), which ``generate`` writes."""
    rng = _rng(seed, C.SLUG_SIGNS, 0)
    pids = _unique_ids(rng, size.islr_participants, 1000, 65000)
    signs = used_signs(size)
    n_per = len(signs) * size.islr_per_sign
    sids = _unique_ids(rng, n_per * len(pids), 10 ** 6, 2 ** 32 - 1).reshape(len(pids), n_per)
    jobs = []
    for p_idx, pid in enumerate(pids):
        order = [s for s in signs for _ in range(size.islr_per_sign)]
        jobs.append((str(out), seed, p_idx, int(pid), list(zip(order, sids[p_idx].tolist()))))
    rows = _run(_islr_job, jobs, workers)
    df = pd.DataFrame([r for part in rows for r in part], columns=["path", "participant_id", "sequence_id", "sign"])
    df = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    shutil.copyfile(_asset("sign_to_prediction_index_map.json"), out / "sign_to_prediction_index_map.json")
    return {"train.csv": df}


# ----------------------------------------------------------------------------------------------------------------
# asl-fingerspelling
# ----------------------------------------------------------------------------------------------------------------
def _fs_job(args: tuple) -> list[dict]:
    """Generate and write one wide parquet file (runs in a worker); only its rows when an interrupted run wrote it."""
    out, seed, folder, file_id, f_idx, people, sids, supplemental = args
    target = Path(out) / folder / f"{file_id}.parquet"
    done = target.is_file()
    rows, seqs = [], []
    signers = {}
    for k, sid in enumerate(sids):
        rng = _rng(seed, C.SLUG_FS, f_idx, k, 11)
        p_idx, pid = people[int(rng.integers(0, len(people)))]
        if p_idx not in signers:
            signers[p_idx] = sample_signer(_rng(seed, C.SLUG_FS, 100000 + p_idx), pid, C.SLUG_FS)
        phrase = random_phrase(rng, supplemental)
        if not done:
            tracks = perform_phrase(phrase, signers[p_idx], rng, corrupt=rng.random() < 0.07)
            seqs.append((int(sid), render(signers[p_idx], tracks, rng)))
        rows.append({"path": f"{folder}/{file_id}.parquet", "file_id": file_id, "sequence_id": int(sid),
                     "participant_id": pid, "phrase": phrase})
    if not done:
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_whole(target, wide_frame(seqs).to_parquet)
    return rows


def write_fingerspelling(out: Path, size: SynthSize, seed: int, workers: int) -> dict[str, pd.DataFrame]:
    """Write asl-fingerspelling: the character map and the wide parquets; return its CSV tables by file name
    (supplemental_metadata.csv, train.csv), which ``generate`` writes."""
    rng = _rng(seed, C.SLUG_FS, 0)
    pids = np.sort(_unique_ids(rng, size.fs_participants, 0, 255))
    people = list(enumerate(pids.tolist()))
    n_files = size.fs_train_files + size.fs_supp_files
    file_ids = _unique_ids(rng, n_files, 10 ** 5, 2 ** 31 - 1)
    sids = _unique_ids(rng, n_files * size.fs_per_file, 10 ** 6, 2 ** 31 - 1).reshape(n_files, -1)
    jobs = []
    for f in range(n_files):
        supp = f >= size.fs_train_files
        folder = "supplemental_landmarks" if supp else "train_landmarks"
        jobs.append((str(out), seed, folder, int(file_ids[f]), f, people, sids[f].tolist(), supp))
    results = _run(_fs_job, jobs, workers)
    meta = pd.DataFrame([r for part in results for r in part],
                        columns=["path", "file_id", "sequence_id", "participant_id", "phrase"])
    is_supp = meta["path"].str.startswith("supplemental")
    shutil.copyfile(_asset("character_to_prediction_index.json"), out / "character_to_prediction_index.json")
    return {"supplemental_metadata.csv": meta[is_supp], "train.csv": meta[~is_supp]}


# ----------------------------------------------------------------------------------------------------------------
def _asset(name: str) -> Path:
    return Path(__file__).resolve().parent.parent / "assets" / name


def _run(fn, jobs: list, workers: int) -> list:
    """Map ``fn`` over jobs, in a process pool when ``workers > 1`` (results in job order)."""
    if workers <= 1 or len(jobs) <= 1:
        return [fn(j) for j in jobs]
    with get_context("spawn" if os.name == "nt" else "fork").Pool(min(workers, len(jobs))) as pool:
        return pool.map(fn, jobs, chunksize=1)


WRITERS = {C.SLUG_SIGNS: write_signs, C.SLUG_FS: write_fingerspelling}


def generate(task: str, out: str | Path, size: str = "quick", seed: int = 0, workers: int | None = None,
             overwrite: bool = False) -> Path:
    """Write one synthetic dataset of ``task`` into ``out`` in the Kaggle layout and return ``out``.

    An unfinished run of the same settings in ``out`` (one that was killed) is resumed. A complete dataset or another
    run's unfinished one is replaced only with ``overwrite``; a folder the generator did not write is never touched.
    """
    if task not in C.SLUGS:
        raise ValueError(f"task must be one of {C.SLUGS}, got {task!r}")
    if size not in SYNTH_SIZES:
        raise ValueError(f"size must be one of {sorted(SYNTH_SIZES)}, got {size!r}")
    out = Path(out)
    settings = {"task": task, "size": size, "seed": seed, "generator_version": GENERATOR_VERSION}
    if _claim(out, settings, overwrite):
        print(f"synth: resuming the unfinished {task} dataset ({size}, seed {seed}) in {out}", flush=True)
    t0 = time.time()
    tables = WRITERS[task](out, SYNTH_SIZES[size], seed, workers or cpu_count())
    _finish(out, settings, tables, time.time() - t0)
    return out


def synthetic_info(path: str | Path) -> dict | None:
    """The generator's record of a complete synthetic dataset folder, or None when the folder is not synthetic or
    holds an unfinished (interrupted) generation."""
    record = _read_marker(Path(path))
    return record if record and _is_complete(Path(path), record) else None


# ----------------------------------------------------------------------------------------------------------------
# The output folder: claimed with a marker first, files written whole, completed last
# ----------------------------------------------------------------------------------------------------------------
def _write_whole(target: Path, write: Callable[[Path], object]) -> None:
    """Write ``target`` through ``write(temporary path)`` and a rename, so that it only ever exists whole."""
    tmp = target.with_name(f"{target.name}.{os.getpid()}{_TMP}")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _write_marker(out: Path, record: dict) -> None:
    """Replace the marker of ``out`` by ``record`` (atomically)."""
    _write_whole(out / MARKER, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))


def _read_marker(out: Path) -> dict | None:
    """The marker's record: None when ``out`` has no marker, ``{}`` when it cannot be read."""
    marker = out / MARKER
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _is_complete(out: Path, record: dict) -> bool:
    """Whether ``record`` (the marker of ``out``) describes a finished dataset (a marker without status is from before
    the resumable writer, which wrote it only at the end)."""
    return record.get("status", _COMPLETE) == _COMPLETE and (out / _LAST).is_file()


def _describe(out: Path, record: dict) -> str:
    """What the marker ``record`` of ``out`` says the folder holds, for messages."""
    state = "a complete" if _is_complete(out, record) else "an unfinished"
    return f"{state} synthetic dataset ({', '.join(f'{k} {record.get(k)}' for k in ('task', 'size', 'seed'))})"


def _claim(out: Path, settings: dict, overwrite: bool) -> bool:
    """Mark ``out`` as the generator's own, in progress with ``settings``; True when it resumes an unfinished run of
    the same settings (else ``out`` is empty). FileExistsError for a folder the generator did not write, and without
    ``overwrite`` for a complete dataset or an unfinished one of other settings."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a folder; pick another output folder")
    record = _read_marker(out)
    if record is None:
        if out.is_dir() and any(out.iterdir()):
            raise FileExistsError(f"{out} is not empty and aslkit synth did not write it (no {MARKER}); refusing to "
                                  f"write into or delete it: pick another output folder or empty it yourself")
        out.mkdir(parents=True, exist_ok=True)
    else:
        if _settings(record) == settings and not _is_complete(out, record):
            return True
        if not overwrite:
            raise FileExistsError(f"{out} already holds {_describe(out, record)}; pass --overwrite (overwrite=True) "
                                  f"to replace it")
        _clear(out)
    _write_marker(out, {"status": _IN_PROGRESS, **settings})
    return False


def _settings(record: dict) -> dict:
    """The settings a marker records (which decide every file's bytes)."""
    return {k: record.get(k) for k in ("task", "size", "seed", "generator_version")}


def _clear(out: Path) -> None:
    """Delete everything in the generator's own folder ``out`` but its marker, train.csv first: a kill half-way
    leaves an unfinished dataset of the marker's settings."""
    (out / _LAST).unlink(missing_ok=True)
    for child in out.iterdir():
        if child.name == MARKER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _finish(out: Path, settings: dict, tables: dict[str, pd.DataFrame], seconds: float) -> None:
    """Write the CSV tables and the completed marker, ``train.csv`` last: only a complete dataset has one."""
    for tmp in out.rglob(f"*{_TMP}"):                             # left by a killed run
        tmp.unlink(missing_ok=True)
    for name, table in tables.items():
        if name != _LAST:
            _write_whole(out / name, partial(table.to_csv, index=False))
    _write_marker(out, {**settings, "status": _COMPLETE, "sequences": sum(map(len, tables.values())),
                        "seconds": round(seconds, 1), "counts": asdict(SYNTH_SIZES[settings["size"]])})
    _write_whole(out / _LAST, partial(tables[_LAST].to_csv, index=False))
