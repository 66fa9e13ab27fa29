"""The constants module against the real competition files and the canonical face."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aslkit import constants as C
from aslkit.data.fs import decode_indices, encode_phrase


def test_layout_offsets_match_kaggle():
    assert C.ROWS_PER_FRAME == 543
    assert (C.FACE[0], C.FACE[-1]) == (0, 467)
    assert (C.LEFT_HAND[0], C.LEFT_HAND[-1]) == (468, 488)
    assert (C.POSE[0], C.POSE[-1]) == (489, 521)
    assert (C.RIGHT_HAND[0], C.RIGHT_HAND[-1]) == (522, 542)
    assert C.LANDMARK_TYPES[500] == "pose" and C.LANDMARK_INDEX[500] == 11


def test_named_sets():
    assert len(C.LIPS) == 40 and len(set(C.LIPS.tolist())) == 40
    assert len(C.LEFT_EYE) == len(C.RIGHT_EYE) == 16
    assert C.NOSE.tolist() == [1, 2, 98, 327]
    assert C.RIGHT_ARM.tolist() == [501, 503, 505, 507, 509, 511]   # pose 12, 14, ..., 22
    assert len(C.FS_130) == 130 and len(set(C.FS_130.tolist())) == 130
    assert len(C.ISLR_118) == 118


def test_fs_columns_official_order():
    cols = C.FS_COLUMNS
    assert len(cols) == 1629
    # Positions of the official table (after the index and 'frame'): x_left_hand_0 is column 469 counting frame as 0.
    assert cols[468] == "x_left_hand_0" and cols[489] == "x_pose_0" and cols[522] == "x_right_hand_0"
    assert cols[543] == "y_face_0" and cols[1086] == "z_face_0" and cols[-1] == "z_right_hand_20"


def test_real_inference_args_resolve_through_constants(samples):
    real = json.loads((samples / "asl-fingerspelling" / "inference_args.json").read_text())["selected_columns"]
    assert len(real) == 390
    assert C.FS_130_COLUMNS == real
    for col in real:
        axis, idx = C.parse_fs_column(col)
        assert C.fs_columns([idx], (axis,)) == [col]


def test_parse_fs_column_rejects_garbage():
    for bad in ("frame", "w_face_0", "x_nose_1", "x_face_x"):
        with pytest.raises(ValueError, match="not a landmark column"):
            C.parse_fs_column(bad)
    with pytest.raises(ValueError):
        C.parse_fs_column("x_left_hand_21")


def test_flip_permutation_is_a_mirror():
    perm = C.flip_permutation()
    assert sorted(perm.tolist()) == list(range(543))
    assert (perm[perm] == np.arange(543)).all()                      # an involution
    assert (perm[C.LEFT_HAND] == C.RIGHT_HAND).all()
    assert perm[C.flat("pose", 11)] == C.flat("pose", 12) and perm[C.flat("pose", 0)] == C.flat("pose", 0)
    v = C.canonical_face()
    face = perm[C.FACE]
    np.testing.assert_allclose(v[face], v * [-1, 1, 1], atol=1e-5)  # face points map to their mirror images
    assert face[33] == 263 and face[61] == 291 and face[1] == 1
    # The lips/eyes sets are closed under the flip.
    assert set(perm[C.LIPS].tolist()) == set(C.LIPS.tolist())
    assert set(perm[C.RIGHT_EYE].tolist()) == set(C.LEFT_EYE.tolist())


def test_label_maps_equal_the_real_files(samples):
    chars = json.loads((samples / "asl-fingerspelling" / "character_to_prediction_index.json").read_text())
    assert chars == C.CHAR_TO_INDEX and C.CTC_BLANK == 59
    signs = json.loads((samples / "asl-signs" / "sign_to_prediction_index_map.json").read_text())
    assert signs == C.sign_to_index() and C.signs()[0] == "TV" and C.signs()[249] == "zipper"


@pytest.mark.parametrize("name", ["train.csv", "supplemental_metadata.csv"])
def test_every_real_phrase_round_trips(samples, name):
    df = pd.read_csv(samples / "asl-fingerspelling" / name, dtype=str, keep_default_na=False)
    assert len(df) > 1000
    for phrase in df["phrase"]:
        idx = encode_phrase(phrase)
        assert idx.min() >= 0 and idx.max() < 59
        assert decode_indices(idx) == phrase


def test_decode_drops_blank_and_padding():
    assert decode_indices([32, 59, 33, 60, 34, -1]) == "abc"


@pytest.mark.parametrize("name", sorted(C.CACHE_SUBSETS))
def test_cache_subsets_are_flip_closed(name):
    subset = C.CACHE_SUBSETS[name]
    assert len(set(subset.tolist())) == len(subset)
    perm = C.subset_flip_permutation(subset)
    assert (subset[perm] == C.flip_permutation()[subset]).all()
    assert (perm[perm] == np.arange(len(subset))).all()
    pos = C.subset_positions(subset, C.RIGHT_HAND)
    assert (subset[pos] == C.RIGHT_HAND).all()


def test_subset_positions_rejects_absent_landmarks():
    subset = C.CACHE_SUBSETS["islr"]
    absent = next(i for i in range(C.ROWS_PER_FRAME) if i not in set(subset.tolist()))
    with pytest.raises(ValueError, match="not in the subset"):
        C.subset_positions(subset, [absent])
