"""The frames family's training augmentation (I6).

Training augmentation (I6's list, numpy ``Transform`` s on raw cache-subset sequences, ``FramesAugmentConfig``):
start/end crop, face CutMix from another sequence of the same sign, mirrored-hand fill, interpolation of missing
values, horizontal flip, rotation, scaling. I6 used the face CutMix and the hand fill in the first half of the
epochs only; here they run in every epoch (a transform sees no epoch).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from aslkit import constants as C
from aslkit.transforms import (
    Compose,
    HorizontalFlip,
    Partner,
    RandomAffine,
    SubsetLayout,
    Transform,
    check_p,
    check_range,
    resample_time,
)


@dataclass
class FramesAugmentConfig:
    """Probabilities and ranges of I6's augmentations (``aug_strength=3`` of techniques.md A1)."""

    crop_p: float = 0.5
    crop_max_fraction: float = 0.2            # start + end frames removed, at most this share of the sequence
    face_mix_p: float = 0.25
    hand_fill_p: float = 0.25
    interp_p: float = 0.5
    flip_p: float = 0.5
    rotate_p: float = 0.5
    rotate_degree: tuple[float, float] = (-30.0, 30.0)
    scale_p: float = 0.25
    scale: tuple[float, float] = (0.7, 1.3)


class StartEndCrop(Transform):
    """Remove ``floor(U(0, max_fraction) * T)`` frames in all, a random split of them from the start and the rest
    from the end (at least one frame stays)."""

    def __init__(self, p: float = 0.5, max_fraction: float = 0.2):
        super().__init__(p)
        if not 0.0 <= max_fraction < 1.0:
            raise ValueError(f"crop max_fraction must be within [0, 1), got {max_fraction!r}")
        self.max_fraction = float(max_fraction)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        t = len(x)
        total = min(int(np.floor(rng.uniform(0.0, self.max_fraction) * t)), t - 1)
        start = int(rng.integers(0, total + 1))
        return x[start:t - (total - start)].copy()


def fill_interior_gaps(x: np.ndarray) -> np.ndarray:
    """``x`` ``[T, S, 3]`` with each missing point linearly interpolated in time between its previous and next
    detection; points missing before the first or after the last detection stay NaN."""
    t = len(x)
    valid = ~np.isnan(x).any(-1)                                                   # [T, S]
    idx = np.arange(t)[:, None]
    prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(valid, idx, t)[::-1], axis=0)[::-1]
    ti, si = np.nonzero(~valid & (prev >= 0) & (nxt < t))
    out = x.copy()
    if len(ti):
        p, n = prev[ti, si], nxt[ti, si]
        w = ((ti - p) / (n - p))[:, None]
        out[ti, si] = (x[p, si] * (1 - w) + x[n, si] * w).astype(x.dtype)
    return out


class InterpolateMissing(Transform):
    """Fill the interior gaps of every point by linear interpolation in time (``fill_interior_gaps``)."""

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return fill_interior_gaps(x)


def body_centre_x(x: np.ndarray, shoulders: np.ndarray, nose: np.ndarray) -> np.ndarray:
    """Per-frame x of the body's vertical axis ``[T]``: the shoulders' mid-point, else the nose, else the sequence
    mean of those, else 0.5 (image centre)."""
    sh = x[:, shoulders, 0]
    cx = np.where(np.isnan(sh).any(1), x[:, nose, 0].mean(1) if len(nose) else np.nan, sh.mean(1))
    if np.isnan(cx).all():
        return np.full(len(x), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.where(np.isnan(cx), np.nanmean(cx), cx)


class MirrorHandFill(Transform):
    """In frames where exactly one hand was detected, write the other hand as the mirror image of the detected one
    about the body centre (``x -> 2 cx - x``; y and z kept). Other frames are left as they are."""

    def __init__(self, p: float = 0.25, layout: SubsetLayout | None = None, subset: np.ndarray | None = None):
        super().__init__(p)
        subset = np.asarray(C.CACHE_SUBSETS["islr"] if subset is None else subset)
        self.layout = layout or SubsetLayout.of(subset)
        if len(self.layout.hands()) != 2:
            raise ValueError("MirrorHandFill needs a subset with both hands")
        self.shoulders = C.subset_positions(subset, C.flat("pose", [11, 12]))
        self.nose = C.subset_positions(subset, C.flat("face", [1])) if C.flat("face", [1])[0] in subset \
            else np.zeros(0, np.int64)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.layout.check(x)
        lh, rh = self.layout.left_hand, self.layout.right_hand
        has_l, has_r = ~np.isnan(x[:, lh]).all((1, 2)), ~np.isnan(x[:, rh]).all((1, 2))
        out = x.copy()
        cx = body_centre_x(x, self.shoulders, self.nose)
        for src, dst, frames in ((rh, lh, has_r & ~has_l), (lh, rh, has_l & ~has_r)):
            f = np.flatnonzero(frames)
            if len(f):
                pts = x[f][:, src]
                pts[..., 0] = 2 * cx[f, None] - pts[..., 0]
                out[f[:, None], dst[None, :]] = pts
        return out


def frame_centres(f: np.ndarray) -> np.ndarray | None:
    """Per-frame mean ``[T, 3]`` of the detected points of ``f`` ``[T, n, 3]``; frames without any take the mean of
    the whole sequence; None when no point is detected at all."""
    valid = ~np.isnan(f).any(-1)
    if not valid.any():
        return None
    count = valid.sum(1)
    total = np.where(valid[..., None], f, 0.0).sum(1)
    overall = total.sum(0) / count.sum()
    return np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], overall)


class FaceCutMix(Transform):
    """Replace every face point (lips, eyes, eyebrows, nose, silhouette, cheeks) by those of another sequence of the
    same sign, resampled in time to this length and moved so that its per-frame face centre is this sequence's
    (no move when this sequence has no face; no change when the partner has none)."""

    needs_partner = True

    def __init__(self, p: float = 0.25, layout: SubsetLayout | None = None):
        super().__init__(p)
        self.layout = layout or SubsetLayout.of()
        if not len(self.layout.face):
            raise ValueError("FaceCutMix needs a subset with face points")

    def partner_face(self, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
        """The partner ``y`` 's face points as they replace those of ``x`` ``[T, F, 3]`` (None: it has none)."""
        face = self.layout.face
        yf = y[:, face]
        if np.isnan(yf).all():
            return None
        yf = resample_time(yf, np.linspace(0.0, len(y) - 1, len(x)))
        cx, cy = frame_centres(x[:, face]), frame_centres(yf)
        return yf if cx is None else (yf + (cx - cy)[:, None, :]).astype(x.dtype)

    def apply(self, x: np.ndarray, rng: np.random.Generator, partner: Partner) -> np.ndarray:
        self.layout.check(x)
        y = np.asarray(partner(rng), dtype=x.dtype)
        self.layout.check(y)
        face = self.partner_face(x, y)
        out = x.copy()
        if face is not None:
            out[:, self.layout.face] = face
        return out


def frames_augment(cfg: FramesAugmentConfig | None = None, subset: np.ndarray | None = None) -> Compose:
    """I6's training augmentation, in this order: start/end crop, face CutMix, mirrored-hand fill, interpolation
    of missing values, horizontal flip, rotation, scaling (for sequences of ``subset``, default ``islr``). The
    scaling is per part (each hand, the face, the pose about its own centre): a scale of the whole frame would be
    undone by the features' per-axis normalisation (``tests/test_augment_acts.py``)."""
    cfg = cfg or FramesAugmentConfig()
    subset = np.asarray(C.CACHE_SUBSETS["islr"] if subset is None else subset)
    layout = SubsetLayout.of(subset)
    check_range("rotate_degree", cfg.rotate_degree)
    check_range("scale", cfg.scale, low=1e-6)
    for name in ("crop_p", "face_mix_p", "hand_fill_p", "interp_p", "flip_p", "rotate_p", "scale_p"):
        check_p(f"augment.{name}", getattr(cfg, name))
    return Compose([
        StartEndCrop(cfg.crop_p, cfg.crop_max_fraction),
        FaceCutMix(cfg.face_mix_p, layout),
        MirrorHandFill(cfg.hand_fill_p, layout, subset),
        InterpolateMissing(cfg.interp_p),
        HorizontalFlip(cfg.flip_p, layout),
        RandomAffine(cfg.rotate_p, scale=None, shift=None, degree=cfg.rotate_degree),
        RandomAffine(cfg.scale_p, scale=cfg.scale, shift=None, degree=None, groups=layout.parts()),
    ])
