"""Forward kinematics of the 21-point MediaPipe hand and two-bone inverse kinematics of the arm.

World frame of the generator: centimetres, origin between the shoulders, +X to the image right (the signer's left),
+Y up, +Z towards the camera. Hands are built as right hands; a left hand is the mirror image (X -> -X) of a right
hand built with mirrored inputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FINGER_NAMES = ("index", "middle", "ring", "pinky")
# Handshape parameter vector: per finger (MCP flex, PIP flex, DIP flex, abduction) for index..pinky, then thumb
# (radial abduction, palmar abduction, MCP flex, IP flex, opposition). Degrees.
N_FINGER_PARAMS = 4
N_THUMB_PARAMS = 5
N_SHAPE_PARAMS = 4 * N_FINGER_PARAMS + N_THUMB_PARAMS

# Hand geometry as ratios of wrist -> middle MCP (MediaPipe world landmarks, see docs/synthetic_data.md §1.2).
MCP_RADIUS = {"index": 1.06, "middle": 1.0, "ring": 0.96, "pinky": 0.89}
MCP_ANGLE = {"index": 15.3, "middle": 0.0, "ring": -13.3, "pinky": -29.5}   # degrees from the middle axis
SEGMENTS = {"index": (0.30, 0.17, 0.27), "middle": (0.39, 0.27, 0.31), "ring": (0.32, 0.25, 0.26),
            "pinky": (0.22, 0.19, 0.18)}
SPLAY = {"index": 4.0, "middle": 0.0, "ring": -4.0, "pinky": -10.0}         # natural fan of the fingers
THUMB_CMC = (0.47, 42.0)                                                  # radius, angle from the middle axis
THUMB_SEGMENTS = (0.37, 0.39, 0.35)
THUMB_AXIS = 35.0                                                         # degrees
FINGER_POINTS = {"index": (5, 6, 7, 8), "middle": (9, 10, 11, 12), "ring": (13, 14, 15, 16),
                 "pinky": (17, 18, 19, 20)}


@dataclass(frozen=True)
class HandGeometry:
    """One person's hand: overall size (cm wrist -> middle MCP) and per-segment proportion factors."""

    size_cm: float = 9.0
    proportions: tuple[float, ...] = (1.0,) * 16

    @staticmethod
    def sample(rng: np.random.Generator, size_cm: float) -> "HandGeometry":
        """A signer's hand: given size, each segment varied by about 4 %."""
        return HandGeometry(size_cm=size_cm, proportions=tuple(rng.normal(1.0, 0.04, 16).clip(0.88, 1.12)))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def frame_from_vectors(finger_dir: np.ndarray, palm_normal: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` whose columns are (across-palm u, finger v, palm normal n) in world space."""
    v = _unit(finger_dir)
    n = palm_normal - (palm_normal * v).sum(-1, keepdims=True) * v
    n = _unit(n)
    u = np.cross(v, n)
    return np.stack([u, v, n], axis=-1)


def rotation_about(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues rotation matrices ``[..., 3, 3]`` about unit ``axis`` by ``angle`` radians."""
    axis = _unit(np.asarray(axis, dtype=np.float64))
    angle = np.asarray(angle, dtype=np.float64)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    c, s = np.cos(angle), np.sin(angle)
    C = 1 - c
    return np.stack([
        np.stack([c + x * x * C, x * y * C - z * s, x * z * C + y * s], -1),
        np.stack([y * x * C + z * s, c + y * y * C, y * z * C - x * s], -1),
        np.stack([z * x * C - y * s, z * y * C + x * s, c + z * z * C], -1)], -2)


def hand_local(shape: np.ndarray, geom: HandGeometry) -> np.ndarray:
    """21 hand points ``[T, 21, 3]`` in the hand frame (u across palm to the thumb, v to the fingers, n out of the
    palm), in cm, for handshape parameters ``shape`` ``[T, N_SHAPE_PARAMS]`` (degrees)."""
    shape = np.atleast_2d(np.asarray(shape, dtype=np.float64))
    T = shape.shape[0]
    out = np.zeros((T, 21, 3))
    rad = np.deg2rad(shape)
    prop = np.asarray(geom.proportions)
    s = geom.size_cm
    for k, name in enumerate(FINGER_NAMES):
        mcp_ang = np.deg2rad(MCP_ANGLE[name])
        base = s * MCP_RADIUS[name] * np.array([np.sin(mcp_ang), np.cos(mcp_ang), 0.0])
        mcp, pip, dip, abd = (rad[:, 4 * k + j] for j in range(4))
        heading = np.deg2rad(SPLAY[name]) + abd
        d = np.stack([np.sin(heading), np.cos(heading), np.zeros(T)], -1)      # finger direction in the palm plane
        n = np.array([0.0, 0.0, 1.0])
        pts = FINGER_POINTS[name]
        out[:, pts[0]] = base
        pos = np.broadcast_to(base, (T, 3)).copy()
        flex = np.zeros(T)
        for j, bend in enumerate((mcp, pip, dip)):
            flex = flex + bend
            seg = s * SEGMENTS[name][j] * prop[3 * k + j]
            pos = pos + seg * (np.cos(flex)[:, None] * d + np.sin(flex)[:, None] * n)
            out[:, pts[j + 1]] = pos
    out[:, 1:5] = _thumb(rad[:, 16:21], geom)
    return out


def _thumb(rad: np.ndarray, geom: HandGeometry) -> np.ndarray:
    """Thumb CMC, MCP, IP, TIP ``[T, 4, 3]`` in the hand frame."""
    T = rad.shape[0]
    s = geom.size_cm
    r_abd, p_abd, mcp, ip, opp = (rad[:, j] for j in range(5))
    r0, a0 = THUMB_CMC
    cmc = s * r0 * np.array([np.sin(np.deg2rad(a0)), np.cos(np.deg2rad(a0)), 0.25])
    # Metacarpal direction: the natural axis (35° from the middle finger) swung radially (+u) and palmar (+n).
    radial = np.deg2rad(THUMB_AXIS) + r_abd
    t0 = np.stack([np.sin(radial) * np.cos(p_abd), np.cos(radial) * np.cos(p_abd), np.sin(p_abd)], -1)
    # Flexion plane: towards the palm front (+n) without opposition, across the palm (-u) with full opposition.
    bend = np.stack([-np.sin(opp), np.full(T, -0.2), np.cos(opp)], -1)
    bend = _unit(bend - (bend * t0).sum(-1, keepdims=True) * t0)
    pts = np.zeros((T, 4, 3))
    pts[:, 0] = cmc
    pos = np.broadcast_to(cmc, (T, 3)).copy()
    flex = np.zeros(T)
    prop = geom.proportions[12:15]
    for j, b in enumerate((np.zeros(T), mcp, ip)):
        flex = flex + b
        pos = pos + s * THUMB_SEGMENTS[j] * prop[j] * (np.cos(flex)[:, None] * t0 + np.sin(flex)[:, None] * bend)
        pts[:, j + 1] = pos
    return pts


def hand_world(shape: np.ndarray, rotation: np.ndarray, wrist: np.ndarray, geom: HandGeometry) -> np.ndarray:
    """Right-hand points ``[T, 21, 3]`` in world cm: local hand rotated by ``rotation`` ``[T,3,3]``, at ``wrist``."""
    local = hand_local(shape, geom)
    return local @ rotation.transpose(0, 2, 1) + wrist[:, None, :]


def mirror_x(points: np.ndarray) -> np.ndarray:
    """Mirror world points about the body midline (X -> -X)."""
    return points * np.array([-1.0, 1.0, 1.0])


def bone_lengths(points: np.ndarray, connections) -> np.ndarray:
    """Lengths ``[..., len(connections)]`` of the given point-pair bones."""
    a = np.array([c[0] for c in connections])
    b = np.array([c[1] for c in connections])
    return np.linalg.norm(points[..., a, :] - points[..., b, :], axis=-1)


def arm_ik(shoulder: np.ndarray, wrist: np.ndarray, upper: float, fore: float, pole: np.ndarray) -> np.ndarray:
    """Elbow positions ``[T, 3]`` reaching from ``shoulder`` to ``wrist`` with the elbow bent towards ``pole``."""
    d_vec = wrist - shoulder
    d = np.linalg.norm(d_vec, axis=-1).clip(abs(upper - fore) + 1e-3, upper + fore - 1e-3)
    w = _unit(d_vec)
    cos_a = ((upper ** 2 + d ** 2 - fore ** 2) / (2 * upper * d)).clip(-1, 1)
    p = pole - (pole * w).sum(-1, keepdims=True) * w
    p = _unit(p)
    return shoulder + upper * (cos_a[:, None] * w + np.sqrt(1 - cos_a ** 2)[:, None] * p)
