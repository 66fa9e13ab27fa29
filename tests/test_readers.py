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


# ------------------------------------------------------- fast cache readers == the grader's pandas reads, bit for bit
ISLR_SUBSET = C.CACHE_SUBSETS["islr"]
FS_EXCERPT = "train_landmarks_5414471_excerpt.csv"


def outcome(read, *args):
    """What a reader returns, or the type and text of the error it raises."""
    try:
        return read(*args)
    except Exception as e:  # noqa: BLE001 - the two reads must fail alike, whatever the error
        return f"{type(e).__name__}: {e}"


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape and bytes (every NaN included)."""
    return (a.dtype == b.dtype == np.float32 and a.shape == b.shape
            and np.array_equal(np.ascontiguousarray(a).view(np.uint32), np.ascontiguousarray(b).view(np.uint32)))


def assert_same_islr(path, subset=None):
    fast, graded = outcome(islr.read_landmarks, path, subset), outcome(islr.load_relevant_data_subset, path)
    if isinstance(fast, str) or isinstance(graded, str):
        assert fast == graded
    else:
        assert same_bits(fast, graded if subset is None else graded[:, subset])


def test_fast_islr_reader_is_the_grader_read_on_real_and_synthetic_files(samples, islr_synth):
    paths = [real_islr_sample()] + [islr_synth / p for p in islr.read_train_csv(islr_synth)["path"]]
    for p in paths:
        assert_same_islr(p)
        assert_same_islr(p, ISLR_SUBSET)
    assert pq.read_table(real_islr_sample()).column("x").null_count > 0      # the real file's NaNs are nulls


def _nan_values(df, path):
    """x, y, z with NaN stored as a value, not as a null."""
    pq.write_table(pa.table({c: pa.array(df[c].to_numpy()) for c in ["x", "y", "z"]}), path)


ISLR_VARIANTS = {   # the real sequence rewritten: layouts the fast path reads itself or hands to the pandas read
    "pandas": lambda df, p: df.to_parquet(p),
    "pandas_index": lambda df, p: df.set_index("row_id").to_parquet(p),
    "float32": lambda df, p: df.astype({c: np.float32 for c in "xyz"}).to_parquet(p),
    "row_groups": lambda df, p: pq.write_table(pa.Table.from_pandas(df), p, row_group_size=1000),
    "nan_values": _nan_values,
    "mixed_widths": lambda df, p: df.astype({"y": np.float32}).to_parquet(p),
    "integers": lambda df, p: df.assign(x=np.arange(len(df))).to_parquet(p),
    "nullable_float": lambda df, p: df.astype({"z": "Float64"}).to_parquet(p),
    "text": lambda df, p: df.assign(x=df["x"].map(repr).where(df.index != 600, "abc")).to_parquet(p),
    "no_z": lambda df, p: df.drop(columns="z").to_parquet(p),
    "duplicate_x": lambda df, p: pq.write_table(pa.table([df["x"], df["x"], df["y"], df["z"]],
                                                         names=["x", "x", "y", "z"]), p),
    "short": lambda df, p: df.iloc[:600].to_parquet(p),
    "empty": lambda df, p: df.iloc[:0].to_parquet(p),
    "corrupt": lambda df, p: p.write_bytes(b"PAR1 this is not parquet"),
    "missing": lambda df, p: None,
    "bad_pandas_metadata": lambda df, p: pq.write_table(
        pa.Table.from_pandas(df).replace_schema_metadata({b"pandas": b"{not json"}), p),
}


@pytest.mark.parametrize("variant", sorted(ISLR_VARIANTS))
def test_fast_islr_reader_matches_the_grader_read_on_every_layout_and_error(samples, tmp_path, variant):
    path = tmp_path / f"{variant}.parquet"
    ISLR_VARIANTS[variant](pd.read_parquet(real_islr_sample()), path)
    assert_same_islr(path)
    assert_same_islr(path, ISLR_SUBSET)


def fs_as_graded(path, columns, ids=None):
    """``read_fs_sequences`` (the grader's pandas read) made landmark-major: what ``read_fs_landmarks`` returns."""
    seqs, problems = fs.read_fs_sequences(path, columns, ids)
    return {s: fs.blocks_to_landmarks(a, len(columns) // 3) for s, a in seqs.items()}, problems


def assert_same_fs(path, columns, ids=None):
    fast, graded = outcome(fs.read_fs_landmarks, path, columns, ids), outcome(fs_as_graded, path, columns, ids)
    if isinstance(fast, str) or isinstance(graded, str):
        assert fast == graded
        return
    assert fast[1] == graded[1] and sorted(fast[0]) == sorted(graded[0])
    assert all(same_bits(fast[0][s], graded[0][s]) for s in graded[0])
    return graded


def fs_excerpt(samples) -> tuple[pd.DataFrame, list[str]]:
    """The real excerpt (two sequences, 126 of its landmark columns, NaNs included) as the Kaggle file holds it:
    float32 columns, index sequence_id."""
    df = pd.read_csv(samples / "asl-fingerspelling" / FS_EXCERPT)
    columns = [c for c in df.columns if c not in ("sequence_id", "frame")][:126]
    df = df.astype({c: np.float32 for c in columns}).astype({"frame": np.int16}).set_index("sequence_id")
    return df.copy(), columns


def test_fast_fs_reader_is_the_grader_read_on_real_and_synthetic_files(samples, fs_synth, tmp_path):
    df, columns = fs_excerpt(samples)
    df.to_parquet(tmp_path / "real.parquet")
    ids = df.index.unique().tolist()
    graded = assert_same_fs(tmp_path / "real.parquet", columns, ids + [123])
    assert graded[1] == {123: fs.EMPTY_SEQUENCE} and np.isnan(graded[0][ids[0]]).any()
    assert_same_fs(tmp_path / "real.parquet", columns[::-1])
    meta = pd.concat([fs.read_metadata(fs_synth, which) for which in ("train", "supplemental")])
    for rel, rows in meta.groupby("path"):
        assert_same_fs(fs_synth / rel, C.FS_130_COLUMNS, rows["sequence_id"])
    assert_same_fs(fs_synth / rel, C.FS_COLUMNS)


def _text_in_one_sequence(df, p):
    """One value of the second sequence is text: only that sequence is bad (skip_bad keeps the other)."""
    col = df.columns[5]
    df.astype({col: str}).assign(**{col: lambda d: d[col].where(np.arange(len(d)) != 70, "abc")}).to_parquet(p)


FS_VARIANTS = {
    "float64": lambda df, p: df.astype({c: np.float64 for c in df.columns[1:]}).to_parquet(p),
    "mixed_widths": lambda df, p: df.astype({df.columns[3]: np.float64}).to_parquet(p),
    "row_groups": lambda df, p: df.to_parquet(p, row_group_size=50),
    "interleaved": lambda df, p: df.iloc[np.argsort(np.arange(len(df)) % 64, kind="stable")].to_parquet(p),
    "text": _text_in_one_sequence,
    "no_index": lambda df, p: df.reset_index().to_parquet(p, index=False),
    "int32_ids": lambda df, p: df.set_axis(df.index.astype(np.int32)).to_parquet(p),
    "no_column": lambda df, p: df.drop(columns=df.columns[4]).to_parquet(p),
    "empty": lambda df, p: df.iloc[:0].to_parquet(p),
    "corrupt": lambda df, p: p.write_bytes(b"PAR1 this is not parquet"),
    "missing": lambda df, p: None,
}


@pytest.mark.parametrize("variant", sorted(FS_VARIANTS))
def test_fast_fs_reader_matches_the_grader_read_on_every_layout_and_error(samples, tmp_path, variant):
    df, columns = fs_excerpt(samples)
    path = tmp_path / f"{variant}.parquet"
    FS_VARIANTS[variant](df, path)
    ids = df.index.unique().tolist()
    assert_same_fs(path, columns)
    graded = assert_same_fs(path, columns, ids + [123])
    if variant == "text":       # the bad sequence is left out with its problem, the good one kept
        assert set(graded[1]) == {ids[1], 123} and "non-numeric value 'abc'" in graded[1][ids[1]]
        assert list(graded[0]) == [ids[0]]
