"""Bad input gets one clear DataError naming the file, row or column, and loses nothing else ("Never silently
wrong", items 5 and 7): text in landmark values, non-integer ids in the metadata CSVs, and fingerspelling
``skip_bad`` leaving out only the bad sequences of a readable file."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aslkit import constants as C
from aslkit.data import fs, islr
from aslkit.data.errors import DataError
from aslkit.tasks.fingerspelling.prepare import PreparedFS, PrepareFSConfig, build_fs_cache
from aslkit.tasks.signs.prepare import PrepareConfig, PreparedSigns, build_cache

FS_COLUMN = C.FS_130_COLUMNS[5]


def small_signs(islr_synth: Path, out: Path, n: int = 6) -> Path:
    """The first ``n`` sequences of the synthetic asl-signs data, copied to ``out``."""
    train = pd.read_csv(islr_synth / "train.csv", dtype=str).head(n)
    for rel in train["path"]:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(islr_synth / rel, out / rel)
    shutil.copy2(islr_synth / islr.LABEL_MAP, out / islr.LABEL_MAP)
    train.to_csv(out / "train.csv", index=False)
    return out


def small_fs(fs_synth: Path, out: Path) -> Path:
    """The train files of the synthetic asl-fingerspelling data (without supplemental), copied to ``out``."""
    shutil.copytree(fs_synth / "train_landmarks", out / "train_landmarks")
    for name in ("train.csv", "supplemental_metadata.csv", fs.CHAR_MAP):
        shutil.copy2(fs_synth / name, out / name)
    return out


def put_text(path: Path, column: str, row: int, text: str = "abc") -> None:
    """Rewrite a parquet file with ``column`` as text and ``text`` at row position ``row`` (index kept)."""
    df = pd.read_parquet(path)
    values = df[column].map(lambda v: repr(float(v))).astype(object)
    values.iloc[row] = text
    df[column] = values.astype(str)
    df.to_parquet(path)


def edit_csv(path: Path, row: int, column: str, value: str) -> None:
    """Set one cell of a CSV (read and written as text)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[row, column] = value
    df.to_csv(path, index=False)


# ---------------------------------------------------------------------------------------------- asl-signs
def test_signs_text_value_names_the_file_column_and_row(islr_synth, tmp_path):
    data = small_signs(islr_synth, tmp_path / "data")
    rel = pd.read_csv(data / "train.csv")["path"].iloc[2]
    put_text(data / rel, "y", 600)
    with pytest.raises(DataError, match=rf"{Path(rel).name}: non-numeric value 'abc' in column 'y' at parquet "
                                        r"row 600"):
        islr.load_relevant_data_subset(data / rel)


def test_signs_text_value_is_skipped_with_skip_bad(islr_synth, tmp_path):
    data = small_signs(islr_synth, tmp_path / "data")
    train = pd.read_csv(data / "train.csv")
    rel, sid = train["path"].iloc[2], int(train["sequence_id"].iloc[2])
    put_text(data / rel, "x", 10)
    cfg = PrepareConfig(data_dir=str(data), out_dir=str(tmp_path / "islr"), workers=1, fold_method="random")
    with pytest.raises(DataError, match=rf"{Path(rel).name}: non-numeric value.*skip_bad=true"):
        build_cache(cfg)
    cfg.skip_bad = True
    report = build_cache(cfg)
    ds = PreparedSigns(cfg.out_dir)
    assert ds.errors[["path", "sequence_id"]].values.tolist() == [[rel, str(sid)]]
    assert "'abc' in column 'x'" in ds.errors["error"].iloc[0] and len(ds) == len(train) - 1
    assert f"1 sequence(s) skipped, listed in {Path(cfg.out_dir) / 'errors.csv'}: {rel}" in report.summary()


@pytest.mark.parametrize("column, value", [("participant_id", ""), ("sequence_id", "12.5")])
def test_signs_train_csv_non_integer_id_names_the_line(islr_synth, tmp_path, column, value):
    data = small_signs(islr_synth, tmp_path)
    edit_csv(data / "train.csv", 3, column, value)
    with pytest.raises(DataError, match=rf"train\.csv: column '{column}' must hold integers; 1 row\(s\) do not, "
                                        rf"first line 5: '{value}' \(CSV line numbers"):
        islr.read_train_csv(data)


# ------------------------------------------------------------------------------------- asl-fingerspelling
@pytest.mark.parametrize("which", ["train", "supplemental"])
def test_fs_metadata_non_integer_id_names_the_line(fs_synth, tmp_path, which):
    name = fs.METADATA_FILES[which]
    shutil.copy2(fs_synth / name, tmp_path / name)
    edit_csv(tmp_path / name, 0, "participant_id", "")
    edit_csv(tmp_path / name, 4, "participant_id", "x7")
    with pytest.raises(DataError, match=rf"{name}: column 'participant_id' must hold integers; 2 row\(s\) do not, "
                                        r"first line 2: '', line 6: 'x7'"):
        fs.read_metadata(tmp_path, which)


def fs_bad_sequence(data: Path) -> tuple[str, int, int]:
    """Put text into one landmark value of the second sequence of the first train file; its path, sequence_id
    and the number of sequences of that file."""
    train = pd.read_csv(data / "train.csv")
    rel = train["path"].iloc[0]
    frame = pd.read_parquet(data / rel, columns=[FS_COLUMN])
    sid = int(train.loc[train["path"] == rel, "sequence_id"].iloc[1])
    put_text(data / rel, FS_COLUMN, int(np.flatnonzero(frame.index == sid)[3]))
    return rel, sid, int((train["path"] == rel).sum())


def test_fs_text_value_names_the_file_column_and_sequence(fs_synth, tmp_path):
    data = small_fs(fs_synth, tmp_path / "data")
    rel, sid, _ = fs_bad_sequence(data)
    with pytest.raises(DataError, match=rf"{Path(rel).name}: non-numeric value 'abc' in column '{FS_COLUMN}' for "
                                        rf"sequence_id\(s\) \[{sid}\]"):
        fs.read_fs_file(data / rel, C.FS_130_COLUMNS)


def test_fs_skip_bad_keeps_the_other_sequences_of_the_file(fs_synth, tmp_path):
    data = small_fs(fs_synth, tmp_path / "data")
    rel, sid, n_file = fs_bad_sequence(data)
    cfg = PrepareFSConfig(data_dir=str(data), out_dir=str(tmp_path / "fs"), workers=1)
    with pytest.raises(DataError, match=rf"{Path(rel).name}: non-numeric value.*\[{sid}\].*skip_bad=true"):
        build_fs_cache(cfg)
    cfg.skip_bad = True
    report = build_fs_cache(cfg)
    ds = PreparedFS(cfg.out_dir)
    train = pd.read_csv(data / "train.csv")
    assert ds.errors[["path", "sequence_id"]].values.tolist() == [[rel, str(sid)]]
    assert set(ds.index["sequence_id"]) == set(train["sequence_id"]) - {sid}
    assert ds.meta["n_skipped_sequences"] == 1 and report.n_skipped == 1
    assert f"1 sequence(s) skipped, listed in {Path(cfg.out_dir) / 'errors.csv'}: {rel} (sequence_id {sid})" \
        in report.summary()
    ref = fs.read_fs_file(fs_synth / rel, C.FS_130_COLUMNS)
    kept = np.flatnonzero((ds.index["file_id"] == int(Path(rel).stem)).to_numpy())
    assert len(kept) == n_file - 1
    for i in kept:
        expected = fs.blocks_to_landmarks(ref[int(ds.index["sequence_id"].iloc[i])], len(C.FS_130))
        np.testing.assert_array_equal(ds[i], expected)


def test_fs_skip_bad_sequence_missing_from_its_file(fs_synth, tmp_path):
    data = small_fs(fs_synth, tmp_path / "data")
    train = pd.read_csv(data / "train.csv")
    rel = train["path"].iloc[0]
    sid = int(train.loc[train["path"] == rel, "sequence_id"].iloc[-1])
    df = pd.read_parquet(data / rel)
    df[df.index != sid].to_parquet(data / rel)
    report = build_fs_cache(PrepareFSConfig(data_dir=str(data), out_dir=str(tmp_path / "fs"), workers=1,
                                            skip_bad=True))
    ds = PreparedFS(report.path)
    assert ds.errors.values.tolist() == [[rel, str(sid), fs.EMPTY_SEQUENCE]]
    assert len(ds) == len(train) - 1 and sid not in set(ds.index["sequence_id"])


def test_fs_unreadable_file_counts_all_its_sequences(fs_synth, tmp_path):
    data = small_fs(fs_synth, tmp_path / "data")
    train = pd.read_csv(data / "train.csv")
    rel = train["path"].iloc[-1]
    (data / rel).write_bytes(b"PAR1 not a parquet file")
    n_file = int((train["path"] == rel).sum())
    report = build_fs_cache(PrepareFSConfig(data_dir=str(data), out_dir=str(tmp_path / "fs"), workers=1,
                                            skip_bad=True))
    ds = PreparedFS(report.path)
    assert ds.errors[["path", "sequence_id"]].values.tolist() == [[rel, ""]]
    assert report.n_skipped == n_file == ds.meta["n_skipped_sequences"] and len(ds) == len(train) - n_file
    assert f"{n_file} sequence(s) skipped, listed in" in report.summary() and f"{rel} (whole file)" in report.summary()
