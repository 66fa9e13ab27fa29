"""Where the quick F1 graph spends its time: TFLite latency (float16, signature runner, 1 thread, T = 160) of
cumulative pieces of an untrained quick F1 grader graph, each converted here: the frame selection, + the features,
+ the stems, + the Squeezeformer blocks, the whole start graph (+ the decoders' cross-attention keys/values, the
fallback decision), then the whole graph with its decoding loop forced to 1 and to 32 steps; the CTC encoder's
quick graph as the reference. Timed in interleaved rounds (this machine is shared: a neighbour slows every piece of a
round alike); the differences between consecutive rows are the pieces' costs. The graph of an untrained model is
the graph of a trained one, so its latency is too (except where decoding stops: a trained model stops at its end
token, see ``fs_models.py``).

    .venv/bin/python benchmarks/f1_start_graph.py [--rounds 8 --calls 25]
"""
from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from fs_speed import build_untrained, call_times_ms, random_input  # noqa: E402  (same folder: run as a script)
from torch import nn

from aslkit import constants as C
from aslkit.export import export_onnx, iterated_to_tflite, onnx_to_saved_model, saved_model_to_tflite
from aslkit.tasks.fingerspelling.export import fs_grader_graph
from aslkit.tasks.fingerspelling.frames import grader_frames
from aslkit.tasks.registry import build_modules
from aslkit.tflite import tflite_runner
from aslkit.train import make_train_config


class Piece(nn.Module):
    """Grader input -> the output of the F1 graph up to ``upto`` (frames, features, stems, blocks)."""

    def __init__(self, features: nn.Module, encoder: nn.Module, upto: str):
        super().__init__()
        self.features, self.encoder, self.upto = features, encoder, upto

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x, valid = grader_frames(inputs, len(self.features.landmarks), self.features.cfg.max_frames)
        if self.upto == "frames":
            return torch.where(x == x, x, torch.zeros_like(x)) * valid[:, None, None]
        f = self.features(x).unsqueeze(0)
        if self.upto == "features":
            return f
        if self.upto == "stems":
            return self.encoder.embed(f, valid.unsqueeze(0))
        return self.encoder(f, valid.unsqueeze(0))


def to_tflite(module: nn.Module, out: Path) -> Path:
    """Float16 TFLite build of a grader-input module."""
    saved = onnx_to_saved_model(export_onnx(module, out.with_suffix(".onnx"), torch.rand(23, 390)),
                                out.with_suffix(".saved_model"))
    return saved_model_to_tflite(saved, out, float16=True, input_shape=(None, 390))


def builds(out: Path) -> dict[str, Path]:
    """Every piece of an untrained quick F1 graph, and the quick CTC graph, converted in ``out``."""
    cfg = make_train_config("quick", {"task": C.SLUG_FS, "model_name": "f1"})
    features, model = build_modules(cfg, C.FS_130)
    model.eval()
    paths = {"CTC encoder, whole graph": build_untrained("quick", out)["float16"]}
    for upto in ("frames", "features", "stems", "blocks"):
        paths[f"F1 up to the {upto}"] = to_tflite(Piece(features, model.encoder, upto), out / f"{upto}.tflite")
    graph = fs_grader_graph(cfg, features, [model], "a", 3)
    it = graph.iterated()
    paths["F1 start graph"] = start = to_tflite(it.start, out / "start.tflite")
    step = onnx_to_saved_model(export_onnx(it.step, out / "step.onnx", (torch.zeros(it.state_size),
                                           torch.zeros(it.fixed_size)), dynamic_frames=False), out / "step_saved_model")
    for steps in (1, 32):                       # stop_index -1: every step runs
        paths[f"F1 + {steps} decoding steps"] = iterated_to_tflite(
            start.with_suffix(".saved_model"), step, replace(it, steps=steps, stop_index=-1),
            out / f"loop{steps}.tflite", float16=True)
    return paths


def interleaved(paths: dict[str, Path], rounds: int, calls: int) -> dict[str, np.ndarray]:
    """Milliseconds of every call of every build, ``rounds`` rounds of ``calls`` calls each, builds interleaved."""
    x = random_input(160)
    runners = {name: tflite_runner(p) for name, p in paths.items()}
    times: dict[str, list[np.ndarray]] = {name: [] for name in paths}
    for run in runners.values():
        call_times_ms(run, [x] * 5)
    for _ in range(rounds):
        for name, run in runners.items():
            times[name].append(call_times_ms(run, [x] * calls))
    return {name: np.concatenate(t) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--calls", type=int, default=25)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        times = interleaved(builds(Path(tmp)), args.rounds, args.calls)
    print(f"{'piece (float16, T = 160)':32s} {'min ms':>7s} {'median ms':>10s} {'piece min ms':>13s}")
    previous = None
    for name, t in times.items():
        step = "" if previous is None or name.startswith("CTC") else f"{t.min() - previous:+13.2f}"
        print(f"{name:32s} {t.min():7.2f} {np.median(t):10.2f} {step:>13s}")
        previous = None if name.startswith("CTC") else t.min()


if __name__ == "__main__":
    main()
