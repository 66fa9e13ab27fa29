"""The 250 asl-signs glosses as sign templates, and the performance of one sign by one signer.

A template is (hands, 1-3 handshapes, orientation, location, movement, repetitions, contact point, mouth). Some
templates follow the real ASL sign; the rest are drawn once from a fixed lexicon seed, a share of them as minimal
pairs of an earlier sign (one attribute changed), so that confusable signs exist as in the real vocabulary.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from aslkit import constants as C
from aslkit.synth.body import Signer, Tracks, anchor, contact_offset
from aslkit.synth.handshapes import HANDSHAPES
from aslkit.synth.kinematics import mirror_x
from aslkit.synth.motion import Key, flex_wrist, interpolate, key, twist

LEXICON_SEED = 20230223    # fixed: every generated dataset shares one lexicon
HANDS = ("one", "sym", "alt", "base")
MOVEMENTS = ("hold", "tap", "up", "down", "forward", "out", "toward_mid", "brush_down", "circle_v", "circle_h",
             "arc", "shake", "zigzag", "wiggle", "twist", "nod", "open_close")
LOCATIONS = ("neutral", "neutral_high", "neutral_low", "chest", "chest_dom", "stomach", "shoulder_dom", "side",
             "forehead", "eye", "eyes", "nose", "cheek", "mouth", "lips", "chin", "ear", "temple", "under_eye",
             "neck", "top_head", "nd_hand")
CONTACTS = {"index": 8, "middle": 12, "thumb": 4, "palm": 9, "pinky": 20, "knuckles": 6}


@dataclass(frozen=True)
class SignTemplate:
    """How a sign is made (a right-dominant signer's view; the generator mirrors for left-dominant signers)."""

    gloss: str
    hands: str = "one"
    shapes: tuple[str, ...] = ("B",)
    nd_shape: str = "B"
    orientation: str = "up_out"
    location: str = "neutral"
    movement: str = "hold"
    reps: int = 1
    contact: str = "palm"
    amplitude: float = 8.0
    jaw: float = 0.0
    head: str = "none"          # "nod", "shake" or "none"

    def attributes(self) -> tuple:
        """Everything but the gloss (two signs must differ here)."""
        return dataclasses.astuple(self)[1:]


def _t(gloss, hands, shapes, orientation, location, movement, reps=1, contact="palm", amplitude=8.0, jaw=0.0,
       head="none", nd_shape="B") -> SignTemplate:
    return SignTemplate(gloss, hands, tuple(shapes.split()), nd_shape, orientation, location, movement, reps,
                        contact, amplitude, jaw, head)


# Templates modelled on the real signs (simplified); minimal pairs such as mom/dad and grandma/grandpa are kept.
CURATED = [
    _t("mom", "one", "5", "up_side", "chin", "tap", 2, "thumb"),
    _t("dad", "one", "5", "up_side", "forehead", "tap", 2, "thumb"),
    _t("grandma", "one", "5", "up_side", "chin", "arc", 2, "thumb", 10),
    _t("grandpa", "one", "5", "up_side", "forehead", "arc", 2, "thumb", 10),
    _t("aunt", "one", "A", "up_out", "cheek", "shake", 2, "thumb", 4),
    _t("uncle", "one", "U", "up_out", "temple", "shake", 2, "index", 4),
    _t("boy", "one", "B flatO", "point_in", "forehead", "open_close", 2, "index"),
    _t("girl", "one", "A", "up_side", "cheek", "brush_down", 1, "thumb", 5),
    _t("man", "one", "flatB", "up_side", "forehead", "down", 1, "thumb", 20),
    _t("eye", "one", "1", "point_in", "eye", "tap", 2, "index"),
    _t("nose", "one", "1", "point_in", "nose", "tap", 2, "index"),
    _t("ear", "one", "1", "up_out", "ear", "shake", 2, "index", 2),
    _t("mouth", "one", "1", "point_in", "mouth", "circle_v", 1, "index", 4, jaw=0.6),
    _t("lips", "one", "1", "point_in", "lips", "circle_v", 1, "index", 3),
    _t("tooth", "one", "X", "point_in", "mouth", "shake", 2, "index", 3, jaw=0.8),
    _t("tongue", "one", "1", "point_in", "mouth", "tap", 2, "index", jaw=1.5),
    _t("chin", "one", "1", "point_in", "chin", "tap", 2, "index"),
    _t("cheek", "one", "1", "point_in", "cheek", "tap", 2, "index"),
    _t("hair", "one", "F", "up_side", "temple", "shake", 2, "thumb", 3),
    _t("head", "one", "bentB", "point_in", "temple", "down", 1, "middle", 8),
    _t("shhh", "one", "1", "up_out", "lips", "hold", 1, "index", head="none"),
    _t("think", "one", "1", "point_in", "forehead", "tap", 1, "index"),
    _t("water", "one", "W", "up_side", "chin", "tap", 2, "index"),
    _t("milk", "one", "C S", "up_side", "neutral", "open_close", 3, "palm"),
    _t("drink", "one", "C", "up_side", "mouth", "nod", 1, "thumb"),
    _t("food", "one", "flatO", "point_in", "mouth", "tap", 2, "index"),
    _t("sleep", "one", "5 flatO", "up_in", "eyes", "down", 1, "middle", 10),
    _t("hello", "one", "flatB", "up_out", "forehead", "out", 1, "index", 14),
    _t("thankyou", "one", "flatB", "up_in", "chin", "forward", 1, "middle", 16),
    _t("please", "one", "flatB", "up_in", "chest", "circle_v", 2, "palm", 8),
    _t("happy", "one", "flatB", "up_in", "chest", "brush_down", 2, "palm", 8),
    _t("sad", "sym", "5", "up_in", "eyes", "down", 1, "middle", 14),
    _t("cry", "alt", "1", "point_in", "under_eye", "down", 2, "index", 8),
    _t("blue", "one", "B", "up_out", "neutral_high", "twist", 2),
    _t("yellow", "one", "Y", "up_out", "neutral_high", "twist", 2),
    _t("green", "one", "G", "up_side", "neutral_high", "twist", 2),
    _t("red", "one", "1", "point_in", "lips", "brush_down", 2, "index", 4),
    _t("black", "one", "1", "across", "forehead", "out", 1, "index", 8),
    _t("white", "one", "5 flatO", "up_in", "chest", "forward", 1, "palm", 10),
    _t("orange", "one", "C S", "up_side", "chin", "open_close", 2, "palm"),
    _t("brown", "one", "B", "up_side", "cheek", "down", 1, "index", 6),
    _t("yes", "one", "S", "up_out", "neutral", "nod", 3, head="nod"),
    _t("no", "one", "U flatO", "up_side", "neutral", "open_close", 2, head="shake"),
    _t("cat", "sym", "F", "up_side", "cheek", "out", 2, "index", 6),
    _t("dog", "one", "flatB", "palm_down", "neutral_low", "tap", 2),
    _t("bird", "one", "G flatO", "forward", "mouth", "open_close", 3, "index"),
    _t("duck", "one", "3 flatO", "forward", "mouth", "open_close", 3, "index"),
    _t("cow", "one", "Y", "up_out", "temple", "twist", 2, "thumb"),
    _t("horse", "one", "U", "up_out", "temple", "nod", 2, "thumb"),
    _t("pig", "one", "bentB", "palm_down", "chin", "nod", 2, "knuckles"),
    _t("elephant", "one", "bentB", "palm_down", "nose", "arc", 1, "index", 14),
    _t("mouse", "one", "1", "up_out", "nose", "shake", 2, "index", 3),
    _t("wolf", "one", "claw5 flatO", "point_in", "nose", "forward", 1, "middle", 10),
    _t("lion", "one", "claw5", "palm_down", "top_head", "shake", 2, "palm", 6),
    _t("tiger", "sym", "claw5", "up_in", "cheek", "out", 2, "middle", 6),
    _t("giraffe", "one", "C", "up_side", "neck", "up", 1, "palm", 12),
    _t("frog", "one", "S V", "up_in", "chin", "open_close", 2, "knuckles"),
    _t("fish", "one", "flatB", "forward", "neutral", "shake", 3, "palm", 5),
    _t("owl", "sym", "O", "up_out", "eyes", "twist", 2, "index"),
    _t("bee", "one", "1", "point_in", "cheek", "tap", 1, "index"),
    _t("bug", "one", "3", "up_side", "nose", "nod", 2, "thumb"),
    _t("rain", "sym", "claw5", "palm_down", "neutral_high", "down", 2, "palm", 10),
    _t("snow", "sym", "5", "palm_down", "neutral_high", "down", 1, "palm", 14, nd_shape="5"),
    _t("book", "sym", "flatB", "palm_up", "neutral", "twist", 1),
    _t("cut", "base", "V", "forward", "nd_hand", "out", 2, "index", nd_shape="flatB"),
    _t("scissors", "one", "V", "forward", "neutral", "open_close", 3, "index"),
    _t("time", "base", "X", "palm_down", "nd_hand", "tap", 2, "index", nd_shape="S"),
    _t("wait", "sym", "5", "palm_up", "neutral", "wiggle", 3),
    _t("callonphone", "one", "Y", "up_side", "ear", "hold", 1, "thumb"),
    _t("icecream", "one", "S", "up_side", "mouth", "down", 2, "thumb", 6),
    _t("hungry", "one", "C", "point_in", "chest", "down", 1, "index", 12),
    _t("thirsty", "one", "1", "point_in", "neck", "down", 1, "index", 8),
]


def _random_template(rng: np.random.Generator, gloss: str) -> SignTemplate:
    """A procedural sign: weighted random attributes."""
    pool = ["B", "5", "1", "A", "S", "C", "O", "flatO", "bentB", "claw5", "V", "X", "Y", "L", "F", "ILY", "open8",
            "bentV", "H", "K", "R", "W", "I", "D", "E", "G", "3", "flatB", "bent1", "U", "M", "N", "T"]
    weights = np.array([8, 8, 8, 5, 5, 4, 4, 5, 3, 3, 4, 2, 2, 3, 2, 1, 2, 2, 2, 1, 1, 1, 1, 2, 1, 2, 2, 5, 2, 2, 1, 1,
                        1], dtype=float)
    n_shapes = rng.choice([1, 2, 3], p=[0.6, 0.33, 0.07])
    shapes = tuple(rng.choice(pool, size=n_shapes, replace=False, p=weights / weights.sum()))
    hands = str(rng.choice(HANDS, p=[0.55, 0.2, 0.1, 0.15]))
    loc_w = np.array([12, 5, 4, 6, 3, 2, 2, 2, 4, 2, 1, 2, 3, 3, 2, 4, 2, 2, 1, 1, 1, 0], dtype=float)
    location = "nd_hand" if hands == "base" else str(rng.choice(LOCATIONS, p=loc_w / loc_w.sum()))
    movement = str(rng.choice(MOVEMENTS))
    if movement == "open_close" and len(shapes) == 1:
        shapes = shapes + (str(rng.choice(["flatO", "S", "5", "A", "O"])),)
    return SignTemplate(
        gloss=gloss, hands=hands, shapes=shapes, nd_shape=str(rng.choice(["flatB", "B", "S", "5", "1", "C"])),
        orientation=str(rng.choice(["up_out", "up_side", "side_in", "forward", "palm_down", "palm_up", "up_in",
                                    "point_in", "across"])),
        location=location, movement=movement, reps=int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15])),
        contact=str(rng.choice(list(CONTACTS), p=[0.35, 0.1, 0.1, 0.35, 0.05, 0.05])),
        amplitude=float(rng.choice([4.0, 6.0, 8.0, 12.0, 16.0])),
        jaw=float(rng.choice([0.0, 0.0, 0.0, 0.8])), head=str(rng.choice(["none"] * 8 + ["nod", "shake"])))


def _minimal_pair(rng: np.random.Generator, base: SignTemplate, gloss: str) -> SignTemplate:
    """A copy of ``base`` that differs in exactly one attribute."""
    other = _random_template(rng, gloss)
    field = str(rng.choice(["shapes", "location", "movement", "orientation", "hands", "reps"]))
    if field == "location" and base.hands == "base":
        field = "shapes"
    if field == "hands":
        value = "sym" if base.hands == "one" else "one"
        loc = base.location if base.location != "nd_hand" else "neutral"
        return dataclasses.replace(base, gloss=gloss, hands=value, location=loc)
    if field == "reps":
        return dataclasses.replace(base, gloss=gloss, reps=base.reps % 3 + 1)
    value = getattr(other, field)
    if field == "location" and value == "nd_hand":
        value = "neutral"
    return dataclasses.replace(base, gloss=gloss, **{field: value})


@lru_cache(maxsize=1)
def lexicon() -> dict[str, SignTemplate]:
    """Template of each of the 250 real glosses (fixed for all datasets, pairwise different)."""
    rng = np.random.default_rng(LEXICON_SEED)
    out: dict[str, SignTemplate] = {}
    seen: set[tuple] = set()
    curated = {t.gloss: t for t in CURATED}
    for gloss in C.signs():
        if gloss in curated:
            out[gloss] = curated[gloss]
            seen.add(curated[gloss].attributes())
    for gloss in C.signs():
        if gloss in out:
            continue
        while True:
            if out and rng.random() < 0.35:
                base = out[str(rng.choice(sorted(out)))]
                tpl = _minimal_pair(rng, base, gloss)
            else:
                tpl = _random_template(rng, gloss)
            if tpl.attributes() not in seen:
                break
        out[gloss] = tpl
        seen.add(tpl.attributes())
    return {g: out[g] for g in C.signs()}


# ----------------------------------------------------------------------------------------------------------------
# Performance
# ----------------------------------------------------------------------------------------------------------------
def _tri(s: np.ndarray) -> np.ndarray:
    """Triangle wave with period 1 in [0, 1]."""
    return 1 - np.abs(2 * (s % 1.0) - 1)


def path_offset(movement: str, s: np.ndarray, amp: float, reps: int) -> np.ndarray:
    """Offset ``[n, 3]`` (cm) of the hand along a movement primitive at progress ``s`` in [0, 1]."""
    z = np.zeros_like(s)
    r = max(reps, 1)
    ring = 2 * np.pi * r * s
    paths = {
        "hold": (z, z, z),
        "tap": (z, z, 2.5 * (0.5 - 0.5 * np.cos(ring))),
        "up": (z, amp * s, z), "down": (z, -amp * s, z), "forward": (z, 0.3 * amp * s, amp * s),
        "out": (-amp * s, z, 0.2 * amp * s), "toward_mid": (amp * s, z, z),
        "brush_down": (z, -amp * _tri(r * s), 0.5 * np.sin(ring)),
        "circle_v": (0.5 * amp * (np.cos(ring) - 1), 0.5 * amp * np.sin(ring), z),
        "circle_h": (0.5 * amp * (np.cos(ring) - 1), z, 0.5 * amp * np.sin(ring)),
        "arc": (-0.3 * amp * s, 0.3 * amp * np.abs(np.sin(np.pi * r * s)), amp * s),
        "shake": (0.35 * amp * np.sin(2 * np.pi * max(r, 2) * s), z, z),
        "zigzag": (-amp * s, 0.3 * amp * (_tri(3 * s) - 0.5), z),
    }
    x, y, zz = paths.get(movement, paths["hold"])
    return np.stack([x, y, zz], -1)


def sign_length(rng: np.random.Generator, signer: Signer, tpl: SignTemplate) -> int:
    """Frames of one recording: log-normal, median ≈ 23 over the dataset, longer for repeated/complex signs."""
    complexity = 1.0 + 0.12 * (tpl.reps - 1) + 0.1 * (len(tpl.shapes) - 1) + (0.1 if tpl.hands != "one" else 0.0)
    n = np.exp(np.log(20.0 * complexity / signer.speed) + rng.normal(0, 0.95))
    return int(np.clip(round(n), 2, 537))


def _shape_schedule(tpl: SignTemplate, s: np.ndarray) -> np.ndarray:
    """Handshape vectors ``[n, P]`` over the sign's progress (held shapes, eased changes, open/close cycles)."""
    shapes = np.stack([HANDSHAPES[n] for n in tpl.shapes])
    if tpl.movement == "open_close" and len(shapes) >= 2:
        w = 0.5 - 0.5 * np.cos(2 * np.pi * max(tpl.reps, 1) * s - 0.0)
        return shapes[0] * (1 - w[:, None]) + shapes[1] * w[:, None]
    k = len(shapes)
    pos = np.clip(s * k - 0.5, 0, k - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, k - 1)
    w = pos - i0
    w = (w ** 3 * (10 - 15 * w + 6 * w ** 2))[:, None]
    return shapes[i0] * (1 - w) + shapes[i1] * w


def _hand_track(tpl: SignTemplate, signer: Signer, rng: np.random.Generator, T: int, lead: int, core: int,
                loc: np.ndarray, phase: float, shape_noise: np.ndarray, from_rest: bool, to_rest: bool,
                amp: float, orientation: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Target position, handshape and rotation ``[T, ...]`` of one active hand (right-hand coordinates)."""
    rest_pos = signer.rest_position(rng)
    t = np.arange(T, dtype=np.float64)
    end = lead + core - 1
    s = np.clip((t - lead) / max(core - 1, 1), 0, 1)
    s_phase = (s + phase) % 1.0 if phase else s
    offs = path_offset(tpl.movement, s_phase, amp, tpl.reps)
    shape_core = _shape_schedule(tpl, s_phase) + shape_noise
    keys: list[Key] = []
    if from_rest and lead > 0:
        keys.append(key(0, rest_pos, "rest", "rest", signer.shape_bias))
    keys.append(key(lead, loc + offs[min(lead, T - 1)], shape_core[min(lead, T - 1)], orientation))
    keys.append(key(end, loc + offs[min(end, T - 1)], shape_core[min(end, T - 1)], orientation))
    if to_rest and end < T - 1:
        keys.append(key(T - 1, rest_pos, "rest", "rest", signer.shape_bias))
    tl = interpolate(keys, T)
    in_core = (t >= lead) & (t <= end)
    pos = np.where(in_core[:, None], loc + offs, tl.wrist_target)
    shape = np.where(in_core[:, None], shape_core, tl.shape)
    rot = tl.rot
    r = max(tpl.reps, 1)
    if tpl.movement == "twist":
        rot = twist(rot, np.where(in_core, 0.9 * np.sin(2 * np.pi * r * s_phase), 0.0))
    elif tpl.movement == "nod":
        rot = flex_wrist(rot, np.where(in_core, 0.5 * np.sin(2 * np.pi * r * s_phase), 0.0))
    elif tpl.movement == "wiggle":
        wig = 15 * np.sin(2 * np.pi * (2 * r * s_phase[:, None] + np.arange(4)[None, :] * 0.25))
        shape = shape.copy()
        shape[:, [0, 4, 8, 12]] += np.where(in_core[:, None], wig, 0.0)
    return pos, shape, rot


def perform_sign(tpl: SignTemplate, signer: Signer, rng: np.random.Generator, T: int | None = None) -> Tracks:
    """Per-frame tracks of one recording of ``tpl`` by ``signer`` (right-dominant coordinates)."""
    T = sign_length(rng, signer, tpl) if T is None else T
    lead = int(round(rng.uniform(0.0, 0.35) * T))
    tail = int(round(rng.uniform(0.0, 0.35) * T))
    core = max(T - lead - tail, min(T, 2))
    lead = min(lead, T - core)
    from_rest, to_rest = rng.random() < 0.6, rng.random() < 0.6
    amp = tpl.amplitude * signer.amplitude * float(np.exp(rng.normal(0, 0.15)))
    noise = signer.shape_bias + rng.normal(0, 4, signer.shape_bias.shape)
    loc = anchor(signer, tpl.location) + signer.location_bias + rng.normal(0, 1.2, 3)
    # Many recorders hold the phone in the other hand: two-handed signs are then made with one hand only.
    hands = tpl.hands if signer.nd_free else "one"
    two = hands in ("sym", "alt")
    if two and abs(loc[0]) < 6:
        loc = loc + np.array([-6.0, 0.0, 0.0])
    nd_rest = signer.rest_position(rng)
    if hands == "base":
        nd_pos = mirror_x(anchor(signer, "nd_hand")) + rng.normal(0, 1.0, 3)
        nd_orient = "palm_up" if tpl.nd_shape in ("flatB", "B", "5") else "up_side"
        nd_shape_v = HANDSHAPES[tpl.nd_shape] + noise
        nd = _static_hand(signer, T, lead, core, nd_pos, nd_shape_v, nd_orient, nd_rest)
        palm = mirror_x(nd[0] + contact_offset(nd[1], nd[2], signer.hand, 9))
        loc = palm[min(lead + core // 2, T - 1)] + np.array([0.0, 2.5, 1.5])
    dom_pos, dom_shape, dom_rot = _hand_track(tpl, signer, rng, T, lead, core, loc, 0.0, noise, from_rest, to_rest,
                                              amp, tpl.orientation)
    if two:
        nd = _hand_track(tpl, signer, rng, T, lead, core, loc, 0.5 if tpl.hands == "alt" else 0.0,
                         noise + rng.normal(0, 3, noise.shape), from_rest, to_rest, amp, tpl.orientation)
    elif hands == "one":
        nd = _static_hand(signer, T, 0, T, nd_rest, HANDSHAPES["rest"] + noise, "rest", nd_rest)
    dom_wrist = dom_pos - contact_offset(dom_shape, dom_rot, signer.hand, CONTACTS[tpl.contact])
    nd_contact = 9 if hands in ("one", "base") else CONTACTS[tpl.contact]
    nd_wrist = nd[0] - contact_offset(nd[1], nd[2], signer.hand, nd_contact)
    return Tracks(dom_wrist, dom_shape, dom_rot, nd_wrist, nd[1], nd[2], _head(tpl, signer, rng, T, lead, core),
                  _jaw(tpl, rng, T, lead, core), nd_active=hands != "one")


def _static_hand(signer: Signer, T: int, lead: int, core: int, pos: np.ndarray, shape: np.ndarray, orientation: str,
                 rest: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A hand that moves from rest to ``pos``, holds during the sign, and returns."""
    keys = [key(0, rest, "rest", "rest", signer.shape_bias), key(max(lead, 0), pos, shape, orientation),
            key(min(lead + core - 1, T - 1), pos, shape, orientation), key(T - 1, rest, "rest", "rest")]
    if lead == 0 and core >= T:
        keys = [key(0, pos, shape, orientation)]
    tl = interpolate(keys, T)
    return tl.wrist_target, tl.shape, tl.rot


def _head(tpl: SignTemplate, signer: Signer, rng: np.random.Generator, T: int, lead: int, core: int) -> np.ndarray:
    """Head yaw/pitch/roll per frame: the signer's habit, slow sway, and a nod or shake for some signs."""
    t = np.arange(T)
    sway = np.deg2rad(2.0) * np.sin(t[:, None] / rng.uniform(6, 15, 3) + rng.uniform(0, 6, 3))
    head = signer.head_pose + sway
    s = np.clip((t - lead) / max(core - 1, 1), 0, 1)
    active = (t >= lead) & (t < lead + core)
    if tpl.head == "nod":
        head[:, 1] += np.where(active, np.deg2rad(8) * np.sin(2 * np.pi * 2 * s), 0)
    elif tpl.head == "shake":
        head[:, 0] += np.where(active, np.deg2rad(12) * np.sin(2 * np.pi * 2 * s), 0)
    return head


def _jaw(tpl: SignTemplate, rng: np.random.Generator, T: int, lead: int, core: int) -> np.ndarray:
    """Jaw opening (cm) per frame: mouthing during the sign, small movements otherwise."""
    t = np.arange(T)
    base = np.abs(rng.normal(0.15, 0.1)) * (0.5 + 0.5 * np.sin(t / rng.uniform(2, 5)))
    active = (t >= lead) & (t < lead + core)
    return base + np.where(active, tpl.jaw, 0.0)
