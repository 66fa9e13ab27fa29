"""Landmark-sequence augmentations for asl-signs training (the I2-T recipe of the 2nd-place solution).

Every transform works on one numpy sequence ``[T, S, 3]`` of a cache subset (NaN = landmark not detected; NaNs stay
NaN), has its own probability ``p`` and is called as ``transform(x, rng)`` with a ``numpy.random.Generator``; the
input is never modified. ``Compose`` and ``OneOf`` combine them (the ``Transform(p=...)`` style of the
fingerspelling 5th place). ``default_signs_augment(AugmentConfig())`` builds the I2-T pipeline:

* ``aug2``: ``RandomAffine`` (scale 0.8-1.5, shift +-0.1, rotation +-15 deg, p=0.8), then ``RandomTimeInterpolation``
  (length x0.8-1.5, offset +-0.5 frame, p=0.3);
* ``random_hand_op_h4``: ``FingerTreeRotation`` of both hands (each finger tree with p=0.15, +-4 deg in the x,y
  plane, p=0.9);
* ``HorizontalFlip`` (p=0.5).

Differences from the I2-T code, on purpose: rotation and scaling are about the sequence centre (I2-T: the image
origin), the shift moves x and y only, and time interpolation clamps to the sequence instead of extrapolating.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from aslkit import constants as C
from aslkit.features import hand_routes

Range = tuple[float, float]


# ---------------------------------------------------------------------------------------------------------------
# Where the parts are inside a subset
# ---------------------------------------------------------------------------------------------------------------
def _hand_positions(subset: np.ndarray, hand: np.ndarray, name: str) -> np.ndarray:
    """Positions of the 21 points of one hand in landmark order, or an empty array when the subset has none."""
    present = np.isin(hand, subset)
    if not present.any():
        return np.zeros(0, dtype=np.int64)
    if not present.all():
        raise ValueError(f"subset holds only {int(present.sum())} of the 21 {name} points")
    return C.subset_positions(subset, hand)


@dataclass(frozen=True)
class SubsetLayout:
    """Positions of the hands, the face points and the pose points inside a cache subset, and its flip map."""

    size: int
    left_hand: np.ndarray
    right_hand: np.ndarray
    face: np.ndarray
    pose: np.ndarray
    flip: np.ndarray

    @classmethod
    def of(cls, subset: np.ndarray | None = None) -> SubsetLayout:
        """The layout of ``subset`` (default: ``constants.CACHE_SUBSETS["islr"]``)."""
        subset = np.asarray(C.CACHE_SUBSETS["islr"] if subset is None else subset)
        return cls(size=len(subset),
                   left_hand=_hand_positions(subset, C.LEFT_HAND, "left_hand"),
                   right_hand=_hand_positions(subset, C.RIGHT_HAND, "right_hand"),
                   face=np.flatnonzero(np.isin(subset, C.FACE)),
                   pose=np.flatnonzero(np.isin(subset, C.POSE)),
                   flip=C.subset_flip_permutation(subset))

    def hands(self) -> list[np.ndarray]:
        """The hands present in the subset (21 positions each)."""
        return [h for h in (self.left_hand, self.right_hand) if len(h)]

    def parts(self) -> list[np.ndarray]:
        """The non-empty parts: left hand, right hand, face (lips, eyes, nose...), pose."""
        return [p for p in (self.left_hand, self.right_hand, self.face, self.pose) if len(p)]

    def check(self, x: np.ndarray) -> None:
        """ValueError unless ``x`` has this subset's number of points."""
        if x.shape[1] != self.size:
            raise ValueError(f"expected {self.size} landmarks per frame for this subset, got shape {x.shape}")


def _check_range(name: str, value: Range | None, low: float = -np.inf) -> Range | None:
    """``value`` as a float pair ``(a, b)`` with ``low <= a <= b`` (None passes through)."""
    if value is None:
        return None
    a, b = (float(v) for v in value)
    if not low <= a <= b:
        raise ValueError(f"{name} must be a range (a, b) with {low} <= a <= b, got {value!r}")
    return a, b


def _check_p(name: str, p: float) -> float:
    """``p`` as a probability."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


# ---------------------------------------------------------------------------------------------------------------
# Base classes and composition
# ---------------------------------------------------------------------------------------------------------------
Partner = Callable[[np.random.Generator], np.ndarray]   # rng -> another training sequence of the same sign


class Transform:
    """A random transform applied with probability ``p``; subclasses implement ``apply``.

    Transforms that mix in a second sequence of the same class (``needs_partner = True``) get ``partner``, a
    function that draws one (``rng -> [T', S, 3]``); the others never see it.
    """

    needs_partner = False

    def __init__(self, p: float = 1.0):
        self.p = _check_p(f"{type(self).__name__}.p", p)

    def __call__(self, x: np.ndarray, rng: np.random.Generator, partner: Partner | None = None) -> np.ndarray:
        """``apply(x)`` with probability ``p``, else ``x`` unchanged (one ``rng.random()`` draw either way)."""
        if x.ndim != 3 or x.shape[-1] != 3:
            raise ValueError(f"{type(self).__name__}: expected landmarks [T, S, 3], got shape {x.shape}")
        if rng.random() < self.p:
            if not self.needs_partner:
                return self.apply(x, rng)
            if partner is None:
                raise ValueError(f"{type(self).__name__} mixes in a sequence of the same class: call it with partner=")
            return self.apply(x, rng, partner)
        return x

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The transformed sequence (a new array; ``x`` is left as it is)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class Compose(Transform):
    """With probability ``p``, every transform in order (each with its own probability)."""

    needs_partner = True      # passes ``partner`` on (None is fine when no member needs one)

    def __init__(self, transforms: Sequence[Transform], p: float = 1.0):
        super().__init__(p)
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray, rng: np.random.Generator, partner: Partner | None = None) -> np.ndarray:
        if x.ndim != 3 or x.shape[-1] != 3:
            raise ValueError(f"{type(self).__name__}: expected landmarks [T, S, 3], got shape {x.shape}")
        return self.apply(x, rng, partner) if rng.random() < self.p else x

    def apply(self, x: np.ndarray, rng: np.random.Generator, partner: Partner | None = None) -> np.ndarray:
        for t in self.transforms:
            x = t(x, rng, partner)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms}, p={self.p})"


class OneOf(Transform):
    """With probability ``p``, exactly one of the transforms, picked with weights proportional to their own ``p``
    (albumentations convention), and then always applied."""

    def __init__(self, transforms: Sequence[Transform], p: float = 1.0):
        super().__init__(p)
        self.transforms = list(transforms)
        weights = np.array([t.p for t in self.transforms], dtype=np.float64)
        if not len(weights) or weights.sum() <= 0:
            raise ValueError(f"OneOf needs at least one transform with p > 0, got {self.transforms}")
        self.weights = weights / weights.sum()

    needs_partner = True

    def __call__(self, x: np.ndarray, rng: np.random.Generator, partner: Partner | None = None) -> np.ndarray:
        return Compose.__call__(self, x, rng, partner)

    def apply(self, x: np.ndarray, rng: np.random.Generator, partner: Partner | None = None) -> np.ndarray:
        t = self.transforms[rng.choice(len(self.transforms), p=self.weights)]
        if t.needs_partner:
            if partner is None and not isinstance(t, (Compose, OneOf)):
                raise ValueError(f"{type(t).__name__} mixes in a sequence of the same class: call it with partner=")
            return t.apply(x, rng, partner)
        return t.apply(x, rng)

    def __repr__(self) -> str:
        return f"OneOf({self.transforms}, p={self.p})"


# ---------------------------------------------------------------------------------------------------------------
# Spatial transforms
# ---------------------------------------------------------------------------------------------------------------
def rotation(degrees: float) -> np.ndarray:
    """2 x 2 counter-clockwise rotation matrix (in x,y) by ``degrees``."""
    r = np.deg2rad(degrees)
    return np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])


class RandomAffine(Transform):
    """Random scale, shear, rotation (x,y) and shift (x,y) of each group of points about the group's centre (the
    NaN-aware mean over the whole sequence); scaling also applies to z. One group (the whole frame) by default;
    ``groups`` (e.g. ``SubsetLayout.parts()``) transforms each group independently. A ``None`` range is off."""

    def __init__(self, p: float = 0.8, scale: Range | None = (0.8, 1.5), shift: Range | None = (-0.1, 0.1),
                 degree: Range | None = (-15.0, 15.0), shear: Range | None = None,
                 groups: Sequence[np.ndarray] | None = None):
        super().__init__(p)
        self.scale = _check_range("scale", scale, low=1e-6)
        self.shift = _check_range("shift", shift)
        self.degree = _check_range("degree", degree)
        self.shear = _check_range("shear", shear)
        self.groups = None if groups is None else [np.asarray(g, dtype=np.int64) for g in groups]

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, float, np.ndarray]:
        """Random linear map ``[2, 2]`` of x,y (applied as ``xy @ M.T``), scale of z, and shift ``[2]``."""
        s = rng.uniform(*self.scale) if self.scale else 1.0
        sh = rng.uniform(*self.shear, size=2) if self.shear else np.zeros(2)
        deg = rng.uniform(*self.degree) if self.degree else 0.0
        shift = rng.uniform(*self.shift, size=2) if self.shift else np.zeros(2)
        m = s * rotation(deg) @ np.array([[1.0, sh[0]], [sh[1], 1.0]])
        return m, s, shift

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = x.astype(np.float64)
        for g in self.groups if self.groups is not None else [np.arange(x.shape[1])]:
            m, s, shift = self.sample(rng)
            pts = out[:, g]
            if np.isnan(pts).all():
                continue
            centre = np.nanmean(pts.reshape(-1, 3), axis=0)
            pts = pts - centre
            pts[..., :2] = pts[..., :2] @ m.T + shift
            pts[..., 2] *= s
            out[:, g] = pts + centre
        return out.astype(x.dtype)

    def __repr__(self) -> str:
        return (f"RandomAffine(p={self.p}, scale={self.scale}, shift={self.shift}, degree={self.degree}, "
                f"shear={self.shear}, groups={None if self.groups is None else len(self.groups)})")


class HorizontalFlip(Transform):
    """Mirror image: ``x -> 1 - x`` and the left/right landmark permutation of the subset (hands, face, pose)."""

    def __init__(self, p: float = 0.5, layout: SubsetLayout | None = None):
        super().__init__(p)
        self.layout = layout or SubsetLayout.of()

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.layout.check(x)
        out = x[:, self.layout.flip].copy()
        out[..., 0] = 1 - out[..., 0]
        return out


def finger_trees(wrist_trees: bool = True) -> list[tuple[int, np.ndarray]]:
    """The finger trees ``(root, children)`` of I2-T (hand landmark indices): along each finger route
    ``wrist -> ... -> tip``, every joint but the tip is a root and the joints after it are its children (20 trees;
    15 without the ones rooted at the wrist)."""
    first = 0 if wrist_trees else 1
    return [(r[i], np.array(r[i + 1:])) for r in hand_routes() for i in range(first, len(r) - 1)]


class FingerTreeRotation(Transform):
    """I2-T ``random_hand_op_h4``: for each hand and each finger tree, with probability ``joint_p``, rotate the
    children about the root in the x,y plane by ``U(degree)`` (per frame about that frame's root; finger bone
    lengths in x,y are kept). ``wrist_trees=False`` leaves out the trees rooted at the wrist, which also keeps the
    palm edges between the knuckles."""

    def __init__(self, p: float = 0.9, joint_p: float = 0.15, degree: Range = (-4.0, 4.0),
                 layout: SubsetLayout | None = None, wrist_trees: bool = True):
        super().__init__(p)
        self.joint_p = _check_p("joint_p", joint_p)
        self.degree = _check_range("degree", degree)
        self.layout = layout or SubsetLayout.of()
        self.trees = finger_trees(wrist_trees)
        if not self.layout.hands():
            raise ValueError("FingerTreeRotation needs a subset with at least one hand")

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.layout.check(x)
        out = x.astype(np.float64)
        for hand in self.layout.hands():
            for root, children in self.trees:
                if rng.random() >= self.joint_p:
                    continue
                m = rotation(rng.uniform(*self.degree))
                centre = out[:, hand[root], None, :2]
                out[:, hand[children], :2] = (out[:, hand[children], :2] - centre) @ m.T + centre
        return out.astype(x.dtype)


# ---------------------------------------------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------------------------------------------
def resample_time(x: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``x`` ``[T, S, 3]`` linearly interpolated at fractional frame ``times`` (clamped to ``[0, T-1]``).

    NaN-aware: a point is NaN at ``t`` when the nearest source frame misses it; when only the other neighbour
    misses it, the nearest value is used. So frames where a part is entirely missing stay entirely missing.
    """
    t = np.clip(times, 0, len(x) - 1)
    i0 = np.floor(t).astype(np.int64)
    i1 = np.minimum(i0 + 1, len(x) - 1)
    w = (t - i0)[:, None, None]
    a, b = x[i0], x[i1]
    linear = a * (1 - w) + b * w
    nearest = np.where(w < 0.5, a, b)
    return np.where(np.isnan(linear), nearest, linear).astype(x.dtype)


class RandomTimeInterpolation(Transform):
    """Resample the time axis to ``round(T * U(scale))`` frames spanning ``[0, T-1]`` shifted by ``U(shift)``
    frames (I2-T ``random_interpolate``), linear and NaN-aware (see ``resample_time``)."""

    def __init__(self, p: float = 0.3, scale: Range = (0.8, 1.5), shift: Range = (-0.5, 0.5)):
        super().__init__(p)
        self.scale = _check_range("scale", scale, low=1e-6)
        self.shift = _check_range("shift", shift)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        scale, shift = rng.uniform(*self.scale), rng.uniform(*self.shift)
        n = max(1, int(round(len(x) * scale)))
        return resample_time(x, np.linspace(shift, len(x) - 1 + shift, n))


# ---------------------------------------------------------------------------------------------------------------
# The I2-T pipeline
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class AugmentConfig:
    """Probabilities and ranges of the asl-signs training augmentations (defaults: I2-T ``aug2`` + ``h4`` + flip).

    ``part_affine_*`` is the per-part (each hand, face, pose) affine; off by default as in I2-T. Shear ``(0, 0)``
    is no shear (I2-T has none).
    """

    affine_p: float = 0.8
    affine_scale: tuple[float, float] = (0.8, 1.5)
    affine_shift: tuple[float, float] = (-0.1, 0.1)
    affine_degree: tuple[float, float] = (-15.0, 15.0)
    affine_shear: tuple[float, float] = (0.0, 0.0)
    part_affine_p: float = 0.0
    part_affine_scale: tuple[float, float] = (0.9, 1.1)
    part_affine_shift: tuple[float, float] = (-0.05, 0.05)
    part_affine_degree: tuple[float, float] = (-10.0, 10.0)
    part_affine_shear: tuple[float, float] = (0.0, 0.0)
    interp_p: float = 0.3
    interp_scale: tuple[float, float] = (0.8, 1.5)
    interp_shift: tuple[float, float] = (-0.5, 0.5)
    finger_p: float = 0.9
    finger_joint_p: float = 0.15
    finger_degree: tuple[float, float] = (-4.0, 4.0)
    flip_p: float = 0.5


def default_signs_augment(cfg: AugmentConfig | None = None, subset: np.ndarray | None = None) -> Compose:
    """The I2-T training augmentation: global affine, per-part affine, time interpolation, finger-tree rotation,
    horizontal flip (in that order), for sequences of ``subset`` (default: the ``islr`` cache subset)."""
    cfg = cfg or AugmentConfig()
    layout = SubsetLayout.of(subset)
    return Compose([
        RandomAffine(cfg.affine_p, cfg.affine_scale, cfg.affine_shift, cfg.affine_degree, cfg.affine_shear),
        RandomAffine(cfg.part_affine_p, cfg.part_affine_scale, cfg.part_affine_shift, cfg.part_affine_degree,
                     cfg.part_affine_shear, groups=layout.parts()),
        RandomTimeInterpolation(cfg.interp_p, cfg.interp_scale, cfg.interp_shift),
        FingerTreeRotation(cfg.finger_p, cfg.finger_joint_p, cfg.finger_degree, layout=layout),
        HorizontalFlip(cfg.flip_p, layout=layout),
    ])
