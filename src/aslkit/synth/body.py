"""Signers and the rendering of a performance into MediaPipe Holistic landmarks ``[T, 543, 3]``.

A ``Signer`` holds everything that stays fixed for one person (body, hands, dominant hand, camera, speed, how well
MediaPipe tracks them). ``render`` turns per-frame tracks (wrists, handshapes, hand orientations, head pose, jaw)
into normalised image landmarks with the camera projection, tracking noise, and the real data's missing-part blocks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from aslkit import constants as C
from aslkit.synth.kinematics import (
    N_SHAPE_PARAMS,
    HandGeometry,
    arm_ik,
    hand_local,
    hand_world,
    mirror_x,
    rotation_about,
)

HEAD_CENTER_Y = 21.0      # canonical face origin above the shoulder line (cm)
HEAD_CENTER_Z = 2.0


@dataclass
class Camera:
    """Pinhole selfie camera: distance, focal scale (image widths per cm at distance 1), centre, roll, aspect."""

    distance: float          # cm from the shoulder plane
    focal: float             # image-width units per (cm / cm)
    center: tuple[float, float]   # world (X, Y) the optical axis passes through
    roll: float              # radians
    aspect: float            # image height / width (y is normalised by the height)

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image x, y (normalised) and the per-point scale (image-width units per cm) of world points."""
        depth = np.maximum(self.distance - pts[..., 2], 5.0)
        scale = self.focal / depth
        p = (pts[..., 0] - self.center[0]) * scale
        q = (pts[..., 1] - self.center[1]) * scale
        c, s = np.cos(self.roll), np.sin(self.roll)
        p, q = c * p - s * q, s * p + c * q
        return 0.5 + p, 0.5 - q / self.aspect, scale


@dataclass
class Signer:
    """One person: body, hands, dominant side, camera, tempo, tracking quality and personal habits."""

    participant_id: int
    dominant: str                      # "right" or "left"
    hand: HandGeometry
    shoulder_half: float               # cm
    upper_arm: float
    forearm: float
    camera: Camera
    speed: float                       # > 1: signs faster (fewer frames)
    hand_detect: float                 # probability a visible hand is tracked in a frame
    dropout_burst: float               # mean length (frames) of a tracking dropout
    swap_rate: float                   # share of hand frames reported as the other hand
    face_dropout: float                # probability per frame that a face dropout burst starts
    jitter: float                      # landmark noise, image-width units
    shape_bias: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(N_SHAPE_PARAMS))
    location_bias: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(3))
    amplitude: float = 1.0             # movement size factor
    rest_height: float = -48.0         # wrist height (cm) of the resting hands
    nd_free: bool = True               # False: the other hand holds the phone and never signs
    head_pose: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(3))

    def rest_position(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """Where a resting hand's reference point is (cm, right-hand side), jittered when ``rng`` is given."""
        pos = np.array([-self.shoulder_half * 0.7, self.rest_height, 14.0])
        return pos if rng is None else pos + rng.normal(0, 2, 3)

    @property
    def face_scale(self) -> float:
        """Image-width units per cm at the face."""
        return self.camera.focal / (self.camera.distance - HEAD_CENTER_Z)


@dataclass(frozen=True)
class RecordingStyle:
    """How the recordings of one competition differ: who signs left-handed, where the face sits in the frame, the
    camera's aspect ratio, tracking quality, hand swaps, where hands rest, how often the other hand is free."""

    left_share: float
    face_x: tuple[float, float]
    face_y: tuple[float, float]
    aspect: Callable[[np.random.Generator], float]
    quality: tuple[float, float]              # Beta(a, b) of the hand detection rate
    swap_rate: tuple[float, float]
    rest_height: tuple[float, float]
    nd_free_share: float


RECORDING_STYLES = {
    # asl-signs: landscape-ish webcam framing, right- and left-handed signers alike
    C.SLUG_SIGNS: RecordingStyle(0.5, (0.38, 0.56), (0.30, 0.44), lambda rng: rng.uniform(1.0, 1.3), (6, 1.9),
                                 (0.0, 0.08), (-75, -55), 0.3),
    # asl-fingerspelling: portrait phone selfies, 8 % left-handed, the other hand often holding the phone
    C.SLUG_FS: RecordingStyle(0.08, (0.55, 0.72), (0.22, 0.36), lambda rng: rng.normal(1.898, 0.02), (5.0, 1.6),
                              (0.0, 0.3), (-95, -80), 0.5),
}


def sample_signer(rng: np.random.Generator, participant_id: int, task: str) -> Signer:
    """A new person with their own body, camera, tempo and tracking quality (docs/synthetic_data.md §4, §6)."""
    style = RECORDING_STYLES[task]
    left = rng.random() < style.left_share
    height = rng.normal(1.0, 0.06)
    distance = rng.uniform(80, 140)
    face_w = rng.uniform(0.18, 0.3)                     # face width as a share of the image width
    focal = face_w * (distance - HEAD_CENTER_Z) / 15.3
    face_x = rng.uniform(*style.face_x)
    face_y = rng.uniform(*style.face_y)
    aspect = style.aspect(rng)
    head_y = HEAD_CENTER_Y * height
    # Optical axis chosen so that the head centre lands at (face_x, face_y).
    cx = -(face_x - 0.5) * (distance - HEAD_CENTER_Z) / focal
    cy = head_y + (face_y - 0.5) * aspect * (distance - HEAD_CENTER_Z) / focal
    camera = Camera(distance, focal, (cx, cy), np.deg2rad(rng.normal(0, 4)), aspect)
    quality = rng.beta(*style.quality)
    return Signer(
        participant_id=participant_id,
        dominant="left" if left else "right",
        hand=HandGeometry.sample(rng, rng.normal(9.0, 0.6) * height),
        shoulder_half=rng.normal(19.0, 1.5) * height,
        upper_arm=rng.normal(30.0, 1.8) * height,
        forearm=rng.normal(26.0, 1.5) * height,
        camera=camera,
        speed=float(np.exp(rng.normal(0, 0.25))),
        hand_detect=float(np.clip(quality, 0.25, 0.995)),
        dropout_burst=float(rng.uniform(2, 8)),
        swap_rate=float(rng.uniform(*style.swap_rate)),
        face_dropout=float(rng.uniform(0.0005, 0.003)),
        jitter=float(rng.uniform(0.0015, 0.004)),
        shape_bias=rng.normal(0, 7, N_SHAPE_PARAMS),
        location_bias=rng.normal(0, 1.5, 3),
        amplitude=float(np.exp(rng.normal(0, 0.15))),
        rest_height=float(rng.uniform(*style.rest_height)),
        head_pose=np.deg2rad(rng.normal(0, [8, 6, 4])),
        nd_free=bool(rng.random() < style.nd_free_share),
    )


# ----------------------------------------------------------------------------------------------------------------
# Anchors: where signs are made, in world cm, for a right-dominant layout (dominant side = negative X)
# ----------------------------------------------------------------------------------------------------------------
FACE_ANCHORS = {"forehead": 151, "eyes": 168, "eye": 159, "nose": 4, "mouth": 13, "lips": 0, "chin": 152,
                "cheek": 50, "ear": 234, "temple": 127, "under_eye": 118, "jaw": 172}


def head_points(signer: Signer, head_pose: np.ndarray | None = None, jaw: np.ndarray | None = None) -> np.ndarray:
    """Face-mesh points in world cm ``[T, 468, 3]`` for per-frame head pose (yaw, pitch, roll) and jaw opening."""
    verts = C.canonical_face()
    hp = np.atleast_2d(signer.head_pose if head_pose is None else head_pose)
    T = hp.shape[0]
    pts = np.broadcast_to(verts, (T, 468, 3)).copy()
    if jaw is not None:
        below = np.clip((-3.9 - verts[:, 1]) / 5.5, 0, 1)          # lower lip and chin move with the jaw
        pts[:, :, 1] -= jaw[:, None] * below[None, :]
    rot = (rotation_about(np.array([0.0, 1.0, 0.0]), hp[:, 0]) @ rotation_about(np.array([1.0, 0.0, 0.0]), hp[:, 1])
           @ rotation_about(np.array([0.0, 0.0, 1.0]), hp[:, 2]))
    pts = pts @ rot.transpose(0, 2, 1)
    return pts + np.array([0.0, HEAD_CENTER_Y * signer.shoulder_half / 19.0, HEAD_CENTER_Z])


def anchor(signer: Signer, name: str) -> np.ndarray:
    """World position (cm) of a named sign location for a right-dominant signer."""
    if name in FACE_ANCHORS:
        p = head_points(signer)[0, FACE_ANCHORS[name]].copy()
        p[2] += 1.0
        return p
    sh = signer.shoulder_half
    body = {
        "top_head": (0.0, 34.0, 4.0), "neck": (0.0, 5.0, 6.0), "chest": (0.0, -8.0, 10.0),
        "chest_dom": (-9.0, -7.0, 10.0), "shoulder_dom": (-sh * 0.9, 2.0, 6.0), "shoulder_nd": (sh * 0.9, 2.0, 6.0),
        "stomach": (0.0, -22.0, 12.0), "neutral": (-8.0, -6.0, 22.0), "neutral_high": (-10.0, 10.0, 22.0),
        "neutral_low": (-6.0, -18.0, 20.0), "side": (-sh * 1.2, -4.0, 18.0), "waist": (-10.0, -28.0, 14.0),
        "nd_hand": (2.0, -8.0, 22.0), "spell": (-13.0, -3.0, 22.0),
    }
    if name not in body:
        raise KeyError(f"unknown sign location {name!r}")
    return np.array(body[name], dtype=np.float64)


# ----------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Tracks:
    """Per-frame performance of a right-dominant signer; the non-dominant hand is given mirrored (like a right hand)."""

    dom_wrist: np.ndarray             # [T, 3]
    dom_shape: np.ndarray             # [T, N_SHAPE_PARAMS]
    dom_rot: np.ndarray               # [T, 3, 3]
    nd_wrist: np.ndarray
    nd_shape: np.ndarray
    nd_rot: np.ndarray
    head: np.ndarray                  # [T, 3] yaw, pitch, roll (radians)
    jaw: np.ndarray                   # [T] cm
    nd_active: bool = False           # the non-dominant hand takes part in the sign

    @property
    def n_frames(self) -> int:
        return int(self.dom_wrist.shape[0])


def _pose_points(signer: Signer, face: np.ndarray, dom: np.ndarray, nd_mirrored: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """33 pose points ``[T, 33, 3]`` in world cm (upper body from the face and hands, legs extrapolated)."""
    T = face.shape[0]
    pose = np.zeros((T, 33, 3))
    sh = signer.shoulder_half
    pose[:, 0] = face[:, 1]
    for i, idx in {1: 362, 3: 263, 4: 133, 6: 33, 9: 291, 10: 61}.items():
        pose[:, i] = face[:, idx]
    pose[:, 2] = face[:, [386, 374]].mean(1)
    pose[:, 5] = face[:, [159, 145]].mean(1)
    pose[:, 7] = face[:, 454] + np.array([0.5, 0.0, -3.0])
    pose[:, 8] = face[:, 234] + np.array([-0.5, 0.0, -3.0])
    breathe = 0.4 * np.sin(np.linspace(0, rng.uniform(1, 4), T) + rng.uniform(0, 6))[:, None]
    r_sh = np.array([-sh, 0.0, 0.0]) + breathe * np.array([0, 1, 0])
    l_sh = np.array([sh, 0.0, 0.0]) + breathe * np.array([0, 1, 0])
    pose[:, 12], pose[:, 11] = r_sh, l_sh
    pole = np.array([-0.4, -1.0, -0.5])
    pose[:, 14] = arm_ik(pose[:, 12], dom[:, 0], signer.upper_arm, signer.forearm, pole)
    nd_elbow = arm_ik(mirror_x(pose[:, 11]), nd_mirrored[:, 0], signer.upper_arm, signer.forearm, pole)
    pose[:, 13] = mirror_x(nd_elbow)
    nd = mirror_x(nd_mirrored)
    for side, hand in ((0, nd), (1, dom)):                   # pose 15/17/19/21 are left, 16/18/20/22 right
        pose[:, 15 + side] = hand[:, 0]
        pose[:, 17 + side] = hand[:, 17]
        pose[:, 19 + side] = hand[:, 5]
        pose[:, 21 + side] = hand[:, 2]
    hip_y, hip_x = -52.0 * sh / 19.0, 0.62 * sh
    legs = {23: (hip_x, hip_y, -2), 24: (-hip_x, hip_y, -2), 25: (hip_x, hip_y - 44, 2), 26: (-hip_x, hip_y - 44, 2),
            27: (hip_x, hip_y - 86, -4), 28: (-hip_x, hip_y - 86, -4), 29: (hip_x, hip_y - 90, -9),
            30: (-hip_x, hip_y - 90, -9), 31: (hip_x * 0.9, hip_y - 92, 10), 32: (-hip_x * 0.9, hip_y - 92, 10)}
    for i, p in legs.items():
        pose[:, i] = p
    return pose


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float, rho: float = 0.7) -> np.ndarray:
    """AR(1) noise along axis 0 with stationary standard deviation ``sigma``."""
    e = rng.normal(0.0, sigma * np.sqrt(1 - rho ** 2), shape)
    out = np.empty(shape)
    out[0] = rng.normal(0.0, sigma, shape[1:])
    for t in range(1, shape[0]):
        out[t] = rho * out[t - 1] + e[t]
    return out


def _bursts(rng: np.random.Generator, T: int, p_start: float, mean_len: float) -> np.ndarray:
    """Boolean mask of random bursts (start probability per frame, geometric lengths)."""
    mask = np.zeros(T, dtype=bool)
    starts = np.flatnonzero(rng.random(T) < p_start)
    for s in starts:
        mask[s:s + max(1, int(rng.geometric(1.0 / max(mean_len, 1.0))))] = True
    return mask


def _hand_tracked(rng: np.random.Generator, signer: Signer, xy: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """Frames in which MediaPipe would track a hand with image points ``xy`` ``[T, 21, 2]``."""
    T = xy.shape[0]
    inside = ((xy[..., 0] > -0.02) & (xy[..., 0] < 1.02) & (xy[..., 1] > -0.02) & (xy[..., 1] < 1.0)).mean(1)
    visible = inside > 0.6
    # A tracker needs a frame or two to pick a hand up after it enters the image.
    entering = visible & ~np.concatenate([[False], visible[:-1]])
    late = entering & (rng.random(T) < 0.5)
    # Dropouts: a two-state chain whose stationary share of lost frames is the signer's miss rate, higher when the
    # hand moves fast (motion blur); lost spells last ``dropout_burst`` frames on average.
    miss = np.clip((1 - signer.hand_detect) * (1 + 3 * np.clip(speed - 0.015, 0, None) / 0.05), 0, 0.95)
    p_end = 1.0 / signer.dropout_burst
    p_start = np.clip(miss * p_end / (1 - miss), 0, 1)
    drop = np.zeros(T, dtype=bool)
    state = rng.random() < miss[0]
    u = rng.random(T)
    for t in range(T):
        state = (u[t] >= p_end) if state else (u[t] < p_start[t])
        drop[t] = state
    return visible & ~late & ~drop


def render(signer: Signer, tracks: Tracks, rng: np.random.Generator) -> np.ndarray:
    """Landmarks ``[T, 543, 3]`` float32 (x, y normalised to the image, z MediaPipe-style) with NaN blocks."""
    T = tracks.n_frames
    face = head_points(signer, tracks.head, tracks.jaw)
    dom = hand_world(tracks.dom_shape, tracks.dom_rot, tracks.dom_wrist, signer.hand)
    nd_m = hand_world(tracks.nd_shape, tracks.nd_rot, tracks.nd_wrist, signer.hand)
    nd = mirror_x(nd_m)
    pose = _pose_points(signer, face, dom, nd_m, rng)
    world = np.zeros((T, C.ROWS_PER_FRAME, 3))
    world[:, C.FACE] = face
    world[:, C.LEFT_HAND] = nd
    world[:, C.POSE] = pose
    world[:, C.RIGHT_HAND] = dom
    if signer.dominant == "left":
        world = mirror_x(world[:, C.flip_permutation()])
    return _to_image(signer, world, rng)


def _to_image(signer: Signer, world: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Project world points, add tracking noise and camera shake, and blank out untracked parts."""
    T = world.shape[0]
    cam = signer.camera
    x, y, scale = cam.project(world)
    out = np.empty((T, C.ROWS_PER_FRAME, 3))
    out[..., 0], out[..., 1] = x, y
    # z: face relative to its centre, hands relative to their wrist, pose relative to the hip midpoint.
    face_z = world[:, C.FACE, 2]
    out[:, C.FACE, 2] = -(face_z - face_z.mean(1, keepdims=True)) * scale[:, C.FACE]
    for part in (C.LEFT_HAND, C.RIGHT_HAND):
        z = world[:, part, 2]
        out[:, part, 2] = -(z - z[:, :1]) * scale[:, part]
    hips = world[:, C.flat("pose", [23, 24]), 2].mean(1, keepdims=True)
    out[:, C.POSE, 2] = -(world[:, C.POSE, 2] - hips) * scale[:, C.POSE] * 4.5
    # Camera shake (hand-held phone) moves everything; each part has its own tracking jitter.
    out[..., :2] += _smooth_noise(rng, (T, 1, 2), 0.004, 0.85)
    j = signer.jitter
    out[:, C.FACE, :2] += _smooth_noise(rng, (T, 1, 2), j * 0.4) + rng.normal(0, j * 0.15, (T, 468, 2))
    out[:, C.POSE] += rng.normal(0, 1, (T, 33, 3)) * np.array([j * 1.5, j * 1.5, 0.04])
    speed = {}
    for part in (C.LEFT_HAND, C.RIGHT_HAND):
        out[:, part, :2] += _smooth_noise(rng, (T, 1, 2), j) + rng.normal(0, j * 0.4, (T, 21, 2))
        out[:, part, 2] += rng.normal(0, 0.006, (T, 21))
        wrist = out[:, part[0], :2]
        speed[part[0]] = np.r_[0.0, np.linalg.norm(np.diff(wrist, axis=0), axis=1)]
    # Which parts MediaPipe reports.
    lh = _hand_tracked(rng, signer, out[:, C.LEFT_HAND, :2], speed[C.LEFT_HAND[0]])
    rh = _hand_tracked(rng, signer, out[:, C.RIGHT_HAND, :2], speed[C.RIGHT_HAND[0]])
    out = _swap_handedness(rng, signer, out, lh, rh)
    face_missing = _bursts(rng, T, signer.face_dropout, 4.0)
    for part, missing in ((C.LEFT_HAND, ~lh), (C.RIGHT_HAND, ~rh), (C.FACE, face_missing)):
        out[np.ix_(missing, part)] = np.nan
    return out.astype(np.float32)


def _swap_handedness(rng: np.random.Generator, signer: Signer, out: np.ndarray, lh: np.ndarray,
                     rh: np.ndarray) -> np.ndarray:
    """MediaPipe sometimes labels a single visible hand as the other hand: move it to the other slot, in bursts."""
    T = out.shape[0]
    swap = _bursts(rng, T, signer.swap_rate / 3.0, 3.0)
    only_r = swap & rh & ~lh
    only_l = swap & lh & ~rh
    out[np.ix_(only_r, C.LEFT_HAND)] = out[np.ix_(only_r, C.RIGHT_HAND)]
    out[np.ix_(only_l, C.RIGHT_HAND)] = out[np.ix_(only_l, C.LEFT_HAND)]
    lh[only_r], rh[only_r] = True, False
    lh[only_l], rh[only_l] = False, True
    return out


def contact_offset(shape: np.ndarray, rot: np.ndarray, geom: HandGeometry, point: int) -> np.ndarray:
    """World offset ``[T, 3]`` from the wrist to hand point ``point`` (e.g. 8 = index tip) for a right hand."""
    local = hand_local(shape, geom)[:, point]
    return (rot @ local[:, :, None])[:, :, 0]
