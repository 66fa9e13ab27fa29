"""A killed ``aslkit synth``: its folder is marked as the generator's own and unfinished, never read as data, and the
next run resumes it (or ``--overwrite`` replaces it) to byte-identical files; folders it did not write are refused."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from aslkit import constants as C
from aslkit.cli import main
from aslkit.paths import resolve_data_dir, synthetic_dir
from aslkit.synth import writer
from aslkit.synth.writer import MARKER, generate, synthetic_info

REFERENCE = {C.SLUG_SIGNS: "islr_synth", C.SLUG_FS: "fs_synth"}       # conftest: ci, seed 0
KILL_AFTER = {C.SLUG_SIGNS: 30, C.SLUG_FS: 30}                         # renders (one per sequence) before the kill


class Killed(Exception):
    """Stands for the process being killed part-way."""


@pytest.fixture
def renders(monkeypatch):
    """Counts the sequences rendered; ``renders.kill_after = n`` makes the n+1-th render raise ``Killed``."""
    real = writer.render

    def counting(*args, **kwargs):
        if counting.kill_after is not None and counting.calls >= counting.kill_after:
            raise Killed
        counting.calls += 1
        return real(*args, **kwargs)

    counting.calls, counting.kill_after = 0, None
    monkeypatch.setattr(writer, "render", counting)
    return counting


def _killed_run(renders, task: str, out: Path, seed: int = 0) -> Path:
    """Run ``generate`` (in-process) until it is killed part-way; reset the render counter."""
    renders.kill_after = KILL_AFTER[task]
    with pytest.raises(Killed):
        generate(task, out, size="ci", seed=seed, workers=1)
    renders.calls, renders.kill_after = 0, None
    return out


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` but the marker (whose timing differs), by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != MARKER}


def _assert_unfinished(out: Path) -> None:
    """The folder is marked as the generator's own, and nothing takes it for (real or synthetic) data."""
    assert (out / MARKER).is_file() and not (out / "train.csv").exists()
    assert synthetic_info(out) is None
    with pytest.raises(FileNotFoundError, match="no train.csv"):
        resolve_data_dir(C.SLUG_SIGNS, data_dir=out, verbose=False)


def _one_line_error(exc: pytest.ExceptionInfo, out: Path) -> str:
    msg = str(exc.value)
    assert str(out) in msg and "\n" not in msg
    return msg


@pytest.mark.parametrize("task", [C.SLUG_SIGNS, C.SLUG_FS])
def test_killed_run_is_unfinished_and_a_rerun_resumes_it_to_identical_files(task, renders, tmp_path, request):
    out = _killed_run(renders, task, tmp_path / "d")
    _assert_unfinished(out)
    assert any(out.rglob("*.parquet"))
    stray = next(out.rglob("*.parquet")).with_suffix(".parquet.999.aslkit-tmp")
    stray.write_bytes(b"half a file, as a SIGKILL leaves it")
    assert generate(task, out, size="ci", seed=0, workers=1) == out                 # no overwrite needed
    total = len(pd.read_csv(out / "train.csv")) + (24 if task == C.SLUG_FS else 0)
    assert 0 < renders.calls < total                                                # resumed, not restarted
    assert _files(out) == _files(request.getfixturevalue(REFERENCE[task]))          # stray file removed too
    assert synthetic_info(out)["seed"] == 0 and synthetic_info(out)["status"] == "complete"


def test_sigkilled_command_is_resumed_by_the_same_command(islr_synth, tmp_path):
    out = tmp_path / "d"
    cmd = ["synth", "--task", C.SLUG_SIGNS, "--size", "ci", "--out", str(out), "workers=1"]
    proc = subprocess.Popen([sys.executable, "-m", "aslkit", *cmd], stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(out.rglob("*.parquet"))) < 5 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _assert_unfinished(out)
    assert main(cmd) == 0
    assert _files(out) == _files(islr_synth)


def test_killed_after_the_completed_marker_before_train_csv(fs_synth, renders, tmp_path, monkeypatch):
    out = tmp_path / "d"
    real_to_csv = pd.DataFrame.to_csv

    def to_csv(self, path, *args, **kwargs):
        if Path(path).name.startswith("train.csv"):
            raise Killed
        return real_to_csv(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv)
    with pytest.raises(Killed):
        generate(C.SLUG_FS, out, size="ci", seed=0, workers=1)
    monkeypatch.setattr(pd.DataFrame, "to_csv", real_to_csv)
    renders.calls = 0
    _assert_unfinished(out)
    generate(C.SLUG_FS, out, size="ci", seed=0, workers=1)
    assert renders.calls == 0 and _files(out) == _files(fs_synth)                  # every parquet was kept


def test_overwrite_replaces_an_unfinished_run_of_other_settings_then_guards_the_result(fs_synth, renders, tmp_path):
    out = _killed_run(renders, C.SLUG_FS, tmp_path / "d", seed=1)
    with pytest.raises(FileExistsError) as exc:
        generate(C.SLUG_FS, out, size="ci", seed=0, workers=1)
    assert "unfinished" in _one_line_error(exc, out) and "--overwrite" in str(exc.value)
    _assert_unfinished(out)
    generate(C.SLUG_FS, out, size="ci", seed=0, workers=1, overwrite=True)
    assert _files(out) == _files(fs_synth) and synthetic_info(out)["seed"] == 0
    with pytest.raises(FileExistsError) as exc:
        generate(C.SLUG_FS, out, size="ci", seed=0, workers=1)
    assert "a complete synthetic dataset" in _one_line_error(exc, out) and "--overwrite" in str(exc.value)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_the_generator_did_not_write_is_refused_and_kept(tmp_path, overwrite):
    download = tmp_path / C.SLUG_SIGNS                                  # looks like a real Kaggle download
    (download / "train_landmark_files" / "16069").mkdir(parents=True)
    (download / "train_landmark_files" / "16069" / "100015657.parquet").write_bytes(b"PAR1 real")
    (download / "train.csv").write_text("path,participant_id,sequence_id,sign\n")
    before = _files(download)
    with pytest.raises(FileExistsError) as exc:
        generate(C.SLUG_SIGNS, download, size="ci", overwrite=overwrite)
    msg = _one_line_error(exc, download)
    assert "did not write" in msg and "overwrite" not in msg                       # --overwrite would not help
    assert _files(download) == before and not (download / MARKER).exists()
    with pytest.raises(FileExistsError) as exc:
        generate(C.SLUG_SIGNS, download / "train.csv", size="ci", overwrite=overwrite)
    assert "not a folder" in _one_line_error(exc, download / "train.csv")


@pytest.mark.parametrize("seed", [0, 1])
def test_data_resolution_completes_an_unfinished_synthetic_copy(fs_synth, renders, tmp_path, monkeypatch, seed):
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path / "root"))
    path = _killed_run(renders, C.SLUG_FS, synthetic_dir(C.SLUG_FS, "ci"), seed=seed)
    src = resolve_data_dir(C.SLUG_FS, synth_size="ci", seed=0, kaggle_input=tmp_path / "no_kaggle")
    assert (src.path, src.is_real, src.origin) == (path, False, "synthetic")
    assert synthetic_info(path)["seed"] == 0 and _files(path) == _files(fs_synth)
