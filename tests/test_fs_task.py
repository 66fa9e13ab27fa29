"""The fingerspelling task of the training loop: frame selection, batching, fallback, supplemental weights, presets,
and the in-graph decoding of ``FSGraderModel`` against the training-side decoding."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from aslkit import constants as C
from aslkit.data.fs import landmarks_to_blocks
from aslkit.runs import TrainConfig
from aslkit.tasks.fingerspelling.ctc_ops import greedy_decode
from aslkit.tasks.fingerspelling.export import FSGraderModel, grader_decode, inference_args, wide_columns
from aslkit.tasks.fingerspelling.families.ctc.features import FSFeatureConfig, FSFeatures
from aslkit.tasks.fingerspelling.families.ctc.model import CTCConfig, CTCEncoder
from aslkit.tasks.fingerspelling.frames import frame_positions, hand_frames, padded_frame_positions, select_frames
from aslkit.tasks.fingerspelling.objective import CTCObjective, weighted_rows
from aslkit.train import _split, make_train_config


def _sequence(rng: np.random.Generator, t: int, hand_missing: float = 0.3) -> np.ndarray:
    x = rng.uniform(0.2, 0.8, (t, len(C.FS_130), 3)).astype(np.float32)
    hands = np.flatnonzero(np.isin(C.FS_130, C.HANDS))
    gone = rng.random(t) < hand_missing
    x[np.ix_(gone, hands)] = np.nan
    return x


@pytest.mark.parametrize("t", [1, 2, 50, 128, 129, 300, 1000])
def test_graph_frame_positions_equal_training_ones(t):
    x = torch.zeros(t, 4, 3)
    pos, valid = padded_frame_positions(x, 128)
    keep = frame_positions(t, 128)
    assert pos.shape == (128,) and int(valid.sum()) == len(keep) == min(t, 128)
    assert np.array_equal(pos[valid].numpy(), keep)
    assert np.array_equal(select_frames(np.arange(t), 128), keep)


def test_hand_frames_numpy_and_torch_agree():
    x = _sequence(np.random.default_rng(0), 40, 0.5)
    n = hand_frames(x)
    assert 0 < n < 40 and n == int(hand_frames(torch.from_numpy(x)))


def test_collate_packs_featurize_pads_and_masks_and_fallback_replaces_handless_samples():
    features = FSFeatures()
    obj = CTCObjective(fallback="abc", min_hand_frames=3, features=features)
    rng = np.random.default_rng(0)
    seqs = [torch.from_numpy(_sequence(rng, 5)), torch.from_numpy(_sequence(rng, 3))]
    batch = [(seqs[0], (np.array([1, 2]), 5), 0), (seqs[1], (np.array([4]), 1), 1)]
    raw, (ids, lengths), idx = obj.collate(batch)
    assert raw[0].shape == (8, len(C.FS_130), 3) and raw[1].tolist() == [5, 3]                # packed frames
    assert torch.equal(raw[0][5:].nan_to_num(-1), seqs[1].nan_to_num(-1))
    assert ids.tolist() == [1, 2, 4] and lengths.tolist() == [2, 1] and idx.tolist() == [0, 1]
    x, mask, hands = obj.featurize(raw)
    assert x.shape == (2, 5, features.feature_dim) and mask.tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    assert torch.equal(x[1, :3], features(seqs[1])) and not x[1, 3:].any()     # the batch = each sample alone
    logits = torch.full((2, 5, 60), -5.0)
    logits[:, :, C.CHAR_TO_INDEX["z"]] = 5.0
    assert obj.predictions((logits, mask), (x, mask, hands)) == ["z", "abc"]


def test_ctc_loss_sum_is_batch_times_mean():
    obj = CTCObjective(features=FSFeatures())
    rng = np.random.default_rng(1)
    batch = [(torch.from_numpy(_sequence(rng, 9)), (np.array([1, 2, 3]), 9), 0),
             (torch.from_numpy(_sequence(rng, 6)), (np.array([5]), 6), 1)]
    raw, targets, _ = obj.collate(batch)
    inputs = obj.featurize(raw)
    outputs = (torch.randn(2, 9, 60), inputs[1])
    mean, total = obj.loss(outputs, targets, inputs), obj.loss(outputs, targets, inputs, reduction="sum")
    assert torch.isclose(total, 2 * mean)


def test_supplemental_weights():
    rows = np.arange(10)
    supp = np.array([False] * 4 + [True] * 6)
    assert weighted_rows(rows, supp, 0.0, 0).tolist() == [0, 1, 2, 3]
    two = weighted_rows(rows, supp, 2.0, 0)
    assert np.bincount(two, minlength=10).tolist() == [1] * 4 + [2] * 6
    half = weighted_rows(np.arange(2000), np.arange(2000) >= 1000, 0.5, 0)
    assert 1400 < len(half) < 1600 and np.array_equal(half, weighted_rows(np.arange(2000), np.arange(2000) >= 1000,
                                                                          0.5, 0))


def test_split_keeps_supplemental_rows_out_of_validation_and_of_the_held_out_fold():
    index = pd.DataFrame({"fold": [0, 0, 1, 1, 0], "source": ["train", "supplemental", "train", "supplemental",
                                                              "train"]})
    train, val = _split(index, 0, 0, 0)
    assert val.tolist() == [0, 4] and train.tolist() == [2, 3]


def test_fingerspelling_presets_are_chosen_by_task():
    cfg = make_train_config("quick", ["task=asl-fingerspelling", "optim.epochs=2"])
    assert cfg.task == C.SLUG_FS and cfg.optim.epochs == 2 and cfg.model["dim"] == 128
    assert cfg.optim.optimizer == "adamw" and cfg.features["max_frames"] == 200
    assert make_train_config("quick").model["hidden"] == 128          # asl-signs keeps its own presets
    with pytest.raises(KeyError, match="unknown preset"):
        make_train_config("huge", {"task": C.SLUG_FS})
    with pytest.raises(ValueError, match="unknown task"):
        make_train_config(None, {"task": "asl-other"})
    assert isinstance(cfg, TrainConfig)


def test_inference_args_reproduce_the_real_file(samples):
    real = json.loads((samples / "asl-fingerspelling" / "inference_args.json").read_text())
    assert json.loads(inference_args()) == real
    assert wide_columns() == real["selected_columns"]


@pytest.fixture(scope="module")
def grader_model():
    torch.manual_seed(0)
    features = FSFeatures(FSFeatureConfig(max_frames=64))
    model = CTCEncoder(CTCConfig(dim=32, layers=2, heads=2, max_len=64, dropout=0.0, layerdrop=0.0),
                       features.feature_dim).eval()
    with torch.no_grad():
        model.head.bias[C.CTC_BLANK] = -3.0                              # random weights: non-empty phrases
    return FSGraderModel(features, model, fallback="1 main st", min_hand_frames=3).eval()


@pytest.mark.parametrize("t", [1, 7, 64, 65, 200])
def test_graph_decoding_equals_training_decoding(grader_model, t):
    x = _sequence(np.random.default_rng(t), t, 0.0)
    with torch.no_grad():
        out = grader_model(torch.from_numpy(landmarks_to_blocks(x))).numpy()
        sel = torch.from_numpy(select_frames(x, 64))
        logits = grader_model.model(grader_model.features(sel).unsqueeze(0))
    expected = "".join(C.CHARACTERS[i] for i in greedy_decode(logits)[0]) if t >= 3 else "1 main st"
    assert out.shape == (64, 60) and set(np.unique(out)) <= {0.0, 1.0}
    assert grader_decode(out) == expected and len(expected) > 0


def test_graph_answers_the_fallback_phrase_without_hands(grader_model):
    x = _sequence(np.random.default_rng(1), 30, 0.0)
    x[2:, np.isin(C.FS_130, C.HANDS)] = np.nan                           # a hand in 2 frames only (< 3)
    with torch.no_grad():
        assert grader_decode(grader_model(torch.from_numpy(landmarks_to_blocks(x))).numpy()) == "1 main st"
        x[:, np.isin(C.FS_130, C.HANDS)] = _sequence(np.random.default_rng(2), 30, 0.0)[:, np.isin(C.FS_130,
                                                                                                   C.HANDS)]
        assert grader_decode(grader_model(torch.from_numpy(landmarks_to_blocks(x))).numpy()) != "1 main st"


def test_square_graph_shapes_are_refused():
    from aslkit.tasks.fingerspelling.families.ctc import build_modules as fs_modules
    cfg = make_train_config("ci", {"task": C.SLUG_FS, "features.max_frames": 96})     # 3 x dim 32 = 96
    with pytest.raises(ValueError, match=r"max_frames=96 \(model rows 48\) equals the width"):
        fs_modules(cfg)


def test_strided_stem_halves_the_frames_in_training_and_in_the_graph():
    torch.manual_seed(0)
    features = FSFeatures(FSFeatureConfig(max_frames=64))
    model = CTCEncoder(CTCConfig(dim=32, layers=1, heads=2, max_len=64, stride=2, dropout=0.0, layerdrop=0.0),
                       features.feature_dim).eval()
    with torch.no_grad():
        model.head.bias[C.CTC_BLANK] = -3.0
    grader = FSGraderModel(features, model).eval()
    x = _sequence(np.random.default_rng(5), 41, 0.0)
    obj = CTCObjective(features=features)
    inputs = obj.featurize(obj.collate([(torch.from_numpy(x), (np.array([1]), 41), 0)])[0])
    with torch.no_grad():
        logits, mask = obj.forward(model, inputs)
        out = grader(torch.from_numpy(landmarks_to_blocks(x))).numpy()
    assert logits.shape == (1, 21, 60) and mask.shape == (1, 21) and out.shape == (32, 60)
    assert grader_decode(out) == obj.predictions((logits, mask), inputs)[0] != ""


def test_landmarks_to_blocks_inverts_blocks_to_landmarks_and_follows_the_column_order():
    from aslkit.data.fs import blocks_to_landmarks
    x = _sequence(np.random.default_rng(3), 6, 0.3)
    wide = landmarks_to_blocks(x)
    assert wide.shape == (6, 390) and np.array_equal(blocks_to_landmarks(wide, 130), x, equal_nan=True)
    j = 130 + 7                                                            # the y column of the 8th landmark
    assert wide_columns()[j].startswith("y_") and np.array_equal(wide[:, j], x[:, 7, 1], equal_nan=True)
