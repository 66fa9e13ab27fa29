"""Features of a whole packed batch (computed on the training device) equal each sample's features alone (what the
exported graph computes), for every asl-signs family and the fingerspelling CTC family, with ragged lengths, no-hand
and all-missing sequences."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from aslkit import constants as C
from aslkit.tasks.fingerspelling.families import FAMILIES as FS_FAMILIES
from aslkit.tasks.signs.families import FAMILIES as SIGNS_FAMILIES
from aslkit.tensor_ops import batch_features, length_chunks, pack_landmarks, pad_packed
from aslkit.train import make_train_config

LENGTHS = [1, 2, 17, 64, 200, 5, 33, 130]


def ragged_sequences(n_points: int, seed: int = 0) -> list[torch.Tensor]:
    """Sequences of ``LENGTHS`` frames with missing points, some mostly missing, one all missing."""
    rng = np.random.default_rng(seed)
    out = []
    for k, t in enumerate(LENGTHS):
        x = rng.uniform(0.2, 0.8, (t, n_points, 3)).astype(np.float32)
        x[rng.random((t, n_points)) < 0.3] = np.nan
        if k % 3 == 1:
            x[rng.random(t) < 0.7] = np.nan                      # whole frames missing
        if k == 2:
            x[:] = np.nan
        out.append(torch.from_numpy(x))
    return out


@pytest.mark.parametrize("family", ["transformer", "cnn", "frames25", "conv1d"])
def test_signs_batch_features_equal_per_sample_features(family):
    subset = np.asarray(C.CACHE_SUBSETS["islr"])
    features, _ = SIGNS_FAMILIES.build_modules(make_train_config("ci", {"model_name": family}), subset)
    seqs = ragged_sequences(len(subset))
    x, lengths = pack_landmarks(seqs)
    assert len(x) == sum(LENGTHS) and lengths.tolist() == LENGTHS
    padded = pad_packed(x, LENGTHS, [3, 0])
    assert padded.shape[1] == 64 and torch.isnan(padded[1, 1:]).all()
    torch.testing.assert_close(padded[1, :1], seqs[0], equal_nan=True)
    batch = batch_features(features, x, lengths)
    alone = torch.stack([features(s) for s in seqs])
    torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-5)


def test_fingerspelling_batch_features_equal_per_sample_features_and_pad_with_zeros():
    features, _ = FS_FAMILIES.build_modules(make_train_config("ci", {"task": C.SLUG_FS}), C.FS_130)
    seqs = ragged_sequences(len(C.FS_130), seed=1)
    batch = batch_features(features, *pack_landmarks(seqs))
    for row, s in zip(batch, seqs):
        torch.testing.assert_close(row[:len(s)], features(s), rtol=1e-5, atol=1e-5)
        assert not row[len(s):].any()


def grouping_cost(lengths: list[int], groups: list[list[int]], call_frames: int) -> int:
    return sum(len(g) * max(lengths[i] for i in g) + call_frames for g in groups)


def test_length_chunks_is_the_cheapest_grouping_of_sorted_lengths():
    rng = np.random.default_rng(0)
    for trial in range(30):
        lengths = rng.integers(1, 300, rng.integers(1, 9)).tolist()
        call = int(rng.choice([0, 8, 48, 500]))
        chunks = length_chunks(lengths, call)
        assert sorted(i for c in chunks for i in c) == list(range(len(lengths)))      # every position once
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        best = min(grouping_cost(lengths, [order[a:b] for a, b in zip((0,) + cuts, cuts + (len(order),))], call)
                   for k in range(len(order)) for cuts in itertools.combinations(range(1, len(order)), k))
        assert grouping_cost(lengths, chunks, call) == best, (lengths, call, chunks)
    assert length_chunks([3, 400, 5, 4], 10) == [[0, 3, 2], [1]]
    assert length_chunks([3, 400, 5, 4], 1 << 30) == [[0, 1, 2, 3]]


@pytest.mark.parametrize("family", ["transformer", "cnn", "frames25", "conv1d", "ctc", "f1"])
def test_batch_features_by_length_groups_equal_one_call_over_the_batch(family):
    fs = family in FS_FAMILIES
    task = C.SLUG_FS if fs else C.SLUG_SIGNS
    subset = np.asarray(C.FS_130 if fs else C.CACHE_SUBSETS["islr"])
    families = FS_FAMILIES if fs else SIGNS_FAMILIES
    features, _ = families.build_modules(make_train_config("ci", {"task": task, "model_name": family}), subset)
    x, lengths = pack_landmarks(ragged_sequences(len(subset), seed=2))
    whole = batch_features(features, x, lengths, call_frames=1 << 30)
    grouped = batch_features(features, x, lengths, call_frames=0)
    assert len(length_chunks(lengths.tolist(), 0)) == len(set(LENGTHS))
    torch.testing.assert_close(grouped, whole, rtol=1e-5, atol=1e-5)


def test_batch_features_of_one_group_in_length_order_come_back_in_batch_order():
    """A batch that ``length_chunks`` keeps as one group, listed shortest first (not in batch order), still gives
    row i the features of sequence i (it once came back in length order: features and labels of different
    samples)."""
    features, _ = FS_FAMILIES.build_modules(make_train_config("ci", {"task": C.SLUG_FS}), C.FS_130)
    seqs = ragged_sequences(len(C.FS_130), seed=3)[3:5] + ragged_sequences(len(C.FS_130), seed=4)[6:7]
    x, lengths = pack_landmarks(seqs)                                         # lengths 64, 200, 33
    chunks = length_chunks(lengths.tolist(), 300)
    assert chunks == [[2, 0, 1]]                                               # one group, length order
    batch = batch_features(features, x, lengths, call_frames=300)
    for row, s in zip(batch, seqs):
        torch.testing.assert_close(row[:len(s)], features(s), rtol=1e-5, atol=1e-5)
