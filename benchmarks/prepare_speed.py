"""Prints the preparation throughput (sequences/s) of both competitions next to its floor: the plain pyarrow read of
the same files in the same number of processes.

    .venv/bin/python benchmarks/prepare_speed.py                      # synthetic data of --synth-size (ci)
    .venv/bin/python -m aslkit synth --task asl-signs --size quick --out /tmp/bench_signs
    .venv/bin/python -m aslkit synth --task asl-fingerspelling --size quick --out /tmp/bench_fs
    .venv/bin/python benchmarks/prepare_speed.py --signs-dir /tmp/bench_signs --fs-dir /tmp/bench_fs --repeats 3
    .venv/bin/python benchmarks/prepare_speed.py --task asl-signs --signs-dir input/asl-signs --limit 5000

Per task and repeat, on the same files and with the same number of processes (``--workers``, default 2):

* floor: ``pyarrow.parquet.read_table(path, columns=...)`` of every landmark file (asl-signs: x, y, z;
  fingerspelling: the cache's wide columns and sequence_id) turned into one float32 numpy array per file, over a
  process pool (``pool.imap_unordered``, the default chunking of ``pool.map``), pool start-up included;
* prepare: a fresh ``build_cache`` / ``build_fs_cache`` into a new temporary folder (everything: metadata, plan,
  reads, shards, index, folds), with the preparation config's defaults unless ``--shard-size`` is given;
* the ratio of the two throughputs (prepare / floor; 1.0 is the speed of the plain read).

The order of the two alternates between repeats (the files are read once before timing, so both find them in the
page cache; each repeat's cache is deleted before the next, so that the kernel's write-back of earlier caches does not
slow the later repeats), and a last row times a second ``prepare`` on an up-to-date cache (the cost of checking every
shard). Timings only; nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from aslkit import constants as C
from aslkit.data.fs import read_metadata
from aslkit.data.islr import read_train_csv
from aslkit.paths import resolve_data_dir
from aslkit.tasks.fingerspelling.prepare import FS_LANDMARKS, PrepareFSConfig, build_fs_cache
from aslkit.tasks.signs.prepare import PrepareConfig, build_cache

XYZ = ["x", "y", "z"]


def limited_copy(data_dir: Path, limit: int, tmp: Path) -> Path:
    """A folder whose train.csv lists the first ``limit`` sequences (landmark files linked, not copied)."""
    out = tmp / "data"
    out.mkdir()
    pd.read_csv(data_dir / "train.csv").head(limit).to_csv(out / "train.csv", index=False)
    for name in ("sign_to_prediction_index_map.json", "train_landmark_files"):
        os.symlink(data_dir / name, out / name)
    return out


def floor_read(path: Path, columns: list[str]) -> int:
    """The plain read of one file: projected columns with pyarrow, one float32 ``[rows, columns]`` numpy array."""
    table = pq.read_table(path, columns=columns)
    out = np.empty((table.num_rows, len(columns)), np.float32)
    for i, col in enumerate(table.columns):
        out[:, i] = col.to_numpy()
    return len(out)


def floor_seconds(paths: list[Path], columns: list[str], workers: int) -> float:
    """Seconds to ``floor_read`` every file in ``workers`` processes (pool start-up included)."""
    t0 = time.perf_counter()
    chunksize = max(1, -(-len(paths) // (4 * workers)))
    with get_context("spawn" if os.name == "nt" else "fork").Pool(workers) as pool:
        for _ in pool.imap_unordered(partial(floor_read, columns=columns), paths, chunksize=chunksize):
            pass
    return time.perf_counter() - t0


def signs_case(args: argparse.Namespace, tmp: Path):
    """asl-signs: (name, number of sequences, files, floor columns, prepare(out_dir) -> report)."""
    data_dir = resolve_data_dir(C.SLUG_SIGNS, args.signs_dir or None, synth_size=args.synth_size).path
    if args.limit:
        data_dir = limited_copy(data_dir, args.limit, tmp)
    paths = [data_dir / p for p in read_train_csv(data_dir)["path"]]
    extra = {"shard_size": args.shard_size} if args.shard_size else {}

    def run(out: Path):
        return build_cache(PrepareConfig(data_dir=str(data_dir), out_dir=str(out), workers=args.workers, **extra))
    return "asl-signs", len(paths), paths, XYZ, run


def fs_case(args: argparse.Namespace, tmp: Path):
    """asl-fingerspelling (train and supplemental): the same tuple as ``signs_case``."""
    data_dir = resolve_data_dir(C.SLUG_FS, args.fs_dir or None, synth_size=args.synth_size).path
    meta = pd.concat([read_metadata(data_dir, which) for which in ("train", "supplemental")])
    paths = [data_dir / p for p in meta["path"].unique()]
    columns = C.fs_columns(FS_LANDMARKS[PrepareFSConfig.landmarks]) + ["sequence_id"]

    def run(out: Path):
        return build_fs_cache(PrepareFSConfig(data_dir=str(data_dir), out_dir=str(out), workers=args.workers,
                                              include_supplemental=True))
    return "asl-fingerspelling", len(meta), paths, columns, run


def timed(run, out: Path):
    """``run(out)`` and the wall-clock seconds it took."""
    t0 = time.perf_counter()
    report = run(out)
    return report, time.perf_counter() - t0


def row(what: str, n: int, seconds: float, note: str = "") -> str:
    return f"{what:48s} {n:10d} {seconds:9.2f} {n / seconds:10.1f}  {note}"


def bench(case, workers: int, repeats: int, tmp: Path) -> list[str]:
    """Floor and fresh prepare ``repeats`` times each (alternating which goes first), then an up-to-date run."""
    name, n, paths, columns, run = case
    floor_seconds(paths, columns, workers)                      # warm the page cache
    lines, ratios = [], []
    for r in range(repeats):
        out = tmp / f"cache-{name}-{r}"
        if r % 2:
            (report, seconds), floor = timed(run, out), floor_seconds(paths, columns, workers)
        else:
            floor, (report, seconds) = floor_seconds(paths, columns, workers), timed(run, out)
        ratios.append(floor / seconds)
        if r < repeats - 1:
            shutil.rmtree(out)          # the caches of earlier repeats would pile up as dirty pages being written back
        lines.append(row(f"{name} floor: pyarrow read_table, {workers} proc", n, floor, f"{len(paths)} files"))
        lines.append(row(f"{name} prepare, {workers} worker(s)", report.n_sequences, seconds,
                         f"ratio {ratios[-1]:.2f} of the floor; {len(report.built)} shards, "
                         f"{report.n_bytes / 2 ** 20:.1f} MB"))
    again, seconds = timed(run, out)
    lines.append(row(f"{name} prepare again (all up to date)", again.n_sequences, seconds))
    lines.append(f"{name}: prepare / floor throughput over {repeats} repeat(s): median "
                 f"{statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="both", choices=["both", C.SLUG_SIGNS, C.SLUG_FS])
    ap.add_argument("--signs-dir", default="", help="asl-signs folder (default: resolve_data_dir)")
    ap.add_argument("--fs-dir", default="", help="asl-fingerspelling folder (default: resolve_data_dir)")
    ap.add_argument("--synth-size", default="ci", choices=["ci", "quick", "full"],
                    help="synthetic size when no data is found")
    ap.add_argument("--limit", type=int, default=0, help="asl-signs: only the first N rows of train.csv (0: all)")
    ap.add_argument("--workers", type=int, default=2, help="processes of both prepare and the floor")
    ap.add_argument("--shard-size", type=int, default=0, help="asl-signs shard size (0: PrepareConfig's default)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cases = {C.SLUG_SIGNS: signs_case, C.SLUG_FS: fs_case}
    tasks = list(cases) if args.task == "both" else [args.task]
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            lines += bench(cases[task](args, Path(tmp)), args.workers, args.repeats, Path(tmp))
    print(f"\n{'':48s} {'sequences':>10s} {'seconds':>9s} {'seq/s':>10s}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
