"""Prints TFLite latency (signature runner, 1 thread, ai_edge_litert) of a depthwise convolution exported as a plain
depthwise Conv2d and as a sum of shifted slices times per-channel weights (I2 found the latter 3x faster in TFLite),
for layers of EfficientNet-B0 at the CNN family's 160 x 80 image, float32 and float16; then of the whole CNN family
(grader model, both forms) at T = 38 frames for the chosen presets."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tflite_latency import call_ms, latency_ms  # noqa: E402

from aslkit.export import export_onnx, onnx_to_saved_model, saved_model_to_tflite
from aslkit.tasks.signs.families.cnn.model import use_shifted_depthwise

# (name, channels, height, width, kernel, stride): depthwise layers of EfficientNet-B0 on a 160 x 80 image
LAYERS = [("b0 blocks.0 k3 s1", 32, 80, 40, 3, 1), ("b0 blocks.1.0 k3 s2", 96, 80, 40, 3, 2),
          ("b0 blocks.2.1 k5 s1", 240, 20, 10, 5, 1), ("b0 blocks.5.1 k5 s1", 1152, 5, 3, 5, 1)]


class DepthwiseBlock(nn.Module):
    """A depthwise Conv2d then SiLU on a fixed-size channels-first input."""

    def __init__(self, channels: int, kernel: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=channels, bias=False)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def convert(module: nn.Module, example: torch.Tensor, out: Path, input_shape: tuple) -> dict[str, Path]:
    """float32 and float16 TFLite builds of ``module`` through the kit's export path."""
    saved = onnx_to_saved_model(export_onnx(module.eval(), out / "m.onnx", example), out / "sm")
    return {"float32": saved_model_to_tflite(saved, out / "f32.tflite", input_shape=input_shape),
            "float16": saved_model_to_tflite(saved, out / "f16.tflite", float16=True, input_shape=input_shape)}


def layer_table(calls: int, tmp: Path) -> None:
    """One row per layer: median ms of the plain and the shifted-slice form, float32 and float16."""
    print("depthwise layer alone (input [1, C, H, W]), median ms per call")
    print(f"{'layer':22s} {'C x H x W':>14s} {'plain f32':>10s} {'shift f32':>10s} {'plain f16':>10s} "
          f"{'shift f16':>10s}")
    for name, c, h, w, k, s in LAYERS:
        torch.manual_seed(0)
        block = DepthwiseBlock(c, k, s).eval()
        x = torch.randn(1, c, h, w)
        cells = {}
        for form in ("plain", "shifted"):
            if form == "shifted":
                use_shifted_depthwise(block)
            out = tmp / f"{name.replace(' ', '_')}_{form}"
            builds = convert(block, x, out, (1, c, h, w))
            for b, path in builds.items():
                cells[form, b] = call_ms(path, x.numpy(), calls, 5)[0]
        print(f"{name:22s} {f'{c} x {h} x {w}':>14s} " + " ".join(
            f"{cells[form, b]:10.3f}" for b in ("float32", "float16") for form in ("plain", "shifted")), flush=True)


def family_table(presets: list[str], forms: list[str], calls: int, tmp: Path, overrides: list[str]) -> None:
    """One row per preset: parameters, TFLite size and median / p95 ms at T = 38 of both forms and builds."""
    from aslkit import constants as C
    from aslkit.tasks.registry import build_modules
    from aslkit.tasks.signs.graph import GraderModel
    from aslkit.train import make_train_config
    print("\nCNN family grader model at T = 38 (30 % NaN left hand), median / p95 ms per sequence")
    print(f"{'preset':8s} {'form':8s} {'params M':>9s} {'f32 MB':>7s} {'f16 MB':>7s} {'float32':>14s} "
          f"{'float16':>14s}")
    subset = C.CACHE_SUBSETS["islr"]
    for preset in presets:
        for shifted in [f == "shifted" for f in forms]:
            cfg = make_train_config(preset, ["model_name=cnn", f"model.shifted_depthwise={shifted}", *overrides])
            torch.manual_seed(0)
            features, model = build_modules(cfg, subset)
            grader = GraderModel(subset, features, model.eval()).eval()
            out = tmp / f"{preset}_{shifted}"
            builds = convert(grader, torch.rand(23, 543, 3), out, (None, 543, 3))
            cells = {b: latency_ms(p, 38, calls) for b, p in builds.items()}
            params = sum(p.numel() for p in model.parameters()) / 1e6
            sizes = " ".join(f"{builds[b].stat().st_size / 2 ** 20:7.2f}" for b in ("float32", "float16"))
            times = " ".join(f"{cells[b][0]:7.2f} /{cells[b][1]:5.2f}" for b in ("float32", "float16"))
            print(f"{preset:8s} {'shifted' if shifted else 'plain':8s} {params:9.2f} {sizes} {times}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--presets", default="ci,quick,full", help="comma-separated presets of the family table")
    ap.add_argument("--forms", default="plain,shifted", help="comma-separated depthwise forms of the family table")
    ap.add_argument("--skip-layers", action="store_true", help="only the family table")
    ap.add_argument("--skip-family", action="store_true", help="only the layer table")
    ap.add_argument("overrides", nargs="*", help="TrainConfig overrides of the family models (key=value)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_layers:
            layer_table(args.calls, Path(tmp))
        if not args.skip_family:
            family_table([p for p in args.presets.split(",") if p], [f for f in args.forms.split(",") if f],
                         args.calls, Path(tmp), args.overrides)


if __name__ == "__main__":
    main()
