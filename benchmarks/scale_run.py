"""The scale run: the kit's preparation and one training epoch at a size close to the real download.

    .venv/bin/python benchmarks/scale_run.py                       # everything under /tmp/aslkit_scale
    .venv/bin/python benchmarks/scale_run.py --task asl-signs --skip-train

Per competition: ``aslkit synth --size scale`` (21,000 asl-signs files; 21 fingerspelling files of 1,000 sequences;
generated once, not timed), then a fresh ``aslkit prepare`` of those files (``--workers`` processes, the ``full``
preset's shards), then one epoch of ``aslkit train --preset quick`` over that cache (training and validation of fold
0, the task's default family). Each step runs as its own command; its wall time is measured, and its peak memory is
the largest sum, over the command and every process it started (prepare and loader workers), of the proportional set
size (shared pages counted once; it includes the memory-mapped cache pages, which the kernel can drop) and of the
anonymous resident memory (what the processes themselves hold), sampled every 0.2 s. The preparation is projected
linearly to the real download (94,477 asl-signs files; 68 + 53 fingerspelling files of about 1,000 sequences).
Timings only; nothing is asserted.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

from aslkit import constants as C
from aslkit.synth import synthetic_info

REAL_FILES = {C.SLUG_SIGNS: 94_477, C.SLUG_FS: 68 + 53}          # landmark files of the real download
ASLKIT = [sys.executable, "-m", "aslkit"]


def tree_memory_mb(proc: psutil.Process) -> tuple[float, float]:
    """Memory of ``proc`` and its descendants in MB: the proportional set size (shared pages counted once; it
    includes the pages of memory-mapped cache shards, which the kernel can drop) and the anonymous resident memory
    (resident minus file-backed and shared pages: what the processes themselves hold)."""
    pss = anon = 0
    for p in [proc] + proc.children(recursive=True):
        try:
            info = p.memory_full_info()
            pss += getattr(info, "pss", info.rss)
            anon += info.rss - getattr(info, "shared", 0)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pss / 2**20, anon / 2**20


def run_measured(cmd: list[str], log: Path) -> tuple[float, float, float]:
    """Run ``cmd`` (output to ``log``); its wall seconds and the peaks of ``tree_memory_mb`` (MB)."""
    peak, done = [0.0, 0.0], threading.Event()
    with open(log, "w") as out:
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        proc = psutil.Process(child.pid)

        def sample() -> None:
            while not done.is_set():
                try:
                    peak[:] = [max(a, b) for a, b in zip(peak, tree_memory_mb(proc))]
                except psutil.NoSuchProcess:
                    return
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = child.wait()
        seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
    if rc:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {rc}); see {log}")
    return seconds, peak[0], peak[1]


def landmark_files(data: Path, task: str) -> tuple[int, int]:
    """Landmark files and sequences of a synthetic dataset folder."""
    tables = ["train.csv"] + (["supplemental_metadata.csv"] if task == C.SLUG_FS else [])
    rows = pd.concat([pd.read_csv(data / t) for t in tables])
    return int(rows["path"].nunique()), len(rows)


def scale_task(task: str, root: Path, workers: int, train: bool) -> list[dict]:
    """The rows of one competition: prepare (and one epoch) at the scale size."""
    data, cache, logs = root / task, root / "prepared" / task, root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    info = synthetic_info(data)
    if not info or info.get("size") != "scale":
        print(f"[scale] generating {task} (size scale) into {data}", flush=True)
        subprocess.run(ASLKIT + ["synth", "--task", task, "--size", "scale", "--out", str(data), "--overwrite"],
                       check=True)
    files, sequences = landmark_files(data, task)
    shutil.rmtree(cache, ignore_errors=True)
    print(f"[scale] prepare {task}: {files} files, {sequences} sequences", flush=True)
    seconds, pss, anon = run_measured(ASLKIT + ["prepare", "--task", task, "--data-dir", str(data), "--preset", "full",
                                          f"out_dir={cache}", f"workers={workers}"], logs / f"prepare_{task}.log")
    projected = seconds * REAL_FILES[task] / files
    rows = [{"task": task, "step": "prepare", "files": files, "sequences": sequences, "seconds": round(seconds, 1),
             "sequences/s": round(sequences / seconds), "peak PSS MB": round(pss),
             "peak anonymous MB": round(anon),
             "projected to the real files": f"{projected / 60:.1f} min ({REAL_FILES[task]:,} files)"}]
    if train:
        run = root / "runs" / task
        print(f"[scale] one training epoch {task}", flush=True)
        seconds, pss, anon = run_measured(ASLKIT + ["train", "--preset", "quick", "--overwrite", f"task={task}",
                                              f"prepared_dir={cache}", "optim.epochs=1", f"run_name={run}"],
                                     logs / f"train_{task}.log")
        rows.append({"task": task, "step": "one epoch (train + validation, quick preset)", "files": files,
                     "sequences": sequences, "seconds": round(seconds, 1),
                     "sequences/s": round(sequences / seconds), "peak PSS MB": round(pss),
                     "peak anonymous MB": round(anon),
                     "projected to the real files": ""})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="/tmp/aslkit_scale", help="folder of the data, caches and runs")
    ap.add_argument("--task", choices=C.SLUGS, action="append", help="competition (default both)")
    ap.add_argument("--workers", type=int, default=2, help="prepare processes")
    ap.add_argument("--skip-train", action="store_true", help="prepare only")
    args = ap.parse_args()
    rows = [r for task in args.task or list(C.SLUGS)
            for r in scale_task(task, Path(args.root), args.workers, not args.skip_train)]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
