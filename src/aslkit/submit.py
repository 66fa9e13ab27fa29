"""``submission.zip`` and a local clone of Kaggle's asl-signs grader (``aslkit submit``, ``aslkit score``)."""
from __future__ import annotations

import json
import shutil
import time
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from aslkit.paths import KAGGLE_WORKING

REQUIRED_SIGNATURE = "serving_default"
REQUIRED_OUTPUT = "outputs"


def make_submission(tflite: str | Path, out_zip: str | Path, extra: dict[str, str] | None = None) -> Path:
    """Write ``out_zip`` holding ``model.tflite`` (and any ``extra`` text files such as inference_args.json)."""
    tflite, out_zip = Path(tflite), Path(out_zip)
    if not tflite.is_file():
        raise FileNotFoundError(f"{tflite}: no TFLite model (run aslkit convert first)")
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out_zip, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(tflite, "model.tflite")
        for name, text in (extra or {}).items():
            z.writestr(name, text)
    return out_zip


def package(run: str | Path, out: str | Path | None = None) -> Path:
    """``<run>/submission.zip`` (or ``out``) from ``<run>/export/model.tflite`` (+ ``inference_args.json`` when the
    export wrote one, as for fingerspelling)."""
    run = Path(run)
    extra = {f.name: f.read_text() for f in [run / "export" / "inference_args.json"] if f.is_file()}
    return make_submission(run / "export" / "model.tflite", out or run / "submission.zip", extra)


def submit(run: str | Path, out: str | Path | None = None) -> Path:
    """``package`` a converted run as its submission.zip; also copied to /kaggle/working on Kaggle."""
    path = package(run, out)
    if KAGGLE_WORKING.is_dir() and path.parent != KAGGLE_WORKING:
        shutil.copyfile(path, KAGGLE_WORKING / "submission.zip")
    print(f"submission: {path} ({path.stat().st_size / 2 ** 20:.2f} MB)")
    return path


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
    if REQUIRED_SIGNATURE not in interpreter.get_signature_list():
        raise ValueError(f"{submission}: required input signature {REQUIRED_SIGNATURE!r} not found")
    return interpreter.get_signature_runner(REQUIRED_SIGNATURE), len(model)


def grade_signs(submission: str | Path, data_dir: str | Path, rows: pd.DataFrame, num_threads: int = 1) -> dict:
    """Kaggle's asl-signs evaluation on ``rows`` (``path``, ``label``): accuracy, latency per sequence, size.

    Loads each parquet exactly as the public grader code does, calls the ``serving_default`` signature runner on
    one thread, and takes the argmax of ``outputs``.
    """
    from aslkit.data.islr import load_relevant_data_subset
    prediction_fn, size = grader_runner(submission, num_threads)
    preds, times = [], []
    for p in rows["path"]:
        frames = load_relevant_data_subset(Path(data_dir) / p)
        t0 = time.perf_counter()
        output = prediction_fn(inputs=frames)
        times.append(time.perf_counter() - t0)
        preds.append(int(np.argmax(output[REQUIRED_OUTPUT])))
    preds = np.array(preds)
    ms = np.array(times) * 1000
    return {"n": int(len(preds)), "accuracy": float((preds == rows["label"].to_numpy()).mean()),
            "latency_ms_mean": float(ms.mean()), "latency_ms_p95": float(np.percentile(ms, 95)),
            "size_mb": size / 2 ** 20, "predictions": preds}


def score_run(run: str | Path, submission: str | Path | None = None) -> dict:
    """Grade a run's submission on its held-out (validation) participants, next to the torch OOF accuracy (or, for
    fingerspelling, the torch OOF score); writes ``score.json``."""
    from aslkit import constants as C
    from aslkit.data.cache import PreparedSigns
    from aslkit.evaluate import run_task
    run = Path(run)
    if run_task(run) == C.SLUG_FS:
        from aslkit.submit_fs import score_fs_run
        return score_fs_run(run, submission)
    data = json.loads((run / "data.json").read_text())
    oof = pd.read_csv(run / "oof.csv")
    index = PreparedSigns(data["prepared_dir"]).index.set_index("sequence_id")
    rows = pd.DataFrame({"path": index.loc[oof["sequence_id"], "path"].to_numpy(), "label": oof["label"]})
    res = grade_signs(submission or run / "submission.zip", data["data_dir"], rows)
    res["torch_oof_accuracy"] = float((oof["pred"] == oof["label"]).mean())
    res["participants"] = sorted(int(p) for p in oof["participant_id"].unique())
    summary = {k: v for k, v in res.items() if k != "predictions"}
    (run / "score.json").write_text(json.dumps(summary, indent=1))
    print(f"grader clone: accuracy {res['accuracy']:.4f} (torch OOF {res['torch_oof_accuracy']:.4f}) on "
          f"{res['n']} sequences of participants {res['participants']}; latency mean {res['latency_ms_mean']:.2f} ms,"
          f" p95 {res['latency_ms_p95']:.2f} ms; size {res['size_mb']:.2f} MB")
    return res


def score_table(res: dict) -> pd.Series:
    """The headline figures of ``score_run``: grader-clone metric next to torch's, latency, size."""
    if "score" in res:
        head = {"grader clone score (N - D) / N": res["score"], "torch OOF score": res["torch_oof_score"],
                "difference": res["score"] - res["torch_oof_score"],
                f"fallback phrase {res['fallback_phrase']!r} score": res["fallback_score"],
                f"projected hours for {res['projected_sequences']} sequences": res["projected_hours"]}
    else:
        head = {"grader clone accuracy": res["accuracy"], "torch OOF accuracy": res["torch_oof_accuracy"],
                "difference (points)": 100 * (res["accuracy"] - res["torch_oof_accuracy"])}
    return pd.Series({**head, "latency mean (ms)": res["latency_ms_mean"], "latency p95 (ms)": res["latency_ms_p95"],
                      "size (MB)": res["size_mb"], "sequences": res["n"]})
