"""TFLite runners: a ``.tflite`` file or a ``submission.zip`` through its ``serving_default`` signature, as Kaggle's
graders call it (``inputs`` -> ``outputs``), with ``ai_edge_litert`` (the grader's runtime) or ``tf.lite``."""
from __future__ import annotations

import json
import os
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

INPUT_NAME = "inputs"


OUTPUT_NAME = "outputs"


SIGNATURE = "serving_default"

# Kaggle grades on its own CPU, assumed up to this many times slower per thread than the machine that measures:
# a build passes the latency gate when its measured mean latency times this factor fits the competition's budget.
LATENCY_SAFETY = 2.0


class GateError(RuntimeError):
    """A gate of a build or a submission failed (size, ops, parity, latency); the message names which."""


def latency_failure(mean_ms: float, budget_ms: float, safety: float = LATENCY_SAFETY) -> str:
    """The latency gate: "" when ``mean_ms`` (measured, 1 thread) times ``safety`` fits ``budget_ms`` per sequence
    (the competition's limit on average), else a line saying by how much it does not."""
    if mean_ms * safety <= budget_ms:
        return ""
    return (f"mean latency {mean_ms:.1f} ms x safety factor {safety:g} > {budget_ms:.0f} ms per sequence "
            f"(Kaggle's limit on average)")


@contextmanager
def native_stderr_to(log: str | Path) -> Iterator[Path]:
    """Write the process's standard error (file descriptor 2: TensorFlow's C++ logging, such as its CUDA
    registration messages on a CPU machine, and Python warnings) to ``log`` for the block, so that the console
    shows the kit's own lines."""
    log = Path(log)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log, "wb") as f:
            os.dup2(f.fileno(), 2)
            yield log
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


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


def submission_files(submission: str | Path) -> list[str]:
    """The files of a submission zip other than ``model.tflite`` (e.g. ``inference_args.json``); ValueError naming
    the file when it is not a zip holding a ``model.tflite``."""
    submission = Path(submission)
    if submission.suffix != ".zip" or not submission.is_file():
        raise ValueError(f"{submission}: not a submission.zip")
    with zipfile.ZipFile(submission) as z:
        names = z.namelist()
    if "model.tflite" not in names:
        raise ValueError(f"{submission}: no model.tflite inside (has {names})")
    return sorted(n for n in names if n != "model.tflite")


def selected_columns(submission: str | Path) -> list[str] | None:
    """``selected_columns`` of the ``inference_args.json`` of a submission zip or of a run's ``export/`` folder (the
    columns the grader reads), or None when it has none (the grader then reads every column)."""
    submission = Path(submission)
    if submission.is_dir():
        path = submission / "inference_args.json"
        args = json.loads(path.read_text()) if path.is_file() else None
    elif submission.suffix == ".zip":
        with zipfile.ZipFile(submission) as z:
            names = z.namelist()
            args = json.loads(z.read("inference_args.json")) if "inference_args.json" in names else None
    else:
        return None
    if args is None:
        return None
    if "selected_columns" not in args:
        raise ValueError(f"{submission}: inference_args.json has no 'selected_columns' (keys {sorted(args)})")
    return list(args["selected_columns"])


def grader_runner(submission: str | Path, num_threads: int = 1) -> tuple[Callable, int]:
    """The ``serving_default`` signature runner of a submission's ``model.tflite`` (``ai_edge_litert``, as the grader
    builds it) and the model's size in bytes; ValueError naming the file when the signature is missing."""
    from ai_edge_litert.interpreter import Interpreter
    model = _model_bytes(submission)
    interpreter = Interpreter(model_content=model, num_threads=num_threads)
    if SIGNATURE not in interpreter.get_signature_list():
        raise ValueError(f"{submission}: required input signature {SIGNATURE!r} not found")
    return interpreter.get_signature_runner(SIGNATURE), len(model)
