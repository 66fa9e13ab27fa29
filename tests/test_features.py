"""The I2-T feature module: shapes on degenerate input, hand mirroring, resampling, distances/angles, ONNX export."""
from __future__ import annotations

import io
import itertools
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aslkit import constants as C
from aslkit.tasks.signs.families.transformer.features import (
    FeatureConfig,
    SignFeatures,
    finger_triplets,
    hand_pairs,
    lip_pairs,
)
from aslkit.tensor_ops import linear_resample, masked_linear_resample

SUBSET = C.CACHE_SUBSETS["islr"]
LEFT = C.subset_positions(SUBSET, C.LEFT_HAND)
RIGHT = C.subset_positions(SUBSET, C.RIGHT_HAND)
FLIP = C.subset_flip_permutation(SUBSET)


@pytest.fixture(scope="module")
def module() -> SignFeatures:
    return SignFeatures().eval()


def sequence(T: int, seed: int = 0, left: bool = True, right: bool = True) -> np.ndarray:
    """A random ``[T, S, 3]`` float32 sequence in [0.2, 0.8] with the chosen hands present."""
    x = np.random.default_rng(seed).uniform(0.2, 0.8, (T, len(SUBSET), 3)).astype(np.float32)
    if not left:
        x[:, LEFT] = np.nan
    if not right:
        x[:, RIGHT] = np.nan
    return x


def hflip(x: np.ndarray) -> np.ndarray:
    """Horizontal flip of a subset sequence: left/right swapped and x -> 1 - x."""
    out = x[:, FLIP].copy()
    out[..., 0] = 1 - out[..., 0]
    return out


def feats(m: SignFeatures, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return m(torch.from_numpy(x)).numpy()


def group(m: SignFeatures, out: np.ndarray, name: str) -> np.ndarray:
    """The columns of one feature group of ``out``."""
    start = 0
    for key, size in m.describe().items():
        if key == name:
            return out[:, start:start + size]
        start += size
    raise KeyError(name)


def test_default_size_and_groups(module):
    assert module.feature_dim == 972
    assert module.describe() == {"positions": 183, "history_motion": 183, "future_motion": 183,
                                 "hand_distances": 210, "finger_angles": 15, "lip_distances": 190, "lip_angles": 8}
    small = SignFeatures(FeatureConfig(use_z=False, motion=False, lip_pairs=10, lip_angles=False))
    assert small.feature_dim == 122 + 210 + 15 + 10
    assert feats(small, sequence(9)).shape == (64, small.feature_dim)


def test_bad_config_and_input(module):
    with pytest.raises(ValueError, match="power of two"):
        SignFeatures(FeatureConfig(max_len=60))
    with pytest.raises(ValueError, match="lip_pairs"):
        SignFeatures(FeatureConfig(lip_pairs=781))
    with pytest.raises(ValueError, match=rf"\[T, {len(SUBSET)}, 3\]"):
        module(torch.zeros(5, 10, 3))


@pytest.mark.parametrize("T", [1, 2, 7, 1000])
@pytest.mark.parametrize("case", ["full", "no_hands", "left_only", "all_nan", "sparse_nan"])
def test_shape_and_finite(module, T, case):
    x = sequence(T, seed=T, left=case in ("full", "left_only", "sparse_nan"), right=case in ("full", "sparse_nan"))
    if case == "all_nan":
        x[:] = np.nan
    if case == "sparse_nan":
        x[np.random.default_rng(1).random(x.shape[:2]) < 0.3] = np.nan
    out = feats(module, x)
    assert out.shape == (64, 972) and out.dtype == np.float32
    assert np.isfinite(out).all()
    if case == "all_nan":
        assert not out.any()


@pytest.mark.parametrize("T", [1, 5, 40, 130])
def test_left_hand_signer_matches_flipped_sequence(module, T):
    x = sequence(T, seed=3, right=False)
    a, b = feats(module, x), feats(module, hflip(x))
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.abs(group(module, a, "hand_distances")).max() > 0     # the hand is really used
    # with a tie (both hands complete) nothing is mirrored, so the invariance above is not trivial
    both = sequence(T, seed=3)
    assert not np.allclose(feats(module, both), feats(module, hflip(both)), atol=1e-3)


def test_dominant_hand_is_the_one_with_fewer_nans(module):
    x = sequence(20, seed=4)
    x[:5, RIGHT] = np.nan            # the left hand dominates: mirrored
    np.testing.assert_allclose(feats(module, x), feats(module, hflip(x)), atol=1e-5)
    only_left = x.copy()
    only_left[:, RIGHT] = np.nan
    # the right hand is ignored once the left one dominates: dropping it changes nothing
    np.testing.assert_allclose(feats(module, x), feats(module, only_left), atol=1e-5)


@pytest.mark.parametrize("T", [1, 3, 17, 64, 200, 1000])
def test_gather_resample_equals_interpolate(T):
    f = torch.randn(T, 11, generator=torch.Generator().manual_seed(T))
    ref = F.interpolate(f.t()[None], size=64, mode="linear", align_corners=False)[0].t()
    torch.testing.assert_close(linear_resample(f, 64), ref, atol=1e-5, rtol=0)
    out, valid = masked_linear_resample(f.reshape(T, 11, 1), torch.ones(T, 11), 64)
    torch.testing.assert_close(out[..., 0], ref, atol=1e-5, rtol=0)
    assert bool(valid.all())


def test_masked_resample_uses_the_valid_neighbour():
    f = torch.tensor([[[1.0]], [[0.0]], [[3.0]], [[0.0]]])          # frames 1 and 3 missing
    valid = torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    out, has = masked_linear_resample(f, valid, 8)
    kept = out[has > 0].flatten()
    assert len(kept) == 7 and has[-1] == 0 and out[-1] == 0            # the last sample sits on frame 3 only
    assert torch.isclose(kept[:, None], torch.tensor([1.0, 3.0])).any(dim=1).all()   # no blend with a gap


def test_distances_and_angles_match_numpy(module):
    hand = np.random.default_rng(5).uniform(0.3, 0.7, (21, 3))
    ref_d = [np.hypot(*(hand[i, :2] - hand[j, :2])) for i, j in itertools.combinations(range(21), 2)]
    ref_a = []
    for joints in C.FINGERS.values():
        route = [0, *joints]
        for a, b, c in zip(route, route[1:], route[2:]):
            u, v = hand[a] - hand[b], hand[c] - hand[b]
            ref_a.append(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
    i, j = hand_pairs()
    assert len(i) == 210 and finger_triplets().shape == (15, 3)
    x = sequence(6, seed=5, left=False)
    x[:, RIGHT] = hand.astype(np.float32)                          # a still right hand
    out = feats(module, x)
    np.testing.assert_allclose(group(module, out, "hand_distances"), np.tile(ref_d, (64, 1)), atol=1e-5)
    np.testing.assert_allclose(group(module, out, "finger_angles"), np.tile(ref_a, (64, 1)), atol=1e-5)
    np.testing.assert_allclose(group(module, out, "history_motion")[:, 40 * 3:], 0, atol=1e-6)   # still hand


def test_lip_pairs_are_seeded():
    a, b = lip_pairs(190, 0), lip_pairs(190, 0)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(lip_pairs(190, 1)[0], a[0])
    assert (a[0] < a[1]).all() and len(set(zip(*a))) == 190


def test_onnx_export_matches_torch(module):
    ort = pytest.importorskip("onnxruntime")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.from_numpy(sequence(10)),), buf, dynamo=False, opset_version=17,
                          input_names=["inputs"], output_names=["outputs"], dynamic_axes={"inputs": {0: "T"}})
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    for T, left in [(1, True), (7, False), (100, True), (100, False)]:
        x = sequence(T, seed=T, left=left, right=not left)
        x[rng.random(x.shape[:2]) < 0.2] = np.nan
        got = sess.run(None, {"inputs": x})[0]
        np.testing.assert_allclose(got, feats(module, x), atol=1e-4)
