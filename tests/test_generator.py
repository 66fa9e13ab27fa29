"""The synthetic generator: exact Kaggle layouts and dtypes, determinism, signers, and real-data statistics."""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from aslkit import constants as C
from aslkit.config import SYNTH_SIZES
from aslkit.data import fs, islr
from aslkit.data.stats import REAL_FS, REAL_ISLR, sequence_stats, summarize_fs, summarize_islr
from aslkit.paths import real_islr_sample
from aslkit.synth.body import sample_signer
from aslkit.synth.handshapes import HANDSHAPES, spell_keyframe
from aslkit.synth.kinematics import HandGeometry, bone_lengths, hand_local
from aslkit.synth.signs import lexicon
from aslkit.synth.spelling import random_phrase
from aslkit.synth.stats import baseline_accuracy, sample_fs, sample_islr
from aslkit.synth.writer import generate, synthetic_info


# ---------------------------------------------------------------------------------------------------------------
# Layouts
# ---------------------------------------------------------------------------------------------------------------
def test_islr_layout_matches_real_sample(islr_synth, samples):
    df = pd.read_csv(islr_synth / "train.csv")
    assert list(df.columns) == ["path", "participant_id", "sequence_id", "sign"]
    size = SYNTH_SIZES["ci"]
    assert len(df) == size.islr_participants * size.islr_signs * size.islr_per_sign
    assert (df["path"] == [f"train_landmark_files/{p}/{s}.parquet"
                           for p, s in zip(df["participant_id"], df["sequence_id"])]).all()
    assert df["sequence_id"].is_unique
    real = pq.read_schema(real_islr_sample())
    for path in df["path"].iloc[:5]:
        schema = pq.read_schema(islr_synth / path)
        assert [(f.name, str(f.type)) for f in schema] == [(f.name, str(f.type)) for f in real]
    assert (islr_synth / islr.LABEL_MAP).read_bytes() == (samples / "asl-signs" / islr.LABEL_MAP).read_bytes()


def test_islr_rows_follow_kaggle_order(islr_synth):
    path = pd.read_csv(islr_synth / "train.csv")["path"].iloc[0]
    t = pd.read_parquet(islr_synth / path)
    n = len(t) // 543
    assert len(t) == n * 543
    frames = t["frame"].to_numpy().reshape(n, 543)
    assert (frames == frames[:, :1]).all() and (np.diff(frames[:, 0]) == 1).all()
    assert (t["type"].to_numpy()[:543] == C.LANDMARK_TYPES).all()
    assert (t["landmark_index"].to_numpy()[:543] == C.LANDMARK_INDEX).all()
    assert t["row_id"].iloc[543 + 470] == f"{frames[1, 0]}-left_hand-2"
    xyz = t[["x", "y", "z"]].to_numpy()
    assert (xyz[~np.isnan(xyz)] == xyz[~np.isnan(xyz)].astype(np.float32)).all()   # float32-representable doubles
    # A missing part is missing as a whole block (all coordinates of all its landmarks).
    x = islr.load_relevant_data_subset(islr_synth / path)
    for part in (C.LEFT_HAND, C.RIGHT_HAND, C.FACE):
        nan = np.isnan(x[:, part])
        assert (nan.all(axis=(1, 2)) | ~nan.any(axis=(1, 2))).all()


def test_fs_layout_matches_kaggle(fs_synth, samples):
    for name in ("train.csv", "supplemental_metadata.csv"):
        head = (fs_synth / name).read_text().splitlines()[0]
        assert head == "path,file_id,sequence_id,participant_id,phrase"
    meta = fs.read_metadata(fs_synth, "train")
    supp = fs.read_metadata(fs_synth, "supplemental")
    assert meta["path"].str.startswith("train_landmarks/").all()
    assert supp["path"].str.startswith("supplemental_landmarks/").all()
    assert fs.read_character_map(fs_synth) == C.CHAR_TO_INDEX
    path = fs_synth / meta["path"].iloc[0]
    schema = pq.read_schema(path)
    assert schema.names == ["frame"] + C.FS_COLUMNS + ["sequence_id"]     # pandas stores the index last
    assert str(schema.field("frame").type) == "int16" and str(schema.field("sequence_id").type) == "int64"
    assert {str(schema.field(c).type) for c in C.FS_COLUMNS} == {"float"}
    df = pd.read_parquet(path)
    assert df.index.name == "sequence_id" and list(df.columns) == ["frame"] + C.FS_COLUMNS
    real_cols = pd.read_csv(samples / "asl-fingerspelling" / "train_landmarks_5414471_excerpt.csv", nrows=1).columns
    assert set(real_cols[2:]) <= set(df.columns)
    pos = [df.columns.get_loc(c) for c in real_cols[1:]]
    assert pos == sorted(pos)                                            # same relative order as the real file
    for sid, g in df.groupby(level=0):
        assert (g["frame"].to_numpy() == np.arange(len(g))).all()       # frame restarts at 0 per sequence
    assert set(df.index.unique()) == set(meta.loc[meta["path"] == meta["path"].iloc[0], "sequence_id"])


def test_generated_phrases_use_the_map():
    rng = np.random.default_rng(0)
    for supp in (False, True):
        phrases = [random_phrase(rng, supp) for _ in range(300)]
        assert all(1 <= len(p) <= 31 for p in phrases)
        for p in phrases:
            fs.encode_phrase(p)
            for ch in p:
                spell_keyframe(ch)
    styles = [random_phrase(rng) for _ in range(300)]
    assert any(p[0] == "+" or p.count("-") == 2 for p in styles)            # phone numbers
    assert any("." in p and " " not in p for p in styles)                   # urls
    assert any(p[0].isdigit() and " " in p for p in styles)                 # addresses


# ---------------------------------------------------------------------------------------------------------------
# Determinism, signers, refusing to overwrite
# ---------------------------------------------------------------------------------------------------------------
def test_same_seed_same_data_other_seed_other_data(islr_synth, tmp_path):
    again = generate(C.SLUG_SIGNS, tmp_path / "a", size="ci", seed=0, workers=1)
    assert (again / "train.csv").read_bytes() == (islr_synth / "train.csv").read_bytes()
    path = pd.read_csv(again / "train.csv")["path"].iloc[7]
    pd.testing.assert_frame_equal(pd.read_parquet(again / path), pd.read_parquet(islr_synth / path))
    other = generate(C.SLUG_SIGNS, tmp_path / "b", size="ci", seed=1, workers=2)
    assert (other / "train.csv").read_bytes() != (islr_synth / "train.csv").read_bytes()
    assert synthetic_info(other)["seed"] == 1


def test_generate_refuses_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("real data")
    with pytest.raises(FileExistsError, match="not empty"):
        generate(C.SLUG_SIGNS, tmp_path, size="ci")
    with pytest.raises(FileExistsError, match="did not write"):
        generate(C.SLUG_SIGNS, tmp_path, size="ci", overwrite=True)
    assert (tmp_path / "mine.txt").read_text() == "real data"


def test_participants_are_distinct_people():
    people = [sample_signer(np.random.default_rng([0, 1, p]), p, C.SLUG_SIGNS) for p in range(21)]
    sizes = {round(s.hand.size_cm, 3) for s in people}
    cams = {round(s.camera.distance, 3) for s in people}
    assert len(sizes) == 21 and len(cams) == 21
    dom = [s.dominant for s in people]
    assert 0 < dom.count("left") < 21                                      # both dominant hands occur
    fs_people = [sample_signer(np.random.default_rng([0, 2, p]), p, C.SLUG_FS) for p in range(60)]
    assert sum(s.dominant == "left" for s in fs_people) < 15               # mostly right-dominant (~7 %)


# ---------------------------------------------------------------------------------------------------------------
# Hands and signs
# ---------------------------------------------------------------------------------------------------------------
def test_forward_kinematics_keeps_bone_lengths():
    geom = HandGeometry.sample(np.random.default_rng(0), 9.0)
    shapes = np.stack([HANDSHAPES[n] for n in ("A", "B", "C", "5", "claw5", "E", "rest")])
    bones = bone_lengths(hand_local(shapes, geom), C.HAND_CONNECTIONS[:4] + C.HAND_CONNECTIONS[5:8])
    np.testing.assert_allclose(bones, np.broadcast_to(bones[0], bones.shape), rtol=1e-9)


@pytest.mark.parametrize("a,b", [("A", "S"), ("S", "E"), ("U", "V"), ("M", "N"), ("K", "V"), ("D", "1"),
                                 ("B", "4"), ("O", "C"), ("R", "U"), ("I", "Y"), ("6", "W"), ("G", "L")])
def test_contrasting_letters_have_distinct_handshapes(a, b):
    if HANDSHAPES[a] is HANDSHAPES[b]:
        pytest.fail(f"{a} and {b} share one handshape")
    geom = HandGeometry()
    pa_, pb = hand_local(HANDSHAPES[a][None], geom)[0], hand_local(HANDSHAPES[b][None], geom)[0]
    assert np.abs(pa_ - pb).max() > 1.0                                    # some point moves by more than 1 cm


def test_lexicon_covers_all_signs_with_minimal_pairs():
    lex = lexicon()
    assert list(lex) == list(C.signs())
    attrs = [t.attributes() for t in lex.values()]
    assert len(set(attrs)) == 250                                          # no two signs are made identically
    fields = [f.name for f in dataclasses.fields(next(iter(lex.values())))][1:]
    n_pairs = 0
    for x, y in itertools.combinations(attrs, 2):
        n_pairs += sum(u != v for u, v in zip(x, y)) == 1
    assert n_pairs >= 40                                                   # confusable minimal pairs exist
    diff = [f for f, u, v in zip(fields, lex["mom"].attributes(), lex["dad"].attributes()) if u != v]
    assert diff == ["location"]


# ---------------------------------------------------------------------------------------------------------------
# Statistics against the real data (docs/synthetic_data.md §4)
# ---------------------------------------------------------------------------------------------------------------
def test_islr_statistics_match_real_data():
    seqs, _, _ = sample_islr(n_signers=21, per_signer=20, seed=3)
    s = summarize_islr(sequence_stats(seqs))
    assert 17 <= s["frames_median"] <= 30 and 28 <= s["frames_mean"] <= 50
    assert abs(s["hand_nan_mean"] - REAL_ISLR["hand_nan_mean"]) < 0.08
    assert s["face_nan"] < 0.025 and s["pose_nan"] == 0.0
    assert min(len(x) for x in seqs) >= 2


def test_fs_statistics_match_real_data():
    seqs, phrases, dominant = sample_fs(n_signers=24, per_signer=6, seed=3)
    s = summarize_fs(sequence_stats(seqs), phrases, dominant)
    assert abs(s["frames_per_char_mean"] - REAL_FS["frames_per_char_mean"]) < 1.5
    assert abs(s["dominant_hand_nan"] - REAL_FS["dominant_hand_nan"]) < 0.12
    assert s["other_hand_nan"] > 0.75
    assert 0.01 <= s["corrupt_share"] <= 0.2
    assert 14 <= s["phrase_len_mean"] <= 22
    df = sequence_stats(seqs)
    assert (df["both_hands"] < 0.1).mean() > 0.9                           # two hands together are rare


def test_wide_rows_round_trip_to_landmarks(fs_synth):
    meta = fs.read_metadata(fs_synth, "train")
    seqs = fs.read_fs_file(fs_synth / meta["path"].iloc[0], C.FS_COLUMNS)
    x = fs.wide_to_landmarks(next(iter(seqs.values())))
    assert x.shape[1:] == (543, 3)
    assert np.isnan(x[:, C.POSE]).sum() == 0 and np.isfinite(x[:, C.FACE]).any()
    from aslkit.data.stats import fs_dataset_stats
    st = fs_dataset_stats(fs_synth, max_files=1)
    assert len(st) == SYNTH_SIZES["ci"].fs_per_file and st["pose_nan"].max() == 0


def test_signs_are_learnable_but_not_trivial():
    res = baseline_accuracy(n_signs=20, n_signers=6, per_sign=2, test_signers=2)
    assert res["heldout_signer_accuracy"] > 4 * res["chance"]          # a crude baseline generalises to new people
    assert res["heldout_signer_accuracy"] < 0.98                       # ... but does not solve it
