"""A local clone of Kaggle's asl-signs grader (``aslkit score`` on an asl-signs run): each parquet loaded exactly as
the public grader code does, the ``serving_default`` signature runner on one thread, the argmax of ``outputs``."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from aslkit.data.islr import load_relevant_data_subset
from aslkit.runs import run_cache, write_json_atomic
from aslkit.tasks.signs.prepare import PreparedSigns
from aslkit.tflite import OUTPUT_NAME, GateError, grader_runner, latency_failure

LATENCY_LIMIT_MS = 100.0   # Kaggle: under 100 ms per sequence on average


def grade_signs(submission: str | Path, data_dir: str | Path, rows: pd.DataFrame, num_threads: int = 1) -> dict:
    """Kaggle's asl-signs evaluation on ``rows`` (``path``, ``label``): accuracy, latency per sequence, size.

    Loads each parquet exactly as the public grader code does, calls the ``serving_default`` signature runner on
    one thread, and takes the argmax of ``outputs``.
    """
    prediction_fn, size = grader_runner(submission, num_threads)
    preds, times = [], []
    for p in rows["path"]:
        frames = load_relevant_data_subset(Path(data_dir) / p)
        t0 = time.perf_counter()
        output = prediction_fn(inputs=frames)
        times.append(time.perf_counter() - t0)
        preds.append(int(np.argmax(output[OUTPUT_NAME])))
    preds = np.array(preds)
    ms = np.array(times) * 1000
    return {"n": int(len(preds)), "accuracy": float((preds == rows["label"].to_numpy()).mean()),
            "latency_ms_mean": float(ms.mean()), "latency_ms_p95": float(np.percentile(ms, 95)),
            "size_mb": size / 2 ** 20, "predictions": preds}


def held_out_rows(run: str | Path, limit: int = 0) -> tuple[dict, pd.DataFrame]:
    """A run's data record and its ``oof.csv`` rows (the first ``limit``; all for 0), each with ``path``: its
    recording relative to the data folder."""
    data, prepared = run_cache(Path(run), PreparedSigns)
    oof = pd.read_csv(Path(run) / "oof.csv")
    oof = oof.iloc[:limit].reset_index(drop=True) if limit else oof
    return data, oof.assign(path=prepared.index.set_index("sequence_id").loc[oof["sequence_id"], "path"].to_numpy())


def score_run(run: str | Path, submission: str | Path | None = None) -> dict:
    """Grade a run's submission on its held-out (validation) participants, next to the torch OOF accuracy; writes
    ``score.json``; GateError when the mean latency fails the latency gate (``tflite.latency_failure``)."""
    run = Path(run)
    data, oof = held_out_rows(run)
    res = grade_signs(submission or run / "submission.zip", data["data_dir"], oof)
    res["torch_oof_accuracy"] = float((oof["pred"] == oof["label"]).mean())
    res["participants"] = sorted(int(p) for p in oof["participant_id"].unique())
    res["latency_failure"] = latency_failure(res["latency_ms_mean"], LATENCY_LIMIT_MS)
    summary = {k: v for k, v in res.items() if k != "predictions"}
    write_json_atomic(run / "score.json", summary)
    print(f"grader clone: accuracy {res['accuracy']:.4f} (torch OOF {res['torch_oof_accuracy']:.4f}) on "
          f"{res['n']} sequences of participants {res['participants']}; latency mean {res['latency_ms_mean']:.2f} ms,"
          f" p95 {res['latency_ms_p95']:.2f} ms; size {res['size_mb']:.2f} MB")
    if res["latency_failure"]:
        raise GateError(f"{run}: {res['latency_failure']} (score.json)")
    return res


def score_table(res: dict) -> pd.Series:
    """The headline figures of ``score_run``: grader-clone accuracy next to torch's, latency, size."""
    head = {"grader clone accuracy": res["accuracy"], "torch OOF accuracy": res["torch_oof_accuracy"],
            "difference (points)": 100 * (res["accuracy"] - res["torch_oof_accuracy"])}
    return pd.Series({**head, "latency mean (ms)": res["latency_ms_mean"], "latency p95 (ms)": res["latency_ms_p95"],
                      "size (MB)": res["size_mb"], "sequences": res["n"]})
