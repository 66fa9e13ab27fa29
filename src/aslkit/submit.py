"""``aslkit submit`` and ``aslkit score`` [notebook 05]: ``submission.zip`` of a converted run, and the local clone of
Kaggle's grader of its task (``aslkit.tasks.<task>.grade``) on the run's held-out participants."""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pandas as pd

from aslkit.paths import KAGGLE_WORKING
from aslkit.tasks.registry import plugin_of_run


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


def score_run(run: str | Path, submission: str | Path | None = None) -> dict:
    """Grade a run's submission (default ``<run>/submission.zip``) with its task's grader clone on the run's held-out
    participants, next to the torch OOF result; writes ``score.json``."""
    return plugin_of_run(run).score_run(Path(run), submission)


def score_table(run: str | Path, res: dict) -> pd.Series:
    """The headline figures of ``score_run``: grader-clone metric next to torch's, latency, size."""
    return plugin_of_run(run).score_table(res)
