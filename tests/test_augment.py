"""Landmark augmentations: identity at p=0, NaN handling, flip, finger-tree rotation, affine, composition."""
from __future__ import annotations

import numpy as np
import pytest

from aslkit import constants as C
from aslkit.config import make_config
from aslkit.constants import hand_routes
from aslkit.tasks.signs.families.transformer.augment import AugmentConfig, default_signs_augment
from aslkit.transforms import (
    Compose,
    FingerTreeRotation,
    HorizontalFlip,
    OneOf,
    PartMirror,
    RandomAffine,
    RandomTimeInterpolation,
    SubsetLayout,
    Transform,
    as_slice,
    finger_trees,
    resample_time,
)

LAYOUT = SubsetLayout.of()


def sequence(T: int = 30, seed: int = 0) -> np.ndarray:
    """A random ``[T, S, 3]`` float32 sequence with missing blocks: left hand gone in the first third, right hand in
    a few frames, face and pose in one frame."""
    x = np.random.default_rng(seed).uniform(0.2, 0.8, (T, LAYOUT.size, 3)).astype(np.float32)
    x[: T // 3, LAYOUT.left_hand] = np.nan
    x[np.ix_([t for t in (3, 17, 18) if t < T], LAYOUT.right_hand)] = np.nan
    x[T - 2, LAYOUT.face] = np.nan
    x[T - 2, LAYOUT.pose] = np.nan
    return x


TRANSFORMS = {
    "affine": lambda p: RandomAffine(p, shear=(-0.2, 0.2)),
    "part_affine": lambda p: RandomAffine(p, groups=LAYOUT.parts()),
    "time": lambda p: RandomTimeInterpolation(p),
    "flip": lambda p: HorizontalFlip(p),
    "lip_mirror": lambda p: PartMirror(p, C.subset_positions(C.CACHE_SUBSETS["islr"], C.LIPS)),
    "fingers": lambda p: FingerTreeRotation(p, joint_p=1.0),
    "default": lambda p: default_signs_augment(make_config(AugmentConfig, overrides={
        k: p for k in ("affine_p", "part_affine_p", "interp_p", "finger_p", "lip_flip_p")})),
}


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_p0_is_identity_and_p1_changes(name):
    x = sequence()
    before = x.copy()
    np.testing.assert_array_equal(TRANSFORMS[name](0.0)(x, rng()), x)
    out = TRANSFORMS[name](1.0)(x, rng())
    assert out.dtype == x.dtype
    assert out.shape != x.shape or not np.allclose(out, x, equal_nan=True)
    np.testing.assert_array_equal(x, before)                     # the input is never modified


@pytest.mark.parametrize("name", ["affine", "part_affine", "fingers"])
def test_nans_stay_where_they_were(name):
    x = sequence()
    for seed in range(5):
        out = TRANSFORMS[name](1.0)(x, rng(seed))
        np.testing.assert_array_equal(np.isnan(out), np.isnan(x))


def test_time_interpolation_keeps_missing_parts_as_blocks():
    x = sequence(40)
    x[:, LAYOUT.right_hand] = np.nan                               # a hand that never appears
    for seed in range(20):
        out = RandomTimeInterpolation(1.0)(x, rng(seed))
        assert 0.8 * 40 - 1 <= len(out) <= 1.5 * 40 + 1
        for part in LAYOUT.parts():
            nan = np.isnan(out[:, part])
            assert (nan.all(axis=(1, 2)) | ~nan.any(axis=(1, 2))).all()
        assert np.isnan(out[:, LAYOUT.right_hand]).all()
        assert not np.isnan(out[:, LAYOUT.left_hand]).all()


def test_resample_time_is_linear_and_does_not_bridge_gaps():
    x = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    np.testing.assert_allclose(resample_time(x, np.array([0.0, 0.5, 2.25, 3.0]))[:, 0, 0], [0, 0.5, 2.25, 3])
    x[2] = np.nan
    out = resample_time(x, np.array([1.25, 1.75, 2.5]))[:, 0, 0]     # nearest frame 1, 2 (missing), 3
    np.testing.assert_array_equal(out, [1, np.nan, 3])


def test_flip_twice_is_identity_and_swaps_hands():
    x = sequence()
    flip = HorizontalFlip(1.0)
    once = flip(x, rng())
    np.testing.assert_allclose(flip(once, rng()), x, atol=1e-6)
    np.testing.assert_allclose(once[:, LAYOUT.right_hand, 0], 1 - x[:, LAYOUT.left_hand, 0], atol=1e-6)
    np.testing.assert_array_equal(once[:, LAYOUT.left_hand, 1:], x[:, LAYOUT.right_hand, 1:])
    np.testing.assert_array_equal(np.isnan(once), np.isnan(x[:, LAYOUT.flip]))


def bone_lengths(x: np.ndarray, edges: list[tuple[int, int]]) -> np.ndarray:
    """x,y lengths ``[T, hands, edges]`` of the given hand edges."""
    a, b = np.array(edges).T
    hands = np.stack([x[:, h] for h in LAYOUT.hands()], axis=1)
    return np.linalg.norm(hands[:, :, a, :2] - hands[:, :, b, :2], axis=-1)


def test_finger_trees():
    assert len(finger_trees()) == 20 and len(finger_trees(wrist_trees=False)) == 15
    assert all(len(children) == len(hand_routes()[0]) - 1 - i for i, (_, children) in enumerate(finger_trees()[:4]))


@pytest.mark.parametrize("wrist_trees", [True, False])
def test_finger_rotation_keeps_bone_lengths(wrist_trees):
    routes = [set(r) for r in hand_routes()]
    finger_edges = [e for e in C.HAND_CONNECTIONS if any(set(e) <= r for r in routes)]
    edges = finger_edges if wrist_trees else C.HAND_CONNECTIONS   # knuckle edges move with wrist-rooted trees
    x = sequence()
    out = FingerTreeRotation(1.0, joint_p=0.5, degree=(-20, 20), wrist_trees=wrist_trees)(x, rng(1))
    np.testing.assert_allclose(bone_lengths(out, edges), bone_lengths(x, edges), atol=1e-5)
    hands = np.concatenate(LAYOUT.hands())
    assert np.nanmax(np.abs(out[:, hands] - x[:, hands])) > 1e-3
    others = np.setdiff1d(np.arange(LAYOUT.size), hands)
    np.testing.assert_array_equal(out[:, others], x[:, others])
    np.testing.assert_array_equal(out[..., 2], x[..., 2])          # rotation in the x,y plane


def pairwise(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, :, None] - x[:, None], axis=-1)


def test_pure_rotation_keeps_distances():
    x = sequence()
    rot = RandomAffine(1.0, scale=None, shift=None, degree=(-45, 45))
    out = rot(x, rng(2))
    np.testing.assert_allclose(pairwise(out), pairwise(x), atol=1e-5)
    assert np.nanmax(np.abs(out - x)) > 1e-3
    parts = RandomAffine(1.0, scale=None, shift=None, degree=(-45, 45), groups=LAYOUT.parts())(x, rng(3))
    for g in LAYOUT.parts():
        np.testing.assert_allclose(pairwise(parts[:, g]), pairwise(x[:, g]), atol=1e-5)


class Mark(Transform):
    """Counts its applications."""

    def __init__(self, p: float):
        super().__init__(p)
        self.calls = 0

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.calls += 1
        return x


def assert_rate(count: int, n: int, p: float) -> None:
    assert abs(count - n * p) <= 4 * np.sqrt(n * p * (1 - p)) + 1, (count, n, p)


def test_compose_and_oneof_respect_probabilities():
    x, n = sequence(4), 4000
    a, b = Mark(0.3), Mark(0.7)
    pipe = Compose([a, b], p=0.5)
    r = rng(4)
    for _ in range(n):
        pipe(x, r)
    assert_rate(a.calls, n, 0.15)
    assert_rate(b.calls, n, 0.35)
    c, d, never = Mark(0.25), Mark(0.75), Mark(0.0)
    one = OneOf([c, d, never], p=0.8)
    for _ in range(n):
        one(x, r)
    assert_rate(c.calls, n, 0.2)
    assert_rate(d.calls, n, 0.6)
    assert never.calls == 0


def test_determinism_and_config_overrides():
    x = sequence()
    aug = default_signs_augment()
    np.testing.assert_array_equal(aug(x, rng(5)), aug(x, rng(5)))
    outs = [aug(x, rng(s)) for s in range(6, 10)]
    assert any(o.shape != outs[0].shape or not np.allclose(o, outs[0], equal_nan=True) for o in outs[1:])
    cfg = make_config(AugmentConfig, overrides=["lip_flip_p=0", "affine_degree=[-5, 5]",
                                                "part_affine_shear=[-0.1, 0.1]"])
    assert cfg.affine_degree == (-5.0, 5.0) and cfg.part_affine_shear == (-0.1, 0.1) and cfg.lip_flip_p == 0.0
    mirror = default_signs_augment(cfg).transforms[-1]
    assert isinstance(mirror, PartMirror) and mirror.p == 0.0
    assert not any(isinstance(t, HorizontalFlip) for t in default_signs_augment(cfg).transforms)


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="RandomAffine.p"):
        RandomAffine(p=1.5)
    with pytest.raises(ValueError, match="scale"):
        RandomTimeInterpolation(scale=(1.5, 0.8))
    with pytest.raises(ValueError, match="joint_p"):
        FingerTreeRotation(joint_p=-0.1)
    with pytest.raises(ValueError, match=f"{len(C.CACHE_SUBSETS['islr'])} landmarks"):
        HorizontalFlip(1.0)(np.zeros((3, 10, 3), np.float32), rng())
    with pytest.raises(ValueError, match=r"\[T, S, 3\]"):
        RandomAffine(1.0)(np.zeros((3, 10)), rng())
    with pytest.raises(ValueError, match="OneOf"):
        OneOf([Mark(0.0)])
    with pytest.raises(ValueError, match="only 20 of the 21 left_hand"):
        SubsetLayout.of(np.delete(C.CACHE_SUBSETS["islr"], LAYOUT.left_hand[3]))


def textbook_affine(x: np.ndarray, draws: list[tuple[np.ndarray, float, np.ndarray]], groups) -> np.ndarray:
    """RandomAffine written plainly: each group about its ``np.nanmean`` centre, ``xy @ M.T + shift``, ``z * s``."""
    out = x.astype(np.float64)
    for g, (m, s, shift) in zip(groups, draws):
        pts = out[:, g]
        if np.isnan(pts).all():
            continue
        centre = np.nanmean(pts.reshape(-1, 3), axis=0)
        pts = pts - centre
        pts[..., :2] = pts[..., :2] @ m.T + shift
        pts[..., 2] *= s
        out[:, g] = pts + centre
    return out.astype(x.dtype)


@pytest.mark.parametrize("grouped,shear", [(False, (-0.2, 0.2)), (True, (-0.2, 0.2)), (True, None)])
def test_affine_equals_the_textbook_map(grouped, shear):
    """The coordinate-major fast form of RandomAffine computes what the plain per-group formula does (same draws;
    consecutive groups such as a hand are read as slices, the face by its positions)."""
    groups = LAYOUT.parts() if grouped else None
    t = RandomAffine(1.0, shear=shear, groups=groups)
    if grouped:
        assert {type(g) for g in t.groups} == {slice, np.ndarray}
    for seed, length in enumerate([1, 7, 30, 120]):
        x = sequence(length, seed)
        x[:, LAYOUT.left_hand] = np.nan                               # a group with no point at all
        r = rng(seed)
        r.random()                                                     # the draw that decides p
        draws = [t.sample(r) for _ in (groups or [None])]
        expected = textbook_affine(x, draws, groups or [np.arange(LAYOUT.size)])
        out = t(x, rng(seed))
        np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
        assert np.nanmax(np.abs(out - x)) > 1e-3


def test_part_mirror_reflects_the_lips_about_their_own_centre_and_nothing_else():
    """The lip mirror (I2-T's "mirror flip"): lips permuted left <-> right and x reflected about their mean x; every
    other point unchanged; twice is the identity; a part that is not its own mirror image is refused."""
    x = sequence()
    lips = C.subset_positions(C.CACHE_SUBSETS["islr"], C.LIPS)
    mirror = PartMirror(1.0, lips)
    out = mirror(x, rng())
    swapped = LAYOUT.flip[lips]
    centre = np.nanmean(x[:, lips, 0])
    np.testing.assert_allclose(out[:, lips, 0], 2 * centre - x[:, swapped, 0], atol=1e-5)
    np.testing.assert_array_equal(out[:, lips, 1:], x[:, swapped, 1:])
    rest = np.setdiff1d(np.arange(LAYOUT.size), lips)
    np.testing.assert_array_equal(out[:, rest], x[:, rest])
    assert not np.allclose(out[:, lips], x[:, lips], equal_nan=True)
    np.testing.assert_allclose(mirror(out, rng()), x, atol=1e-5)
    with pytest.raises(ValueError, match="its own mirror image"):
        PartMirror(1.0, LAYOUT.right_hand)


def test_as_slice_only_for_consecutive_positions():
    assert as_slice(np.array([4, 5, 6])) == slice(4, 7)
    for positions in (np.array([4, 6, 7]), np.array([6, 5]), np.zeros(0, dtype=np.int64)):
        assert as_slice(positions) is positions
