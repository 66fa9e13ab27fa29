"""Shared fixtures: the real Kaggle samples, small synthetic datasets of both competitions, and the TFLite builds
of an asl-signs grader model compared with torch."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from aslkit import constants as C
from aslkit.synth.writer import generate

FIXTURES = Path(__file__).parent / "fixtures" / "kaggle_samples"
SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "kaggle_samples"


@pytest.fixture(scope="session")
def samples() -> Path:
    """Folder of real competition files (copied unmodified from the project's shared samples)."""
    return FIXTURES


@pytest.fixture(scope="session")
def islr_synth(tmp_path_factory) -> Path:
    """A ci-size synthetic asl-signs dataset (seed 0)."""
    return generate(C.SLUG_SIGNS, tmp_path_factory.mktemp("synth") / C.SLUG_SIGNS, size="ci", seed=0, workers=2)


@pytest.fixture(scope="session")
def fs_synth(tmp_path_factory) -> Path:
    """A ci-size synthetic asl-fingerspelling dataset (seed 0)."""
    return generate(C.SLUG_FS, tmp_path_factory.mktemp("synth") / C.SLUG_FS, size="ci", seed=0, workers=2)


@dataclass
class TFLiteParity:
    """One TFLite build's outputs next to torch's, per named input."""

    outs: dict[str, np.ndarray]
    ref: dict[str, np.ndarray]

    @property
    def scale(self) -> float:
        """Largest |torch logit| over all inputs."""
        return float(max(np.abs(r).max() for r in self.ref.values()))

    @property
    def max_diff(self) -> float:
        """Largest |TFLite - torch| over all inputs."""
        return float(max(np.abs(self.outs[k] - self.ref[k]).max() for k in self.ref))

    @property
    def max_relative_diff(self) -> float:
        """Largest |TFLite - torch| of an input over max(1, its largest |torch logit|)."""
        return float(max(np.abs(self.outs[k] - r).max() / max(1.0, np.abs(r).max()) for k, r in self.ref.items()))

    @property
    def agreement(self) -> float:
        """Share of inputs whose top class is the same in TFLite and torch."""
        return float(np.mean([self.outs[k].argmax() == r.argmax() for k, r in self.ref.items()]))


@pytest.fixture
def grader_tflite(tmp_path) -> Callable[[torch.nn.Module, dict[str, np.ndarray]], dict[str, TFLiteParity]]:
    """``check(grader, inputs)``: the float32 and float16 TFLite builds of an asl-signs ``GraderModel`` (torch ->
    ONNX -> onnx2tf) run on every input, after asserting builtin ops only and finite ``[250]`` outputs."""
    from aslkit.export import export_onnx, onnx_to_saved_model, saved_model_to_tflite
    from aslkit.tflite import op_names, tflite_runner

    def check(grader: torch.nn.Module, inputs: dict[str, np.ndarray]) -> dict[str, TFLiteParity]:
        saved = onnx_to_saved_model(export_onnx(grader, tmp_path / "m.onnx", torch.rand(23, 543, 3)), tmp_path / "sm")
        builds = {"float32": saved_model_to_tflite(saved, tmp_path / "f32.tflite"),
                  "float16": saved_model_to_tflite(saved, tmp_path / "f16.tflite", float16=True)}
        with torch.no_grad():
            ref = {k: grader(torch.from_numpy(x)).numpy() for k, x in inputs.items()}
        parity = {}
        for build, path in builds.items():
            ops = op_names(path)
            assert all(op.isupper() and "FLEX" not in op and "CUSTOM" not in op for op in ops), (build, ops)
            run = tflite_runner(path)
            outs = {k: run(x) for k, x in inputs.items()}
            assert all(o.shape == (250,) and np.isfinite(o).all() for o in outs.values()), build
            parity[build] = TFLiteParity(outs, ref)
        return parity

    return check


def write_photo_video(path: Path, frames: int) -> Path:
    """A real photograph (scikit-image's astronaut, Eileen Collins: face and upper body, no hands) as an MJPG video of
    ``frames`` frames moving 3 pixels to the right per frame (needs the video extra and scikit-image)."""
    import cv2
    from skimage.data import astronaut
    rgb = astronaut()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (rgb.shape[1], rgb.shape[0]))
    for t in range(frames):
        writer.write(cv2.cvtColor(np.roll(rgb, 3 * t, axis=1), cv2.COLOR_RGB2BGR))
    writer.release()
    assert path.stat().st_size > 0
    return path
