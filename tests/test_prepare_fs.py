"""The asl-fingerspelling preparation stage: exact values, phrases, index and folds, idempotence, invalidation,
bad files, supplemental data."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aslkit import constants as C
from aslkit.config import make_config
from aslkit.data import cache
from aslkit.data.errors import DataError
from aslkit.data.folds import random5_folds
from aslkit.data.fs import blocks_to_landmarks, decode_indices, read_fs_file
from aslkit.tasks.fingerspelling.prepare import (
    PreparedFS,
    PrepareFSConfig,
    build_fs_cache,
    check_fs_config,
    prepare_fingerspelling,
)


def config(data: Path, out: Path, **kw) -> PrepareFSConfig:
    return PrepareFSConfig(data_dir=str(data), out_dir=str(out), workers=kw.pop("workers", 1), **kw)


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def prepared(fs_synth, tmp_path_factory) -> Path:
    """Train + supplemental, built with two worker processes."""
    out = tmp_path_factory.mktemp("prepared") / "fs130"
    return prepare_fingerspelling(config(fs_synth, out, workers=2, include_supplemental=True))


@pytest.fixture()
def data(fs_synth, tmp_path) -> Path:
    """A private copy of the synthetic data that a test may modify."""
    return Path(shutil.copytree(fs_synth, tmp_path / "data"))


def test_blocks_to_landmarks():
    T, n = 2, 4
    x = np.arange(T * 3 * n, dtype=np.float64).reshape(T, 3 * n)    # row t: x0..x3, y0..y3, z0..z3
    lm = blocks_to_landmarks(x, n)
    assert lm.shape == (T, n, 3) and lm.dtype == np.float32 and lm.flags.c_contiguous
    for t in range(T):
        for j in range(n):
            assert lm[t, j].tolist() == [x[t, j], x[t, n + j], x[t, 2 * n + j]]
    with pytest.raises(ValueError, match=r"expected \[T, 12\]"):
        blocks_to_landmarks(x[:, :-1], n)


def test_values_equal_the_reader(prepared, fs_synth):
    ds = PreparedFS(prepared)
    assert ds.columns == C.FS_130_COLUMNS and np.array_equal(ds.subset, C.FS_130)
    idx = ds.index
    for (source, file_id), rows in idx.groupby(["source", "file_id"]):
        folder = "train_landmarks" if source == "train" else "supplemental_landmarks"
        ref = read_fs_file(fs_synth / folder / f"{file_id}.parquet", C.FS_130_COLUMNS)
        for i in rows.index:
            wide = ref[int(idx["sequence_id"].iloc[i])]
            x = ds[i]
            assert x.dtype == np.float32 and x.shape == (len(wide), 130, 3) == (idx["length"].iloc[i], 130, 3)
            for a in range(3):                                   # column block a is axis a of every landmark
                np.testing.assert_array_equal(x[:, :, a], wide[:, 130 * a:130 * (a + 1)])
    assert any(np.isnan(ds[i]).any() for i in range(len(ds)))
    assert isinstance(ds.shard(idx["shard"].iloc[0]), np.memmap)


def test_phrases_round_trip(prepared, fs_synth):
    ds = PreparedFS(prepared)
    meta = pd.concat([pd.read_csv(fs_synth / f, dtype={"phrase": str}, keep_default_na=False)
                      for f in ("train.csv", "supplemental_metadata.csv")])
    phrase = meta.set_index("sequence_id")["phrase"]
    for i in range(len(ds)):
        ids = ds.phrase_ids(i)
        assert ids.dtype == np.int64 and len(ids) == ds.index["phrase_len"].iloc[i]
        assert decode_indices(ids) == ds.index["phrase"].iloc[i] == phrase[ds.index["sequence_id"].iloc[i]]


def test_index_folds_and_supplemental(prepared, fs_synth):
    ds = PreparedFS(prepared)
    idx = ds.index
    train = pd.read_csv(fs_synth / "train.csv")
    supp = pd.read_csv(fs_synth / "supplemental_metadata.csv")
    assert list(idx.columns) == ["sequence_id", "participant_id", "file_id", "phrase", "phrase_len", "source",
                                 "length", "shard", "start"]
    assert sorted(idx["sequence_id"]) == sorted(pd.concat([train, supp])["sequence_id"])    # every sequence once
    assert set(idx.loc[idx["source"] == "supplemental", "sequence_id"]) == set(supp["sequence_id"])
    assert set(idx.loc[idx["source"] == "train", "sequence_id"]) == set(train["sequence_id"])
    assert idx["shard"].nunique() == train["file_id"].nunique() + supp["file_id"].nunique()
    for name, rows in idx.groupby("shard"):                  # one file per shard, sequences tile it
        assert rows["file_id"].nunique() == 1
        assert (rows["start"].to_numpy() == np.concatenate([[0], rows["length"].cumsum()[:-1]])).all()
        assert ds.shard(name).shape[0] == rows["length"].sum()
    assert ds.meta["n_frames"] == idx["length"].sum() and ds.errors.empty
    folds = ds.folds
    assert (folds["sequence_id"].to_numpy() == idx["sequence_id"].to_numpy()).all()
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3]
    assert (folds.groupby("participant_id")["fold"].nunique() == 1).all()
    assert ds.config.include_supplemental and ds.config.data_dir == str(fs_synth)


def test_train_only_and_random5(fs_synth, prepared, tmp_path):
    out = tmp_path / "fs"
    build_fs_cache(config(fs_synth, out, fold_method="random5", seed=1))
    ds = PreparedFS(out)
    assert set(ds.index["source"]) == {"train"} and len(ds) == len(pd.read_csv(fs_synth / "train.csv"))
    fold = ds.folds["fold"].to_numpy()
    assert set(fold) == {-1, 0} and (fold == 0).sum() == int(np.ceil(0.05 * len(ds)))
    np.testing.assert_array_equal(random5_folds(len(ds), 1), fold)
    assert not np.array_equal(random5_folds(len(ds), 2), fold)
    full = PreparedFS(prepared)                                 # same shards as in the train+supplemental cache
    for i in (0, len(ds) - 1):
        j = int(np.flatnonzero(full.index["sequence_id"] == ds.index["sequence_id"].iloc[i])[0])
        np.testing.assert_array_equal(ds[i], full[j])


def test_second_run_rewrites_nothing(fs_synth, tmp_path, capsys):
    cfg = config(fs_synth, tmp_path / "fs", include_supplemental=True)
    first = build_fs_cache(cfg)
    before = mtimes(tmp_path / "fs")
    second = build_fs_cache(cfg)
    assert len(first.built) == 3 and second.built == [] and second.removed == [] and second.kept == first.built
    assert mtimes(tmp_path / "fs") == before
    prepare_fingerspelling(cfg)
    assert "all 3 shards up to date" in capsys.readouterr().out
    third = build_fs_cache(config(fs_synth, tmp_path / "fs"))   # supplemental dropped: its shard removed
    assert third.built == [] and len(third.removed) == 1 and third.removed[0].startswith("supplemental-")


def test_changed_file_rebuilds_only_its_shard(data, tmp_path):
    out = tmp_path / "fs"
    ds = PreparedFS(build_fs_cache(config(data, out)).path)
    before = mtimes(out)
    path = data / pd.read_csv(data / "train.csv")["path"].iloc[0]
    df = pd.read_parquet(path)
    sid = int(df.index[0])
    old = ds[int(np.flatnonzero(ds.index["sequence_id"] == sid)[0])]
    df = df.iloc[3:]                                             # first sequence loses its first 3 frames
    num = df.columns != "frame"
    df.loc[:, num] = df.loc[:, num] + np.float32(0.25)
    df.to_parquet(path)
    report = build_fs_cache(config(data, out))
    name = f"train-{int(path.stem):010d}"
    assert report.built == [name] and len(report.kept) == 1
    ds2 = PreparedFS(out)
    i = int(np.flatnonzero(ds2.index["sequence_id"] == sid)[0])
    assert ds2.index["length"].iloc[i] == ds.index["length"].iloc[i] - 3
    np.testing.assert_array_equal(ds2[i], old[3:] + np.float32(0.25))
    after = mtimes(out)
    changed = {k for k in before if before[k] != after[k] and k.startswith(cache.SHARDS)}
    assert changed == {f"{cache.SHARDS}/{name}.npy", f"{cache.SHARDS}/{name}.json"}


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_file_is_a_data_error_naming_it(data, tmp_path, workers):
    bad = data / pd.read_csv(data / "train.csv")["path"].iloc[-1]
    bad.write_bytes(b"PAR1 not a parquet file")
    with pytest.raises(DataError, match=rf"{bad.name}: unreadable parquet"):
        build_fs_cache(config(data, tmp_path / "fs", workers=workers))


def test_skip_bad_records_the_file_and_keeps_the_rest(data, fs_synth, tmp_path):
    out = tmp_path / "fs"
    train = pd.read_csv(data / "train.csv")
    rel = train["path"].iloc[-1]
    (data / rel).write_bytes(b"PAR1 not a parquet file")
    report = build_fs_cache(config(data, out, skip_bad=True))
    ds = PreparedFS(out)
    assert ds.errors["path"].tolist() == [rel] and "unreadable parquet" in ds.errors["error"].iloc[0]
    assert len(report.skipped) == 1 and ds.meta["n_skipped"] == 1
    assert set(ds.index["sequence_id"]) == set(train.loc[train["path"] != rel, "sequence_id"])
    assert len(ds.folds) == len(ds)
    assert build_fs_cache(config(data, out, skip_bad=True)).built == []
    with pytest.raises(DataError, match="unreadable parquet"):
        build_fs_cache(config(data, out))                      # without skip_bad the bad file is an error again
    shutil.copy2(fs_synth / rel, data / rel)                   # repaired: only its shard is rebuilt
    report = build_fs_cache(config(data, out))
    assert len(report.built) == 1 and len(PreparedFS(out)) == len(train) and PreparedFS(out).errors.empty


def test_config_presets_checks_and_default_out_dir(fs_synth, tmp_path, monkeypatch):
    assert make_config(PrepareFSConfig, "ci").synth_size == "ci"
    assert make_config(PrepareFSConfig, "full", ["n_folds=5"]).n_folds == 5
    for bad, match in (({"landmarks": "nope"}, "landmarks must be one of"), ({"fold_method": "random"}, "fold_"),
                       ({"n_folds": 1}, "n_folds must be at least 2"), ({"task": C.SLUG_SIGNS}, "fingerspelling")):
        with pytest.raises(ValueError, match=match):
            check_fs_config(PrepareFSConfig(**bad))
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    path = prepare_fingerspelling(PrepareFSConfig(data_dir=str(fs_synth), workers=1))
    assert path == tmp_path / "input" / "prepared" / C.SLUG_FS / "fs130"
    assert PreparedFS(path).config.out_dir == str(path)
