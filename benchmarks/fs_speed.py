"""asl-fingerspelling figures: preparation throughput against a raw pyarrow read of the same columns, and TFLite
latency per phrase (signature runner, 1 thread) at T = 32, 160, 400, 800 frames for the float32 and float16 builds
of a converted run (or of an untrained model of a preset, converted here).

    .venv/bin/python benchmarks/fs_speed.py --run logs/<fs run>
    .venv/bin/python benchmarks/fs_speed.py --data-dir input/asl-fingerspelling
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tflite_latency import call_ms  # noqa: E402  (same folder: run as a script)

from aslkit import constants as C
from aslkit.data.fs import landmarks_to_blocks
from aslkit.export import export_onnx, onnx_to_saved_model, saved_model_to_tflite
from aslkit.paths import resolve_data_dir
from aslkit.tasks.fingerspelling.prepare import PrepareFSConfig, build_fs_cache

LENGTHS = (32, 160, 400, 800)


def preparation(data_dir: Path, workers: int) -> None:
    """Raw ``pq.read_table`` of the 390 selected columns of every train file vs a fresh and a no-op ``prepare``."""
    files = sorted((data_dir / "train_landmarks").glob("*.parquet"))
    t0 = time.perf_counter()
    rows = sum(pq.read_table(f, columns=C.FS_130_COLUMNS).num_rows for f in files)
    raw = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        cfg = PrepareFSConfig(data_dir=str(data_dir), out_dir=str(Path(tmp) / "cache"), workers=workers)
        t0 = time.perf_counter()
        rep = build_fs_cache(cfg)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_fs_cache(cfg)
        second = time.perf_counter() - t0
    n = rep.n_sequences
    print(f"{len(files)} files, {n} sequences, {rows} frames: raw pyarrow read (1 process) {raw:.2f} s "
          f"({n / raw:.0f} sequences/s); prepare ({workers or 'all'} workers) {first:.2f} s ({n / first:.0f} "
          f"sequences/s); second, no-op prepare {second:.2f} s")


def build_untrained(preset: str, out: Path) -> dict[str, Path]:
    """Convert an untrained fingerspelling model of ``preset`` (the same graph as a trained one)."""
    import torch

    from aslkit.tasks.fingerspelling.export import FSGraderModel
    from aslkit.tasks.registry import build_modules
    from aslkit.train import make_train_config
    cfg = make_train_config(preset, {"task": C.SLUG_FS})
    features, model = build_modules(cfg, C.FS_130)
    grader = FSGraderModel(features, model.eval(), "a", 3).eval()
    saved = onnx_to_saved_model(export_onnx(grader, out / "m.onnx", torch.rand(23, 390)), out / "sm")
    return {"float32": saved_model_to_tflite(saved, out / "f32.tflite", input_shape=(None, 390)),
            "float16": saved_model_to_tflite(saved, out / "f16.tflite", float16=True, input_shape=(None, 390))}


def random_input(t: int) -> np.ndarray:
    """A random grader input ``[t, 390]`` (seeded by ``t``) with 40 % frames without hands."""
    rng = np.random.default_rng(t)
    x = rng.uniform(0.2, 0.8, (t, 130, 3)).astype(np.float32)
    x[np.ix_(rng.random(t) < 0.4, np.flatnonzero(np.isin(C.FS_130, C.HANDS)))] = np.nan
    return landmarks_to_blocks(x)


def call_times_ms(runner, inputs: list[np.ndarray]) -> np.ndarray:
    """Milliseconds of one call of ``runner`` on each input."""
    times = []
    for x in inputs:
        t0 = time.perf_counter()
        runner(x)
        times.append((time.perf_counter() - t0) * 1000)
    return np.array(times)


def latency_ms(path: Path, t: int, calls: int, warmup: int = 3) -> tuple[float, float]:
    """Median and p95 latency (ms) of one call on ``random_input(t)``."""
    return call_ms(path, random_input(t), calls, warmup)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=None, help="a converted fingerspelling run (its export/model_float*.tflite)")
    ap.add_argument("--preset", default="quick", help="preset of the untrained model when no --run is given")
    ap.add_argument("--data-dir", default="", help="asl-fingerspelling folder (default: resolve_data_dir)")
    ap.add_argument("--synth-size", default="quick", choices=["ci", "quick", "full"])
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--calls", type=int, default=30)
    args = ap.parse_args()
    preparation(resolve_data_dir(C.SLUG_FS, args.data_dir or None, synth_size=args.synth_size).path, args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        builds = ({b: Path(args.run) / "export" / f"model_{b}.tflite" for b in ("float32", "float16")} if args.run
                  else build_untrained(args.preset, Path(tmp)))
        print("TFLite latency per phrase, median / p95 ms (1 thread)")
        print(f"{'build':8s} {'size MB':>8s} " + " ".join(f"{'T=' + str(t):>15s}" for t in LENGTHS))
        for name, path in builds.items():
            cells = [latency_ms(path, t, args.calls) for t in LENGTHS]
            size = path.stat().st_size / 2 ** 20
            print(f"{name:8s} {size:8.2f} " + " ".join(f"{m:7.2f} /{p:6.2f}" for m, p in cells))


if __name__ == "__main__":
    main()
