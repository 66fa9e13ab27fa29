"""TFLite runners: a ``.tflite`` file or a ``submission.zip`` through its ``serving_default`` signature, as Kaggle's
graders call it (``inputs`` -> ``outputs``), with ``ai_edge_litert`` (the grader's runtime) or ``tf.lite``."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

INPUT_NAME = "inputs"


OUTPUT_NAME = "outputs"


SIGNATURE = "serving_default"


def tflite_runner(path: str | Path, runtime: str = "litert", num_threads: int = 1
                  ) -> Callable[[np.ndarray], np.ndarray]:
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


def _model_bytes(submission: str | Path) -> bytes:
    """``model.tflite`` from a submission zip (or a bare .tflite file)."""
    submission = Path(submission)
    if submission.suffix == ".zip":
        with zipfile.ZipFile(submission) as z:
            if "model.tflite" not in z.namelist():
                raise ValueError(f"{submission}: no model.tflite inside (has {z.namelist()})")
            return z.read("model.tflite")
    return submission.read_bytes()


def grader_runner(submission: str | Path, num_threads: int = 1) -> tuple[Callable, int]:
    """The ``serving_default`` signature runner of a submission's ``model.tflite`` (``ai_edge_litert``, as the grader
    builds it) and the model's size in bytes; ValueError naming the file when the signature is missing."""
    from ai_edge_litert.interpreter import Interpreter
    model = _model_bytes(submission)
    interpreter = Interpreter(model_content=model, num_threads=num_threads)
    if SIGNATURE not in interpreter.get_signature_list():
        raise ValueError(f"{submission}: required input signature {SIGNATURE!r} not found")
    return interpreter.get_signature_runner(SIGNATURE), len(model)
