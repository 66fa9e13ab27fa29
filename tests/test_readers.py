"""Kaggle readers on the real samples, on synthetic data, and their errors on bad input."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aslkit import constants as C
from aslkit.data import fs, islr
from aslkit.data.errors import DataError
from aslkit.paths import real_islr_sample


def test_real_islr_sequence_reads_like_kaggle(samples):
    x = islr.load_relevant_data_subset(real_islr_sample())
    assert x.shape == (7, 543, 3) and x.dtype == np.float32
    assert np.isnan(x[:, C.LEFT_HAND]).all()                   # the left hand is absent in every frame
    assert np.isfinite(x[:, C.RIGHT_HAND]).all() and np.isfinite(x[:, C.POSE]).all()
    assert abs(float(x[0, 0, 0]) - 0.438251) < 1e-6           # face_0 of frame 22


def test_real_long_table_columns(samples):
    df = islr.read_long_parquet(real_islr_sample())
    assert list(df.columns) == islr.LONG_COLUMNS
    assert df["row_id"].iloc[0] == "22-face-0"


def test_islr_train_csv_and_label_map(islr_synth):
    df = islr.read_train_csv(islr_synth)
    assert list(df.columns) == islr.TRAIN_COLUMNS + ["label"]
    assert df["label"].between(0, 249).all()
    x = islr.load_relevant_data_subset(islr_synth / df["path"].iloc[0])
    assert x.ndim == 3 and x.shape[1:] == (543, 3)


def test_islr_unknown_sign(islr_synth, tmp_path):
    shutil.copy(islr_synth / islr.LABEL_MAP, tmp_path / islr.LABEL_MAP)
    df = pd.read_csv(islr_synth / "train.csv")
    df.loc[3, "sign"] = "notasign"
    df.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(DataError, match=r"train\.csv.*unknown sign.*notasign"):
        islr.read_train_csv(tmp_path)


def test_islr_missing_files(tmp_path):
    with pytest.raises(DataError, match="missing train.csv"):
        islr.read_train_csv(tmp_path)
    with pytest.raises(DataError, match=r"nope\.parquet: missing landmark parquet"):
        islr.load_relevant_data_subset(tmp_path / "nope.parquet")


def _write(path, **cols):
    pq.write_table(pa.table(cols), path)
    return path


def test_islr_bad_parquets(tmp_path):
    p = _write(tmp_path / "noz.parquet", x=np.zeros(543), y=np.zeros(543))
    with pytest.raises(DataError, match=r"noz\.parquet: missing columns: z"):
        islr.load_relevant_data_subset(p)
    p = _write(tmp_path / "short.parquet", x=np.zeros(600), y=np.zeros(600), z=np.zeros(600))
    with pytest.raises(DataError, match=r"short\.parquet: 600 rows is not a multiple of 543"):
        islr.load_relevant_data_subset(p)
    p = _write(tmp_path / "empty.parquet", x=np.zeros(0), y=np.zeros(0), z=np.zeros(0))
    with pytest.raises(DataError, match=r"empty\.parquet: empty sequence"):
        islr.load_relevant_data_subset(p)
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"corrupt\.parquet: unreadable parquet"):
        islr.load_relevant_data_subset(bad)


def test_fs_real_metadata_column_order(samples, tmp_path):
    shutil.copy(samples / "asl-fingerspelling" / "train.csv", tmp_path / "train.csv")
    df = fs.read_metadata(tmp_path, "train")
    assert list(df.columns) == ["path", "file_id", "sequence_id", "participant_id", "phrase"]
    assert df["sequence_id"].dtype == np.int64
    assert df.loc[0, "phrase"] == "3 creekhouse" and df.loc[0, "participant_id"] == 217


def test_fs_metadata_bad_phrase(samples, tmp_path):
    df = pd.read_csv(samples / "asl-fingerspelling" / "train.csv", dtype=str, keep_default_na=False)
    df.loc[5, "phrase"] = "Hello World"
    df.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(DataError, match=r"train\.csv: row 7 .*'Hello World'.*\['H', 'W'\]"):
        fs.read_metadata(tmp_path, "train")


def test_fs_character_map(samples, tmp_path):
    assert fs.read_character_map(samples / "asl-fingerspelling") == C.CHAR_TO_INDEX
    (tmp_path / fs.CHAR_MAP).write_text(json.dumps({"a": 0}))
    with pytest.raises(DataError, match="differs from the official"):
        fs.read_character_map(tmp_path)


def test_fs_file_reads_selected_columns_in_order(fs_synth):
    meta = fs.read_metadata(fs_synth, "train")
    path = fs_synth / meta["path"].iloc[0]
    ids = meta.loc[meta["path"] == meta["path"].iloc[0], "sequence_id"]
    seqs = fs.read_fs_file(path, C.FS_130_COLUMNS, ids)
    assert set(seqs) == set(ids.tolist())
    full = pd.read_parquet(path)
    sid = int(ids.iloc[0])
    arr = seqs[sid]
    assert arr.dtype == np.float32 and arr.shape == ((full.index == sid).sum(), 390)
    np.testing.assert_array_equal(arr, full.loc[[sid], C.FS_130_COLUMNS].to_numpy(np.float32))


def test_fs_file_errors(fs_synth, tmp_path):
    meta = fs.read_metadata(fs_synth, "train")
    path = fs_synth / meta["path"].iloc[0]
    with pytest.raises(DataError, match="missing columns: x_face_999"):
        fs.read_fs_file(path, ["x_face_999"])
    with pytest.raises(DataError, match=r"empty sequence: no frames for sequence_id\(s\) \[123\]"):
        fs.read_fs_file(path, ["x_face_0"], [123])
