"""Keyframe timelines for one hand: wrist path, handshape and orientation, interpolated with minimum-jerk easing."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aslkit.synth.handshapes import HANDSHAPES, ORIENTATIONS
from aslkit.synth.kinematics import frame_from_vectors, rotation_about


@dataclass
class Key:
    """A pose of one hand at time ``t`` (frames): wrist target (cm), handshape vector, finger dir, palm normal."""

    t: float
    pos: np.ndarray
    shape: np.ndarray
    fdir: np.ndarray
    normal: np.ndarray


def key(t: float, pos, shape_name_or_vec, orientation: str | tuple, shape_noise: np.ndarray | None = None) -> Key:
    """Build a Key from names (handshape and orientation) or raw vectors."""
    shp = HANDSHAPES[shape_name_or_vec] if isinstance(shape_name_or_vec, str) else shape_name_or_vec
    shp = np.asarray(shp, dtype=np.float64) + (0 if shape_noise is None else shape_noise)
    v, n = ORIENTATIONS[orientation] if isinstance(orientation, str) else orientation
    return Key(float(t), np.asarray(pos, dtype=np.float64), shp, np.asarray(v, float), np.asarray(n, float))


def _ease(s: np.ndarray) -> np.ndarray:
    """Minimum-jerk profile on [0, 1]."""
    s = np.clip(s, 0.0, 1.0)
    return s ** 3 * (10 - 15 * s + 6 * s ** 2)


@dataclass
class Timeline:
    """Interpolated per-frame track of one hand."""

    wrist_target: np.ndarray     # [T, 3] position of the reference point (see ``contact``)
    shape: np.ndarray            # [T, P]
    rot: np.ndarray              # [T, 3, 3]
    extra: list = field(default_factory=list)


def interpolate(keys: list[Key], T: int) -> Timeline:
    """Per-frame values at frames 0..T-1 from keyframes sorted by time (held before the first / after the last)."""
    keys = sorted(keys, key=lambda k: k.t)
    times = np.array([k.t for k in keys])
    t = np.arange(T, dtype=np.float64)
    seg = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(keys) - 1)
    nxt = np.clip(seg + 1, 0, len(keys) - 1)
    span = np.maximum(times[nxt] - times[seg], 1e-6)
    w = np.where(nxt == seg, 0.0, _ease((t - times[seg]) / span))[:, None]

    def lerp(attr: str) -> np.ndarray:
        a = np.stack([getattr(k, attr) for k in keys])
        return a[seg] * (1 - w) + a[nxt] * w

    rot = frame_from_vectors(lerp("fdir"), lerp("normal"))
    return Timeline(lerp("pos"), lerp("shape"), rot)


def twist(rot: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate each hand frame about its own finger axis by ``angle`` (radians) per frame."""
    axis = rot[:, :, 1]
    return np.einsum("tij,tjk->tik", rotation_about(axis, angle), rot)


def flex_wrist(rot: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Bend each hand frame about its across-palm axis (a nod of the hand) by ``angle`` radians per frame."""
    axis = rot[:, :, 0]
    return np.einsum("tij,tjk->tik", rotation_about(axis, angle), rot)
