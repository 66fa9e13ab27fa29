"""Data-directory resolution: explicit → input/<slug> → /kaggle/input/<slug> → synthetic, always printed."""
from __future__ import annotations

import pytest

from aslkit import constants as C
from aslkit.paths import input_root, project_root, resolve_data_dir, synthetic_dir


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    return tmp_path


def _fake_real(path):
    path.mkdir(parents=True)
    (path / "train.csv").write_text("path,participant_id,sequence_id,sign\n")
    return path


def test_project_root_follows_env(root):
    assert project_root() == root and input_root() == root / "input"


def test_order_explicit_input_kaggle_synthetic(root, tmp_path_factory, capsys, islr_synth):
    kaggle = tmp_path_factory.mktemp("kaggle_input")
    _fake_real(kaggle / C.SLUG_SIGNS)
    src = resolve_data_dir(C.SLUG_SIGNS, kaggle_input=kaggle)
    assert (src.origin, src.is_real, src.path) == ("kaggle", True, kaggle / C.SLUG_SIGNS)
    assert "REAL" in capsys.readouterr().out
    _fake_real(root / "input" / C.SLUG_SIGNS)
    src = resolve_data_dir(C.SLUG_SIGNS, kaggle_input=kaggle)
    assert (src.origin, src.is_real) == ("input", True)
    src = resolve_data_dir(C.SLUG_SIGNS, data_dir=islr_synth, kaggle_input=kaggle)
    assert (src.origin, src.is_real, src.path) == ("explicit", False, islr_synth)   # recognised as synthetic
    assert "SYNTHETIC" in capsys.readouterr().out


def test_synthetic_generated_on_first_use_then_reused(root, tmp_path_factory, capsys):
    empty = tmp_path_factory.mktemp("no_kaggle")
    src = resolve_data_dir(C.SLUG_FS, synth_size="ci", kaggle_input=empty)
    assert (src.origin, src.is_real) == ("synthetic", False)
    assert src.path == root / "input" / "synthetic" / f"{C.SLUG_FS}-ci" and (src.path / "train.csv").is_file()
    assert "generating synthetic" in capsys.readouterr().out
    mtime = (src.path / "train.csv").stat().st_mtime_ns
    resolve_data_dir(C.SLUG_FS, synth_size="ci", kaggle_input=empty)
    assert "generating" not in capsys.readouterr().out
    assert (src.path / "train.csv").stat().st_mtime_ns == mtime


def test_explicit_dir_without_data_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no train.csv"):
        resolve_data_dir(C.SLUG_SIGNS, data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown competition"):
        resolve_data_dir("asl-other")


def test_sizes_keep_their_own_synthetic_copy_and_cache(root, tmp_path_factory):
    from aslkit.paths import default_out_dir
    quick = synthetic_dir(C.SLUG_SIGNS, "quick")
    assert quick == root / "input" / "synthetic" / C.SLUG_SIGNS
    (quick / "marker").parent.mkdir(parents=True)
    (quick / "marker").write_text("quick data")
    ci = resolve_data_dir(C.SLUG_SIGNS, synth_size="ci", kaggle_input=tmp_path_factory.mktemp("none")).path
    assert ci == root / "input" / "synthetic" / f"{C.SLUG_SIGNS}-ci" and (quick / "marker").is_file()
    assert default_out_dir(C.SLUG_SIGNS, "islr", ci) != default_out_dir(C.SLUG_SIGNS, "islr", quick)
    assert default_out_dir(C.SLUG_SIGNS, "islr", quick) == root / "input" / "prepared" / C.SLUG_SIGNS / "islr"
