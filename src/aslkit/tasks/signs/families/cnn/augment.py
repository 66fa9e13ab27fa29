"""The CNN family's augmentations (I2).

Augmentations (numpy, on raw ``[T, S, 3]`` sequences of the cache subset; each has its own probability, defaults
are I2's rough Optuna-tuned ones from ``techniques.md`` A3), in this order:

* ``PartReplace``: a random part (hands, lips or pose) over a random time span taken from another training
  sequence of the same sign (resampled to this sequence's length) (p=0.24);
* global ``RandomAffine`` (p=0.24), then per-part rotation (0.17), shift (0.20) and scale (0.31): each part (each
  hand, the face points, the pose points) its own random draw;
* ``RandomTimeInterpolation`` (0.37), ``FingerTreeRotation`` (0.37), ``HorizontalFlip`` (0.22);
* ``TimeMasking`` and ``PointMasking`` (the torchaudio FrequencyMasking(80) / TimeMasking(18) of I2's 160 x 80
  image, p=0.98): a random span of frames (up to half the sequence), or of image columns (up to 18 of the 80
  points, all frames), set to NaN, which the image turns into 0 as I2's masks do. Unlike I2's masks they act
  before the normalisation, so masked values do not count in the image's mean and std.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aslkit import constants as C
from aslkit.transforms import (
    Compose,
    FingerTreeRotation,
    HorizontalFlip,
    Partner,
    RandomAffine,
    RandomTimeInterpolation,
    Range,
    SubsetLayout,
    Transform,
    check_range,
    resample_time,
)


def random_span(rng: np.random.Generator, size: int, max_width: float) -> tuple[int, int]:
    """``(start, stop)`` of a random span of ``0 <= floor(U(0, max_width)) <= size`` positions within ``size`` (the
    torchaudio masking draw); it may be empty."""
    width = min(int(rng.uniform(0.0, max_width)), size)
    start = int(rng.integers(0, size - width + 1))
    return start, start + width


def part_positions(subset: np.ndarray, names: tuple[str, ...] | list[str]) -> dict[str, np.ndarray]:
    """Positions within ``subset`` of each named ``constants.LANDMARK_SETS`` part (ValueError when a name is
    unknown or has no point in the subset)."""
    subset = np.asarray(subset)
    out = {}
    for name in names:
        if name not in C.LANDMARK_SETS:
            raise ValueError(f"unknown part {name!r}; known: {sorted(C.LANDMARK_SETS)}")
        pos = np.flatnonzero(np.isin(subset, C.LANDMARK_SETS[name]))
        if not len(pos):
            raise ValueError(f"part {name!r} has no point in the subset")
        out[name] = pos
    return out


class PartReplace(Transform):
    """Replace one random part over a random time span by the same part of another sequence of the same sign
    (``partner(rng)``, resampled linearly and NaN-aware to this sequence's length so the two are time-aligned).
    The span covers ``round(U(span) * T)`` frames (at least one)."""

    needs_partner = True

    def __init__(self, p: float = 0.24, parts: dict[str, np.ndarray] | None = None, span: Range = (0.5, 1.0)):
        super().__init__(p)
        self.parts = {k: np.asarray(v, dtype=np.int64) for k, v in
                      (parts or part_positions(C.CACHE_SUBSETS["islr"], ("hands", "lips", "pose"))).items()}
        if not self.parts:
            raise ValueError("PartReplace needs at least one part")
        self.span = check_range("span", span, low=0.0)
        if self.span[1] > 1.0:
            raise ValueError(f"span must be a fraction range within [0, 1], got {span!r}")

    def draw(self, rng: np.random.Generator, length: int) -> tuple[str, int, int]:
        """The part and the frame span ``(start, stop)`` of one application to a sequence of ``length`` frames."""
        name = list(self.parts)[int(rng.integers(len(self.parts)))]
        width = min(length, max(1, int(round(rng.uniform(*self.span) * length))))
        start = int(rng.integers(0, length - width + 1))
        return name, start, start + width

    def apply(self, x: np.ndarray, rng: np.random.Generator, partner: Partner) -> np.ndarray:
        name, start, stop = self.draw(rng, len(x))
        other = np.asarray(partner(rng))
        if other.ndim != 3 or other.shape[1:] != x.shape[1:] or not len(other):
            raise ValueError(f"partner sequence of shape {other.shape} does not fit {x.shape}")
        other = resample_time(other.astype(x.dtype), np.linspace(0.0, len(other) - 1, len(x)))
        pos = self.parts[name]
        out = x.copy()
        out[start:stop, pos] = other[start:stop, pos]
        return out

    def __repr__(self) -> str:
        return f"PartReplace(p={self.p}, parts={list(self.parts)}, span={self.span})"


class TimeMasking(Transform):
    """Set a random span of frames (``floor(U(0, max_fraction * T))`` of them, torchaudio-style) to NaN."""

    def __init__(self, p: float = 0.98, max_fraction: float = 0.5):
        super().__init__(p)
        if not 0.0 <= max_fraction <= 1.0:
            raise ValueError(f"max_fraction must be within [0, 1], got {max_fraction!r}")
        self.max_fraction = float(max_fraction)

    def draw(self, rng: np.random.Generator, length: int) -> tuple[int, int]:
        """The masked frames ``(start, stop)`` of one application to a sequence of ``length`` frames."""
        return random_span(rng, length, self.max_fraction * length)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        start, stop = self.draw(rng, len(x))
        out = x.copy()
        out[start:stop] = np.nan
        return out

    def __repr__(self) -> str:
        return f"TimeMasking(p={self.p}, max_fraction={self.max_fraction})"


class PointMasking(Transform):
    """Set a random span of image columns (``floor(U(0, max_points))`` consecutive points of ``columns``, the
    image's points as positions in the subset) to NaN in every frame."""

    def __init__(self, p: float = 0.98, max_points: int = 18, columns: np.ndarray | None = None):
        super().__init__(p)
        self.columns = np.asarray(C.subset_positions(C.CACHE_SUBSETS["islr"], C.CNN_80) if columns is None
                                  else columns, dtype=np.int64)
        if not 0 <= max_points <= len(self.columns):
            raise ValueError(f"max_points must be within 0..{len(self.columns)}, got {max_points!r}")
        self.max_points = int(max_points)

    def draw(self, rng: np.random.Generator) -> tuple[int, int]:
        """The masked columns ``(start, stop)`` (indices into ``columns``) of one application."""
        return random_span(rng, len(self.columns), self.max_points)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        start, stop = self.draw(rng)
        out = x.copy()
        out[:, self.columns[start:stop]] = np.nan
        return out

    def __repr__(self) -> str:
        return f"PointMasking(p={self.p}, max_points={self.max_points}, columns={len(self.columns)})"


@dataclass
class CNNAugmentConfig:
    """Probabilities and ranges of the CNN family's training augmentations (defaults: I2's rough ones)."""

    replace_p: float = 0.24
    replace_parts: tuple[str, ...] = ("hands", "lips", "pose")   # names of constants.LANDMARK_SETS
    replace_span: tuple[float, float] = (0.5, 1.0)               # share of the frames replaced
    affine_p: float = 0.24
    affine_scale: tuple[float, float] = (0.8, 1.2)
    affine_shift: tuple[float, float] = (-0.1, 0.1)
    affine_degree: tuple[float, float] = (-15.0, 15.0)
    affine_shear: tuple[float, float] = (-0.1, 0.1)
    part_rotate_p: float = 0.17
    part_rotate_degree: tuple[float, float] = (-10.0, 10.0)
    part_shift_p: float = 0.20
    part_shift: tuple[float, float] = (-0.05, 0.05)
    part_scale_p: float = 0.31
    part_scale: tuple[float, float] = (0.9, 1.1)
    interp_p: float = 0.37
    interp_scale: tuple[float, float] = (0.8, 1.5)
    interp_shift: tuple[float, float] = (-0.5, 0.5)
    finger_p: float = 0.37
    finger_joint_p: float = 0.15
    finger_degree: tuple[float, float] = (-4.0, 4.0)
    flip_p: float = 0.22
    time_mask_p: float = 0.98
    time_mask_max: float = 0.5       # share of the frames (I2: 80 of 160 image rows)
    point_mask_p: float = 0.98
    point_mask_max: int = 18         # image columns (I2: 18 of 80)


def cnn_augment(cfg: CNNAugmentConfig | None = None, subset: np.ndarray | None = None,
                image_points: np.ndarray | None = None) -> Compose:
    """The CNN family's training augmentation for sequences of ``subset`` (default: the ``islr`` cache subset)
    whose image shows ``image_points`` (flat landmark indices; default ``constants.CNN_80``)."""
    cfg = cfg or CNNAugmentConfig()
    subset = np.asarray(C.CACHE_SUBSETS["islr"] if subset is None else subset)
    layout = SubsetLayout.of(subset)
    columns = C.subset_positions(subset, C.CNN_80 if image_points is None else image_points)
    groups = layout.parts()
    return Compose([
        PartReplace(cfg.replace_p, part_positions(subset, cfg.replace_parts), cfg.replace_span),
        RandomAffine(cfg.affine_p, cfg.affine_scale, cfg.affine_shift, cfg.affine_degree, cfg.affine_shear),
        RandomAffine(cfg.part_rotate_p, None, None, cfg.part_rotate_degree, None, groups=groups),
        RandomAffine(cfg.part_shift_p, None, cfg.part_shift, None, None, groups=groups),
        RandomAffine(cfg.part_scale_p, cfg.part_scale, None, None, None, groups=groups),
        RandomTimeInterpolation(cfg.interp_p, cfg.interp_scale, cfg.interp_shift),
        FingerTreeRotation(cfg.finger_p, cfg.finger_joint_p, cfg.finger_degree, layout=layout),
        HorizontalFlip(cfg.flip_p, layout=layout),
        TimeMasking(cfg.time_mask_p, cfg.time_mask_max),
        PointMasking(cfg.point_mask_p, cfg.point_mask_max, columns),
    ])
