"""Where the quick F1 graph spends its time: the TFLite latency (float16, 1 thread, T = 160) of the start graph alone
(features, encoder, the decoders' cross-attention keys/values) of untrained quick F1 models with one setting changed
at a time (stem channels, width, depth, frames), each converted here. The graph of an untrained model is the graph of a
trained one, so its latency is too.

    .venv/bin/python benchmarks/f1_start_graph.py [--calls 30]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from fs_speed import latency_ms  # noqa: E402  (same folder: run as a script)

from aslkit import constants as C
from aslkit.export import export_onnx, onnx_to_saved_model, saved_model_to_tflite
from aslkit.tasks.fingerspelling.export import fs_grader_graph
from aslkit.tasks.registry import build_modules
from aslkit.train import make_train_config

VARIANTS = {"quick": {}, "stem channels 8": {"model.stem_channels": 8}, "max_frames 128": {"features.max_frames": 128},
            "dim 64": {"model.dim": 64}, "2 blocks": {"model.blocks": 2}}


def start_graph_ms(overrides: dict, calls: int) -> tuple[float, float]:
    """Median and p95 ms of the float16 start graph of an untrained quick F1 model with ``overrides``."""
    cfg = make_train_config("quick", {"task": C.SLUG_FS, "model_name": "f1", **overrides})
    features, model = build_modules(cfg, C.FS_130)
    graph = fs_grader_graph(cfg, features, [model.eval()], "a", 3)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(graph.start, Path(tmp) / "start.onnx", torch.rand(23, 390))
        saved = onnx_to_saved_model(onnx_path, Path(tmp) / "start_saved_model")
        tflite = saved_model_to_tflite(saved, Path(tmp) / "start.tflite", float16=True, input_shape=(None, 390))
        return latency_ms(tflite, 160, calls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=30)
    args = ap.parse_args()
    for name, overrides in VARIANTS.items():
        median, p95 = start_graph_ms(overrides, args.calls)
        print(f"{name:16s} start graph T=160: median {median:6.2f} ms, p95 {p95:6.2f} ms", flush=True)


if __name__ == "__main__":
    main()
