"""Never silently wrong: a run reuses its cache as it was prepared, asks nothing the cache lacks, and never trains
without the validation fold it names."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aslkit import constants as C
from aslkit.cli import main
from aslkit.prepare import prepare
from aslkit.runs import atomic_target, file_digest, save_array_atomic, write_csv_atomic
from aslkit.submit import package
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


def test_a_fresh_run_refuses_a_folder_that_is_not_empty_and_overwrite_clears_stale_exports(islr_synth, tmp_path):
    cache = prepare(C.SLUG_SIGNS, "ci", {"data_dir": str(islr_synth), "out_dir": str(tmp_path / "cache")})
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "export" / "model.tflite").write_bytes(b"an earlier model")
    args = ["train", "--preset", "ci", f"prepared_dir={cache.path}", f"run_name={run}", "optim.epochs=1",
            "max_train_samples=32", "model.layers=1"]
    with pytest.raises(FileExistsError, match=f"{run}: the run folder is not empty.*--resume.*--overwrite"):
        main(args)
    assert (run / "export" / "model.tflite").read_bytes() == b"an earlier model"       # nothing lost
    assert main(["train", "--overwrite", *args[1:]]) == 0
    assert not (run / "export").exists() and (run / "checkpoints" / "best.pt").is_file()


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
def test_a_folder_without_a_run_is_named(tmp_path, command):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: .*not a run folder|{tmp_path}: no oof.csv"):
        main([*command, str(tmp_path)])
    assert not any(tmp_path.iterdir())                                  # nothing written into it
