"""Features of a whole padded batch (computed on the training device) equal each sample's features alone (what the
exported graph computes), for every asl-signs family and the fingerspelling CTC family, with ragged lengths, no-hand
and all-missing sequences."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from aslkit import constants as C
from aslkit.tasks.fingerspelling.families import FAMILIES as FS_FAMILIES
from aslkit.tasks.signs.families import FAMILIES as SIGNS_FAMILIES
from aslkit.tensor_ops import batch_features, pad_landmarks
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
    x, lengths = pad_landmarks(seqs)
    assert x.shape[1] == max(LENGTHS) and torch.isnan(x[0, 1:]).all() and lengths.tolist() == LENGTHS
    batch = batch_features(features, x, lengths)
    alone = torch.stack([features(s) for s in seqs])
    torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-5)


def test_fingerspelling_batch_features_equal_per_sample_features_and_pad_with_zeros():
    features, _ = FS_FAMILIES.build_modules(make_train_config("ci", {"task": C.SLUG_FS}), C.FS_130)
    seqs = ragged_sequences(len(C.FS_130), seed=1)
    batch = batch_features(features, *pad_landmarks(seqs))
    for row, s in zip(batch, seqs):
        torch.testing.assert_close(row[:len(s)], features(s), rtol=1e-5, atol=1e-5)
        assert not row[len(s):].any()
