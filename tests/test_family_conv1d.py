"""The conv1d family (ISLR 1st place): features against a numpy reference, masking and causality of the model, late
dropout, augmentations, presets, a short training run and the TFLite conversion."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from aslkit import constants as C
from aslkit.config import make_config
from aslkit.tasks.signs.families import FAMILIES
from aslkit.tasks.signs.families.conv1d import PRESETS
from aslkit.tasks.signs.families.conv1d.augment import Conv1DAugmentConfig, conv1d_augment
from aslkit.tasks.signs.families.conv1d.features import (
    FEATURE_DIM,
    N_POINTS,
    Conv1DFeatureConfig,
    Conv1DFeatures,
    check_max_len,
)
from aslkit.tasks.signs.families.conv1d.model import (
    CausalDepthwiseConv1d,
    Conv1DConfig,
    Conv1DNet,
    LateDropout,
    MaskedBatchNorm,
    set_epoch,
)
from aslkit.tensor_ops import fix_quotient, floor_div
from aslkit.train import make_train_config

SUBSET = C.CACHE_SUBSETS["islr"]
POS = C.subset_positions(SUBSET, C.ISLR_118)
LIP = int(np.flatnonzero(C.ISLR_118 == C.flat("face", [17])[0])[0])
SMALL = Conv1DConfig(dim=32, blocks=1, heads=2, kernel=5, drop_path=0.0, attn_dropout=0.0, late_dropout=0.0,
                     max_len=40)


def reference_features(x: np.ndarray, max_len: int) -> np.ndarray:
    """The features in plain numpy, the obvious way (boolean indexing, slices)."""
    pts = x[:, POS, :2].astype(np.float64)
    valid = ~np.isnan(pts).any(-1)
    keep = valid.any(1)
    if keep.any():
        pts, valid = pts[keep], valid[keep]
    lip = pts[valid[:, LIP], LIP]
    centre = lip.mean(0) if len(lip) else np.array([0.5, 0.5])
    dev = pts[valid] - centre
    scale = max(np.sqrt((dev ** 2).mean()), 1e-3) if len(dev) else 1e-3
    p = np.where(valid[..., None], (pts - centre) / scale, np.nan)
    d1, d2 = np.zeros_like(p), np.zeros_like(p)
    d1[1:], d2[2:] = p[1:] - p[:-1], p[2:] - p[:-2]
    n = len(p)
    feats = np.nan_to_num(np.concatenate([g.reshape(n, -1) for g in (p, d1, d2)], axis=1), nan=0.0)
    rows = np.arange(n) if n <= max_len else (np.arange(max_len) * n) // max_len
    out = np.zeros((max_len, FEATURE_DIM + 1))
    out[:len(rows), :FEATURE_DIM] = feats[rows]
    out[:len(rows), FEATURE_DIM] = 1.0
    return out


def random_sequence(rng: np.random.Generator, T: int) -> np.ndarray:
    """A smooth random walk ``[T, 184, 3]`` with missing hands, missing face points and empty frames."""
    x = 0.5 + 0.1 * rng.standard_normal((1, len(SUBSET), 3)) + 0.01 * rng.standard_normal((T, len(SUBSET), 3)).cumsum(0)
    hands = np.isin(SUBSET, C.LEFT_HAND)
    x[np.ix_(rng.random(T) < 0.4, hands)] = np.nan
    x[np.ix_(rng.random(T) < 0.6, np.isin(SUBSET, C.RIGHT_HAND))] = np.nan
    x[rng.random(T) < 0.2] = np.nan
    x[:, rng.choice(len(SUBSET), 5)] = np.nan
    return x.astype(np.float32)


def features(x: np.ndarray, max_len: int = 40) -> np.ndarray:
    with torch.no_grad():
        return Conv1DFeatures(Conv1DFeatureConfig(max_len=max_len), SUBSET)(torch.from_numpy(x)).numpy()


# ---------------------------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [1, 2, 5, 39, 40, 41, 97, 300])
def test_features_match_the_numpy_reference(T):
    x = random_sequence(np.random.default_rng(T), T)
    out = features(x)
    assert out.shape == (40, FEATURE_DIM + 1)
    np.testing.assert_allclose(out, reference_features(x, 40), atol=2e-5, rtol=1e-4)


def test_empty_frames_are_dropped_and_long_sequences_subsampled():
    T = 90
    x = np.full((T, len(SUBSET), 3), np.nan, np.float32)
    seen = np.arange(0, T, 2)                                  # only even frames have points: 45 kept frames
    x[seen] = np.random.default_rng(0).uniform(0.3, 0.7, (len(seen), len(SUBSET), 3))
    x[seen, POS[LIP]] = 0.5                                    # centre 0.5
    x[seen, POS[0], 0] = seen / 1000 + 0.5                     # lips point 0: x encodes the source frame
    out = features(x, max_len=20)
    frames = np.round((out[:, 0] * _scale(x)) * 1000).astype(int)
    np.testing.assert_array_equal(frames, seen[(np.arange(20) * 45) // 20])
    np.testing.assert_allclose(out, reference_features(x, 20), atol=2e-5, rtol=1e-4)
    assert out[:, -1].sum() == 20


def _scale(x: np.ndarray) -> float:
    """The normalisation scale of ``x`` (centre 0.5 at the lower lip), numpy."""
    pts = x[:, POS, :2]
    valid = ~np.isnan(pts).any(-1)
    return float(np.sqrt(((pts[valid] - 0.5) ** 2).mean()))


def test_short_sequences_are_padded_with_a_mask():
    x = np.random.default_rng(1).uniform(0.2, 0.8, (12, len(SUBSET), 3)).astype(np.float32)
    x[[3, 7]] = np.nan
    out = features(x, max_len=40)
    assert out[:10, -1].tolist() == [1.0] * 10 and not out[10:].any()


def test_centre_is_the_lower_lip_mean_and_scale_the_rms_distance():
    x = np.full((3, len(SUBSET), 3), np.nan, np.float32)
    x[:, POS[LIP], :2] = [[0.4, 0.6], [0.6, 0.6], [0.5, 0.3]]  # centre (0.5, 0.5)
    x[:, POS[50], :2] = [[0.5, 0.7], [0.5, 0.7], [0.5, 0.7]]
    out = features(x)
    dev = np.array([[-0.1, 0.1], [0.1, 0.1], [0.0, -0.2], [0.0, 0.2], [0.0, 0.2], [0.0, 0.2]])
    scale = np.sqrt((dev ** 2).mean())
    np.testing.assert_allclose(out[:3, 2 * 50:2 * 50 + 2], [[0.0, 0.2 / scale]] * 3, atol=1e-5)
    np.testing.assert_allclose(out[:3, 2 * LIP:2 * LIP + 2], dev[:3] / scale, atol=1e-5)
    x[:, POS[LIP]] = np.nan                                    # never seen: centre 0.5, 0.5
    out = features(x)
    s2 = np.sqrt(((np.array([0.0, 0.2])) ** 2).mean())
    np.testing.assert_allclose(out[:3, 2 * 50:2 * 50 + 2], [[0.0, 0.2 / s2]] * 3, atol=1e-5)


def test_differences_on_kept_frames_with_zeros_at_the_start():
    x = np.full((5, len(SUBSET), 3), np.nan, np.float32)
    xs = np.array([0.1, 0.2, 0.4, 0.7, 0.8], np.float32)
    x[:, POS[LIP], :2] = 0.5
    x[:, POS[3], 0], x[:, POS[3], 1] = xs, 0.5
    x[2] = np.nan                                              # dropped: kept frames 0, 1, 3, 4
    x[4, POS[3]] = np.nan                                      # point 3 missing in the last kept frame
    out = features(x)
    s = _scale(x)
    width = N_POINTS * 2
    lag1, lag2 = out[:4, width + 6], out[:4, 2 * width + 6]    # x of point 3
    np.testing.assert_allclose(lag1 * s, [0.0, 0.1, 0.5, 0.0], atol=1e-5)
    np.testing.assert_allclose(lag2 * s, [0.0, 0.0, 0.6, 0.0], atol=1e-5)
    assert not out[0, width:FEATURE_DIM].any() and out[:4, -1].tolist() == [1.0] * 4 and out[4, -1] == 0


@pytest.mark.parametrize("name", ["all NaN", "1 frame", "1000 frames", "no face no hands"])
def test_degenerate_sequences_stay_finite(name):
    rng = np.random.default_rng(3)
    x = {"all NaN": np.full((7, len(SUBSET), 3), np.nan, np.float32),
         "1 frame": random_sequence(rng, 1) * 0 + 0.5,
         "1000 frames": random_sequence(rng, 1000),
         "no face no hands": np.where(np.isin(SUBSET, C.ISLR_118)[None, :, None], np.nan,
                                      np.full((4, len(SUBSET), 3), 0.5)).astype(np.float32)}[name]
    out = features(x)
    assert np.isfinite(out).all() and out[0, -1] == 1.0
    np.testing.assert_allclose(out, reference_features(x, 40), atol=2e-5, rtol=1e-4)


def test_floor_div_fixes_a_float16_reciprocal():
    wrong = 0
    for den in (24, 40, 48, 320, 384):
        num = torch.arange(0, den * 3000, 7, dtype=torch.float32)        # quotients up to 3,000
        approx = torch.floor(num * float(np.float16(1.0 / den)))        # what the float16 build computes
        wrong += int((approx != num // den).sum())
        torch.testing.assert_close(fix_quotient(num, approx, den), num // den)
        torch.testing.assert_close(floor_div(num, den), num // den)
    assert wrong > 0


def test_static_lengths_that_make_square_tensors_are_refused():
    for bad in (118, 236, 708, 709, 0, 4096):
        with pytest.raises(ValueError, match="max_len"):
            check_max_len(bad)
    with pytest.raises(ValueError, match="choose another features.max_len"):
        Conv1DNet(Conv1DConfig(dim=32, heads=2, max_len=64), FEATURE_DIM)       # 64 = 2 x dim
    with pytest.raises(ValueError, match="export_conv"):
        Conv1DNet(Conv1DConfig(dim=32, heads=2, max_len=40, export_conv="fft"), FEATURE_DIM)


# ---------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------
def _randomise_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and affine weights (an untrained model has identity norms)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, MaskedBatchNorm):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
    return model


def test_causal_conv_ignores_the_future_and_slices_equal_the_conv():
    torch.manual_seed(0)
    conv = CausalDepthwiseConv1d(12, 5)
    x = torch.randn(2, 30, 12)
    y = conv(x)
    for t in (0, 4, 17):
        x2 = x.clone()
        x2[:, t + 1:] = torch.randn_like(x2[:, t + 1:])
        torch.testing.assert_close(conv(x2)[:, :t + 1], y[:, :t + 1])
        assert not torch.allclose(conv(x2)[:, t + 1:], y[:, t + 1:])
    torch.testing.assert_close(conv.shifted_slices(x), y, atol=1e-6, rtol=1e-5)
    x0 = torch.zeros(1, 8, 12)
    x0[0, 2] = 1.0                                              # impulse: the kernel, reversed in time, from t = 2
    torch.testing.assert_close(conv(x0)[0, 2:7], conv.conv.weight[:, 0, :].flip(-1).T)


def test_padding_does_not_change_logits_in_eval():
    torch.manual_seed(0)
    model = _randomise_norms(Conv1DNet(SMALL, FEATURE_DIM)).eval()
    x = random_sequence(np.random.default_rng(5), 25)
    short, long = torch.from_numpy(features(x, 40))[None], torch.from_numpy(features(x, 56))[None]
    with torch.no_grad():
        ref = model(short)
        garbage = short.clone()
        garbage[:, 25:, :FEATURE_DIM] = torch.randn(1, 15, FEATURE_DIM) * 10
        torch.testing.assert_close(model(garbage), ref)
        torch.testing.assert_close(model(long), ref, atol=1e-5, rtol=1e-5)      # other static length, same logits
        batch = torch.cat([short, torch.from_numpy(features(random_sequence(np.random.default_rng(6), 90)))[None]])
        torch.testing.assert_close(model(batch)[:1], ref, atol=1e-5, rtol=1e-5)


def test_batchnorm_statistics_use_real_frames_only():
    bn = MaskedBatchNorm(4, momentum=1.0).train()
    x = torch.randn(2, 6, 4)
    mask = torch.ones(2, 6, 1)
    mask[:, 4:] = 0
    y = bn(torch.where(mask.bool(), x, torch.full_like(x, 1e3)), mask)
    real = x[:, :4].reshape(-1, 4)
    torch.testing.assert_close(bn.running_mean, real.mean(0))
    torch.testing.assert_close(bn.running_var, real.var(0))
    torch.testing.assert_close(y[:, :4].reshape(-1, 4).mean(0), torch.zeros(4), atol=1e-5, rtol=0)


def test_late_dropout_switches_on_at_its_epoch():
    cfg = Conv1DConfig(dim=32, blocks=1, heads=2, kernel=5, drop_path=0.0, attn_dropout=0.0, late_dropout=0.5,
                       late_dropout_start=3, max_len=40)
    model = Conv1DNet(cfg, FEATURE_DIM).train()
    drop = model.late_dropout
    h = torch.ones(4, 64)
    for epoch in (0, 2):
        set_epoch(model, epoch)
        assert not drop.active and torch.equal(drop(h), h)
    set_epoch(model, 3)
    assert drop.active and drop.epoch == 3
    out = drop(h)
    assert (out == 0).any() and set(out.unique().tolist()) <= {0.0, 2.0}
    model.set_epoch(1)                                          # the model passes it on
    assert drop.epoch == 1 and not drop.active
    drop.set_epoch(5)
    drop.eval()
    assert torch.equal(drop(h), h)                              # eval: identity
    assert not LateDropout(0.5, start_epoch=1).active           # off before any set_epoch call


# ---------------------------------------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------------------------------------
def test_augmentations_with_p0_are_the_identity():
    off = {k: 0.0 for k in ("resample_p", "flip_p", "affine_p", "time_mask_p", "spatial_mask_p")}
    cfg = make_train_config("ci", {"model_name": "conv1d", "augment": off})
    aug = FAMILIES.build_augment(cfg, SUBSET)
    x = random_sequence(np.random.default_rng(0), 30)
    np.testing.assert_array_equal(aug(x, np.random.default_rng(1)), x)


def test_temporal_mask_hides_the_drawn_share_of_frames():
    aug = conv1d_augment(make_config(Conv1DAugmentConfig, overrides={
        "resample_p": 0.0, "flip_p": 0.0, "affine_p": 0.0, "spatial_mask_p": 0.0, "time_mask_p": 1.0}), SUBSET)
    x = np.random.default_rng(0).uniform(0.2, 0.8, (100, len(SUBSET), 3)).astype(np.float32)
    for seed in range(10):
        out = aug(x, np.random.default_rng(seed))
        empty = np.isnan(out).all(axis=(1, 2))
        assert 20 <= empty.sum() <= 40
        span = np.flatnonzero(empty)
        assert span[-1] - span[0] + 1 == len(span)                # one contiguous span
        np.testing.assert_array_equal(out[~empty], x[~empty])


def test_default_augmentation_keeps_shapes_and_changes_the_sequence():
    aug = FAMILIES.build_augment(make_train_config("ci", {"model_name": "conv1d"}), SUBSET)
    x = random_sequence(np.random.default_rng(0), 40)
    outs = [aug(x, np.random.default_rng(s)) for s in range(8)]
    assert all(o.shape[1:] == x.shape[1:] and 1 <= len(o) <= 61 for o in outs)
    assert any(o.shape != x.shape or not np.array_equal(o, x, equal_nan=True) for o in outs)
    assert all(np.isfinite(features(o)).all() for o in outs)


# ---------------------------------------------------------------------------------------------------------------
# Presets and training
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["ci", "quick"])
def test_presets_build(profile):
    cfg = make_train_config(profile, {"model_name": "conv1d"})
    feats, model = FAMILIES.build_modules(cfg, SUBSET)
    assert isinstance(model, Conv1DNet) and model.cfg.max_len == feats.length == PRESETS[profile]["features"]["max_len"]
    with torch.no_grad():
        out = model.eval()(feats(torch.from_numpy(random_sequence(np.random.default_rng(0), 50)))[None])
    assert out.shape == (1, 250) and torch.isfinite(out).all()


def test_full_preset_is_the_first_place_design():
    cfg = make_train_config("full", {"model_name": "conv1d"})
    assert cfg.model["dim"] == 192 and cfg.optim.label_smoothing == 0.1 and cfg.model["late_dropout"] == 0.8
    _, model = FAMILIES.build_modules(cfg, SUBSET)
    assert 1.7e6 < sum(p.numel() for p in model.parameters()) < 1.9e6


@pytest.fixture(scope="module")
def prepared(islr_synth, tmp_path_factory):
    from aslkit.tasks.signs.prepare import PrepareConfig, prepare_signs
    root = tmp_path_factory.mktemp("conv1d_root")
    mp = pytest.MonkeyPatch()
    mp.setenv("ASLKIT_ROOT", str(root))
    cache = prepare_signs(make_config(PrepareConfig, "ci", {"data_dir": str(islr_synth),
                                                            "out_dir": str(root / "prepared")}))
    yield root, cache
    mp.undo()


def test_two_epochs_train(prepared):
    import pandas as pd

    from aslkit.train import train
    root, cache = prepared
    run = train(make_train_config("ci", {"model_name": "conv1d", "optim.epochs": 2, "max_train_samples": 64,
                                         "prepared_dir": str(cache), "run_name": str(root / "c1d")}))
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == 2 and np.isfinite(metrics["train_loss"]).all()
    assert (run / "checkpoints" / "best.pt").is_file()


# ---------------------------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------------------------
def test_tflite_matches_torch(prepared, grader_tflite):
    from aslkit.data.cache import expand_to_full
    from aslkit.tasks.base import degenerate_inputs
    from aslkit.tasks.signs.graph import GraderModel
    from aslkit.tasks.signs.prepare import PreparedSigns
    torch.manual_seed(0)
    feats, model = FAMILIES.build_modules(make_train_config("ci", {"model_name": "conv1d"}), SUBSET)
    grader = GraderModel(SUBSET, feats, _randomise_norms(model).eval()).eval()
    cache = PreparedSigns(prepared[1])
    seqs = {f"seq {i}": expand_to_full(np.asarray(cache[i], np.float32), cache.subset) for i in range(0, 60, 4)}
    seqs.update(degenerate_inputs())
    seqs["long"] = expand_to_full(random_sequence(np.random.default_rng(0), 333), SUBSET)
    for name, p in grader_tflite(grader, seqs).items():
        assert p.max_diff < (1e-4 if name == "float32" else 2e-2) * max(p.scale, 1.0), (name, p.max_diff, p.scale)
