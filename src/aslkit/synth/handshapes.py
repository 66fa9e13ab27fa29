"""Parametric handshapes (the ASL manual alphabet, digits and common sign handshapes) and hand orientations.

A handshape is a vector of joint angles (see ``kinematics.N_SHAPE_PARAMS``); an orientation is a (finger direction,
palm normal) pair of world vectors for a right hand. Values follow docs/synthetic_data.md §1.3-1.4.
"""
from __future__ import annotations

import numpy as np

from aslkit.synth.kinematics import N_SHAPE_PARAMS

# Finger postures: (MCP, PIP, DIP) flexion in degrees.
EXT = (5.0, 4.0, 3.0)
FIST = (88.0, 100.0, 60.0)
CURVE = (35.0, 45.0, 25.0)
BENT = (75.0, 5.0, 5.0)
HOOK = (10.0, 90.0, 60.0)
CLAW = (25.0, 65.0, 45.0)
HALF = (50.0, 80.0, 40.0)
OVER = (80.0, 90.0, 40.0)
PINCH = (45.0, 60.0, 30.0)
OPEN_O = (40.0, 60.0, 40.0)
FLAT_O = (55.0, 20.0, 10.0)
E_CURL = (30.0, 100.0, 80.0)

# Thumb postures: (radial abduction from the natural 35° metacarpal axis, palmar abduction, MCP flex, IP flex,
# opposition: 0 flexes towards the camera side of the palm, 90 across the palm).
T_SIDE = (-20.0, 5.0, 10.0, 5.0, 20.0)
T_ACROSS = (-15.0, 45.0, 40.0, 30.0, 75.0)
T_FOLDED = (-20.0, 50.0, 50.0, 50.0, 80.0)
T_OPEN = (15.0, 15.0, 0.0, 0.0, 0.0)
T_WIDE = (40.0, 10.0, 0.0, 0.0, 0.0)
T_GAP = (0.0, 50.0, 15.0, 15.0, 40.0)
T_O = (-5.0, 60.0, 25.0, 25.0, 55.0)
T_TUCK = (-20.0, 50.0, 40.0, 20.0, 75.0)
T_OVER = (-15.0, 50.0, 45.0, 45.0, 80.0)
T_PINCH = (0.0, 55.0, 25.0, 20.0, 50.0)
T_UP = (5.0, 40.0, 10.0, 0.0, 30.0)
T_E = (-20.0, 40.0, 60.0, 60.0, 80.0)
T_RING = (-10.0, 60.0, 50.0, 40.0, 85.0)
T_G = (-5.0, 25.0, 5.0, 0.0, 20.0)


def shape(index, middle, ring, pinky, thumb, spread=(0.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """Handshape vector from four finger postures, a thumb posture and per-finger abduction (deg, + to thumb)."""
    v = []
    for f, a in zip((index, middle, ring, pinky), spread):
        v.extend(f)
        v.append(a)
    v.extend(thumb)
    out = np.array(v, dtype=np.float64)
    assert out.shape == (N_SHAPE_PARAMS,)
    return out


SPREAD5 = (12.0, 0.0, -10.0, -22.0)
SPREAD_V = (10.0, -10.0, 0.0, 0.0)

HANDSHAPES: dict[str, np.ndarray] = {
    "A": shape(FIST, FIST, FIST, FIST, T_SIDE),
    "B": shape(EXT, EXT, EXT, EXT, T_FOLDED),
    "C": shape(CURVE, CURVE, CURVE, CURVE, T_GAP),
    "D": shape(EXT, HALF, HALF, HALF, T_O),
    "E": shape(E_CURL, E_CURL, E_CURL, E_CURL, T_E),
    "F": shape(PINCH, EXT, EXT, EXT, T_PINCH, (0.0, -2.0, -10.0, -18.0)),
    "G": shape(EXT, FIST, FIST, FIST, T_G),
    "H": shape(EXT, EXT, FIST, FIST, T_OVER),
    "I": shape(FIST, FIST, FIST, EXT, T_ACROSS),
    "K": shape(EXT, (40.0, 0.0, 0.0), FIST, FIST, T_UP, (8.0, -18.0, 0.0, 0.0)),
    "L": shape(EXT, FIST, FIST, FIST, T_WIDE),
    "M": shape(OVER, OVER, OVER, FIST, T_TUCK),
    "N": shape(OVER, OVER, FIST, FIST, T_TUCK),
    "O": shape(OPEN_O, OPEN_O, OPEN_O, OPEN_O, T_O),
    "R": shape(EXT, EXT, FIST, FIST, T_OVER, (-9.0, 9.0, 0.0, 0.0)),
    "S": shape(FIST, FIST, FIST, FIST, T_ACROSS),
    "T": shape((70.0, 90.0, 40.0), FIST, FIST, FIST, T_TUCK),
    "U": shape(EXT, EXT, FIST, FIST, T_OVER),
    "V": shape(EXT, EXT, FIST, FIST, T_OVER, SPREAD_V),
    "W": shape(EXT, EXT, EXT, FIST, T_RING, (12.0, 0.0, -12.0, 0.0)),
    "X": shape(HOOK, FIST, FIST, FIST, T_OVER),
    "Y": shape(FIST, FIST, FIST, EXT, T_WIDE, (0.0, 0.0, 0.0, -25.0)),
    "1": shape(EXT, FIST, FIST, FIST, T_OVER),
    "3": shape(EXT, EXT, FIST, FIST, T_OPEN, SPREAD_V),
    "4": shape(EXT, EXT, EXT, EXT, T_FOLDED, SPREAD5),
    "5": shape(EXT, EXT, EXT, EXT, T_OPEN, SPREAD5),
    "6": shape(EXT, EXT, EXT, (60.0, 70.0, 30.0), T_RING, (12.0, 0.0, -12.0, 0.0)),
    "7": shape(EXT, EXT, (60.0, 70.0, 30.0), EXT, T_RING, (12.0, 0.0, 0.0, -18.0)),
    "8": shape(EXT, (60.0, 70.0, 30.0), EXT, EXT, T_PINCH, (12.0, 0.0, -10.0, -18.0)),
    "claw5": shape(CLAW, CLAW, CLAW, CLAW, T_OPEN, SPREAD5),
    "bentB": shape(BENT, BENT, BENT, BENT, T_FOLDED),
    "flatB": shape(EXT, EXT, EXT, EXT, T_SIDE),
    "flatO": shape(FLAT_O, FLAT_O, FLAT_O, FLAT_O, T_O),
    "bentV": shape(CLAW, CLAW, FIST, FIST, T_OVER, SPREAD_V),
    "ILY": shape(EXT, FIST, FIST, EXT, T_WIDE, (6.0, 0.0, 0.0, -20.0)),
    "open8": shape(EXT, (50.0, 10.0, 5.0), EXT, EXT, T_OPEN, SPREAD5),
    "bent1": shape((60.0, 10.0, 5.0), FIST, FIST, FIST, T_OVER),
    "rest": shape((25.0, 30.0, 20.0), (28.0, 35.0, 22.0), (30.0, 38.0, 25.0), (32.0, 40.0, 25.0),
                  (-5.0, 25.0, 10.0, 10.0, 30.0), (4.0, 0.0, -4.0, -8.0)),
}
# Letters that share another letter's handshape (they differ by orientation or movement).
ALIASES = {"J": "I", "P": "K", "Q": "G", "Z": "1", "0": "O", "2": "V", "9": "F"}
for _a, _b in ALIASES.items():
    HANDSHAPES[_a] = HANDSHAPES[_b]

# Orientations of a right hand: (finger direction, palm normal) in world space (+X image right, +Y up, +Z camera).
ORIENTATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "up_out": ((0.05, 1.0, 0.0), (0.15, 0.0, 1.0)),          # fingers up, palm to the camera (spelling default)
    "up_side": ((0.0, 1.0, 0.1), (0.9, 0.0, 0.45)),          # fingers up, palm to the midline (C, O)
    "side_in": ((1.0, 0.15, 0.3), (0.0, 0.2, -1.0)),         # fingers to the midline, palm to the signer (G, H)
    "down": ((0.2, -0.8, 0.6), (0.0, -0.6, -0.8)),           # fingers forward-down (P, Q)
    "forward": ((0.1, 0.2, 1.0), (0.9, 0.1, -0.1)),          # fingers to the camera, palm to the midline
    "palm_down": ((0.8, 0.0, 0.6), (0.0, -1.0, 0.0)),        # flat hand, palm down
    "palm_up": ((0.6, 0.1, 0.8), (0.0, 1.0, 0.0)),           # flat hand, palm up
    "up_in": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),            # fingers up, palm to the signer
    "point_in": ((0.2, 0.1, -1.0), (1.0, 0.0, 0.0)),         # fingers to the signer (touching the body)
    "across": ((1.0, 0.1, 0.0), (0.0, 0.0, 1.0)),            # fingers across the body, palm out
    "rest": ((0.3, -0.95, 0.2), (0.9, 0.0, 0.2)),            # hand hanging at rest
}

# Fingerspelling: letter -> (handshape, orientation, motion); motion names are drawn by ``spelling.py``.
SPELL_ORIENTATION = {"C": "up_side", "O": "up_side", "G": "side_in", "H": "side_in", "P": "down", "Q": "down",
                     "X": "up_side", "0": "up_side", "E": "up_out"}
SPELL_MOTION = {"J": "j", "Z": "z"}
# Punctuation has no handshape in the manual alphabet: each gets a handshape and a short motion primitive.
PUNCTUATION = {
    "-": ("1", "across", "stroke_h"), "/": ("1", "up_out", "stroke_diag"), ".": ("X", "up_out", "poke"),
    "@": ("A", "up_out", "circle"), "+": ("1", "up_out", "cross"), ":": ("1", "up_out", "double_poke"),
    "_": ("1", "across", "stroke_low"), "'": ("1", "up_out", "flick"), "#": ("H", "side_in", "zigzag"),
    "!": ("1", "up_out", "stroke_down"), "$": ("S", "up_out", "s_curve"), "%": ("O", "up_out", "stroke_diag"),
    "&": ("A", "up_out", "circle"), "(": ("C", "up_side", "arc"), ")": ("C", "up_side", "arc"),
    "*": ("5", "up_out", "flick"), ",": ("1", "up_out", "hook"), ";": ("1", "up_out", "hook"),
    "=": ("H", "across", "stroke_h"), "?": ("X", "up_out", "hook"), "[": ("C", "up_side", "stroke_down"),
    "~": ("1", "across", "zigzag"),
}


def spell_keyframe(char: str) -> tuple[str, str, str]:
    """(handshape name, orientation name, motion name) for one phrase character (a space is ``rest``)."""
    if char == " ":
        return "rest", "up_out", "pause"
    if char in PUNCTUATION:
        return PUNCTUATION[char]
    up = char.upper()
    if up not in HANDSHAPES:
        raise ValueError(f"no handshape for character {char!r}")
    return up, SPELL_ORIENTATION.get(up, "up_out"), SPELL_MOTION.get(up, "hold")


def orientation_matrix(name: str) -> np.ndarray:
    """Rotation matrix of a named right-hand orientation."""
    from aslkit.synth.kinematics import frame_from_vectors
    v, n = ORIENTATIONS[name]
    return frame_from_vectors(np.array(v, dtype=np.float64), np.array(n, dtype=np.float64))
