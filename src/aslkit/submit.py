"""``aslkit submit`` and ``aslkit score`` [notebook 05]: ``submission.zip`` of a converted run, and the local clone of
Kaggle's grader of its task (``aslkit.tasks.<task>.grade``) on the run's held-out participants."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pandas as pd

from aslkit.paths import KAGGLE_WORKING
from aslkit.runs import atomic_target, file_digest
from aslkit.tasks.registry import plugin_of_run


def make_submission(tflite: str | Path, out_zip: str | Path, extra: dict[str, str] | None = None) -> Path:
    """Write ``out_zip`` holding ``model.tflite`` (and any ``extra`` text files such as inference_args.json)."""
    tflite, out_zip = Path(tflite), Path(out_zip)
    if not tflite.is_file():
        raise FileNotFoundError(f"{tflite}: no TFLite model (run aslkit convert first)")
    with atomic_target(out_zip) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(tflite, "model.tflite")
        for name, text in (extra or {}).items():
            z.writestr(name, text)
    return out_zip


TFLITE_MAGIC = b"TFL3"      # bytes 4-8 of a TFLite flatbuffer


def check_export(run: str | Path) -> None:
    """ValueError naming the run and the reason unless ``<run>/export/`` holds a TFLite model whose every gate passed
    (``report.json`` names the submitted build) and that was built from the checkpoints the run holds now."""
    export = Path(run) / "export"
    report_path, model = export / "report.json", export / "model.tflite"
    if not report_path.is_file() or not model.is_file():
        raise FileNotFoundError(f"{run}: no converted model (export/report.json and export/model.tflite); run aslkit "
                                f"convert {run} first")
    report = json.loads(report_path.read_text())
    if report.get("submitted") is None:
        raise ValueError(f"{report_path}: no build passed every conversion gate; nothing to submit")
    with open(model, "rb") as f:
        magic = f.read(8)[4:8]
    if magic != TFLITE_MAGIC:
        raise ValueError(f"{model}: not a TFLite file")
    sources = report.get("sources", {})
    changed = [p for p, digest in sources.items() if not Path(p).is_file() or file_digest(p) != digest]
    if changed or "sources" not in report:
        raise ValueError(f"{run}: the export was not built from the current checkpoint(s) {changed or '(unrecorded)'}; "
                         f"run aslkit convert {run} again")


def package(run: str | Path, out: str | Path | None = None) -> Path:
    """``<run>/submission.zip`` (or ``out``) from ``<run>/export/model.tflite`` (+ ``inference_args.json`` when the
    export wrote one, as for fingerspelling), once ``check_export`` passes."""
    run = Path(run)
    check_export(run)
    extra = {f.name: f.read_text() for f in [run / "export" / "inference_args.json"] if f.is_file()}
    return make_submission(run / "export" / "model.tflite", out or run / "submission.zip", extra)


def submit(run: str | Path, out: str | Path | None = None) -> Path:
    """``package`` a converted run as its submission.zip; also copied to /kaggle/working on Kaggle."""
    path = package(run, out)
    if KAGGLE_WORKING.is_dir() and path.parent != KAGGLE_WORKING:
        shutil.copyfile(path, KAGGLE_WORKING / "submission.zip")
    print(f"submission: {path} ({path.stat().st_size / 2 ** 20:.2f} MB)")
    return path


def check_submission_current(run: str | Path) -> None:
    """ValueError unless ``<run>/submission.zip`` holds the run's current ``export/model.tflite`` (a run converted
    again after ``aslkit submit`` would otherwise be graded on its old model)."""
    run = Path(run)
    zipped, model = run / "submission.zip", run / "export" / "model.tflite"
    if not zipped.is_file() or not model.is_file():
        return
    with zipfile.ZipFile(zipped) as z:
        current = "model.tflite" in z.namelist() and z.read("model.tflite") == model.read_bytes()
    if not current:
        raise ValueError(f"{zipped}: its model.tflite is not {model} (converted again since); run aslkit submit {run}")


def score_run(run: str | Path, submission: str | Path | None = None) -> dict:
    """Grade a run's submission (default ``<run>/submission.zip``, which must hold the current export) with its
    task's grader clone on the run's held-out participants, next to the torch OOF result; writes ``score.json``."""
    if submission is None:
        check_submission_current(run)
    return plugin_of_run(run).score_run(Path(run), submission)


def score_table(run: str | Path, res: dict) -> pd.Series:
    """The headline figures of ``score_run``: grader-clone metric next to torch's, latency, size."""
    return plugin_of_run(run).score_table(res)
