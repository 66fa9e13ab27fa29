"""Never silently wrong: a run reuses its cache as it was prepared, asks nothing the cache lacks, and never trains
without the validation fold it names; a cache belongs to one data folder and is locked while prepared; the CLI ends
the kit's errors with one line and exit code 1."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aslkit import constants as C
from aslkit.cli import main
from aslkit.data.cache import LOCK, cache_lock
from aslkit.data.errors import DataError
from aslkit.prepare import prepare
from aslkit.runs import (
    atomic_target,
    checkpoint_path,
    file_digest,
    load_checkpoint,
    save_array_atomic,
    write_csv_atomic,
)
from aslkit.submit import package
from aslkit.tflite import native_stderr_to
from aslkit.train import make_train_config, open_prepared, train


def test_train_reuses_the_default_cache_with_the_folds_it_was_prepared_with(islr_synth, tmp_path, monkeypatch):
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    cache = prepare(C.SLUG_SIGNS, "ci", {"data_dir": str(islr_synth), "fold_method": "random", "seed": 3})
    folds = pd.read_csv(cache.path / "folds.csv")
    opened = open_prepared(make_train_config("ci", {"data_dir": str(islr_synth)}))
    assert opened.path == cache.path and opened.config.fold_method == "random" and opened.config.seed == 3
    pd.testing.assert_frame_equal(pd.read_csv(cache.path / "folds.csv"), folds)     # not re-folded by participant


def test_a_missing_default_cache_is_prepared_with_the_defaults(islr_synth, tmp_path, monkeypatch):
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    opened = open_prepared(make_train_config("ci", {"data_dir": str(islr_synth)}))
    assert opened.path.is_relative_to(tmp_path) and opened.config.fold_method == "group"


def test_a_run_asking_what_the_cache_lacks_is_refused(fs_synth, tmp_path, monkeypatch):
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    cache = prepare(C.SLUG_FS, "ci", {"data_dir": str(fs_synth)})
    cfg = make_train_config("ci", {"task": C.SLUG_FS, "data_dir": str(fs_synth), "supplemental_weight": 0.5})
    with pytest.raises(ValueError, match=f"{cache.path}: .*include_supplemental=false.*supplemental_weight=0.5"):
        open_prepared(cfg)


@pytest.mark.parametrize("fold", [99, 4])
def test_a_fold_without_validation_rows_is_refused_before_the_run_folder_exists(islr_synth, tmp_path, fold):
    cache = prepare(C.SLUG_SIGNS, "ci", {"data_dir": str(islr_synth), "out_dir": str(tmp_path / "cache")})
    run = tmp_path / "run"
    cfg = make_train_config("ci", {"prepared_dir": str(cache.path), "fold": fold, "run_name": str(run)})
    with pytest.raises(ValueError, match=rf"fold={fold}: the prepared cache {cache.path} .*folds: \[0, 1, 2, 3\]"):
        train(cfg)
    assert not Path(run).exists()


def test_a_fresh_run_refuses_a_folder_that_is_not_empty_and_overwrite_clears_stale_exports(islr_synth, tmp_path,
                                                                                           capsys):
    cache = prepare(C.SLUG_SIGNS, "ci", {"data_dir": str(islr_synth), "out_dir": str(tmp_path / "cache")})
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "export" / "model.tflite").write_bytes(b"an earlier model")
    args = ["train", "--preset", "ci", f"prepared_dir={cache.path}", f"run_name={run}", "optim.epochs=1",
            "max_train_samples=32", "model.layers=1"]
    with pytest.raises(FileExistsError, match=f"{run}: the run folder is not empty.*--resume.*--overwrite"):
        main(["--debug", *args])
    assert (run / "export" / "model.tflite").read_bytes() == b"an earlier model"       # nothing lost
    assert main(["train", "--overwrite", *args[1:]]) == 0
    assert not (run / "export").exists() and (run / "checkpoints" / "best.pt").is_file()
    last = checkpoint_path(run, "last")                                # a kill truncated the last checkpoint
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(DataError, match=f"{last}: unreadable checkpoint, truncated or not a checkpoint"):
        load_checkpoint(last)
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 1
    assert capsys.readouterr().err.startswith(f"aslkit train: error: {last}: unreadable checkpoint")


def _fake_export(run: Path) -> Path:
    """A run folder whose export passed its gates and was built from its best checkpoint."""
    best = run / "checkpoints" / "best.pt"
    best.parent.mkdir(parents=True)
    best.write_bytes(b"weights v1")
    (run / "export").mkdir()
    (run / "export" / "model.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(32))
    report = {"submitted": "float16", "sources": {str(best.resolve()): file_digest(best)}}
    (run / "export" / "report.json").write_text(json.dumps(report))
    return best


def test_submit_zips_only_an_export_built_from_the_current_checkpoint(tmp_path):
    best = _fake_export(tmp_path)
    assert package(tmp_path).is_file()
    best.write_bytes(b"weights v2, trained again")
    with pytest.raises(ValueError, match="not built from the current checkpoint.*run aslkit convert"):
        package(tmp_path)


@pytest.mark.parametrize("spoil, match", [
    (lambda run: (run / "export" / "report.json").unlink(), "no converted model"),
    (lambda run: (run / "export" / "model.tflite").write_bytes(b"<html>not a model</html>"), "not a TFLite file"),
    (lambda run: (run / "export" / "report.json").write_text('{"submitted": null, "sources": {}}'),
     "no build passed every conversion gate"),
])
def test_submit_refuses_an_export_that_cannot_be_trusted(tmp_path, spoil, match):
    _fake_export(tmp_path)
    spoil(tmp_path)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        package(tmp_path)
    assert not (tmp_path / "submission.zip").exists()


def test_an_interrupted_write_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "metrics.csv"
    write_csv_atomic(pd.DataFrame({"epoch": [1]}), path, index=False)
    with pytest.raises(KeyboardInterrupt):
        with atomic_target(path) as tmp:
            tmp.write_text("epoch\n1\n2")                 # half of a new file ...
            raise KeyboardInterrupt                        # ... when the process is stopped
    assert path.read_text() == "epoch\n1\n" and [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]
    save_array_atomic(tmp_path / "oof_logits.npy", np.ones(3, np.float32))
    assert np.load(tmp_path / "oof_logits.npy").tolist() == [1.0, 1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "oof_logits.npy"]


@pytest.mark.parametrize("key", ["optim.epochs", "optim.batch_size"])
def test_a_config_that_cannot_train_is_named_before_anything_is_written(tmp_path, key):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=f"{key} must be at least 1, got 0"):
        train(make_train_config("ci", {key: 0, "run_name": str(run)}))
    assert not run.exists()


@pytest.mark.parametrize("command", [["train", "--resume"], ["convert"], ["score"], ["validate"]])
def test_a_folder_without_a_run_is_named(tmp_path, command, capsys):
    assert main([*command, str(tmp_path)]) == 1
    err = capsys.readouterr().err
    pattern = rf"aslkit {command[0]}: error: {tmp_path}: .*(not a run folder|no oof.csv)"
    assert err.count("\n") == 1 and re.match(pattern, err)
    assert not any(tmp_path.iterdir())                                  # nothing written into it


def _kit(*args: str, root: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m aslkit <args>`` in a fresh process with project root ``root``."""
    env = {**os.environ, "ASLKIT_ROOT": str(root), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "aslkit", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_cli_ends_the_kits_errors_with_one_line_and_exit_code_1(tmp_path):
    for args, line in [(["train", "--preset", "ci", "optim.epochs=0"], "optim.epochs must be at least 1, got 0"),
                       (["train", "--preset", "ci", "optim.colour=blue"], "unknown config key 'optim.colour'"),
                       (["train", "--preset", "ci", "optim.lr=abc"], "optim.lr: expected float, got 'abc'"),
                       (["prepare", "--data-dir", str(tmp_path)], f"{tmp_path}: no train.csv here")]:
        res = _kit(*args, root=tmp_path)
        assert res.returncode == 1, res.stderr
        assert res.stderr.strip().splitlines() == [f"aslkit {args[0]}: error: " + res.stderr.split("error: ", 1)[1]
                                                   .strip()] and line in res.stderr and "Traceback" not in res.stderr
    res = _kit("--debug", "train", "--preset", "ci", "optim.epochs=0", root=tmp_path)
    assert res.returncode == 1 and "Traceback" in res.stderr and "optim.epochs must be at least 1" in res.stderr
    assert not (tmp_path / "logs").exists()


def test_two_data_folders_of_the_same_name_do_not_share_a_cache(islr_synth, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path / "root"))
    first, second = (shutil.copytree(islr_synth, tmp_path / w / "asl-signs") for w in ("a", "b"))
    cache = prepare(C.SLUG_SIGNS, "ci", {"data_dir": str(first)})
    index = (cache.path / "index.parquet").read_bytes()
    with pytest.raises(DataError, match=f"{cache.path}: holds the cache of {first}, not of {second}.*out_dir="):
        prepare(C.SLUG_SIGNS, "ci", {"data_dir": str(second)})
    assert (cache.path / "index.parquet").read_bytes() == index and cache.config.data_dir == str(first)
    other = prepare(C.SLUG_SIGNS, "ci", {"data_dir": str(second), "out_dir": str(tmp_path / "cache_b")})
    assert other.config.data_dir == str(second)
    (tmp_path / "link").symlink_to(second)                   # the same folder through a link is the same folder
    again = prepare(C.SLUG_SIGNS, "ci", {"data_dir": str(tmp_path / "link"), "out_dir": str(tmp_path / "cache_b")})
    assert again.path == other.path
    shutil.rmtree(first)                                    # the first data folder is gone (e.g. a moved checkout)
    taken = prepare(C.SLUG_SIGNS, "ci", {"data_dir": str(second)})
    assert taken.path == cache.path and taken.config.data_dir == str(second)
    assert f"its data folder {first} is gone" in capsys.readouterr().out


def test_a_process_waits_for_the_one_preparing_the_cache(islr_synth, tmp_path):
    out = tmp_path / "cache"
    args = ["prepare", "--data-dir", str(islr_synth), "--preset", "ci", f"out_dir={out}", "workers=1"]
    env = {**os.environ, "ASLKIT_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    waiting = f"{out}: another process is preparing this cache; waiting for it"
    with cache_lock(out):                                    # another process is preparing this cache
        proc = subprocess.Popen([sys.executable, "-m", "aslkit", *args], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        seen = []
        for line in proc.stdout:                             # until it says it waits (or ends without waiting)
            seen.append(line)
            if waiting in line:
                break
        assert waiting in "".join(seen), "".join(seen)
        assert not (out / "prepared.json").exists()          # it waits instead of writing shards
    rest = proc.stdout.read()
    assert proc.wait(timeout=300) == 0, rest
    assert (out / "prepared.json").is_file() and (out / LOCK).is_file()


def test_the_libraries_native_messages_go_to_the_log(tmp_path, capfd):
    with native_stderr_to(tmp_path / "convert.log"):
        os.write(2, b"Unable to register cuFFT factory\n")
    os.write(2, b"the kit's own line\n")
    assert capfd.readouterr().err == "the kit's own line\n"
    assert (tmp_path / "convert.log").read_text() == "Unable to register cuFFT factory\n"
