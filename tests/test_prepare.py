"""The asl-signs preparation stage: exact values, index and folds, idempotence, resume, invalidation, bad files."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from aslkit import constants as C
from aslkit.config import make_config
from aslkit.data import cache
from aslkit.data.errors import DataError
from aslkit.data.folds import group_folds, random_folds
from aslkit.data.islr import load_relevant_data_subset
from aslkit.synth.writer import long_table
from aslkit.tasks.signs.prepare import (
    PrepareConfig,
    PreparedSigns,
    build_cache,
    check_config,
    prepare_signs,
    shard_starts,
)

SHARD = 50   # the ci dataset's 200 sequences make 5 shards


def config(data: Path, out: Path, **kw) -> PrepareConfig:
    """A small-shard config for the test data."""
    return PrepareConfig(data_dir=str(data), out_dir=str(out), shard_size=SHARD, workers=kw.pop("workers", 1), **kw)


def mtimes(folder: Path) -> dict[str, int]:
    """mtime_ns of every file under ``folder``."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def contents(folder: Path) -> dict[str, bytes]:
    """Bytes of the shards and the tables of a cache (everything but config.yaml, which names the folder, and the
    lock file of the process that prepared it)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and p.name not in (cache.CONFIG, cache.LOCK)}


def shard_of(ds: PreparedSigns, i: int) -> str:
    return str(ds.index["shard"].iloc[i])


@pytest.fixture(scope="module")
def prepared(islr_synth, tmp_path_factory) -> Path:
    """A clean cache of the session's synthetic data, built with two worker processes."""
    return prepare_signs(config(islr_synth, tmp_path_factory.mktemp("prepared") / "islr", workers=2))


@pytest.fixture()
def data(islr_synth, tmp_path) -> Path:
    """A private copy of the synthetic data that a test may modify."""
    return Path(shutil.copytree(islr_synth, tmp_path / "data"))


def test_values_equal_the_reader(prepared, islr_synth):
    ds = PreparedSigns(prepared)
    assert np.array_equal(ds.subset, C.CACHE_SUBSETS["islr"])
    assert len(ds) == 200 and ds.index["shard"].nunique() >= 3
    for i in range(len(ds)):
        ref = load_relevant_data_subset(islr_synth / ds.index["path"].iloc[i])[:, C.CACHE_SUBSETS["islr"]]
        x = ds[i]
        shape = (ds.index["length"].iloc[i], len(C.CACHE_SUBSETS["islr"]), 3)
        assert x.dtype == np.float32 and x.shape == ref.shape == shape
        np.testing.assert_array_equal(x, ref)                  # NaNs in the same places, values bit-equal
    assert any(np.isnan(ds[i]).any() for i in range(len(ds)))
    assert isinstance(ds.shard(shard_of(ds, 0)), np.memmap)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_index_and_group_folds(prepared, islr_synth):
    ds = PreparedSigns(prepared)
    train = pd.read_csv(islr_synth / "train.csv")
    idx = ds.index
    assert list(idx.columns) == cache.INDEX_COLUMNS
    assert sorted(idx["sequence_id"]) == sorted(train["sequence_id"]) and idx["sequence_id"].is_monotonic_increasing
    merged = idx.merge(train, on="sequence_id", suffixes=("", "_csv"))
    assert (merged["sign"] == merged["sign_csv"]).all() and (merged["path"] == merged["path_csv"]).all()
    assert (idx["label"] == idx["sign"].map(C.sign_to_index())).all()
    for name, rows in idx.groupby("shard"):                  # sequences tile their shard without gaps
        assert (rows["start"].to_numpy() == np.concatenate([[0], rows["length"].cumsum()[:-1]])).all()
        assert ds.shard(name).shape[0] == rows["length"].sum()
    assert ds.meta["n_frames"] == idx["length"].sum()
    folds = ds.folds
    assert (folds["sequence_id"].to_numpy() == idx["sequence_id"].to_numpy()).all()
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3]
    assert (folds.groupby("participant_id")["fold"].nunique() == 1).all()
    assert ds.errors.empty and ds.config.fold_method == "group" and ds.config.data_dir == str(islr_synth)


def test_random_folds_change_only_the_folds(prepared, islr_synth, tmp_path):
    out = Path(shutil.copytree(prepared, tmp_path / "islr"))
    group = PreparedSigns(out).folds
    report = build_cache(config(islr_synth, out, fold_method="random", seed=3))
    assert report.built == [] and len(report.kept) == PreparedSigns(out).meta["n_shards"]
    folds = PreparedSigns(out).folds
    assert (folds["sequence_id"] == group["sequence_id"]).all() and not (folds["fold"] == group["fold"]).all()
    assert (folds.groupby("participant_id")["fold"].nunique() > 1).any()
    assert folds["fold"].value_counts().tolist() == [50] * 4
    np.testing.assert_array_equal(random_folds(200, 4, 3), folds["fold"])   # seeded: the same split again


def test_group_folds_balanced_and_disjoint():
    sizes = [30, 25, 20, 20, 10, 9, 5, 1]
    groups = np.repeat(np.arange(100, 100 + len(sizes)), sizes)[::-1]
    folds = group_folds(groups, 3)
    assert all(len(set(folds[groups == g])) == 1 for g in np.unique(groups))
    assert np.bincount(folds).tolist() == [40, 40, 40]
    with pytest.raises(ValueError, match=r"cannot make 5 group folds from 2 participant\(s\)"):
        group_folds(np.array([1, 1, 2]), 5)


def test_second_run_rewrites_nothing(islr_synth, tmp_path, capsys):
    cfg = config(islr_synth, tmp_path / "islr")
    first = build_cache(cfg)
    before = mtimes(tmp_path / "islr")
    second = build_cache(cfg)
    assert second.built == [] and second.removed == [] and second.kept == first.built
    assert mtimes(tmp_path / "islr") == before
    prepare_signs(cfg)
    assert f"all {len(first.built)} shards up to date" in capsys.readouterr().out


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("workers", [1, 2])
def test_resume_after_interruption(islr_synth, prepared, tmp_path, workers):
    out = tmp_path / "islr"

    def stop(result):
        raise Interrupted(result.name)

    with pytest.raises(Interrupted):
        build_cache(config(islr_synth, out, workers=workers), on_shard=stop)
    done = sorted(p.stem for p in (out / cache.SHARDS).glob("*.json"))
    assert 1 <= len(done) < 5
    with pytest.raises(DataError, match="not a complete prepared cache"):
        PreparedSigns(out)
    report = build_cache(config(islr_synth, out, workers=workers))
    assert sorted(report.kept) == done and len(report.built) == 5 - len(done)
    assert contents(out) == contents(prepared)                 # the same bytes as a run never interrupted


def rewrite_sequence(path: Path) -> np.ndarray:
    """Overwrite a landmark parquet with different content (3 frames fewer, shifted); the new subset values."""
    x = load_relevant_data_subset(path)[:-3] + np.float32(0.25)
    pq.write_table(long_table(x, first_frame=5), path)
    return x[:, C.CACHE_SUBSETS["islr"]]


def test_changed_file_rebuilds_only_its_shard(data, tmp_path):
    out = tmp_path / "islr"
    ds = PreparedSigns(build_cache(config(data, out)).path)
    before = mtimes(out)
    i, j = 50, 150                                            # sequences in two different shards
    assert shard_of(ds, i) != shard_of(ds, j) and shard_of(ds, i) == shard_of(ds, i + 1)
    neighbour = ds[i + 1]
    new = rewrite_sequence(data / ds.index["path"].iloc[i])
    report = build_cache(config(data, out))
    assert report.built == [shard_of(ds, i)]
    ds2 = PreparedSigns(out)
    np.testing.assert_array_equal(ds2[i], new)
    assert ds2.index["length"].iloc[i] == ds.index["length"].iloc[i] - 3
    np.testing.assert_array_equal(ds2[i + 1], neighbour)      # next sequence of the same shard, moved up
    after = mtimes(out)
    changed = {k for k in before if before[k] != after[k]}
    assert {k for k in changed if k.startswith(cache.SHARDS)} == {f"{cache.SHARDS}/{shard_of(ds, i)}.npy",
                                                                  f"{cache.SHARDS}/{shard_of(ds, i)}.json"}
    src = data / ds.index["path"].iloc[j]                      # a new mtime alone is a change too
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    assert build_cache(config(data, out)).built == [shard_of(ds, j)]


def test_removed_and_added_row_rebuild_only_their_shard(data, tmp_path):
    out = tmp_path / "islr"
    ds = PreparedSigns(build_cache(config(data, out)).path)
    sizes = ds.index.groupby("shard", sort=False).size()
    name = next(s for s in sizes.index[1:-1] if SHARD // 2 < sizes[s] < 2 * SHARD)
    victim = int(ds.index.loc[ds.index["shard"] == name, "sequence_id"].iloc[1])   # not the shard's first
    train = pd.read_csv(data / "train.csv")
    train[train["sequence_id"] != victim].to_csv(data / "train.csv", index=False)
    report = build_cache(config(data, out))
    assert report.built == [name] and report.removed == [] and len(report.kept) == len(sizes) - 1
    assert victim not in set(PreparedSigns(out).index["sequence_id"]) and len(PreparedSigns(out)) == 199
    train.to_csv(data / "train.csv", index=False)             # the row is back
    assert build_cache(config(data, out)).built == [name]
    assert PreparedSigns(out).index.equals(ds.index)


def test_shard_cuts_are_local():
    ids = np.sort(np.random.default_rng(0).choice(2 ** 32, 5000, replace=False))
    starts = shard_starts(ids, 100)
    sizes = np.diff(starts + [len(ids)])
    assert (sizes[:-1] >= 50).all() and (sizes <= 200).all() and 30 < len(starts) < 80
    first_ids = set(ids[starts])
    for k in (7, 1234, 4321):                                  # drop one id that does not start a shard
        if ids[k] in first_ids:
            continue
        kept = np.delete(ids, k)
        changed = set(kept[shard_starts(kept, 100)]) ^ first_ids
        assert len(changed) <= 2


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_file_is_a_data_error_naming_it(data, tmp_path, workers):
    bad = data / pd.read_csv(data / "train.csv")["path"].iloc[7]
    bad.write_bytes(b"PAR1 not a parquet file")
    with pytest.raises(DataError, match=rf"{bad.name}: unreadable parquet"):
        build_cache(config(data, tmp_path / "islr", workers=workers))


def test_skip_bad_lists_the_files_and_keeps_the_rest(data, islr_synth, tmp_path):
    out = tmp_path / "islr"
    paths = pd.read_csv(data / "train.csv")["path"]
    corrupt, missing = paths.iloc[7], paths.iloc[120]
    (data / corrupt).write_bytes(b"PAR1 not a parquet file")
    (data / missing).unlink()
    report = build_cache(config(data, out, skip_bad=True))
    ds = PreparedSigns(out)
    errors = ds.errors.set_index("path")["error"]
    assert sorted(errors.index) == sorted([corrupt, missing]) and len(report.skipped) == 2
    assert "unreadable parquet" in errors[corrupt] and "missing landmark parquet" in errors[missing]
    assert len(ds) == 198 and set(ds.index["path"]) == set(paths) - {corrupt, missing}
    assert len(ds.folds) == 198 and ds.meta["n_skipped"] == 2
    for i in range(0, len(ds), 9):
        ref = load_relevant_data_subset(data / ds.index["path"].iloc[i])[:, ds.subset]
        np.testing.assert_array_equal(ds[i], ref)
    assert build_cache(config(data, out, skip_bad=True)).built == []
    with pytest.raises(DataError, match="unreadable parquet|missing landmark parquet"):
        build_cache(config(data, out))                         # without skip_bad the bad files are errors again
    for rel in (corrupt, missing):                              # repaired: their shards are rebuilt, errors.csv empty
        shutil.copy2(islr_synth / rel, data / rel)
    report = build_cache(config(data, out))
    assert len(report.built) <= 2 and len(PreparedSigns(out)) == 200 and PreparedSigns(out).errors.empty


def test_config_presets_checks_and_default_out_dir(islr_synth, tmp_path, monkeypatch):
    assert make_config(PrepareConfig, "ci").synth_size == "ci"
    assert make_config(PrepareConfig, "full", ["n_folds=5"]).n_folds == 5
    for bad, match in (({"subset": "nope"}, "subset must be one of"), ({"fold_method": "x"}, "fold_method"),
                       ({"shard_size": 0}, "shard_size must be at least 1"), ({"task": C.SLUG_FS}, "asl-signs")):
        with pytest.raises(ValueError, match=match):
            check_config(PrepareConfig(**bad))
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    path = prepare_signs(PrepareConfig(data_dir=str(islr_synth), subset="all", shard_size=100, workers=2))
    assert path == tmp_path / "input" / "prepared" / C.SLUG_SIGNS / "all"
    ds = PreparedSigns(path)
    assert ds.config.out_dir == str(path) and ds.config.subset == "all" and len(ds.subset) == C.ROWS_PER_FRAME
    for i in (0, 99, 199):
        np.testing.assert_array_equal(ds[i], load_relevant_data_subset(islr_synth / ds.index["path"].iloc[i]))
