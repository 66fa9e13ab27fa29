"""Landmark-sequence augmentations for asl-fingerspelling training (the F1 and F5 recipes).

Every transform takes one sequence ``[T, 130, 3]`` in ``constants.FS_130`` order (x, y, z normalised image
coordinates, NaN = not detected) and a ``numpy.random.Generator``, has its own probability ``p`` and returns a new
array ``[T', 130, 3]`` of the same dtype with ``T' >= 1``; the input is never modified. NaNs stay NaN except where a
transform masks. The framework (``Transform``, ``Compose``, ``OneOf``, ``RandomAffine``, ``HorizontalFlip``,
``RandomTimeInterpolation``, ``TimeMask``, ``SpatialMask``) is ``aslkit.transforms``; this module adds the
fingerspelling transforms:

* F1 (1st place): ``FingerDrop`` (fingers NaN inside
  random time windows), ``TimeMask`` (one of 1 x 20-40 %, 2 x 10-20 % or 4 x 5-10 % of the frames), ``SpatialMask``
  (a box of 5-10 % of the landmark bounding box), a global ``RandomAffine``, and ``outer_cutmix`` (two sequences of
  the same participant, done by the dataset because it needs a second sample);
* F5 (5th place): ``time_flip`` (frames and phrase reversed, done by the dataset), ``RandomResample`` (speed
  x0.5-1.5), ``FrameBlockMask`` per landmark group, ``FrameNoise``,
  ``FeatureMask`` and a per-group ``RandomAffine``.

Masks write NaN: the F1/F5 code masks with 0 after normalisation, which is what NaN becomes in the features.
``default_fs_augment(FSAugmentConfig())`` builds the whole per-sample pipeline.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from aslkit import constants as C
from aslkit.transforms import (
    Compose,
    HorizontalFlip,
    IntRange,
    OneOf,
    PartMirror,
    RandomAffine,
    RandomTimeInterpolation,
    Range,
    SpatialMask,
    SubsetLayout,
    TimeMask,
    Transform,
    check_count,
    check_p,
    check_range,
    random_spans,
)

FS_LAYOUT = SubsetLayout.of(C.FS_130)


FS_GROUPS: dict[str, np.ndarray] = {
    "hands": C.subset_positions(C.FS_130, C.HANDS),
    "lips": C.subset_positions(C.FS_130, C.LIPS),
    "arms": C.subset_positions(C.FS_130, C.ARMS),
    "eyes_nose": C.subset_positions(C.FS_130, np.concatenate([C.NOSE, C.EYES])),
}


def fs_affine_groups() -> list[np.ndarray]:
    """The groups of the per-group affine: left hand, right hand, face (lips, nose, eyes), arms."""
    return FS_LAYOUT.parts()


def finger_positions(layout: SubsetLayout = FS_LAYOUT) -> np.ndarray:
    """``[fingers, 4]`` positions of the 4 points of each finger (``constants.FINGERS``) of every hand in the
    layout (10 fingers for FS_130: left thumb..pinky, then right thumb..pinky)."""
    return np.array([hand[np.array(idx)] for hand in layout.hands() for idx in C.FINGERS.values()], dtype=np.int64)


class FingerDrop(Transform):
    """F1 ``OnWindows(FingersDrop)``: in each of ``U{n_windows}`` time windows of ``U(window)`` x T frames, NaN-out
    all 4 points of ``U{n_fingers}`` distinct fingers (drawn afresh per window among both hands' 10 fingers; the
    wrist and the other points stay). ``window=(1, 1), n_windows=(1, 1)`` drops the fingers for the whole sequence.
    """

    def __init__(self, p: float = 0.75, n_fingers: IntRange = (2, 5), window: Range = (0.25, 0.5),
                 n_windows: IntRange = (2, 2), layout: SubsetLayout = FS_LAYOUT):
        super().__init__(p)
        self.layout = layout
        self.fingers = finger_positions(layout)
        self.n_fingers = check_count("n_fingers", n_fingers)
        if self.n_fingers[1] > len(self.fingers):
            raise ValueError(f"n_fingers {n_fingers!r}: the subset has only {len(self.fingers)} fingers")
        self.window = check_range("window", window, low=0.0)
        self.n_windows = check_count("n_windows", n_windows)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.layout.check(x)
        out = x.copy()
        for start, stop in random_spans(rng, len(x), self.window, self.n_windows):
            k = rng.integers(self.n_fingers[0], self.n_fingers[1] + 1)
            drop = self.fingers[rng.choice(len(self.fingers), size=k, replace=False)].ravel()
            out[start:stop, drop] = np.nan
        return out


def cut_index(n: int, fraction: float) -> int:
    """Cut index ``round(n * fraction)`` kept inside ``[1, n-1]`` (0 when ``n <= 1``): both parts are non-empty
    when ``n >= 2``."""
    return 0 if n <= 1 else min(max(int(round(n * fraction)), 1), n - 1)


def outer_cutmix(x1: np.ndarray, phrase1: str, x2: np.ndarray, phrase2: str, rng: np.random.Generator
                 ) -> tuple[np.ndarray, str]:
    """F1 outer CutMix of two sequences ``[T, S, 3]`` and their phrases.

    One fraction ``f ~ U(0, 1)`` cuts both sequences and both phrases at ``c = round(n * f)`` (frames and
    characters, kept in ``[1, n-1]``, 0 for ``n = 1``); with probability 1/2 the roles swap, then the result is
    the part after the cut of the first one followed by the part before the cut of the other:
    ``x = a[c_a:] ++ b[:c_b]`` (``T' = T_a - c_a + c_b >= 1``) and ``phrase = pa[k_a:] + pb[:k_b]`` (non-empty
    when ``pa`` is). The caller passes a partner recorded by the same participant (F1 picks another sequence of
    that participant) and applies this with probability ``FSAugmentConfig.cutmix_p``, before ``default_fs_augment``.
    The inputs are not modified.
    """
    if x1.ndim != 3 or x2.ndim != 3 or x1.shape[1:] != x2.shape[1:]:
        raise ValueError(f"outer_cutmix: sequences must be [T, S, 3] with the same S, got {x1.shape} and {x2.shape}")
    f = rng.random()
    (a, pa), (b, pb) = ((x2, phrase2), (x1, phrase1)) if rng.random() < 0.5 else ((x1, phrase1), (x2, phrase2))
    x = np.concatenate([a[cut_index(len(a), f):], b[:cut_index(len(b), f)]])
    return x, pa[cut_index(len(pa), f):] + pb[:cut_index(len(pb), f)]


def time_flip(x: np.ndarray, phrase: str) -> tuple[np.ndarray, str]:
    """F5's TimeFlip: the frames in reverse order and the phrase reversed with them (the CTC target follows the
    frames). The dataset applies it with probability ``FSAugmentConfig.time_flip_p``, after ``outer_cutmix`` and
    before ``default_fs_augment``. The input is not modified."""
    return np.ascontiguousarray(x[::-1]), phrase[::-1]


class RandomResample(RandomTimeInterpolation):
    """F5 ``RandomResample``: speed change, the sequence linearly resampled (``aslkit.transforms.resample_time``,
    NaN-aware) to ``max(1, round(T * U(scale)))`` frames spanning the same time."""

    def __init__(self, p: float = 0.5, scale: Range = (0.5, 1.5)):
        super().__init__(p, scale=scale, shift=(0.0, 0.0))


class FrameBlockMask(Transform):
    """F5 ``FrameBlockMask`` on one group of points: each frame where the group is seen is an anchor with
    probability ``ratio / block``, and the group is NaN in the ``block`` frames centred on each anchor (about
    ``ratio`` of the frames); the other points are untouched."""

    def __init__(self, points: Sequence[int] | np.ndarray, p: float = 0.25, ratio: float = 0.1, block: int = 3):
        super().__init__(p)
        self.points = np.asarray(points, dtype=np.int64)
        self.ratio = check_p("ratio", ratio)
        if int(block) < 1:
            raise ValueError(f"block must be >= 1 frame, got {block!r}")
        self.block = int(block)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        seen = ~np.isnan(x[:, self.points]).all(axis=(1, 2))
        anchors = np.flatnonzero(seen & (rng.random(len(x)) < self.ratio / self.block))
        mask = np.zeros(len(x), dtype=bool)
        half = (self.block - 1) // 2
        for t in anchors:
            mask[max(0, t - half):t - half + self.block] = True
        out = x.copy()
        out[np.ix_(mask, self.points)] = np.nan
        return out


class FrameNoise(Transform):
    """Gaussian noise ``N(0, sigma)`` added to x, y and z of every point of a random fraction ``ratio`` of the
    frames (each frame independently; NaN stays NaN). F5 ``FrameNoise`` picks frames the same way but replaces
    them by pure noise in its per-group normalised units; here the noise is added, in image units."""

    def __init__(self, p: float = 0.25, sigma: float = 0.02, ratio: float = 0.1):
        super().__init__(p)
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma!r}")
        self.sigma = float(sigma)
        self.ratio = check_p("ratio", ratio)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        frames = rng.random(len(x)) < self.ratio
        out = x.copy()
        out[frames] += rng.normal(0.0, self.sigma, size=out[frames].shape).astype(x.dtype)
        return out


class FeatureMask(Transform):
    """F5 ``FeatureMask``: each landmark (a whole point: x, y and z, in every frame) is NaN with probability
    ``ratio``."""

    def __init__(self, p: float = 0.1, ratio: float = 0.1):
        super().__init__(p)
        self.ratio = check_p("ratio", ratio)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = x.copy()
        out[:, rng.random(x.shape[1]) < self.ratio] = np.nan
        return out


@dataclass
class FSAugmentConfig:
    """Probabilities and ranges of the fingerspelling training augmentations.

    Sources: F1 = 1st-place ``cfg_2.py``, F5 = 5th-place ``transform.py``; "choice" = ours (mostly where the
    original works in normalised units and we work in image coordinates). Ranges are ``(low, high)`` drawn
    uniformly; integer ranges are inclusive.
    """

    resample_p: float = 0.5                                       # F5 RandomResample(limit=0.5, p=0.5)
    resample_scale: tuple[float, float] = (0.5, 1.5)              # F5 (F1: 0.3-2.0, p=0.8)
    lip_flip_p: float = 0.5                                       # F1's flip p, on the lips (module doc)
    affine_p: float = 0.75                                        # F1 SpatialAffine
    affine_scale: tuple[float, float] = (0.7, 1.3)                # F1
    affine_shear: tuple[float, float] = (-0.2, 0.2)               # F1
    affine_shift: tuple[float, float] = (-0.05, 0.05)             # choice (F1: +-0.15 of the normalised sequence)
    affine_degree: tuple[float, float] = (-30.0, 30.0)            # F1
    part_affine_p: float = 0.5                                    # choice (F5: scale/shear/shift always, rot. 0.5)
    part_affine_scale: tuple[float, float] = (0.8, 1.2)           # F5 RandomScale(0.2)
    part_affine_shear: tuple[float, float] = (-0.2, 0.2)          # F5 RandomShear(0.2)
    part_affine_shift: tuple[float, float] = (-0.02, 0.02)        # choice (F5: N(0, 0.1) of a normalised group)
    part_affine_degree: tuple[float, float] = (-30.0, 30.0)       # choice (F5: 3-D rotation up to 45 deg)
    noise_p: float = 0.25                                         # F5 FrameNoise p
    noise_ratio: float = 0.1                                      # F5
    noise_sigma: float = 0.02                                     # choice (image units)
    finger_drop_p: float = 0.75                                   # F1 OnWindows(FingersDrop)
    finger_drop_n: tuple[int, int] = (2, 5)                       # F1 randint(2, 6)
    finger_drop_window: tuple[float, float] = (0.25, 0.5)         # F1
    finger_drop_windows: tuple[int, int] = (2, 2)                 # F1 randint(2, 3)
    block_mask_size: int = 3                                      # F5
    block_mask_hands_p: float = 0.1                               # F5 hand group
    block_mask_hands_ratio: float = 0.8                           # F5
    block_mask_arms_p: float = 0.25                               # F5 pose group
    block_mask_arms_ratio: float = 0.1                            # F5
    block_mask_lips_p: float = 0.25                               # F5 lips group
    block_mask_lips_ratio: float = 0.1                            # F5
    time_mask_p: float = 0.5                                      # F1 OneOf(TemporalMask x3, p=0.5)
    time_mask_size: tuple[float, float] = (0.2, 0.4)              # F1: total fraction of T ...
    time_mask_counts: tuple[int, ...] = (1, 2, 4)                 # ... split into 1, 2 or 4 spans (F1)
    spatial_mask_p: float = 0.5                                   # F1 SpatialMask(relative)
    spatial_mask_size: tuple[float, float] = (0.05, 0.1)          # F1
    feature_mask_p: float = 0.1                                   # F5 FeatureMask
    feature_mask_ratio: float = 0.1                               # F5
    cutmix_p: float = 0.5                                         # F1 outer_cutmix (applied by the dataset)
    cutmix_alignment: str = ""                                    # F5: a run folder with alignment.parquet (aslkit
    # align): CutMix cuts between two characters at their aligned boundary (align.aligned_cutmix)
    time_flip_p: float = 0.5                                      # F5 TimeFlip(p=0.5) (applied by the dataset)
    flip_p: float = 0.0                                           # F1's whole-frame mirror, p 0.5 (families that
    # keep both hands, model_name=f1; the CTC features mirror every frame to the dominant hand, which undoes it)
    token_mask_p: float = 0.2                                     # F1: decoder-input characters -> the mask token
    # (attention decoders, model_name=f1; applied by its objective)


# The quick and ci presets' light augmentation (few sequences and 2 CPU cores; F1/F5's full strength is for 67k
# sequences and hundreds of epochs, and the full presets keep FSAugmentConfig's defaults)
FS_LIGHT_AUGMENT = {"resample_p": 0.3, "resample_scale": (0.8, 1.25), "affine_p": 0.5, "affine_degree": (-15.0, 15.0),
                    "part_affine_p": 0.0, "noise_p": 0.0, "finger_drop_p": 0.0, "block_mask_hands_p": 0.0,
                    "block_mask_arms_p": 0.1, "block_mask_lips_p": 0.1,
                    "time_mask_p": 0.0, "spatial_mask_p": 0.0, "feature_mask_p": 0.0, "cutmix_p": 0.2,
                    "time_flip_p": 0.0}


def default_fs_augment(cfg: FSAugmentConfig | None = None) -> Compose:
    """The per-sample fingerspelling training pipeline for FS_130 sequences, in order: time resample, whole-frame
    mirror (only when ``flip_p`` > 0, so that the other draws stay as they were), lip mirror, global affine,
    per-group affine, frame noise, finger drop, per-group frame block masks, time mask, spatial mask, feature mask
    (``outer_cutmix`` is the dataset's, before this)."""
    cfg = cfg or FSAugmentConfig()
    lo, hi = cfg.time_mask_size
    if not cfg.time_mask_counts or min(cfg.time_mask_counts) < 1:
        raise ValueError(f"time_mask_counts must be counts >= 1, got {cfg.time_mask_counts!r}")
    time_masks = [TimeMask(1.0, (lo / n, hi / n), (n, n)) for n in cfg.time_mask_counts]
    block = cfg.block_mask_size
    mirror = [HorizontalFlip(cfg.flip_p, FS_LAYOUT)] if cfg.flip_p > 0 else []
    return Compose([
        RandomResample(cfg.resample_p, cfg.resample_scale),
        *mirror,
        PartMirror(cfg.lip_flip_p, FS_GROUPS["lips"], layout=FS_LAYOUT),
        RandomAffine(cfg.affine_p, cfg.affine_scale, cfg.affine_shift, cfg.affine_degree, cfg.affine_shear),
        RandomAffine(cfg.part_affine_p, cfg.part_affine_scale, cfg.part_affine_shift, cfg.part_affine_degree,
                     cfg.part_affine_shear, groups=fs_affine_groups()),
        FrameNoise(cfg.noise_p, cfg.noise_sigma, cfg.noise_ratio),
        FingerDrop(cfg.finger_drop_p, cfg.finger_drop_n, cfg.finger_drop_window, cfg.finger_drop_windows),
        FrameBlockMask(FS_GROUPS["hands"], cfg.block_mask_hands_p, cfg.block_mask_hands_ratio, block),
        FrameBlockMask(FS_GROUPS["arms"], cfg.block_mask_arms_p, cfg.block_mask_arms_ratio, block),
        FrameBlockMask(FS_GROUPS["lips"], cfg.block_mask_lips_p, cfg.block_mask_lips_ratio, block),
        OneOf(time_masks, p=cfg.time_mask_p),
        SpatialMask(cfg.spatial_mask_p, cfg.spatial_mask_size),
        FeatureMask(cfg.feature_mask_p, cfg.feature_mask_ratio),
    ])
