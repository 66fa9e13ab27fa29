"""Fingerspelling features (F5 preprocessing): aspect fix, dominant side, per-group normalisation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from aslkit import constants as C
from aslkit.tasks.fingerspelling.families.ctc.features import FSFeatureConfig, FSFeatures


def _seq(T: int = 20, seed: int = 0, left_missing: bool = True) -> np.ndarray:
    x = np.random.default_rng(seed).uniform(0.2, 0.8, (T, len(C.FS_130), 3)).astype(np.float32)
    if left_missing:
        x[:, C.subset_positions(C.FS_130, C.LEFT_HAND)] = np.nan
    return x


def _mirror(x: np.ndarray) -> np.ndarray:
    y = x[:, C.subset_flip_permutation(C.FS_130)].copy()
    y[..., 0] = 1 - y[..., 0]
    return y


def test_shape_and_finite_on_degenerate_inputs():
    f = FSFeatures()
    assert f.feature_dim == (21 + 12 + 40 + 21) * 3
    for x in (_seq(1), np.full((5, 130, 3), np.nan, np.float32), _seq(300)):
        y = f(torch.from_numpy(x))
        assert y.shape == (len(x), f.feature_dim) and torch.isfinite(y).all()


def test_left_handed_signer_equals_mirrored_right_handed():
    f = FSFeatures()
    right = _seq()
    torch.testing.assert_close(f(torch.from_numpy(_mirror(right))), f(torch.from_numpy(right)), atol=1e-5, rtol=0)


def test_groups_are_centred_and_scaled():
    f = FSFeatures(FSFeatureConfig(arms=False, lips=False, hand_shape=False))
    y = f(torch.from_numpy(_seq())).reshape(20, 21, 3)
    assert torch.allclose(y.mean(dim=(0, 1)), torch.zeros(3), atol=1e-5)
    assert abs(float(y[..., :2].abs().max()) - 1.0) < 1e-5


def test_aspect_ratio_makes_y_isotropic():
    x = np.full((2, 130, 3), np.nan, np.float32)
    hand = C.subset_positions(C.FS_130, C.RIGHT_HAND)
    # Hand points on a circle of radius 0.1 in real (isotropic) units: y is squashed by the aspect ratio.
    ang = np.linspace(0, 2 * np.pi, 21, endpoint=False)
    x[:, hand, 0] = 0.5 + 0.1 * np.cos(ang)
    x[:, hand, 1] = 0.5 + 0.1 * np.sin(ang) / 1.898
    x[:, hand, 2] = 0.0
    y = FSFeatures(FSFeatureConfig(arms=False, lips=False, hand_shape=False))(torch.from_numpy(x)).reshape(2, 21, 3)
    radius = torch.linalg.vector_norm(y[0, :, :2], dim=-1)
    assert torch.allclose(radius, radius.mean().expand_as(radius), atol=1e-4)


def test_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"expected landmarks \[T, 130, 3\]"):
        FSFeatures()(torch.zeros(4, 543, 3))


def test_exports_to_onnx_with_dynamic_frames(tmp_path):
    import onnxruntime as ort
    f = FSFeatures().eval()
    path = tmp_path / "fs.onnx"
    with torch.no_grad():
        torch.onnx.export(f, (torch.from_numpy(_seq(9)),), str(path), dynamo=False, opset_version=17,
                          input_names=["inputs"], output_names=["outputs"], dynamic_axes={"inputs": {0: "T"}})
    sess = ort.InferenceSession(str(path))
    for T in (1, 7, 120):
        x = _seq(T, seed=T, left_missing=T != 7)
        if T == 7:
            x = _mirror(_seq(T, seed=T))                                  # left-dominant input
        ref = f(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(sess.run(None, {"inputs": x})[0], ref, atol=1e-5)


def test_hand_shape_is_normalised_per_frame():
    f = FSFeatures(FSFeatureConfig(arms=False, lips=False, hand_shape=True))
    y = f(torch.from_numpy(_seq())).reshape(20, 42, 3)[:, 21:]          # the per-frame copy of the hand
    assert torch.allclose(y.mean(dim=1), torch.zeros(20, 3), atol=1e-5)
    assert torch.allclose(y[..., :2].abs().amax(dim=(1, 2)), torch.ones(20), atol=1e-5)
