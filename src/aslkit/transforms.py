"""Landmark-sequence transforms shared by every family of both competitions.

Every transform works on one numpy sequence ``[T, S, 3]`` of a cache subset (NaN = landmark not detected; NaNs stay
NaN except where a transform masks), has its own probability ``p`` and is called as ``transform(x, rng)`` with a
``numpy.random.Generator``; the input is never modified. ``Compose`` and ``OneOf`` combine them (the
``Transform(p=...)`` style of the fingerspelling 5th place). ``SubsetLayout`` says where the parts (hands, lips, ...)
sit inside a subset, so the same transform serves every cache subset.

Geometric: ``RandomAffine`` (global or per part), ``HorizontalFlip`` (the full left/right permutation),
``FingerTreeRotation`` (I2-T's ``random_hand_op_h4``); temporal: ``RandomTimeInterpolation``, F1's ``TimeMask`` and
``SpatialMask``. Each family composes its pipeline from these and its own (``tasks/<task>/families/<family>``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from aslkit import constants as C

Range = tuple[float, float]


IntRange = tuple[int, int]


def hand_positions(subset: np.ndarray, hand: np.ndarray, name: str) -> np.ndarray:
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
                   left_hand=hand_positions(subset, C.LEFT_HAND, "left_hand"),
                   right_hand=hand_positions(subset, C.RIGHT_HAND, "right_hand"),
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


def check_range(name: str, value: Range | None, low: float = -np.inf) -> Range | None:
    """``value`` as a float pair ``(a, b)`` with ``low <= a <= b`` (None passes through)."""
    if value is None:
        return None
    a, b = (float(v) for v in value)
    if not low <= a <= b:
        raise ValueError(f"{name} must be a range (a, b) with {low} <= a <= b, got {value!r}")
    return a, b


def check_p(name: str, p: float) -> float:
    """``p`` as a probability."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


def check_count(name: str, value: Sequence[int], low: int = 0) -> IntRange:
    """``value`` as an inclusive integer range ``(a, b)`` with ``low <= a <= b``."""
    a, b = (int(v) for v in value)
    if not low <= a <= b:
        raise ValueError(f"{name} must be an integer range (a, b) with {low} <= a <= b, got {value!r}")
    return a, b


def random_spans(rng: np.random.Generator, n_frames: int, size: Range, count: IntRange) -> list[tuple[int, int]]:
    """``U{count}`` random frame spans ``[start, stop)`` of ``int(T * U(size))`` frames each (F1 convention), at a
    uniform start that keeps the span inside the sequence."""
    spans = []
    for _ in range(rng.integers(count[0], count[1] + 1)):
        length = min(int(n_frames * rng.uniform(*size)), n_frames)
        start = int(rng.integers(0, n_frames - length + 1))
        spans.append((start, start + length))
    return spans


Partner = Callable[[np.random.Generator], np.ndarray]   # rng -> another training sequence of the same sign


class Transform:
    """A random transform applied with probability ``p``; subclasses implement ``apply``.

    Transforms that mix in a second sequence of the same class (``needs_partner = True``) get ``partner``, a
    function that draws one (``rng -> [T', S, 3]``); the others never see it.
    """

    needs_partner = False

    def __init__(self, p: float = 1.0):
        self.p = check_p(f"{type(self).__name__}.p", p)

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


def nan_centre(coords: np.ndarray) -> np.ndarray | None:
    """The NaN-aware mean ``[3]`` of points given coordinate-major (``coords`` ``[3, N]``, contiguous: numpy's
    reductions over a long axis of width 3 are slow), or None when every point is missing."""
    valid = ~np.isnan(coords)
    count = valid.sum(axis=1)
    if not count.any():
        return None
    total = np.where(valid, coords, 0.0).sum(axis=1)
    return np.divide(total, count, out=np.full(len(total), np.nan), where=count > 0)


def as_slice(positions: np.ndarray) -> np.ndarray | slice:
    """``positions`` as a slice when they are consecutive (indexing then gives a view, not a copy)."""
    if len(positions) and np.array_equal(positions, np.arange(positions[0], positions[0] + len(positions))):
        return slice(int(positions[0]), int(positions[0]) + len(positions))
    return positions


def rotation(degrees: float) -> np.ndarray:
    """2 x 2 counter-clockwise rotation matrix (in x,y) by ``degrees``."""
    r = np.deg2rad(degrees)
    cos, sin = np.cos(r), np.sin(r)
    return np.array([[cos, -sin], [sin, cos]])


class RandomAffine(Transform):
    """Random scale, shear, rotation (x,y) and shift (x,y) of each group of points about the group's centre (the
    NaN-aware mean over the whole sequence); scaling also applies to z. One group (the whole frame) by default;
    ``groups`` (e.g. ``SubsetLayout.parts()``) transforms each group independently. A ``None`` range is off."""

    def __init__(self, p: float = 0.8, scale: Range | None = (0.8, 1.5), shift: Range | None = (-0.1, 0.1),
                 degree: Range | None = (-15.0, 15.0), shear: Range | None = None,
                 groups: Sequence[np.ndarray] | None = None):
        super().__init__(p)
        self.scale = check_range("scale", scale, low=1e-6)
        self.shift = check_range("shift", shift)
        self.degree = check_range("degree", degree)
        self.shear = check_range("shear", shear)
        self.groups = None if groups is None else [as_slice(np.asarray(g, dtype=np.int64)) for g in groups]

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, float, np.ndarray]:
        """Random linear map ``[2, 2]`` of x,y (applied as ``xy @ M.T``), scale of z, and shift ``[2]``."""
        s = rng.uniform(*self.scale) if self.scale else 1.0
        sh = rng.uniform(*self.shear, size=2) if self.shear else None
        deg = rng.uniform(*self.degree) if self.degree else 0.0
        shift = rng.uniform(*self.shift, size=2) if self.shift else np.zeros(2)
        m = s * rotation(deg)
        return (m if sh is None else m @ np.array([[1.0, sh[0]], [sh[1], 1.0]])), s, shift

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = x.astype(np.float64)
        for g in self.groups if self.groups is not None else [slice(None)]:
            m, s, shift = self.sample(rng)
            coords = np.ascontiguousarray(out[:, g].reshape(-1, 3).T)        # [3, points x frames]
            centre = nan_centre(coords)
            if centre is None:
                continue
            offset = coords - centre[:, None]
            moved = np.empty_like(coords)
            moved[:2] = m @ offset[:2] + (shift + centre[:2])[:, None]
            moved[2] = offset[2] * s + centre[2]
            out[:, g] = moved.T.reshape(len(out), -1, 3)
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


class PartMirror(Transform):
    """Mirror of one part only (I2-T's lip "mirror flip"): the points ``positions`` of the subset are reflected
    about their own NaN-aware mean x over the sequence and permuted left <-> right, the rest of the frame is left as
    it is. For feature modules that mirror every frame to the signer's dominant side, where a whole-frame
    ``HorizontalFlip`` is undone and only a part mirrored on its own reaches the model."""

    def __init__(self, p: float, positions: np.ndarray, layout: SubsetLayout | None = None):
        super().__init__(p)
        self.layout = layout or SubsetLayout.of()
        self.positions = np.asarray(positions, dtype=np.int64)
        swapped = self.layout.flip[self.positions]
        if set(swapped.tolist()) != set(self.positions.tolist()):
            raise ValueError("PartMirror: the flip map takes some of these points outside the part; give a part "
                             "that is its own mirror image (e.g. the lips)")
        self.swapped = swapped

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.layout.check(x)
        part = x[:, self.swapped]
        valid = ~np.isnan(part[..., 0])
        if not valid.any():
            return x
        out = x.copy()
        out[:, self.positions] = part
        out[:, self.positions, 0] = 2 * part[..., 0][valid].mean() - part[..., 0]
        return out


def finger_trees(wrist_trees: bool = True) -> list[tuple[int, np.ndarray]]:
    """The finger trees ``(root, children)`` of I2-T (hand landmark indices): along each finger route
    ``wrist -> ... -> tip``, every joint but the tip is a root and the joints after it are its children (20 trees;
    15 without the ones rooted at the wrist)."""
    first = 0 if wrist_trees else 1
    return [(r[i], np.array(r[i + 1:])) for r in C.hand_routes() for i in range(first, len(r) - 1)]


class FingerTreeRotation(Transform):
    """I2-T ``random_hand_op_h4``: for each hand and each finger tree, with probability ``joint_p``, rotate the
    children about the root in the x,y plane by ``U(degree)`` (per frame about that frame's root; finger bone
    lengths in x,y are kept). ``wrist_trees=False`` leaves out the trees rooted at the wrist, which also keeps the
    palm edges between the knuckles."""

    def __init__(self, p: float = 0.9, joint_p: float = 0.15, degree: Range = (-4.0, 4.0),
                 layout: SubsetLayout | None = None, wrist_trees: bool = True):
        super().__init__(p)
        self.joint_p = check_p("joint_p", joint_p)
        self.degree = check_range("degree", degree)
        self.layout = layout or SubsetLayout.of()
        self.trees = finger_trees(wrist_trees)
        if not self.layout.hands():
            raise ValueError("FingerTreeRotation needs a subset with at least one hand")
        self.hand_trees = [[(int(hand[root]), as_slice(hand[children])) for root, children in self.trees]
                           for hand in self.layout.hands()]             # positions in the subset

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.layout.check(x)
        out = x.astype(np.float64)
        for trees in self.hand_trees:
            for root, children in trees:
                if rng.random() >= self.joint_p:
                    continue
                m = rotation(rng.uniform(*self.degree))
                centre = out[:, root, None, :2]
                out[:, children, :2] = (out[:, children, :2] - centre) @ m.T + centre
        return out.astype(x.dtype)


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
    np.copyto(linear, np.where(w < 0.5, a, b), where=np.isnan(linear))
    return linear.astype(x.dtype)


class RandomTimeInterpolation(Transform):
    """Resample the time axis to ``round(T * U(scale))`` frames spanning ``[0, T-1]`` shifted by ``U(shift)``
    frames (I2-T ``random_interpolate``), linear and NaN-aware (see ``resample_time``)."""

    def __init__(self, p: float = 0.3, scale: Range = (0.8, 1.5), shift: Range = (-0.5, 0.5)):
        super().__init__(p)
        self.scale = check_range("scale", scale, low=1e-6)
        self.shift = check_range("shift", shift)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        scale, shift = rng.uniform(*self.scale), rng.uniform(*self.shift)
        n = max(1, int(round(len(x) * scale)))
        return resample_time(x, np.linspace(shift, len(x) - 1 + shift, n))


class TimeMask(Transform):
    """F1 ``TemporalMask``: NaN-out every landmark in ``U{n_masks}`` spans of ``int(T * U(size))`` frames each
    (the spans may overlap; the length is kept)."""

    def __init__(self, p: float = 0.5, size: Range = (0.2, 0.4), n_masks: IntRange = (1, 1)):
        super().__init__(p)
        self.size = check_range("size", size, low=0.0)
        self.n_masks = check_count("n_masks", n_masks)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = x.copy()
        for start, stop in random_spans(rng, len(x), self.size, self.n_masks):
            out[start:stop] = np.nan
        return out


class SpatialMask(Transform):
    """F1 ``SpatialMask(mode='relative')``: ``U{n_masks}`` axis-aligned boxes in the x,y plane, of side
    ``U(size)`` times the extent of the sequence's valid points in x and in y, at a uniform corner inside that
    bounding box; every point (all 3 coordinates) whose x,y falls inside a box in a frame is NaN in that frame.
    (F1's version returned its input unchanged, a bug; this is what it meant to do.)"""

    def __init__(self, p: float = 0.5, size: Range = (0.05, 0.1), n_masks: IntRange = (1, 1)):
        super().__init__(p)
        self.size = check_range("size", size, low=0.0)
        self.n_masks = check_count("n_masks", n_masks)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = x.copy()
        xy = x[..., :2]
        coords = np.ascontiguousarray(xy.reshape(-1, 2).T)
        if np.isnan(coords).all():
            return out
        lo, hi = np.fmin.reduce(coords, axis=1), np.fmax.reduce(coords, axis=1)
        with np.errstate(invalid="ignore"):
            for _ in range(rng.integers(self.n_masks[0], self.n_masks[1] + 1)):
                side = rng.uniform(*self.size) * (hi - lo)
                corner = lo + rng.uniform(0.0, 1.0, size=2) * (hi - lo)
                inside = ((xy[..., 0] > corner[0]) & (xy[..., 0] < corner[0] + side[0])
                          & (xy[..., 1] > corner[1]) & (xy[..., 1] < corner[1] + side[1]))
                out[inside] = np.nan
        return out
