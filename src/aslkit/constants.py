"""The one source of truth for the Kaggle landmark layouts, index sets, flip maps, column names and label maps.

Every part of the kit that needs a landmark index, a column list or a character index (torch features, the TF/TFLite
graph, ``inference_args.json``, the grader clone, the synthetic generator) imports it from here.

Flat landmark indexing (543 points per frame, Kaggle order): face 0-467, left hand 468-488, pose 489-521,
right hand 522-542.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np

# ---------------------------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------------------------
SLUG_SIGNS = "asl-signs"
SLUG_FS = "asl-fingerspelling"
SLUGS = (SLUG_SIGNS, SLUG_FS)

ROWS_PER_FRAME = 543
PARTS: tuple[tuple[str, int], ...] = (("face", 468), ("left_hand", 21), ("pose", 33), ("right_hand", 21))
PART_NAMES = tuple(name for name, _ in PARTS)
PART_SIZES = dict(PARTS)
PART_OFFSETS: dict[str, int] = {}
_off = 0
for _name, _n in PARTS:
    PART_OFFSETS[_name] = _off
    _off += _n
assert _off == ROWS_PER_FRAME


def part_range(part: str) -> np.ndarray:
    """Flat indices of every landmark of one part (``face``, ``left_hand``, ``pose``, ``right_hand``)."""
    return np.arange(PART_OFFSETS[part], PART_OFFSETS[part] + PART_SIZES[part])


def flat(part: str, idx) -> np.ndarray:
    """Flat indices of landmarks given by their index within a part."""
    idx = np.asarray(idx, dtype=np.int64)
    if np.any(idx < 0) or np.any(idx >= PART_SIZES[part]):
        raise ValueError(f"landmark index out of range for part {part!r}: {idx}")
    return PART_OFFSETS[part] + idx


FACE = part_range("face")
LEFT_HAND = part_range("left_hand")
POSE = part_range("pose")
RIGHT_HAND = part_range("right_hand")

# Long-format (asl-signs) landmark rows of one frame: type and landmark_index per flat index.
LANDMARK_TYPES = np.array([name for name, n in PARTS for _ in range(n)], dtype=object)
LANDMARK_INDEX = np.concatenate([np.arange(n) for _, n in PARTS]).astype(np.int16)

# ---------------------------------------------------------------------------------------------------------------
# Named index sets (indices within the face mesh / pose; use ``flat`` for the 543 layout)
# ---------------------------------------------------------------------------------------------------------------
# 40 lip points (MediaPipe FACE_LANDMARKS_LIPS), in the order of the ISLR/FS 1st-place solutions.
LIPS_FACE = [0, 61, 185, 40, 39, 37, 267, 269, 270, 409, 291, 146, 91, 181, 84, 17, 314, 405, 321, 375,
             78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
OUTER_LIPS_FACE = LIPS_FACE[:20]
INNER_LIPS_FACE = LIPS_FACE[20:]
NOSE_FACE = [1, 2, 98, 327]
RIGHT_EYE_FACE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173]
LEFT_EYE_FACE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398]
RIGHT_EYEBROW_FACE = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46]
LEFT_EYEBROW_FACE = [300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
FACE_OVAL_FACE = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
                  148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]

# Pose (MediaPipe PoseLandmark numbering).
POSE_NAMES = ["nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
              "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
              "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
              "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
              "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
              "left_foot_index", "right_foot_index"]
RIGHT_ARM_POSE = [12, 14, 16, 18, 20, 22]   # shoulder, elbow, wrist, pinky, index, thumb
LEFT_ARM_POSE = [11, 13, 15, 17, 19, 21]
UPPER_BODY_POSE = list(range(0, 25))
ISLR_POSE = [11, 13, 15, 12, 14, 16, 23, 24]  # arms + hips as used by ISLR 1st place

# Flat index sets.
LIPS = flat("face", LIPS_FACE)
NOSE = flat("face", NOSE_FACE)
RIGHT_EYE = flat("face", RIGHT_EYE_FACE)
LEFT_EYE = flat("face", LEFT_EYE_FACE)
EYES = np.concatenate([RIGHT_EYE, LEFT_EYE])
RIGHT_ARM = flat("pose", RIGHT_ARM_POSE)
LEFT_ARM = flat("pose", LEFT_ARM_POSE)
ARMS = np.concatenate([RIGHT_ARM, LEFT_ARM])
HANDS = np.concatenate([LEFT_HAND, RIGHT_HAND])

LANDMARK_SETS: dict[str, np.ndarray] = {
    "lips": LIPS, "nose": NOSE, "right_eye": RIGHT_EYE, "left_eye": LEFT_EYE, "eyes": EYES,
    "left_hand": LEFT_HAND, "right_hand": RIGHT_HAND, "hands": HANDS,
    "right_arm": RIGHT_ARM, "left_arm": LEFT_ARM, "arms": ARMS,
    "face": FACE, "pose": POSE, "upper_body": flat("pose", UPPER_BODY_POSE),
}

# The 130 landmarks of the fingerspelling 1st-place solution, in its inference_args.json order.
FS_130 = np.concatenate([LIPS, LEFT_HAND, RIGHT_HAND, NOSE, RIGHT_EYE, LEFT_EYE, RIGHT_ARM, LEFT_ARM])
# The 118 points of the ISLR 1st-place solution.
ISLR_118 = np.concatenate([LIPS, LEFT_HAND, RIGHT_HAND, NOSE, RIGHT_EYE, LEFT_EYE])

# I2 CNN "image" (80 points): 18 lips (outer and inner corners, upper/lower pairs and midlines), 20 upper-body
# points (arms with shoulders, elbows, wrists and the pose hand points, eyes, ears, eyebrow centres, nose tip, the
# point between the eyebrows), both hands.
CNN_LIPS_FACE = [61, 40, 37, 0, 267, 270, 291, 91, 84, 17, 314, 321, 78, 81, 13, 311, 308, 14]
CNN_UPPER_BODY = np.concatenate([flat("pose", [2, 5, 7, 8] + list(range(11, 23))), flat("face", [1, 9, 105, 334])])
CNN_80 = np.concatenate([flat("face", CNN_LIPS_FACE), CNN_UPPER_BODY, LEFT_HAND, RIGHT_HAND])

# I6 (6th place) point groups: 21 lips, 18 face-silhouette points, 2 cheeks, 12 arm points, and five groups that
# are averaged into one point each (eyes, eyebrows, nose).
I6_LIPS_FACE = [13, 37, 40, 61, 78, 81, 84, 87, 88, 91, 191, 267, 270, 291, 308, 311, 314, 317, 318, 321, 415]
I6_SILHOUETTE_FACE = [10, 54, 67, 132, 150, 152, 162, 172, 176, 234, 284, 297, 361, 379, 389, 397, 400, 454]
I6_CHEEKS_FACE = [205, 425]
I6_ARMS = flat("pose", list(range(11, 23)))
I6_AVERAGED: dict[str, np.ndarray] = {
    "left_eye": LEFT_EYE, "right_eye": RIGHT_EYE, "left_eyebrow": flat("face", LEFT_EYEBROW_FACE),
    "right_eyebrow": flat("face", RIGHT_EYEBROW_FACE), "nose": NOSE}

# Landmarks kept in a prepared (cached) asl-signs dataset: enough for every model family of the kit, closed under
# the left/right flip. Order: lips, left hand, right hand, nose, right eye, left eye, upper-body pose (0-24), then
# eyebrows, face silhouette, cheeks and the point between the eyebrows (I2 CNN and I6 points).
_EXTRA_FACE = sorted(set(RIGHT_EYEBROW_FACE + LEFT_EYEBROW_FACE + I6_SILHOUETTE_FACE + I6_CHEEKS_FACE + [9]))
CACHE_SUBSETS: dict[str, np.ndarray] = {
    "islr": np.concatenate([ISLR_118, flat("pose", UPPER_BODY_POSE), flat("face", _EXTRA_FACE)]),
    "all": np.arange(543),
}


def subset_positions(subset: np.ndarray, landmarks) -> np.ndarray:
    """Positions within ``subset`` of the given flat landmark indices (KeyError-like ValueError when absent)."""
    where = {int(v): i for i, v in enumerate(np.asarray(subset))}
    missing = [int(v) for v in np.asarray(landmarks) if int(v) not in where]
    if missing:
        raise ValueError(f"landmarks {missing[:10]} are not in the subset")
    return np.array([where[int(v)] for v in np.asarray(landmarks)], dtype=np.int64)


# ---------------------------------------------------------------------------------------------------------------
# Hand and pose topology (for kinematics and plots)
# ---------------------------------------------------------------------------------------------------------------
HAND_CONNECTIONS = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11),
                    (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19),
                    (19, 20)]
FINGERS = {"thumb": [1, 2, 3, 4], "index": [5, 6, 7, 8], "middle": [9, 10, 11, 12], "ring": [13, 14, 15, 16],
           "pinky": [17, 18, 19, 20]}


def wrist_index() -> int:
    """Index within the hand of the wrist: the one hand landmark that belongs to no finger."""
    in_fingers = {i for joints in FINGERS.values() for i in joints}
    (wrist,) = set(range(len(RIGHT_HAND))) - in_fingers
    return wrist


def hand_routes() -> list[list[int]]:
    """The five finger routes ``[wrist, joint1, ..., tip]`` (hand landmark indices)."""
    return [[wrist_index(), *joints] for joints in FINGERS.values()]


POSE_CONNECTIONS = [(0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13),
                    (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20),
                    (16, 22), (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
                    (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32)]


def lip_connections() -> list[tuple[int, int]]:
    """Closed outer and inner lip contours as face-mesh index pairs."""
    outer = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
    inner = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95]
    return [(c[i], c[(i + 1) % len(c)]) for c in (outer, inner) for i in range(len(c))]


# ---------------------------------------------------------------------------------------------------------------
# Canonical face and the left/right flip permutation
# ---------------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def canonical_face() -> np.ndarray:
    """The 468 canonical MediaPipe face vertices ``[468, 3]`` in cm (x to the subject's left, y up, z to camera)."""
    path = resources.files("aslkit") / "assets" / "canonical_face_model_vertices.txt"
    verts = np.loadtxt(str(path), dtype=np.float64)
    if verts.shape != (468, 3):
        raise ValueError(f"{path}: expected 468 x 3 vertices, got {verts.shape}")
    return verts


@lru_cache(maxsize=1)
def face_mirror() -> np.ndarray:
    """Index of each face landmark's mirror image (x -> -x) in the canonical face; midline points map to themselves."""
    v = canonical_face()
    mirrored = v * np.array([-1.0, 1.0, 1.0])
    dist = np.linalg.norm(v[None, :, :] - mirrored[:, None, :], axis=2)
    perm = dist.argmin(axis=1)
    if dist[np.arange(468), perm].max() > 1e-4:
        raise ValueError("canonical face is not symmetric: cannot build the face flip map")
    return perm


POSE_MIRROR = np.array([0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9] +
                       [i + 1 if i % 2 == 1 else i - 1 for i in range(11, 33)])


@lru_cache(maxsize=1)
def flip_permutation() -> np.ndarray:
    """Permutation of the 543 flat indices that swaps left and right (face mirror, hands, pose sides).

    Horizontal flip of a frame ``x`` ``[T, 543, 3]``: ``x[:, flip_permutation()]`` with ``x' = 1 - x`` (or ``-x``
    about a centre).
    """
    perm = np.empty(ROWS_PER_FRAME, dtype=np.int64)
    perm[FACE] = face_mirror()
    perm[LEFT_HAND] = RIGHT_HAND
    perm[RIGHT_HAND] = LEFT_HAND
    perm[POSE] = PART_OFFSETS["pose"] + POSE_MIRROR
    return perm


def subset_flip_permutation(subset: np.ndarray) -> np.ndarray:
    """The flip permutation expressed in positions of ``subset`` (which must be closed under the flip)."""
    return subset_positions(subset, flip_permutation()[np.asarray(subset)])


# ---------------------------------------------------------------------------------------------------------------
# Fingerspelling wide columns
# ---------------------------------------------------------------------------------------------------------------
AXES = ("x", "y", "z")
FS_COLUMNS: list[str] = [f"{a}_{t}_{i}" for a in AXES for t, n in PARTS for i in range(n)]
assert len(FS_COLUMNS) == 3 * ROWS_PER_FRAME


def fs_columns(landmarks, axes: str | tuple[str, ...] = AXES) -> list[str]:
    """Wide column names for flat landmark indices: all of the first axis, then the next (official block order)."""
    lm = np.asarray(landmarks, dtype=np.int64)
    if lm.ndim != 1 or np.any(lm < 0) or np.any(lm >= ROWS_PER_FRAME):
        raise ValueError(f"landmark indices must be a 1-D list within 0..542, got {landmarks!r}")
    names = [f"{LANDMARK_TYPES[i]}_{LANDMARK_INDEX[i]}" for i in lm]
    return [f"{a}_{n}" for a in axes for n in names]


def parse_fs_column(column: str) -> tuple[str, int]:
    """Axis and flat landmark index of a wide column name such as ``y_right_hand_3``."""
    axis, _, rest = column.partition("_")
    if axis not in AXES:
        raise ValueError(f"not a landmark column (axis must be x, y or z): {column!r}")
    part, _, idx = rest.rpartition("_")
    if part not in PART_SIZES or not idx.isdigit():
        raise ValueError(f"not a landmark column: {column!r}")
    return axis, int(flat(part, int(idx)))


FS_130_COLUMNS = fs_columns(FS_130)

# ---------------------------------------------------------------------------------------------------------------
# Label maps
# ---------------------------------------------------------------------------------------------------------------
CHARACTERS = " !#$%&'()*+,-./0123456789:;=?@[_abcdefghijklmnopqrstuvwxyz~"
CHAR_TO_INDEX: dict[str, int] = {c: i for i, c in enumerate(CHARACTERS)}
assert len(CHAR_TO_INDEX) == 59
CTC_BLANK = len(CHARACTERS)  # 59: index of the CTC blank (ignored by the grader's map)
# attention decoders (F1): the characters, then padding (also what the grader drops), start, end and the decoder-input
# mask token
TOKEN_PAD, TOKEN_START, TOKEN_END, TOKEN_MASK = CTC_BLANK, CTC_BLANK + 1, CTC_BLANK + 2, CTC_BLANK + 3
TOKENS = CTC_BLANK + 4       # 63, F1's vocabulary


@lru_cache(maxsize=1)
def signs() -> tuple[str, ...]:
    """The 250 asl-signs glosses in prediction-index order (the real Kaggle map, shipped with the kit)."""
    path = resources.files("aslkit") / "assets" / "sign_to_prediction_index_map.json"
    mapping = json.loads(path.read_text())
    order = sorted(mapping, key=mapping.get)
    if [mapping[s] for s in order] != list(range(250)):
        raise ValueError(f"{path}: indices are not 0..249")
    return tuple(order)


def sign_to_index() -> dict[str, int]:
    """The real asl-signs label map ``{gloss: index}``."""
    return {s: i for i, s in enumerate(signs())}
