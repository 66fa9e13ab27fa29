"""The CNN family (I2 CNN): landmark image, timm model, shifted-slice depthwise form, augmentations, presets, a short
training run and the TFLite conversion of its grader model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from aslkit import constants as C
from aslkit.config import make_config
from aslkit.export import export_onnx, onnx_to_saved_model, saved_model_to_tflite
from aslkit.tasks.base import degenerate_inputs
from aslkit.tasks.signs.export import validation_sequences
from aslkit.tasks.signs.families import FAMILIES
from aslkit.tasks.signs.families.cnn.augment import (
    CNNAugmentConfig,
    PartReplace,
    PointMasking,
    TimeMasking,
    cnn_augment,
    part_positions,
)
from aslkit.tasks.signs.families.cnn.features import MIN_STD, ImageConfig, LandmarkImage, image_points, nearest_indices
from aslkit.tasks.signs.families.cnn.model import (
    CNNConfig,
    ShiftedDepthwiseConv2d,
    SignCNN,
    shifted_depthwise,
    use_shifted_depthwise,
)
from aslkit.tasks.signs.graph import GraderModel
from aslkit.tasks.signs.prepare import PrepareConfig, prepare_signs
from aslkit.tflite import tflite_runner
from aslkit.train import make_train_config, train
from aslkit.transforms import SubsetLayout, resample_time

SUBSET = C.CACHE_SUBSETS["islr"]
LAYOUT = SubsetLayout.of(SUBSET)
COLUMNS = C.subset_positions(SUBSET, C.CNN_80)
CI = {"model_name": "cnn"}


def sequence(T: int = 30, seed: int = 0) -> np.ndarray:
    """A random ``[T, S, 3]`` float32 sequence with missing blocks (left hand in the first third, a few right-hand
    frames, face and pose in one frame)."""
    x = np.random.default_rng(seed).uniform(0.2, 0.8, (T, LAYOUT.size, 3)).astype(np.float32)
    x[: T // 3, LAYOUT.left_hand] = np.nan
    x[np.ix_([t for t in (3, 17, 18) if t < T], LAYOUT.right_hand)] = np.nan
    x[T - 2, LAYOUT.face] = np.nan
    x[T - 2, LAYOUT.pose] = np.nan
    return x


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def reference_image(x: np.ndarray, length: int) -> np.ndarray:
    """The landmark image in plain numpy: CNN_80 columns, one mean/std (ddof 1) of the valid values, NaN -> 0,
    nearest rows ``floor((i + 0.5) T / L)`` in exact integer arithmetic."""
    pts = x[:, COLUMNS].astype(np.float64)
    vals = pts[~np.isnan(pts)]
    mean = vals.mean() if len(vals) else 0.0
    std = max(vals.std(ddof=1) if len(vals) > 1 else 0.0, MIN_STD)
    img = np.nan_to_num((pts - mean) / std, nan=0.0)
    rows = ((2 * np.arange(length) + 1) * len(x)) // (2 * length)
    return img[rows]


def image(x: np.ndarray, length: int = 160) -> np.ndarray:
    with torch.no_grad():
        return LandmarkImage(ImageConfig(time_len=length), SUBSET)(torch.from_numpy(x)).numpy()


# ------------------------------------------------------------------------------------------------------------------
# Landmark image
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [1, 7, 100, 160, 320, 1000])
def test_nearest_indices_are_the_floor_of_the_centre(T):
    for length in (32, 160):
        got = nearest_indices(torch.zeros(T, 4), length).numpy()
        np.testing.assert_array_equal(got, ((2 * np.arange(length) + 1) * T) // (2 * length))


@pytest.mark.parametrize("T", [1, 38, 160, 320, 1000])
def test_image_matches_numpy_reference(T):
    x = sequence(T, seed=T)
    out = image(x)
    assert out.shape == (160, 80, 3) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(out, reference_image(x, 160), atol=2e-5)


def test_image_rows_are_the_nearest_frames():
    x = np.repeat(np.arange(10, dtype=np.float32)[:, None, None], LAYOUT.size, 1).repeat(3, 2)   # frame t = t
    out = image(x, 32)
    std = np.repeat(np.arange(10.0), 80 * 3).std(ddof=1)
    frames = np.round(out[:, 0, 0] * std + 4.5, 4)                            # undo the normalisation
    np.testing.assert_array_equal(frames, [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 4,
                                           5, 5, 5, 6, 6, 6, 7, 7, 7, 7, 8, 8, 8, 9, 9, 9])
    assert (out == out[:, :1, :1]).all()                        # every point and axis of a frame alike


def test_normalised_valid_values_have_mean_0_std_1_and_nans_are_0():
    x = sequence(160)
    out = image(x)                                              # T = L: rows are the frames themselves
    valid = ~np.isnan(x[:, COLUMNS])
    assert abs(out[valid].mean()) < 1e-5 and abs(out[valid].std(ddof=1) - 1) < 1e-4
    assert (out[~valid] == 0).all() and (~valid).any()


@pytest.mark.parametrize("kind", ["all NaN", "constant", "one value"])
def test_degenerate_sequences_stay_finite(kind):
    x = np.full((12, LAYOUT.size, 3), np.nan if kind != "constant" else 0.5, np.float32)
    if kind == "one value":
        x[3, COLUMNS[0], 0] = 0.7
    out = image(x)
    assert out.shape == (160, 80, 3) and np.isfinite(out).all() and (out == 0).all()


def test_image_config_checks():
    with pytest.raises(ValueError, match="landmarks"):
        LandmarkImage()(torch.zeros(5, 7, 3))
    with pytest.raises(ValueError, match="time_len"):
        LandmarkImage(ImageConfig(time_len=0))
    with pytest.raises(ValueError, match="nope"):
        image_points("lips+nope")
    assert len(image_points("lips+hands")) == 82 and len(image_points("cnn80")) == 80
    assert LandmarkImage(ImageConfig(points="lips+hands")).output_shape == (160, 82, 3)


# ------------------------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------------------------
def test_full_model_is_efficientnet_b0_and_small_enough():
    cfg = make_train_config("full", CI)
    features, model = FAMILIES.build_modules(cfg, SUBSET)
    assert model.cfg.backbone == "efficientnet_b0" and features.output_shape == (160, 80, 3)
    n = sum(p.numel() for p in model.parameters())
    assert 3e6 < n < 6e6 and 2 * n / 2 ** 20 < 20                          # float16 weights well under 40 MB
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 160, 80, 3)).shape == (2, 250)


@pytest.mark.parametrize("hypercolumn", [False, True])
def test_model_output_shape(hypercolumn):
    model = SignCNN(CNNConfig(backbone="tinynet_e", hypercolumn=hypercolumn, hypercolumn_stages=3)).eval()
    with torch.no_grad():
        y = model(torch.randn(3, 32, 80, 3))
    assert y.shape == (3, 250) and torch.isfinite(y).all()


def test_model_config_checks():
    with pytest.raises(ValueError, match="not_a_model"):
        SignCNN(CNNConfig(backbone="not_a_model"))
    with pytest.raises(ValueError, match="hypercolumn_stages"):
        SignCNN(CNNConfig(backbone="tinynet_e", hypercolumn=True, hypercolumn_stages=9))


@pytest.mark.parametrize("k,s,h,w", [(3, 1, 7, 5), (3, 2, 8, 5), (5, 2, 9, 6), (5, 1, 4, 3), (3, 2, 1, 1)])
def test_shifted_depthwise_equals_conv(k, s, h, w):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 6, k, s, k // 2, groups=6, bias=True)
    x = torch.randn(2, 6, h, w)
    torch.testing.assert_close(shifted_depthwise(x, conv.weight, conv.bias, conv.stride, conv.padding), conv(x),
                               atol=1e-5, rtol=1e-5)


def test_use_shifted_depthwise_keeps_weights_and_outputs():
    torch.manual_seed(0)
    model = SignCNN(CNNConfig(backbone="tinynet_e")).eval()
    x = torch.randn(2, 32, 80, 3)
    with torch.no_grad():
        ref = model(x)
        keys = list(model.state_dict())
        n = use_shifted_depthwise(model)
        convs = [m for m in model.modules() if isinstance(m, ShiftedDepthwiseConv2d)]
        assert n == len(convs) > 5 and list(model.state_dict()) == keys
        torch.testing.assert_close(model(x), ref)                          # the normal conv outside an export
        for m in convs[:3]:
            z = torch.randn(1, m.in_channels, 9, 6)
            torch.testing.assert_close(m.shifted(z), m(z), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------------------------------
# Augmentations
# ------------------------------------------------------------------------------------------------------------------
def partner_of(y: np.ndarray):
    return lambda r: y


ALL_OFF = {k: 0.0 for k in ("replace_p", "affine_p", "part_rotate_p", "part_shift_p", "part_scale_p", "interp_p",
                            "finger_p", "flip_p", "time_mask_p", "point_mask_p")}


@pytest.mark.parametrize("name", ["replace", "time_mask", "point_mask", "pipeline"])
def test_p0_is_identity_and_p1_changes(name):
    x, y = sequence(30), sequence(17, seed=5)
    before = x.copy()
    make = {"replace": lambda p: PartReplace(p, part_positions(SUBSET, ("hands", "lips", "pose"))),
            "time_mask": lambda p: TimeMasking(p, 0.5),
            "point_mask": lambda p: PointMasking(p, 18, COLUMNS),
            "pipeline": lambda p: cnn_augment(make_config(CNNAugmentConfig, overrides={k: p for k in ALL_OFF}))}[name]
    np.testing.assert_array_equal(make(0.0)(x, rng(), partner_of(y)), x)
    changed = [not np.array_equal(make(1.0)(x, rng(s), partner_of(y)), x, equal_nan=True) for s in range(5)]
    assert any(changed)
    np.testing.assert_array_equal(x, before)                                  # the input is never modified


def test_part_replace_changes_only_the_part_in_the_span_with_partner_values():
    parts = part_positions(SUBSET, ("hands", "lips", "pose"))
    t = PartReplace(1.0, parts, span=(0.2, 0.8))
    x, y = sequence(30), sequence(17, seed=9) + 0.05
    aligned = resample_time(y, np.linspace(0, 16, 30))
    seen = set()
    for seed in range(12):
        name, a, b = t.draw(rng(seed), 30)
        out = t.apply(x, rng(seed), partner_of(y))
        seen.add(name)
        assert 6 <= b - a <= 24
        inside = np.zeros(x.shape[:2], bool)
        inside[a:b, parts[name]] = True
        np.testing.assert_array_equal(out[inside], aligned[inside])
        np.testing.assert_array_equal(out[~inside], x[~inside])
    assert seen == {"hands", "lips", "pose"}
    assert len(parts["hands"]) == 42 and len(parts["lips"]) == 40 and len(parts["pose"]) == 25


def test_part_replace_needs_a_partner_and_checks_its_shape():
    t = PartReplace(1.0)
    with pytest.raises(ValueError, match="partner"):
        t(sequence(), rng())
    with pytest.raises(ValueError, match="does not fit"):
        t(sequence(), rng(), lambda r: np.zeros((5, 10, 3), np.float32))
    with pytest.raises(ValueError, match="unknown part"):
        part_positions(SUBSET, ("tail",))


def test_time_masking_masks_exactly_the_drawn_frames():
    t = TimeMasking(1.0, 0.5)
    x = sequence(40)
    widths = []
    for seed in range(10):
        a, b = t.draw(rng(seed), 40)
        out = t.apply(x, rng(seed))
        widths.append(b - a)
        assert np.isnan(out[a:b]).all()
        np.testing.assert_array_equal(out[:a], x[:a])
        np.testing.assert_array_equal(out[b:], x[b:])
    assert max(widths) <= 20 and max(widths) > 0


def test_point_masking_masks_exactly_the_drawn_columns():
    t = PointMasking(1.0, 18, COLUMNS)
    x = sequence(20)
    for seed in range(10):
        a, b = t.draw(rng(seed))
        out = t.apply(x, rng(seed))
        assert b - a <= 18
        masked = np.zeros(LAYOUT.size, bool)
        masked[COLUMNS[a:b]] = True
        assert np.isnan(out[:, masked]).all()
        np.testing.assert_array_equal(out[:, ~masked], x[:, ~masked])
    with pytest.raises(ValueError, match="max_points"):
        PointMasking(1.0, 81, COLUMNS)


def test_geometric_part_of_the_pipeline_keeps_nans_where_they_were():
    keep = {**ALL_OFF, "affine_p": 1.0, "part_rotate_p": 1.0, "part_shift_p": 1.0, "part_scale_p": 1.0,
            "finger_p": 1.0}
    t = cnn_augment(make_config(CNNAugmentConfig, overrides=keep))
    x = sequence(30)
    for seed in range(4):
        out = t(x, rng(seed))
        np.testing.assert_array_equal(np.isnan(out), np.isnan(x))
        assert not np.allclose(out, x, equal_nan=True)


def test_build_augment_takes_the_config_overrides():
    cfg = make_train_config("ci", {**CI, "augment": {"replace_p": 0.5, "point_mask_max": 4}})
    aug = FAMILIES.build_augment(cfg, SUBSET)
    replace = next(t for t in aug.transforms if isinstance(t, PartReplace))
    mask = next(t for t in aug.transforms if isinstance(t, PointMasking))
    assert replace.p == 0.5 and mask.max_points == 4 and len(mask.columns) == 80
    out = aug(sequence(30), rng(1), partner_of(sequence(25, seed=2)))
    assert out.ndim == 3 and out.shape[1:] == (LAYOUT.size, 3)


# ------------------------------------------------------------------------------------------------------------------
# Presets, training, conversion
# ------------------------------------------------------------------------------------------------------------------
def test_presets_build():
    assert set(FAMILIES.module("cnn").PRESETS) == {"ci", "quick", "full"}
    for profile in ("ci", "quick", "full"):
        cfg = make_train_config(profile, CI)
        features, model = FAMILIES.build_modules(cfg, SUBSET)
        assert isinstance(features, LandmarkImage) and isinstance(model, SignCNN)
        L, P, _ = features.output_shape
        assert L != P                                                          # no square image (rule 4)
    cfg = make_train_config("ci", CI)
    features, model = FAMILIES.build_modules(cfg, SUBSET)
    with torch.no_grad():
        y = model.eval()(features(torch.from_numpy(sequence(38))).unsqueeze(0))
    assert y.shape == (1, 250)


@pytest.fixture(scope="module")
def run(islr_synth, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cnn_root")
    mp = pytest.MonkeyPatch()
    mp.setenv("ASLKIT_ROOT", str(root))
    cache = prepare_signs(make_config(PrepareConfig, "ci", {"data_dir": str(islr_synth),
                                                            "out_dir": str(root / "prepared")}))
    cfg = make_train_config("ci", {**CI, "optim.epochs": 2, "optim.batch_size": 16, "max_train_samples": 64,
                                   "prepared_dir": str(cache), "run_name": "cnn_ci"})
    yield train(cfg)
    mp.undo()


def test_two_epochs_train(run):
    m = pd.read_csv(run / "metrics.csv")
    assert list(m["epoch"]) == [1, 2] and np.isfinite(m["train_loss"]).all()
    assert (run / "checkpoints" / "best.pt").is_file()
    assert np.load(run / "oof_logits.npy").shape[1] == 250


def test_image_is_exact_in_float16_tflite(tmp_path):
    """The nearest rows survive float16 constants (L = 160 is not a power of two; T = 1000 moved rows once)."""
    grader = GraderModel(SUBSET, LandmarkImage(ImageConfig(time_len=160), SUBSET), nn.Identity()).eval()
    saved = onnx_to_saved_model(export_onnx(grader, tmp_path / "m.onnx", torch.rand(23, 543, 3)), tmp_path / "sm")
    runner = tflite_runner(saved_model_to_tflite(saved, tmp_path / "f16.tflite", float16=True))
    r = rng(0)
    for T in (1, 2, 37, 159, 161, 320, 479, 1000, 2000, 4999):
        x = r.uniform(0.2, 0.8, (T, 543, 3)).astype(np.float32)
        x[r.random(T) < 0.3, 468:489] = np.nan
        with torch.no_grad():
            ref = grader(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(runner(x), ref, atol=1e-5, err_msg=f"T={T}")


def test_grader_model_converts_with_parity(run, grader_tflite):
    torch.manual_seed(0)
    features, model = FAMILIES.build_modules(make_train_config("ci", CI), SUBSET)
    grader = GraderModel(SUBSET, features, model.eval()).eval()
    seqs, _ = validation_sequences(run, limit=6)
    x320 = seqs[0][np.arange(320) % len(seqs[0])]                    # T = 2L: every row index an exact integer
    inputs = {f"val {i}": s for i, s in enumerate(seqs)} | {"T=320": x320} | degenerate_inputs()
    parity = grader_tflite(grader, inputs)
    f32, f16 = parity["float32"], parity["float16"]
    assert f32.max_diff < 1e-3 * f32.scale and f32.agreement == 1.0, (f32.max_diff, f32.scale, f32.agreement)
    assert f16.max_diff < 0.05 * f16.scale and f16.agreement >= 0.8, (f16.max_diff, f16.scale, f16.agreement)
