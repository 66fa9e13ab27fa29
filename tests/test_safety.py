"""Never silently wrong: a run reuses its cache as it was prepared, asks nothing the cache lacks, and never trains
without the validation fold it names."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from aslkit import constants as C
from aslkit.prepare import prepare
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
