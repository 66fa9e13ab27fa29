"""Prints the preparation throughput (sequences/s) next to the raw pyarrow read time of the same files.

    .venv/bin/python benchmarks/prepare_speed.py                      # synthetic data of --synth-size (ci)
    .venv/bin/python benchmarks/prepare_speed.py --data-dir input/asl-signs --limit 5000

Three figures on the same sequences: a plain single-process ``pd.read_parquet(columns=["x", "y", "z"])`` loop (the
floor of any reader), a fresh ``prepare`` into a temporary folder with the given workers, and a second ``prepare``
run on that cache (the cost of checking that every shard is up to date).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from aslkit import constants as C
from aslkit.data.islr import read_train_csv
from aslkit.paths import resolve_data_dir
from aslkit.tasks.signs.prepare import PrepareConfig, build_cache


def limited_copy(data_dir: Path, limit: int, tmp: Path) -> Path:
    """A folder whose train.csv lists the first ``limit`` sequences (landmark files linked, not copied)."""
    out = tmp / "data"
    out.mkdir()
    pd.read_csv(data_dir / "train.csv").head(limit).to_csv(out / "train.csv", index=False)
    for name in ("sign_to_prediction_index_map.json", "train_landmark_files"):
        os.symlink(data_dir / name, out / name)
    return out


def raw_read_seconds(data_dir: Path, paths: list[str]) -> float:
    """Seconds to read x, y, z of every file in one process."""
    t0 = time.perf_counter()
    for p in paths:
        pd.read_parquet(data_dir / p, columns=["x", "y", "z"])
    return time.perf_counter() - t0


def row(what: str, n: int, seconds: float, note: str = "") -> str:
    return f"{what:34s} {n:10d} {seconds:9.2f} {n / seconds:10.1f}  {note}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="", help="asl-signs folder (default: resolve_data_dir)")
    ap.add_argument("--synth-size", default="ci", choices=["ci", "quick", "full"],
                    help="synthetic size when no data is found")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N rows of train.csv (0: all)")
    ap.add_argument("--workers", type=int, default=0, help="prepare processes (0: all cores)")
    ap.add_argument("--shard-size", type=int, default=500)
    ap.add_argument("--subset", default="islr", choices=sorted(C.CACHE_SUBSETS))
    args = ap.parse_args()
    data_dir = resolve_data_dir(C.SLUG_SIGNS, args.data_dir or None, synth_size=args.synth_size).path
    with tempfile.TemporaryDirectory() as tmp:
        if args.limit:
            data_dir = limited_copy(data_dir, args.limit, Path(tmp))
        paths = read_train_csv(data_dir)["path"].tolist()
        raw = raw_read_seconds(data_dir, paths)
        cfg = PrepareConfig(data_dir=str(data_dir), out_dir=str(Path(tmp) / "cache"), subset=args.subset,
                            shard_size=args.shard_size, workers=args.workers)
        first = build_cache(cfg)
        second = build_cache(cfg)
    workers = args.workers or os.cpu_count()
    print(f"\n{'':34s} {'sequences':>10s} {'seconds':>9s} {'seq/s':>10s}")
    print(row("raw pd.read_parquet x,y,z (1 proc)", len(paths), raw))
    print(row(f"prepare, {workers} worker(s)", first.n_sequences, first.seconds,
              f"{len(first.built)} shards, {first.n_bytes / 2 ** 20:.1f} MB, "
              f"{first.n_sequences / first.seconds / workers:.1f} seq/s per worker"))
    print(row("prepare again (all up to date)", second.n_sequences, second.seconds))


if __name__ == "__main__":
    main()
