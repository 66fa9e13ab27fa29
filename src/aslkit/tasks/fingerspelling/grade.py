"""A local clone of Kaggle's asl-fingerspelling grader (``aslkit score`` on a fingerspelling run).

Per parquet file ``pd.read_parquet(path, columns=selected_columns)`` (the zip's ``inference_args.json``; all columns
when it has none), per ``sequence_id`` a float32 ``[n_frames, n_columns]`` array into the ``serving_default``
signature runner on one thread, and the grader's decoding
``"".join(rev_character_map.get(s, "") for s in np.argmax(output["outputs"], axis=1))`` with the data's own
``character_to_prediction_index.json``; then (N - D) / N, latency per sequence, the projected run time of the
hidden test set against the 5-hour limit, and the size.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from aslkit.data.errors import DataError, require_columns, require_file
from aslkit.data.fs import read_character_map
from aslkit.runs import run_cache, write_json_atomic
from aslkit.tasks.fingerspelling.evaluate import fs_score, read_fs_oof
from aslkit.tasks.fingerspelling.prepare import PreparedFS
from aslkit.tflite import OUTPUT_NAME, GateError, grader_runner, latency_failure, selected_columns

HIDDEN_TEST_SEQUENCES = 24_000   # assumption: ~1,000 sequences in each of the 24 files of the published test set
TIME_LIMIT_H = 5.0
LATENCY_BUDGET_MS = TIME_LIMIT_H * 3_600_000 / HIDDEN_TEST_SEQUENCES   # the 5 h as a mean time per sequence


def graded_sequences(path: str | Path, columns: list[str] | None, sequence_ids: list[int] | None = None
                     ) -> dict[int, np.ndarray]:
    """Sequences of one wide parquet file exactly as the grader feeds them: ``pd.read_parquet(path,
    columns=columns)`` (every column when None), one float32 ``[n_frames, n_columns]`` array per ``sequence_id`` (the
    file's, or ``sequence_ids`` in that order); DataError naming the file for missing columns or sequence ids."""
    path = require_file(path, "landmark parquet")
    try:
        names = pq.read_schema(path).names
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataError(path, f"unreadable parquet ({type(e).__name__}: {e})") from e
    require_columns(path, names, list(columns or []) + ["sequence_id"])
    df = pd.read_parquet(path, columns=columns)
    wanted = [int(s) for s in dict.fromkeys(df.index)] if sequence_ids is None else [int(s) for s in sequence_ids]
    missing = [s for s in wanted if s not in df.index]
    if missing:
        raise DataError(path, f"no frames for sequence_id(s) {missing[:10]}")
    return {sid: df.loc[[sid]].to_numpy(dtype=np.float32) for sid in wanted}


def grade_fingerspelling(submission: str | Path, data_dir: str | Path, rows: pd.DataFrame,
                         num_threads: int = 1) -> dict:
    """Kaggle's asl-fingerspelling evaluation on ``rows`` (``path``, ``sequence_id``, ``phrase``): the score,
    latency per sequence, size, and the decoded predictions (in ``rows`` order)."""
    data_dir = Path(data_dir)
    rev_character_map = {j: i for i, j in read_character_map(data_dir).items()}
    columns = selected_columns(submission)
    prediction_fn, size = grader_runner(submission, num_threads)
    preds: dict[int, str] = {}
    times = []
    for rel, grp in rows.groupby("path", sort=False):
        for sid, frames in graded_sequences(data_dir / rel, columns, list(grp["sequence_id"])).items():
            t0 = time.perf_counter()
            output = prediction_fn(inputs=frames)
            times.append(time.perf_counter() - t0)
            preds[sid] = "".join(rev_character_map.get(s, "") for s in np.argmax(output[OUTPUT_NAME], axis=1))
    texts = [preds[int(s)] for s in rows["sequence_id"]]
    ms = np.array(times) * 1000
    projected_h = HIDDEN_TEST_SEQUENCES * ms.mean() / 1000 / 3600
    return {"n": len(texts), "score": fs_score(list(rows["phrase"]), texts), "latency_ms_mean": float(ms.mean()),
            "latency_ms_p95": float(np.percentile(ms, 95)), "projected_hours": float(projected_h),
            "projected_sequences": HIDDEN_TEST_SEQUENCES, "time_limit_hours": TIME_LIMIT_H,
            "size_mb": size / 2 ** 20, "predictions": texts}


def held_out_rows(run: str | Path, limit: int = 0) -> tuple[dict, pd.DataFrame]:
    """A run's data record and its ``oof.csv`` rows (the first ``limit``; all for 0), each with ``path``: its
    landmark file relative to the data folder (``train_landmarks/<file_id>.parquet`` or the supplemental one)."""
    data, prepared = run_cache(Path(run), PreparedFS)
    oof = read_fs_oof(Path(run) / "oof.csv")
    oof = oof.iloc[:limit].reset_index(drop=True) if limit else oof
    index = prepared.index.set_index("sequence_id").loc[oof["sequence_id"]]
    folder = np.where(index["source"] == "train", "train_landmarks", "supplemental_landmarks")
    return data, oof.assign(path=[f"{d}/{f}.parquet" for d, f in zip(folder, index["file_id"])])


def score_run(run: str | Path, submission: str | Path | None = None) -> dict:
    """Grade a fingerspelling run's submission on its validation sequences next to the torch OOF score; writes
    ``score.json``; GateError when the projected time fails the latency gate (``tflite.latency_failure``)."""
    run = Path(run)
    data, oof = held_out_rows(run)
    res = grade_fingerspelling(submission or run / "submission.zip", data["data_dir"], oof)
    res["torch_oof_score"] = fs_score(list(oof["phrase"]), list(oof["pred"]))
    res["fallback_phrase"] = data.get("fallback_phrase", "")
    res["fallback_score"] = fs_score(list(oof["phrase"]), [res["fallback_phrase"]] * len(oof))
    res["participants"] = sorted(int(p) for p in oof["participant_id"].unique())
    res["latency_failure"] = latency_failure(res["latency_ms_mean"], LATENCY_BUDGET_MS)
    summary = {k: v for k, v in res.items() if k != "predictions"}
    write_json_atomic(run / "score.json", summary)
    print(f"grader clone: score {res['score']:.4f} (torch OOF {res['torch_oof_score']:.4f}, fallback phrase "
          f"{res['fallback_score']:.4f}) on {res['n']} sequences of participants {res['participants']}; latency "
          f"mean {res['latency_ms_mean']:.2f} ms, p95 {res['latency_ms_p95']:.2f} ms; projected "
          f"{res['projected_hours']:.2f} h for {HIDDEN_TEST_SEQUENCES} sequences (limit {TIME_LIMIT_H:.0f} h); "
          f"size {res['size_mb']:.2f} MB")
    if res["latency_failure"]:
        raise GateError(f"{run}: {res['latency_failure']} (score.json)")
    return res


def score_table(res: dict) -> pd.Series:
    """The headline figures of ``score_run``: grader-clone score next to torch's, the fallback phrase's score, the
    projected run time, latency and size."""
    head = {"grader clone score (N - D) / N": res["score"], "torch OOF score": res["torch_oof_score"],
            "difference": res["score"] - res["torch_oof_score"],
            f"fallback phrase {res['fallback_phrase']!r} score": res["fallback_score"],
            f"projected hours for {res['projected_sequences']} sequences": res["projected_hours"]}
    return pd.Series({**head, "latency mean (ms)": res["latency_ms_mean"], "latency p95 (ms)": res["latency_ms_p95"],
                      "size (MB)": res["size_mb"], "sequences": res["n"]})
