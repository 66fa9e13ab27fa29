"""The I6 family ``frames`` (frames25 / frames80): features, model, mixup, augmentations, presets, training and one
TFLite conversion with parity."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from aslkit import constants as C
from aslkit.config import make_config
from aslkit.tasks.signs.families import FAMILIES
from aslkit.tasks.signs.families.frames.augment import (
    FaceCutMix,
    FramesAugmentConfig,
    InterpolateMissing,
    MirrorHandFill,
    StartEndCrop,
    fill_interior_gaps,
    frames_augment,
)
from aslkit.tasks.signs.families.frames.features import (
    FEATURE_DIM,
    NUM_POINTS,
    FramesFeatureConfig,
    FramesFeatures,
    averaged_landmarks,
    part_slices,
    raw_landmarks,
    split_features,
)
from aslkit.tasks.signs.families.frames.model import FramesModel, FramesModelConfig
from aslkit.tensor_ops import MixPlan
from aslkit.train import make_train_config
from aslkit.transforms import Compose, SubsetLayout

SUBSET = C.CACHE_SUBSETS["islr"]
S = len(SUBSET)
HANDS = C.subset_positions(SUBSET, C.HANDS)
P3 = 3 * NUM_POINTS


def sequence(t: int, seed: int = 0, no_hand: float = 0.3, missing: float = 0.05) -> np.ndarray:
    """A random cache-subset sequence ``[t, S, 3]``: a share of frames without any hand, some missing points."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 0.8, (t, S, 3)).astype(np.float32)
    x[rng.random((t, S)) < missing] = np.nan
    x[np.ix_(rng.random(t) < no_hand, HANDS)] = np.nan
    return x


def reference_frames(x: np.ndarray, length: int) -> np.ndarray:
    """Plain numpy I6 frame choice: frames with a hand point (all when none), then every (n // L + 1)-th."""
    has_hand = (~np.isnan(x[:, HANDS]).any(-1)).any(1)
    kept = np.flatnonzero(has_hand) if has_hand.any() else np.arange(len(x))
    return kept[::len(kept) // length + 1]


def features(length: int = 25) -> FramesFeatures:
    return FramesFeatures(FramesFeatureConfig(max_len=length), SUBSET).eval()


def small_model(length: int = 25, **kw) -> FramesModel:
    torch.manual_seed(0)
    cfg = dict(max_len=length, embed_dim=8, dense=32, width=32, layers=2, heads=2, intermediate=64)
    return FramesModel(FramesModelConfig(**{**cfg, **kw}))


def run_features(f: FramesFeatures, x: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return f(torch.from_numpy(x))


# ------------------------------------------------------------------------------------------------------------------
# Features
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("length", [25, 80])
@pytest.mark.parametrize("t,no_hand", [(1, 0.0), (7, 0.5), (25, 0.0), (26, 0.0), (60, 0.3), (200, 0.4), (1000, 0.2),
                                       (40, 1.0)])
def test_frame_choice_matches_numpy_reference(length, t, no_hand):
    x = sequence(t, seed=t, no_hand=no_hand)
    f = features(length)
    with torch.no_grad():
        _, v = f.points(torch.from_numpy(x))
        src, mask = f.frame_sources(v)
    ref = reference_frames(x, length)
    n = len(ref)
    assert 1 <= n <= length
    assert mask.tolist() == [1.0] * n + [0.0] * (length - n)
    assert src[:n].tolist() == ref.tolist()


def test_output_layout_mask_and_padding_rows():
    x = sequence(30, seed=1, no_hand=0.5)
    ref = reference_frames(x, 25)
    out = run_features(features(25), x).numpy()
    n = len(ref)
    assert out.shape == (25, FEATURE_DIM) and FEATURE_DIM == 7 * NUM_POINTS + 1
    assert np.isfinite(out).all()
    assert out[:n, -1].tolist() == [1.0] * n
    assert (out[n:] == 0).all()                                     # padding rows are entirely zero
    # validity block: the taken frames' points, in the module's point order
    valid = out[:n, 2 * P3:2 * P3 + NUM_POINTS]
    raw = C.subset_positions(SUBSET, raw_landmarks())
    assert (valid[:, :len(raw)] == ~np.isnan(x[ref][:, raw]).any(-1)).all()


def test_points_average_groups_nan_aware():
    x = sequence(6, seed=2, missing=0.3)
    f = features()
    with torch.no_grad():
        pts, v = f.points(torch.from_numpy(x))
    avg, groups = averaged_landmarks()
    pos = C.subset_positions(SUBSET, avg)
    first = part_slices()["face"].start + 20                       # after 18 silhouette points and 2 cheeks
    for g, (a, b) in enumerate(groups):
        members = x[:, pos[a:b]]
        ok = ~np.isnan(members).any(-1)
        expect = np.where(ok[..., None], members, 0).sum(1) / np.maximum(ok.sum(1), 1)[:, None]
        np.testing.assert_allclose(pts[:, first + g].numpy(), expect, rtol=1e-5, atol=1e-6)
        assert v[:, first + g].tolist() == ok.any(1).astype(float).tolist()


def test_normalisation_and_part_centring():
    x = sequence(50, seed=3, no_hand=0.2, missing=0.2)
    out = run_features(features(25), x)
    blocks = split_features(out.unsqueeze(0))
    v = blocks["valid"][0].numpy()                                   # [L, P]
    pts = blocks["points"][0].numpy().reshape(25, NUM_POINTS, 3)
    sel = pts[v > 0]
    np.testing.assert_allclose(sel.mean(0), 0.0, atol=1e-5)         # one mean and std per axis over the detected
    np.testing.assert_allclose(sel.std(0), 1.0, atol=1e-4)          # values of the taken frames
    assert (pts[v == 0] == 0).all()
    centred = blocks["centred"][0].numpy().reshape(25, NUM_POINTS, 3)
    lips = part_slices()["lips"]
    w = v[:, lips][..., None]
    mean = (pts[:, lips] * w).sum(1, keepdims=True) / np.maximum(w.sum(1, keepdims=True), 1)
    np.testing.assert_allclose(centred[:, lips], (pts[:, lips] - mean) * w, atol=1e-5)


@pytest.mark.parametrize("length", [25, 80])
def test_degenerate_sequences(length):
    f = features(length)
    all_nan = run_features(f, np.full((12, S, 3), np.nan, np.float32))
    assert torch.isfinite(all_nan).all() and all_nan[:, -1].sum() == 12   # no hand anywhere: every frame kept
    assert (all_nan[:, :-1] == 0).all()
    one = run_features(f, sequence(1, no_hand=0.0))
    assert one[:, -1].sum() == 1 and torch.isfinite(one).all()
    long = run_features(f, sequence(1000, seed=5))
    assert torch.isfinite(long).all() and 1 <= long[:, -1].sum() <= length
    with pytest.raises(ValueError, match="expected landmarks"):
        f(torch.zeros(5, S + 1, 3))


# ------------------------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------------------------
def test_masked_pooling_ignores_padded_frames():
    f, model = features(25), small_model(25).eval()
    feats = torch.stack([run_features(f, sequence(t, seed=t)) for t in (9, 14)])
    pad = feats[..., -1] == 0
    assert pad.any()
    noisy = feats.clone()
    noisy[pad] = torch.randn(int(pad.sum()), FEATURE_DIM)
    noisy[..., -1][pad] = 0.0                                        # the mask still says padding
    with torch.no_grad():
        a, b = model(feats), model(noisy)
    assert a.shape == (2, 250)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="frame features"):
        model(feats[..., :-1])


def test_manifold_mixup_mixes_hidden_states():
    f, model = features(25), small_model(25).eval()
    assert model.mix_points == 2
    feats = torch.stack([run_features(f, sequence(300, seed=s, no_hand=0.0)) for s in range(3)])
    assert (feats[..., -1] == feats[:1, :, -1]).all()                # same masks: lam=0 is the partner's output
    perm = torch.tensor([2, 0, 1])
    with torch.no_grad():
        plain = model(feats)
        for k in range(model.mix_points):
            torch.testing.assert_close(model(feats, MixPlan(perm, 1.0, k)), plain)
            torch.testing.assert_close(model(feats, MixPlan(perm, 0.0, k)), plain[perm], atol=1e-5, rtol=1e-5)
            half = model(feats, MixPlan(perm, 0.5, k))
            assert (half - plain).abs().max() > 1e-4
        torch.testing.assert_close(model(feats, MixPlan(perm, 0.5, 7)), plain)   # not a mixing point: no mix


@pytest.mark.parametrize("length,buckets", [(25, 0), (80, 0), (80, 20)])
def test_attention_equals_hf_deberta(length, buckets):
    from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention, build_relative_position

    from aslkit.tasks.signs.families.frames.model import FramesSelfAttention, _deberta_config
    cfg = _deberta_config(FramesModelConfig(max_len=length, width=64, heads=4, position_buckets=buckets))
    torch.manual_seed(0)
    hf = DisentangledSelfAttention(cfg).eval()
    mine = FramesSelfAttention(cfg, length).eval()
    mine.load_state_dict(hf.state_dict())
    h, rel_emb = torch.randn(3, length, 64), torch.randn(2 * (buckets or length), 64)
    mask = torch.ones(3, 1, 1, length)
    mask[1, ..., length // 3:] = 0
    rel = build_relative_position(h, h, bucket_size=cfg.position_buckets, max_position=cfg.max_relative_positions)
    with torch.no_grad():
        ref = hf(h, mask, relative_pos=rel, rel_embeddings=rel_emb)[0]
        out = mine(h, torch.cat([mask, torch.zeros(3, 1, 1, 1)], -1), rel_embeddings=rel_emb)[0]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_model_config_errors():
    with pytest.raises(ValueError, match="max_len=80"):
        FramesModel(FramesModelConfig(max_len=80, width=80, heads=2))
    with pytest.raises(ValueError, match="head size"):
        FramesModel(FramesModelConfig(max_len=25, width=52, heads=2))          # [heads, 26 keys, 26] is square
    with pytest.raises(ValueError, match="activation"):
        FramesModel(FramesModelConfig(activation="mish"))
    with pytest.raises(ValueError, match="divisible"):
        FramesModel(FramesModelConfig(width=100, heads=3))
    model = small_model(25, norm="layer", share_hand_mlp=False, center_parts=False).train()
    out = model(torch.stack([run_features(features(25), sequence(20, seed=s)) for s in range(4)]))
    assert out.shape == (4, 250) and torch.isfinite(out).all()


# ------------------------------------------------------------------------------------------------------------------
# Augmentations
# ------------------------------------------------------------------------------------------------------------------
def two_hand_sequence(t: int = 30, seed: int = 0) -> np.ndarray:
    """Frames 0-9 with both hands, 10-19 right hand only, 20-29 left hand only (other points random)."""
    x = sequence(t, seed=seed, no_hand=0.0, missing=0.0)
    lay = SubsetLayout.of(SUBSET)
    x[10:20, lay.left_hand] = np.nan
    x[20:30, lay.right_hand] = np.nan
    return x


def test_p_zero_is_identity():
    x, rng = two_hand_sequence(), np.random.default_rng(0)
    aug = frames_augment(FramesAugmentConfig(crop_p=0, face_mix_p=0, hand_fill_p=0, interp_p=0, flip_p=0,
                                             rotate_p=0, scale_p=0), SUBSET)
    np.testing.assert_array_equal(aug(x, rng, lambda r: sequence(20)), x)
    for t in (StartEndCrop(0.0), InterpolateMissing(0.0), MirrorHandFill(0.0), FaceCutMix(0.0)):
        np.testing.assert_array_equal(t(x, rng, lambda r: sequence(20)), x)


def test_start_end_crop_keeps_at_least_80_percent():
    x = sequence(50, seed=1)
    crop = StartEndCrop(1.0, 0.2)
    lengths = set()
    for s in range(50):
        y = crop(x, np.random.default_rng(s))
        assert 40 <= len(y) <= 50
        start = next(i for i in range(len(x)) if np.array_equal(x[i:i + len(y)], y, equal_nan=True))
        assert start + len(y) <= len(x)
        lengths.add(len(y))
    assert len(lengths) > 3
    assert len(crop(x[:1], np.random.default_rng(0))) == 1
    with pytest.raises(ValueError, match="max_fraction"):
        StartEndCrop(1.0, 1.5)


def test_interpolation_fills_only_interior_gaps():
    x = sequence(12, seed=2, no_hand=0.0, missing=0.0)
    x[:2, 0] = np.nan                                                 # leading gap: stays
    x[4:7, 0] = np.nan                                                # interior gap: filled linearly
    x[10:, 0] = np.nan                                                # trailing gap: stays
    x[:, 1] = np.nan                                                  # never detected: stays
    y = InterpolateMissing(1.0)(x, np.random.default_rng(0))
    detected = ~np.isnan(x)
    np.testing.assert_array_equal(y[detected], x[detected])
    assert np.isnan(y[:2, 0]).all() and np.isnan(y[10:, 0]).all() and np.isnan(y[:, 1]).all()
    for t in (4, 5, 6):
        w = (t - 3) / 4
        np.testing.assert_allclose(y[t, 0], x[3, 0] * (1 - w) + x[7, 0] * w, rtol=1e-6)
    np.testing.assert_array_equal(fill_interior_gaps(y), y)


def test_mirrored_hand_fill_writes_only_missing_hand_frames():
    x = two_hand_sequence()
    x[3, :] = np.nan                                                   # nothing in frame 3
    lay = SubsetLayout.of(SUBSET)
    y = MirrorHandFill(1.0, lay, SUBSET)(x, np.random.default_rng(0))
    changed = ~np.isclose(y, x, equal_nan=True).all(-1)               # [T, S]
    assert not changed[:10].any() and not changed[:, np.setdiff1d(np.arange(S), HANDS)].any()
    assert changed[10:20][:, lay.left_hand].all() and not changed[10:20][:, lay.right_hand].any()
    assert changed[20:30][:, lay.right_hand].all() and not changed[20:30][:, lay.left_hand].any()
    sh = C.subset_positions(SUBSET, C.flat("pose", [11, 12]))
    cx = x[12, sh, 0].mean()
    np.testing.assert_allclose(y[12, lay.left_hand, 0], 2 * cx - x[12, lay.right_hand, 0], rtol=1e-5)
    np.testing.assert_array_equal(y[12, lay.left_hand, 1:], x[12, lay.right_hand, 1:])


def test_face_cutmix_takes_the_partners_face_only():
    x, partner = sequence(30, seed=3, missing=0.0), sequence(30, seed=4, missing=0.0)
    lay = SubsetLayout.of(SUBSET)
    y = FaceCutMix(1.0, lay)(x, np.random.default_rng(0), lambda rng: partner)
    other = np.setdiff1d(np.arange(S), lay.face)
    np.testing.assert_array_equal(y[:, other], x[:, other])
    face_y, face_p, face_x = y[:, lay.face], partner[:, lay.face], x[:, lay.face]
    np.testing.assert_allclose(face_y - face_y.mean(1, keepdims=True), face_p - face_p.mean(1, keepdims=True),
                               atol=1e-5)                             # the partner's face shape, frame by frame
    np.testing.assert_allclose(face_y.mean(1), face_x.mean(1), atol=1e-5)   # at this sequence's face position
    short = sequence(11, seed=5, missing=0.0)                           # time-resampled to this length
    assert FaceCutMix(1.0, lay)(x, np.random.default_rng(0), lambda rng: short).shape == x.shape
    no_face = partner.copy()
    no_face[:, lay.face] = np.nan
    np.testing.assert_array_equal(FaceCutMix(1.0, lay)(x, np.random.default_rng(0), lambda rng: no_face), x)
    with pytest.raises(ValueError, match="partner"):
        FaceCutMix(1.0, lay)(x, np.random.default_rng(0))


def test_build_augment_runs_with_overrides():
    cfg = make_train_config("ci", {"model_name": "frames25", "augment": {"flip_p": 0.0, "crop_p": 1.0}})
    aug = FAMILIES.build_augment(cfg, SUBSET)
    assert isinstance(aug, Compose) and aug.transforms[0].p == 1.0 and aug.transforms[4].p == 0.0
    x = two_hand_sequence()
    for s in range(10):
        y = aug(x, np.random.default_rng(s), lambda rng: sequence(17, seed=9))
        assert y.shape[1:] == x.shape[1:] and 24 <= len(y) <= 30 and y.dtype == x.dtype
    with pytest.raises(ValueError, match="probability"):
        frames_augment(FramesAugmentConfig(hand_fill_p=2.0), SUBSET)


# ------------------------------------------------------------------------------------------------------------------
# Presets, training, conversion
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,length", [("frames25", 25), ("frames80", 80)])
def test_presets_build_both_variants(name, length):
    for profile in ("ci", "quick", "full"):
        cfg = make_train_config(profile, {"model_name": name})
        assert cfg.features["max_len"] == length
        feats, model = FAMILIES.build_modules(cfg, SUBSET)
        assert feats.length == length and model.cfg.max_len == length and not feats.training
    with pytest.raises(ValueError, match="model.max_len"):
        FAMILIES.build_modules(make_train_config("ci", {"model_name": name, "model": {"max_len": 7}}), SUBSET)


@pytest.fixture(scope="module")
def ci_cache(islr_synth, tmp_path_factory):
    from aslkit.tasks.signs.prepare import PrepareConfig, prepare_signs
    root = tmp_path_factory.mktemp("frames_root")
    mp = pytest.MonkeyPatch()
    mp.setenv("ASLKIT_ROOT", str(root))
    yield prepare_signs(make_config(PrepareConfig, "ci", {"data_dir": str(islr_synth),
                                                          "out_dir": str(root / "prepared")}))
    mp.undo()


def test_two_epochs_train(ci_cache, tmp_path):
    from aslkit.train import train
    cfg = make_train_config("ci", {"model_name": "frames25", "optim.epochs": 2, "optim.batch_size": 16,
                                   "max_train_samples": 64, "prepared_dir": str(ci_cache),
                                   "run_name": str(tmp_path / "run"), "loss.manifold_mixup_p": 0.5})
    run = train(cfg)
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == 2 and np.isfinite(metrics["train_loss"]).all()
    assert (run / "checkpoints" / "best.pt").is_file()


def realistic_sequences(islr_synth, k: int = 4) -> list[np.ndarray]:
    """Grader inputs ``[T, 543, 3]`` of the synthetic set, some frames with their hands removed."""
    from aslkit.data.islr import load_relevant_data_subset
    paths = pd.read_csv(islr_synth / "train.csv")["path"].head(k)
    out = []
    for i, p in enumerate(paths):
        x = load_relevant_data_subset(islr_synth / p)
        x[np.random.default_rng(i).random(len(x)) < 0.3, 468:489] = np.nan
        out.append(x)
    return out


def test_tflite_conversion_parity(islr_synth, grader_tflite):
    from aslkit.tasks.base import degenerate_inputs
    from aslkit.tasks.signs.graph import GraderModel
    cfg = make_train_config("ci", {"model_name": "frames25"})
    torch.manual_seed(0)
    feats, model = FAMILIES.build_modules(cfg, SUBSET)
    with torch.no_grad():                      # weights of a trained model's size: a swapped layout shows up
        for m in model.modules():              # (with the 0.02 init it hides in 1e-4 differences)
            if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
                m.weight.normal_(0.0, 0.2)
            elif isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0.0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    grader = GraderModel(SUBSET, feats, model.eval()).eval()
    seqs = {f"seq {i}": x for i, x in enumerate(realistic_sequences(islr_synth))} | degenerate_inputs()
    for name, p in grader_tflite(grader, seqs).items():
        assert p.max_relative_diff < (1e-4 if name == "float32" else 2e-2), (name, p.max_relative_diff)
