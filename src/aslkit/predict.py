"""``aslkit predict`` [notebook 05]: a trained model on new recordings, as torch (a run folder) or as the TFLite file
Kaggle grades (the run's exported model or a ``submission.zip``).

The input is read exactly as the task's grader clone reads it (asl-signs: one long-format parquet or a ``.npy``
``[T, 543, 3]``; fingerspelling: the sequences of a wide parquet with the model's selected columns), so a TFLite
prediction here is what Kaggle's grader would compute. asl-signs answers the top-k signs with their softmax
probabilities; fingerspelling the phrase the grader decodes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from aslkit.data.errors import DataError
from aslkit.runs import CONFIG_FILE, DATA_FILE
from aslkit.submit import check_export
from aslkit.tasks.base import TaskPlugin
from aslkit.tasks.registry import plugin, plugin_of_run, plugin_of_submission
from aslkit.tflite import OUTPUT_NAME, grader_runner, selected_columns
from aslkit.video import holistic_landmarks, video_frames


@dataclass
class Predictor:
    """A loaded model: its task, the function from one grader input to its outputs, the columns it reads."""

    plugin: TaskPlugin
    outputs: Callable[[np.ndarray], np.ndarray]
    columns: list[str] | None
    source: str                      # what runs: "torch <run>" or "tflite <file>"


def tflite_predictor(plugin: TaskPlugin, submission: Path, columns: list[str] | None) -> Predictor:
    """The grader's ``serving_default`` runner of a ``.zip`` or ``.tflite`` (one thread)."""
    runner, _ = grader_runner(submission)
    return Predictor(plugin, lambda x: np.asarray(runner(inputs=x)[OUTPUT_NAME]), columns, f"tflite {submission}")


def torch_predictor(run: Path, checkpoint: str = "best") -> Predictor:
    """The run's grader-input module in torch (eval mode, no gradients)."""
    plugin = plugin_of_run(run)
    module = plugin.predict.grader_module(run, checkpoint).eval()

    def outputs(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
    return Predictor(plugin, outputs, plugin.predict.input_columns(module), f"torch {run} ({checkpoint})")


def load_predictor(model: str | Path, tflite: bool = False, checkpoint: str = "best") -> Predictor:
    """A run or one-file ensemble folder (torch; its exported, gate-checked TFLite with ``tflite``) or a
    ``submission.zip``."""
    model = Path(model)
    if model.is_dir():
        if not any((model / f).is_file() for f in (CONFIG_FILE, DATA_FILE)):
            raise FileNotFoundError(f"{model}: not a run folder (no {CONFIG_FILE} or {DATA_FILE})")
        if not tflite:
            return torch_predictor(model, checkpoint)
        check_export(model)
        columns = selected_columns(model / "export")
        return tflite_predictor(plugin_of_run(model), model / "export" / "model.tflite", columns)
    if model.suffix == ".zip" and model.is_file():
        return tflite_predictor(plugin_of_submission(model), model, selected_columns(model))
    raise FileNotFoundError(f"{model}: expected a run folder or a submission.zip")


def answers(predictor: Predictor, path: str | Path, sequence_id: int | None = None, top_k: int = 5) -> list[dict]:
    """The predictor's answer for every recording of one file: ``{"input", "id", "frames", "model", <the task's
    answer>, "text"}``."""
    task = predictor.plugin.predict
    out = []
    for seq_id, x in task.read_inputs(Path(path), predictor.columns, sequence_id):
        answer = task.answer(predictor.outputs(x), top_k)
        out.append({"input": str(path), "id": seq_id, "frames": int(len(x)), "model": predictor.source, **answer,
                    "text": task.answer_text(answer)})
    return out


def predict(model: str | Path, inputs: list[str | Path], tflite: bool = False, checkpoint: str = "best",
            sequence_id: int | None = None, top_k: int = 5) -> list[dict]:
    """``answers`` of a model (``load_predictor``) for every recording of ``inputs``."""
    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {top_k}")
    predictor = load_predictor(model, tflite, checkpoint)
    return [r for path in inputs for r in answers(predictor, path, sequence_id, top_k)]


def held_out_predictions(run: str | Path, k: int = 3, top_k: int = 3) -> pd.DataFrame:
    """The first ``k`` held-out recordings of a run: file, sequence id, the truth, and the answers of the torch model
    and of its exported TFLite file (when the run is converted), side by side."""
    run = Path(run)
    rows = plugin_of_run(run).predict.held_out(run, k)
    predictors = {"torch": load_predictor(run)}
    if (run / "export" / "report.json").is_file():
        predictors["tflite"] = load_predictor(run, tflite=True)
    table = rows.copy()
    for name, predictor in predictors.items():
        table[name] = [answers(predictor, f, None if pd.isna(s) else int(s), top_k)[0]["text"]
                       for f, s in zip(rows["file"], rows["sequence_id"])]
    return table


def recording(run: str | Path, path: str | Path, sequence_id: int | None = None) -> np.ndarray:
    """One recording of a file in the run's competition layout as ``[T, 543, 3]`` (to plot or animate)."""
    return plugin_of_run(run).predict.landmarks(Path(path), sequence_id)


def result_line(result: dict) -> str:
    """One printed line per recording: its file, id, length and the answer."""
    return f"{result['input']} [{result['id']}, {result['frames']} frames]: {result['text']}"


def video_landmarks(video: str | Path | None, task: str, out: str | Path, sequence_id: int = 0,
                    camera: int | None = None, max_frames: int = 0, model_complexity: int = 1) -> Path:
    """MediaPipe Holistic landmarks of a video file (or camera ``camera``) written to ``out`` in the Kaggle layout of
    ``task`` (asl-signs: one long-format recording; fingerspelling: a wide file of one sequence, ``sequence_id``),
    so that ``predict`` and every other stage read it like competition data (the ``video`` extra)."""
    write = plugin(task).predict.write_recording
    landmarks = holistic_landmarks(video_frames(video, camera, max_frames), model_complexity)
    if not len(landmarks):
        raise DataError(video if video is not None else f"camera {camera}", "no frames to read")
    return write(landmarks, Path(out), sequence_id)
