"""torch → ONNX → onnx2tf → TFLite conversion of a whole grader-input model, and the runners to check it.

The exported module takes exactly what Kaggle's grader feeds (``inputs``: float32 ``[T, 543, 3]`` with NaNs for
asl-signs) and returns ``outputs``. Preprocessing is the same torch code as in training, carried through the export.
onnx2tf writes a SavedModel; it is re-wrapped with a ``serving_default`` signature named ``inputs -> outputs`` and
converted with TensorFlow's converter, builtin ops only (float32 and float16 builds).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

INPUT_NAME = "inputs"
OUTPUT_NAME = "outputs"
SIGNATURE = "serving_default"


def export_onnx(module: nn.Module, path: str | Path, example: torch.Tensor, opset: int = 17) -> Path:
    """Export ``module`` (one sequence in, one output) to ONNX with a dynamic first axis (frames)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.backends.mha.set_fastpath_enabled(False)
    module = module.eval()
    with torch.no_grad():
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "T"}})
    return path


def _venv_env() -> dict[str, str]:
    """Environment whose PATH starts with this interpreter's bin (onnx2tf shells out to ``onnxsim``)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def onnx_to_saved_model(onnx_path: str | Path, out_dir: str | Path) -> Path:
    """Run onnx2tf (input layout kept as is) and return the SavedModel folder; RuntimeError with its log on failure."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    exe = Path(sys.executable).parent / "onnx2tf"
    cmd = [str(exe) if exe.exists() else "onnx2tf", "-i", str(onnx_path), "-o", str(out_dir), "-osd",
           "-kat", INPUT_NAME, "-dsm", "-n"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_venv_env())
    log = out_dir.parent / f"{out_dir.name}.onnx2tf.log"
    log.write_text(res.stdout + "\n" + res.stderr)
    if res.returncode != 0 or not (out_dir / "saved_model.pb").is_file():
        tail = "\n".join((res.stdout + res.stderr).splitlines()[-25:])
        raise RuntimeError(f"onnx2tf failed on {onnx_path} (log: {log}):\n{tail}")
    return out_dir


def saved_model_to_tflite(saved_dir: str | Path, out_path: str | Path, float16: bool = False,
                          input_shape: tuple = (None, 543, 3)) -> Path:
    """Re-wrap onnx2tf's SavedModel as ``serving_default(inputs) -> {outputs}`` and convert it (builtin ops)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_dir))
    inner = loaded.signatures[SIGNATURE]
    in_key = next(iter(inner.structured_input_signature[1]))

    class Wrapped(tf.Module):
        def __init__(self):
            super().__init__()
            self.loaded = loaded

        @tf.function(input_signature=[tf.TensorSpec(list(input_shape), tf.float32, name=INPUT_NAME)])
        def serve(self, inputs):
            out = inner(**{in_key: inputs})
            return {OUTPUT_NAME: next(iter(out.values()))}

    wrapped = Wrapped()
    tmp = Path(str(out_path) + ".saved_model")
    if tmp.exists():
        shutil.rmtree(tmp)
    tf.saved_model.save(wrapped, str(tmp), signatures={SIGNATURE: wrapped.serve})
    conv = tf.lite.TFLiteConverter.from_saved_model(str(tmp), signature_keys=[SIGNATURE])
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if float16:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    out_path = Path(out_path)
    out_path.write_bytes(conv.convert())
    shutil.rmtree(tmp)
    return out_path


def tflite_runner(path: str | Path, runtime: str = "litert", num_threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """``f(x) -> outputs`` through the ``serving_default`` signature, with ``ai_edge_litert`` or ``tf.lite``."""
    if runtime == "litert":
        from ai_edge_litert.interpreter import Interpreter
    elif runtime == "tflite":
        import tensorflow as tf
        Interpreter = tf.lite.Interpreter  # noqa: N806
    else:
        raise ValueError(f"runtime must be 'litert' or 'tflite', got {runtime!r}")
    interp = Interpreter(model_path=str(path), num_threads=num_threads)
    sigs = interp.get_signature_list()
    if SIGNATURE not in sigs:
        raise ValueError(f"{path}: required signature {SIGNATURE!r} not found (has {sorted(sigs)})")
    runner = interp.get_signature_runner(SIGNATURE)
    return lambda x: runner(**{INPUT_NAME: np.asarray(x, dtype=np.float32)})[OUTPUT_NAME]


def op_names(path: str | Path) -> list[str]:
    """Names of the operators in a TFLite file (e.g. to check that no Flex/custom op is used)."""
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=str(path))
    return sorted({d["op_name"] for d in interp._get_ops_details()})


def degenerate_inputs(n_landmarks: int = 543, seed: int = 0) -> dict[str, np.ndarray]:
    """Edge cases every build must answer with finite outputs: 1 and 2 frames, no hands, all NaN, 1,000 frames."""
    from aslkit import constants as C
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.8, (40, n_landmarks, 3)).astype(np.float32)
    no_hands = base.copy()
    if n_landmarks == C.ROWS_PER_FRAME:
        no_hands[:, C.HANDS] = np.nan
    return {"1 frame": base[:1], "2 frames": base[:2], "all-NaN hands": no_hands,
            "all-NaN input": np.full((12, n_landmarks, 3), np.nan, np.float32),
            "1000 frames": rng.uniform(0.2, 0.8, (1000, n_landmarks, 3)).astype(np.float32)}
