"""Prints TFLite latency per sequence (signature runner, 1 thread, ai_edge_litert) at T = 16, 38, 96, 384 frames,
for the float32 and float16 builds of a converted run, or of untrained models of a preset (one per asl-signs family
named with --models, converted here; --ensemble adds the one-file ensemble of them all). The graph of an untrained
model is the graph of a trained one, so its latency is too."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from aslkit.export import export_onnx, onnx_to_saved_model, saved_model_to_tflite
from aslkit.tflite import tflite_runner


def grader_module(preset: str, model_name: str):
    """The grader-input module of an untrained model of ``preset`` and family ``model_name``."""
    from aslkit import constants as C
    from aslkit.tasks.registry import build_modules
    from aslkit.tasks.signs.graph import GraderModel
    from aslkit.train import make_train_config
    cfg = make_train_config(preset, {"model_name": model_name})
    subset = C.CACHE_SUBSETS["islr"]
    features, model = build_modules(cfg, subset)
    return GraderModel(subset, features, model.eval()).eval()


def convert_module(module, out: Path) -> dict[str, Path]:
    """float32 and float16 TFLite builds of a grader-input module, in ``out``."""
    import torch
    out.mkdir(parents=True, exist_ok=True)
    saved = onnx_to_saved_model(export_onnx(module, out / "m.onnx", torch.rand(23, 543, 3)), out / "sm")
    return {"float32": saved_model_to_tflite(saved, out / "f32.tflite"),
            "float16": saved_model_to_tflite(saved, out / "f16.tflite", float16=True)}


def call_ms(path: Path, x: np.ndarray, calls: int, warmup: int) -> tuple[float, float]:
    """Median and p95 latency (ms) of one signature-runner call on ``x`` (``ai_edge_litert``, 1 thread)."""
    run = tflite_runner(path, "litert", num_threads=1)
    for _ in range(warmup):
        run(x)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        run(x)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95))


def latency_ms(path: Path, T: int, calls: int, warmup: int = 5) -> tuple[float, float]:
    """Median and p95 latency (ms) of one call on a random [T, 543, 3] input with 30 % NaN hands."""
    rng = np.random.default_rng(T)
    x = rng.uniform(0.2, 0.8, (T, 543, 3)).astype(np.float32)
    x[rng.random(T) < 0.3, 468:489] = np.nan
    return call_ms(path, x, calls, warmup)


def print_table(title: str, builds: dict[str, Path], calls: int) -> None:
    """One line per build: size and median / p95 latency at each length."""
    print(f"\n{title}: median / p95 latency in ms per sequence")
    print(f"{'build':8s} {'size MB':>8s} " + " ".join(f"{'T=' + str(t):>13s}" for t in (16, 38, 96, 384)))
    for name, path in builds.items():
        cells = [latency_ms(path, t, calls) for t in (16, 38, 96, 384)]
        print(f"{name:8s} {path.stat().st_size / 2 ** 20:8.2f} " + " ".join(f"{m:6.2f} /{p:5.2f}" for m, p in cells),
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", default=None, help="a converted run folder (uses <run>/export/model_float*.tflite)")
    ap.add_argument("--preset", default="quick", help="preset of the untrained models when no --run is given")
    ap.add_argument("--models", nargs="+", default=["transformer"],
                    help="asl-signs families (aslkit.tasks.signs.families)")
    ap.add_argument("--ensemble", action="store_true", help="also the one-file ensemble of the --models")
    ap.add_argument("--calls", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.run:
            print_table(args.run, {b: Path(args.run) / "export" / f"model_{b}.tflite" for b in ("float32", "float16")},
                        args.calls)
            return
        modules = {m: grader_module(args.preset, m) for m in args.models}
        for name, module in modules.items():
            n_params = sum(p.numel() for p in module.parameters()) / 1e6
            print_table(f"{name} ({args.preset}, {n_params:.2f} M parameters)",
                        convert_module(module, Path(tmp) / name), args.calls)
        if args.ensemble:
            from aslkit.tasks.signs.ensemble import EnsembleGraderModel
            ens = EnsembleGraderModel(list(modules.values()), [1 / len(modules)] * len(modules)).eval()
            print_table("ensemble of " + " + ".join(modules), convert_module(ens, Path(tmp) / "ensemble"), args.calls)


if __name__ == "__main__":
    main()
