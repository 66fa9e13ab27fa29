"""Fingerspelling augmentations: each transform changes what it should and nothing else, outer CutMix, pipeline."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from aslkit import constants as C
from aslkit.config import load_config, make_config, save_config
from aslkit.tasks.fingerspelling.augment import (
    FS_GROUPS,
    FS_LAYOUT,
    FeatureMask,
    FingerDrop,
    FrameBlockMask,
    FrameNoise,
    FSAugmentConfig,
    RandomResample,
    default_fs_augment,
    finger_positions,
    fs_affine_groups,
    outer_cutmix,
    time_flip,
)
from aslkit.transforms import HorizontalFlip, PartMirror, RandomAffine, SpatialMask, TimeMask

L = FS_LAYOUT
ALL_P = ("resample_p", "lip_flip_p", "affine_p", "part_affine_p", "noise_p", "finger_drop_p", "block_mask_hands_p",
         "block_mask_arms_p", "block_mask_lips_p", "time_mask_p", "spatial_mask_p",
         "feature_mask_p")


def sequence(T: int = 50, seed: int = 0, missing: bool = True) -> np.ndarray:
    """Random ``[T, 130, 3]`` float32 FS_130 sequence; with ``missing``: left hand gone in the first third, two
    all-NaN frames, arms missing in one frame."""
    x = np.random.default_rng(seed).uniform(0.2, 0.8, (T, 130, 3)).astype(np.float32)
    if missing:
        x[: T // 3, L.left_hand] = np.nan
        x[[t for t in (5, 6) if t < T]] = np.nan
        x[T - 1, L.pose] = np.nan
    return x


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def new_nans(out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``[T, 130, 3]`` where ``out`` is NaN and ``x`` is not (same shape)."""
    return np.isnan(out) & ~np.isnan(x)


def assert_rest_equal(out: np.ndarray, x: np.ndarray) -> None:
    """Every value that ``out`` did not mask is the input value."""
    keep = ~np.isnan(out)
    np.testing.assert_array_equal(out[keep], x[keep])


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` runs of True."""
    d = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


TRANSFORMS = {
    "flip": lambda p: HorizontalFlip(p, layout=L),
    "lip_mirror": lambda p: PartMirror(p, FS_GROUPS["lips"], layout=L),
    "part_affine": lambda p: RandomAffine(p, groups=fs_affine_groups()),
    "resample": lambda p: RandomResample(p),
    "finger_drop": lambda p: FingerDrop(p),
    "time_mask": lambda p: TimeMask(p),
    "spatial_mask": lambda p: SpatialMask(p, size=(0.3, 0.5)),
    "block_mask": lambda p: FrameBlockMask(FS_GROUPS["hands"], p, ratio=0.5),
    "noise": lambda p: FrameNoise(p, ratio=0.5),
    "feature_mask": lambda p: FeatureMask(p, ratio=0.3),
    "default": lambda p: default_fs_augment(make_config(FSAugmentConfig, overrides={k: p for k in ALL_P})),
}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_p0_identity_p1_changes_determinism_and_input_untouched(name):
    x = sequence()
    before = x.copy()
    np.testing.assert_array_equal(TRANSFORMS[name](0.0)(x, rng()), x)
    t = TRANSFORMS[name](1.0)
    out = t(x, rng(1))
    assert out.dtype == np.float32 and out.ndim == 3 and out.shape[1:] == (130, 3) and len(out) >= 1
    assert out.shape != x.shape or not np.array_equal(out, x, equal_nan=True)
    np.testing.assert_array_equal(t(x, rng(1)), out)                       # same seed, same output
    np.testing.assert_array_equal(x, before)                               # the input is never modified


def test_fs_layout_and_fingers():
    fingers = finger_positions()
    assert fingers.shape == (10, 4)
    np.testing.assert_array_equal(np.sort(fingers.ravel()),
                                  np.sort(np.concatenate([L.left_hand[1:], L.right_hand[1:]])))
    np.testing.assert_array_equal(C.FS_130[fingers[0]], C.LEFT_HAND[[1, 2, 3, 4]])    # left thumb
    np.testing.assert_array_equal(C.FS_130[fingers[9]], C.RIGHT_HAND[[17, 18, 19, 20]])  # right pinky
    groups = np.concatenate(list(FS_GROUPS.values()))
    np.testing.assert_array_equal(np.sort(groups), np.arange(130))
    assert sorted(len(g) for g in fs_affine_groups()) == [12, 21, 21, 76]


def test_flip_on_fs130_swaps_hands_and_mirrors_x():
    x = sequence()
    flip = HorizontalFlip(1.0, layout=L)
    once = flip(x, rng())
    np.testing.assert_allclose(once[:, L.right_hand, 0], 1 - x[:, L.left_hand, 0], atol=1e-6)
    np.testing.assert_array_equal(once[:, L.left_hand, 1:], x[:, L.right_hand, 1:])
    np.testing.assert_array_equal(once[:, L.right_hand, 1:], x[:, L.left_hand, 1:])
    arms_r, arms_l = C.subset_positions(C.FS_130, C.RIGHT_ARM), C.subset_positions(C.FS_130, C.LEFT_ARM)
    np.testing.assert_array_equal(once[:, arms_l, 1], x[:, arms_r, 1])
    lip0 = C.subset_positions(C.FS_130, C.LIPS[:1])                       # face 0: on the midline, stays
    np.testing.assert_allclose(once[:, lip0, 0], 1 - x[:, lip0, 0], atol=1e-6)
    np.testing.assert_allclose(flip(once, rng()), x, atol=1e-6)          # twice is identity


def test_finger_drop_whole_sequence_drops_exactly_whole_fingers():
    x = sequence(missing=False)
    fingers = finger_positions()
    for seed in range(10):
        out = FingerDrop(1.0, n_fingers=(2, 5), window=(1.0, 1.0), n_windows=(1, 1))(x, rng(seed))
        dropped = [f for f in fingers if np.isnan(out[:, f]).all()]
        assert 2 <= len(dropped) <= 5
        expected = np.zeros(x.shape, bool)
        expected[:, np.concatenate(dropped)] = True
        np.testing.assert_array_equal(np.isnan(out), expected)             # nothing else, wrists kept
        assert_rest_equal(out, x)


def test_finger_drop_windows_stay_in_finger_points_and_windows():
    x = sequence(T=100, missing=False)
    finger_points = np.zeros(130, bool)
    finger_points[finger_positions().ravel()] = True
    for seed in range(10):
        out = FingerDrop(1.0)(x, rng(seed))                                 # F1: 2 windows of 25-50 % of T
        nan = np.isnan(out)
        assert nan.any() and not nan[:, ~finger_points].any()
        frames = nan.any(axis=(1, 2))
        assert 25 <= frames.sum() <= 100
        assert all(stop - start >= 25 for start, stop in runs(frames)) and len(runs(frames)) <= 2
        assert_rest_equal(out, x)


def test_time_mask_nans_only_whole_frame_spans():
    x = sequence(T=100)
    for seed in range(10):
        out = TimeMask(1.0, size=(0.2, 0.4))(x, rng(seed))
        masked = np.isnan(out).all(axis=(1, 2)) & ~np.isnan(x).all(axis=(1, 2))
        np.testing.assert_array_equal(new_nans(out, x).any(axis=(1, 2)), masked)  # whole frames only
        spans = runs(np.isnan(out).all(axis=(1, 2)))
        assert any(20 <= stop - start <= 42 for start, stop in spans)      # (+2: the two NaN frames of x)
        assert 20 <= np.isnan(out).all(axis=(1, 2)).sum() <= 42
        assert_rest_equal(out, x)
        four = TimeMask(1.0, size=(0.05, 0.1), n_masks=(4, 4))(x, rng(seed))
        assert 5 <= new_nans(four, x).any(axis=(1, 2)).sum() <= 40
        assert_rest_equal(four, x)


def test_spatial_mask_nans_whole_points_inside_a_small_box():
    x = sequence()
    lo = np.nanmin(x[..., :2].reshape(-1, 2), axis=0)
    hi = np.nanmax(x[..., :2].reshape(-1, 2), axis=0)
    hit = 0
    for seed in range(20):
        out = SpatialMask(1.0, size=(0.1, 0.2))(x, rng(seed))
        nn = new_nans(out, x)
        np.testing.assert_array_equal(nn.any(-1), nn.all(-1))              # whole points
        assert_rest_equal(out, x)
        if nn.any():
            hit += 1
            xy = x[nn.all(-1)][:, :2]
            assert (xy.max(0) - xy.min(0) <= 0.2 * (hi - lo) + 1e-6).all()
    assert hit >= 10
    empty = np.full((3, 130, 3), np.nan, np.float32)
    assert np.isnan(SpatialMask(1.0)(empty, rng())).all()


def test_resample_length_range_and_one_frame():
    x = sequence(T=50)
    lengths = {len(RandomResample(1.0)(x, rng(s))) for s in range(40)}
    assert min(lengths) >= 25 and max(lengths) <= 75 and len(lengths) > 5
    assert min(lengths) < 40 and max(lengths) > 60
    one = RandomResample(1.0, scale=(0.1, 0.2))(sequence(T=1), rng())
    assert one.shape == (1, 130, 3)


def test_frame_block_mask_touches_only_its_group():
    x = sequence(T=3000, missing=False)
    hands = FS_GROUPS["hands"]
    out = FrameBlockMask(hands, 1.0, ratio=0.1, block=3)(x, rng())
    nn = new_nans(out, x)
    others = np.setdiff1d(np.arange(130), hands)
    assert not nn[:, others].any()
    frames = nn[:, hands].any(axis=(1, 2))
    np.testing.assert_array_equal(nn[:, hands].all(axis=(1, 2)), frames)  # the whole group in a masked frame
    assert 0.07 <= frames.mean() <= 0.12                                    # about `ratio` of the frames
    assert np.mean([b - a for a, b in runs(frames)]) >= 2.5                 # blocks of 3
    assert_rest_equal(out, x)
    gone = x.copy()
    gone[:, hands] = np.nan                                                 # group never seen: nothing to do
    np.testing.assert_array_equal(FrameBlockMask(hands, 1.0, ratio=1.0)(gone, rng()), gone)


def test_frame_noise_keeps_nans_and_has_sigma():
    x = sequence(T=200)
    out = FrameNoise(1.0, sigma=0.01, ratio=1.0)(x, rng())
    np.testing.assert_array_equal(np.isnan(out), np.isnan(x))
    d = (out - x)[~np.isnan(x)]
    assert abs(d.std() - 0.01) < 0.001 and abs(d.mean()) < 0.001
    half = FrameNoise(1.0, sigma=0.01, ratio=0.5)(x, rng())
    changed = (half != x).any(axis=(1, 2))
    assert 0.35 < changed.mean() < 0.65
    np.testing.assert_array_equal(half[~changed], x[~changed])


def test_feature_mask_nans_whole_landmarks():
    x = sequence(T=20, missing=False)
    out = FeatureMask(1.0, ratio=0.3)(x, rng())
    points = np.isnan(out).any(axis=(0, 2))
    assert np.isnan(out[:, points]).all() and not np.isnan(out[:, ~points]).any()
    assert 15 <= points.sum() <= 65
    assert_rest_equal(out, x)


def test_per_group_affine_moves_each_group_rigidly():
    x = sequence()
    rot = RandomAffine(1.0, scale=None, shift=None, degree=(-30, 30), groups=fs_affine_groups())
    out = rot(x, rng(3))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(x))
    np.testing.assert_array_equal(out[..., 2], x[..., 2])
    for g in fs_affine_groups():
        d_in = np.linalg.norm(x[:, g, None, :2] - x[:, None, g, :2], axis=-1)
        d_out = np.linalg.norm(out[:, g, None, :2] - out[:, None, g, :2], axis=-1)
        np.testing.assert_allclose(d_out, d_in, atol=1e-5)                  # rigid within the group
    arms, hand = L.pose[0], L.right_hand[0]                                 # between groups: not rigid
    assert not np.allclose(np.linalg.norm(out[:, arms, :2] - out[:, hand, :2], axis=-1),
                           np.linalg.norm(x[:, arms, :2] - x[:, hand, :2], axis=-1), equal_nan=True)
    shift = RandomAffine(1.0, scale=None, degree=None, shift=(-0.1, 0.1), groups=fs_affine_groups())(x, rng(4))
    moves = []
    for g in fs_affine_groups():
        delta = (shift[:, g, :2] - x[:, g, :2]).reshape(-1, 2)
        delta = delta[~np.isnan(delta).any(1)]
        np.testing.assert_allclose(delta, np.broadcast_to(delta[0], delta.shape), atol=1e-6)
        moves.append(delta[0])
    assert len({tuple(np.round(m, 5)) for m in moves}) == len(moves)       # each group its own shift


def marked(T: int, seq_id: int) -> np.ndarray:
    """``[T, 130, 3]`` whose frame t holds ``seq_id * 1000 + t`` everywhere (to trace where frames came from)."""
    return (seq_id * 1000 + np.arange(T, dtype=np.float32))[:, None, None] * np.ones((1, 130, 3), np.float32)


def cut_interval(c: int, n: int) -> tuple[float, float]:
    """Fractions f for which ``clip(round(n * f), 1, n - 1) == c`` (n >= 2), widened by a rounding margin."""
    lo = 0.0 if c == 1 else (c - 0.5) / n
    hi = 1.0 if c == n - 1 else (c + 0.5) / n
    return lo - 1e-9, hi + 1e-9


@pytest.mark.parametrize("T1,T2,p1,p2", [(50, 80, "hello world", "abc 123"), (2, 3, "ab", "xyz"),
                                         (1, 1, "a", "b"), (100, 7, "1383 william lanier", "qq"),
                                         (9, 40, "aaaa", "aaaaaaaaaa")])
def test_outer_cutmix_suffix_of_one_then_prefix_of_other(T1, T2, p1, p2):
    x1, x2 = marked(T1, 1), marked(T2, 2)
    b1, b2 = x1.copy(), x2.copy()
    seen_orders = set()
    for seed in range(30):
        x, phrase = outer_cutmix(x1, p1, x2, p2, rng(seed))
        assert x.dtype == np.float32 and x.shape[1:] == (130, 3) and len(x) >= 1 and phrase
        ids = x[:, 0, 0].astype(int)
        first = ids[0] // 1000
        seen_orders.add(first)
        (xa, pa), (xb, pb) = ((x1, p1), (x2, p2)) if first == 1 else ((x2, p2), (x1, p1))
        n_a = int((ids // 1000 == first).sum())
        c_a, c_b = len(xa) - n_a, len(x) - n_a
        np.testing.assert_array_equal(x, np.concatenate([xa[c_a:], xb[:c_b]]))  # suffix of a, then prefix of b
        assert len(x) == len(xa) - c_a + c_b
        splits = [(k, len(phrase) - len(pa) + k) for k in range(len(pa))
                  if 0 <= len(phrase) - len(pa) + k <= len(pb) and phrase == pa[k:] + pb[:len(phrase) - len(pa) + k]]
        assert splits                                                       # suffix of pa, then prefix of pb
        if min(len(xa), len(xb), len(pa), len(pb)) >= 2:                    # one fraction f cuts all four
            def consistent(k_a: int, k_b: int) -> bool:
                ivs = [cut_interval(c, n) for c, n in ((c_a, len(xa)), (c_b, len(xb)), (k_a, len(pa)), (k_b, len(pb)))]
                return max(lo for lo, _ in ivs) <= min(hi for _, hi in ivs)
            assert any(1 <= k_a and 1 <= k_b < len(pb) and consistent(k_a, k_b) for k_a, k_b in splits)
    assert seen_orders == {1, 2}                                            # either sequence can come first
    np.testing.assert_array_equal(x1, b1)
    np.testing.assert_array_equal(x2, b2)


def test_outer_cutmix_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same S"):
        outer_cutmix(np.zeros((3, 130, 3)), "a", np.zeros((3, 10, 3)), "b", rng())


def test_time_flip_reverses_frames_and_phrase_together():
    x = marked(7, 1)
    before = x.copy()
    y, phrase = time_flip(x, "abc 12")
    np.testing.assert_array_equal(y, before[::-1])
    assert phrase == "21 cba" and y.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(x, before)                               # the input is not modified


class _Cache:
    """The two things FSSampler reads from a prepared cache: sequences by row and the landmark subset."""

    subset = C.FS_130

    def __init__(self, seqs: list[np.ndarray]):
        self.seqs = seqs

    def __getitem__(self, i: int) -> np.ndarray:
        return self.seqs[i]


@pytest.mark.parametrize("p, flipped", [(1.0, True), (0.0, False)])
def test_the_sampler_flips_frames_and_phrase_with_time_flip_p(p, flipped):
    from aslkit.tasks.fingerspelling.objective import FSSampler
    seqs = [marked(12, 1), marked(9, 2)]
    index = pd.DataFrame({"phrase": ["hello", "ab"], "participant_id": [1, 1]})
    sampler = FSSampler(_Cache(seqs), index, lambda x, rng: x, cutmix_p=0.0, max_frames=100, time_flip_p=p)
    sampler.fit(np.arange(2))
    x, (ids, _) = sampler(0, rng(0))
    want = seqs[0][::-1] if flipped else seqs[0]
    np.testing.assert_array_equal(x, want)
    assert "".join(C.CHARACTERS[i] for i in ids) == ("olleh" if flipped else "hello")
    x_val, (ids_val, _) = sampler(0, None)                                   # validation: never flipped
    np.testing.assert_array_equal(x_val, seqs[0])
    assert "".join(C.CHARACTERS[i] for i in ids_val) == "hello"


def test_time_flip_is_f5s_in_full_and_off_in_the_quick_presets():
    from aslkit.tasks.fingerspelling.families.ctc import PRESETS
    assert FSAugmentConfig().time_flip_p == 0.5                             # F5 TimeFlip(p=0.5)
    assert PRESETS["quick"]["augment"]["time_flip_p"] == PRESETS["ci"]["augment"]["time_flip_p"] == 0.0
    from aslkit.tasks.fingerspelling.objective import FSSampler
    empty = pd.DataFrame({"phrase": [], "participant_id": []})
    with pytest.raises(ValueError, match="augment.time_flip_p must be a probability"):
        FSSampler(_Cache([]), empty, None, 0.0, 10, time_flip_p=1.5)


@pytest.mark.parametrize("T", [50, 1, 2])
def test_default_pipeline_shapes_and_values(T):
    x = sequence(T=T)
    if T == 50:
        x[10:13] = np.nan
    full = default_fs_augment(make_config(FSAugmentConfig, overrides={k: 1.0 for k in ALL_P}))
    for aug in (default_fs_augment(), full):
        for seed in range(20):
            out = aug(x, rng(seed))
            assert out.dtype == np.float32 and out.ndim == 3 and out.shape[1:] == (130, 3) and len(out) >= 1
            assert not np.isinf(out).any()
    outs = [default_fs_augment()(x, rng(s)) for s in range(5)]
    if T == 50:
        assert any(o.shape != outs[0].shape or not np.array_equal(o, outs[0], equal_nan=True) for o in outs[1:])


def test_config_yaml_round_trip_and_overrides(tmp_path):
    cfg = make_config(FSAugmentConfig, overrides=["lip_flip_p=0", "time_mask_counts=[1, 3]",
                                                  "resample_scale=[0.8, 1.2]", "finger_drop_n=[1, 2]"])
    assert cfg.lip_flip_p == 0.0 and cfg.time_mask_counts == (1, 3) and cfg.resample_scale == (0.8, 1.2)
    back = load_config(FSAugmentConfig, save_config(cfg, tmp_path / "aug.yaml"))
    assert back == cfg
    assert load_config(FSAugmentConfig, save_config(FSAugmentConfig(), tmp_path / "d.yaml")) == FSAugmentConfig()
    for f in dataclasses.fields(FSAugmentConfig):                          # plain values (and one run folder)
        assert f.type in ("float", "int", "tuple[float, float]", "tuple[int, int]", "tuple[int, ...]") or (
            f.name == "cutmix_alignment" and f.type == "str"), f
    aligned = make_config(FSAugmentConfig, overrides=["cutmix_alignment=logs/ctc_run"])
    assert load_config(FSAugmentConfig, save_config(aligned, tmp_path / "a.yaml")).cutmix_alignment == "logs/ctc_run"
    pipe = default_fs_augment(cfg)
    mirrors = [t for t in pipe.transforms if isinstance(t, PartMirror)]
    assert len(mirrors) == 1 and mirrors[0].p == 0.0 and mirrors[0].layout is L
    assert not any(isinstance(t, HorizontalFlip) for t in pipe.transforms)
    np.testing.assert_array_equal(np.sort(mirrors[0].positions), np.sort(FS_GROUPS["lips"]))


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="FingerDrop.p"):
        FingerDrop(p=2.0)
    with pytest.raises(ValueError, match="n_fingers"):
        FingerDrop(n_fingers=(3, 11))
    with pytest.raises(ValueError, match="n_masks"):
        TimeMask(n_masks=(2, 1))
    with pytest.raises(ValueError, match="size"):
        SpatialMask(size=(0.2, 0.1))
    with pytest.raises(ValueError, match="ratio"):
        FeatureMask(ratio=1.5)
    with pytest.raises(ValueError, match="block"):
        FrameBlockMask(FS_GROUPS["lips"], block=0)
    with pytest.raises(ValueError, match="sigma"):
        FrameNoise(sigma=-1.0)
    with pytest.raises(ValueError, match="time_mask_counts"):
        default_fs_augment(FSAugmentConfig(time_mask_counts=(1, 0)))
    with pytest.raises(ValueError, match="130 landmarks"):
        FingerDrop(1.0)(np.zeros((3, 10, 3), np.float32), rng())
