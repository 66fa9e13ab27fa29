"""Prints the generator's throughput (recordings/s, MB/s) for both tasks at a given size."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from aslkit import constants as C
from aslkit.synth.writer import generate, synthetic_info


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2 ** 20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="ci", choices=["ci", "quick", "full"])
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args()
    print(f"{'task':20s} {'size':6s} {'workers':>7s} {'recordings':>10s} {'seconds':>8s} {'rec/s':>8s} {'MB':>8s}")
    for task in C.SLUGS:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            out = generate(task, Path(tmp) / task, size=args.size, workers=args.workers or None)
            dt = time.perf_counter() - t0
            n = synthetic_info(out)["sequences"]
            print(f"{task:20s} {args.size:6s} {args.workers or 'all':>7} {n:10d} {dt:8.1f} {n / dt:8.1f} "
                  f"{folder_mb(out):8.1f}")


if __name__ == "__main__":
    main()
