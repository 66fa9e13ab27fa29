"""Fingerspelling: phrases in the competition's styles, and one signer spelling one phrase.

Train phrases are addresses, phone numbers, URLs and names (as the competition's); supplemental phrases are
ordinary English sentences. Letters become handshape keyframes with coarticulated transitions, J and Z are traced,
double letters bounce or slide, spaces are short pauses, and the hand drifts away from the midline while spelling.
"""
from __future__ import annotations

import numpy as np

from aslkit.constants import CHAR_TO_INDEX
from aslkit.synth.body import Signer, Tracks, anchor, contact_offset
from aslkit.synth.handshapes import HANDSHAPES, ORIENTATIONS, spell_keyframe
from aslkit.synth.motion import Key, interpolate, key

MAX_PHRASE = 31

FIRST = ("tanya rebekah shelia deric maria james chen aisha luis olga priya tomas kenji fatima noah grace ivan "
         "lucia omar hana victor elena samuel mei diego sofia yusuf nora peter alma jonah rosa felix amara "
         "bruno ines wade clara").split()
LAST = ("bravo choi harris peralta lanier nguyen okafor silva kowalski haddad larsen murphy tanaka ortiz "
        "becker fischer moreau rossi patel khan novak ivanova mensah dubois garcia walsh reyes kim lopez "
        "schmidt grant hughes santos young baker").split()
STREET = ("creekhouse william franklin kerwood springhill lloyd butler fire water bayshore maple cedar oak "
          "pine lakeview hillcrest sunset river meadow willow harbor highland ridge forest orchard prairie "
          "granite summit juniper magnolia canyon aspen birch").split()
STREET_TYPE = ("road street avenue lane circle drive court boulevard way place trail ranch terrace parkway "
               "loop path").split()
DIRECTION = "north south east west northeast northwest southeast southwest".split()
CITY = ("yonkers new york|fort worth tx|raleigh north carolina|surprise az|austin texas|salem oregon|"
        "tulsa ok|boise idaho|madison wi|reno nevada|akron ohio|provo utah|dover de|eugene or|"
        "toledo ohio|macon ga|fresno ca|mobile al").split("|")
TLD = ".com .org .net .fi .nl .de .io .co .uk .us .info".split()
SYLL = "ka ri to na me lo su vi de ra po li ne ta mi ko sa gu fe ho ba zu qi ya".split()
SUBJ = ("the dog|my friend|our teacher|the old man|a small child|every student|the crowd|she|he|they|we|"
        "the doctor|my sister|the pilot").split("|")
VERB = ("found|painted|wanted|carried|forgot|watched|cleaned|bought|opened|fixed|shared|moved|lost|"
        "visited|ordered").split("|")
OBJ = ("the red box|a new car|the kitchen door|three apples|the garden|an old map|the lights|her keys|"
       "his jacket|the window|a quiet room|the morning paper|two tickets|the blue bike").split("|")
TAIL = ("|| yesterday| today| again| at night| after lunch| very quickly| before dawn| on sunday| with care|"
        " for fun").split("|")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _word(rng: np.random.Generator, lo: int = 2, hi: int = 4) -> str:
    return "".join(rng.choice(SYLL, size=int(rng.integers(lo, hi + 1))))


def _address(rng: np.random.Generator) -> str:
    num = str(int(rng.integers(1, 10 ** int(rng.integers(1, 6)))))
    style = rng.integers(0, 5)
    if style == 0:
        return f"{num} {rng.choice(STREET)}"
    if style == 1:
        return f"{num} {rng.choice(STREET)} {rng.choice(STREET_TYPE)}"
    if style == 2:
        return f"{num} {rng.choice(DIRECTION)} {_ordinal(int(rng.integers(1, 700)))} {rng.choice(STREET_TYPE)}"
    if style == 3:
        return f"{num} {rng.choice(FIRST)} {rng.choice(LAST)}"
    return str(rng.choice(CITY))


def _phone(rng: np.random.Generator) -> str:
    d = lambda n: "".join(str(x) for x in rng.integers(0, 10, n))  # noqa: E731
    if rng.random() < 0.6:
        return f"{d(3)}-{d(3)}-{d(4)}"
    groups = [d(int(rng.integers(2, 5))) for _ in range(int(rng.integers(2, 5)))]
    return f"+{int(rng.integers(1, 400))}-" + "-".join(groups)


def _url(rng: np.random.Generator) -> str:
    host = _word(rng) + (str(int(rng.integers(0, 100))) if rng.random() < 0.2 else "") + str(rng.choice(TLD))
    if rng.random() < 0.4:
        host = ("https://www." if rng.random() < 0.3 else "www.") + host
    if rng.random() < 0.6:
        sep = str(rng.choice(["-", "_", ""]))
        host += "/" + _word(rng, 1, 3) + (sep + _word(rng, 1, 2) if sep else "")
    return host


def _name(rng: np.random.Generator) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _sentence(rng: np.random.Generator) -> str:
    return f"{rng.choice(SUBJ)} {rng.choice(VERB)} {rng.choice(OBJ)}{rng.choice(TAIL)}"


def random_phrase(rng: np.random.Generator, supplemental: bool = False) -> str:
    """One phrase of at most 31 characters from the 59-character map, in the train or supplemental style."""
    makers = (_sentence,) if supplemental else (_address, _address, _phone, _url, _url, _name)
    while True:
        phrase = makers[int(rng.integers(0, len(makers)))](rng)
        if 1 <= len(phrase) <= MAX_PHRASE and all(c in CHAR_TO_INDEX for c in phrase):
            return phrase


# ----------------------------------------------------------------------------------------------------------------
# Performance
# ----------------------------------------------------------------------------------------------------------------
def _motion_offsets(motion: str, amp: float) -> list[tuple[float, np.ndarray]]:
    """Extra (fraction of the hold, offset cm) keyframes that trace a letter's or symbol's movement."""
    a = amp
    paths = {
        "j": [(0.3, (0, -4, 0)), (0.6, (2, -6, 1)), (1.0, (4, -4, 2))],
        "z": [(0.25, (6, 0, 0)), (0.6, (0, -6, 0)), (1.0, (6, -6, 0))],
        "stroke_h": [(1.0, (-a, 0, 0))], "stroke_diag": [(1.0, (a * 0.7, -a * 0.7, 0))],
        "stroke_down": [(1.0, (0, -a, 0))], "stroke_low": [(0.3, (0, -3, 0)), (1.0, (-a, -3, 0))],
        "poke": [(0.5, (0, 0, 4)), (1.0, (0, 0, 0))],
        "double_poke": [(0.25, (0, 0, 3)), (0.5, (0, 0, 0)), (0.75, (0, -2, 3)), (1.0, (0, -2, 0))],
        "circle": [(0.25, (-2, 2, 0)), (0.5, (-4, 0, 0)), (0.75, (-2, -2, 0)), (1.0, (0, 0, 0))],
        "cross": [(0.4, (0, -a, 0)), (0.6, (a / 2, -a / 2, 0)), (1.0, (-a / 2, -a / 2, 0))],
        "flick": [(0.5, (0, 2, 2)), (1.0, (0, 0, 0))], "hook": [(0.5, (2, -2, 0)), (1.0, (0, -4, 0))],
        "zigzag": [(0.33, (-3, 2, 0)), (0.66, (-6, -2, 0)), (1.0, (-9, 2, 0))],
        "s_curve": [(0.33, (-2, -2, 0)), (0.66, (2, -4, 0)), (1.0, (0, -6, 0))],
        "arc": [(0.5, (-2, 3, 0)), (1.0, (0, 6, 0))],
    }
    return [(f, np.array(o, dtype=np.float64)) for f, o in paths.get(motion, [])]


J_END = ((0.3, 0.9, 0.1), (0.95, 0.0, -0.3))          # J ends with the palm turned in (supination)


def spelling_keys(phrase: str, signer: Signer, rng: np.random.Generator, fpc: float,
                  start: float) -> tuple[list[Key], float]:
    """Keyframes of the dominant hand (index-finger MCP as reference) spelling ``phrase``; returns keys, end time."""
    base = anchor(signer, "spell") + signer.location_bias + rng.normal(0, 1.5, 3)
    drift = np.array([-1.2, -0.2, 0.0]) * rng.uniform(0.3, 1.2)
    bias = signer.shape_bias + rng.normal(0, 3, signer.shape_bias.shape)
    keys: list[Key] = []
    t = start
    prev = None
    for i, ch in enumerate(phrase):
        dur = max(1.0, rng.gamma(6.0, fpc / 6.0))
        shape_name, orient, motion = spell_keyframe(ch)
        pos = base + drift * i + rng.normal(0, 0.4, 3)
        if ch == " ":
            pos = pos + np.array([0.0, -3.0, 0.0])
        trans = dur * rng.uniform(0.25, 0.45)
        noise = bias + rng.normal(0, 4, bias.shape)
        if ch == prev and ch != " ":
            bounce = np.array([0.0, -2.5, 0.0]) if rng.random() < 0.6 else np.array([-3.0, 0.0, 0.0])
            keys.append(key(t + trans * 0.5, pos + bounce, HANDSHAPES[shape_name] + noise, orient))
        keys.append(key(t + trans, pos, HANDSHAPES[shape_name] + noise, orient))
        hold = dur - trans
        for frac, off in _motion_offsets(motion, 6.0):
            o = ORIENTATIONS[orient]
            if motion == "j" and frac == 1.0:
                o = J_END
            keys.append(key(t + trans + frac * hold * 0.9, pos + off, HANDSHAPES[shape_name] + noise, o))
        if not _motion_offsets(motion, 6.0):
            keys.append(key(t + dur * 0.92, pos + rng.normal(0, 0.3, 3), HANDSHAPES[shape_name] + noise, orient))
        t += dur
        prev = ch
    return keys, t


def perform_phrase(phrase: str, signer: Signer, rng: np.random.Generator, corrupt: bool = False) -> Tracks:
    """Per-frame tracks of ``signer`` spelling ``phrase`` (~9 frames per character over the dataset).

    A corrupt recording (a small share of the real data) keeps only a fraction of the frames, in a block or strided,
    so that it has far fewer than 4 frames per character.
    """
    fpc = 8.3 / signer.speed
    lead = rng.uniform(0, 12)
    spell, end = spelling_keys(phrase, signer, rng, fpc, lead)
    T = int(np.ceil(end + rng.uniform(0, 12)))
    rest = signer.rest_position()
    keys = [key(0, rest, "rest", "rest", signer.shape_bias)] if lead > 3 else []
    keys += spell
    if T - end > 3:
        keys.append(key(T - 1, rest, "rest", "rest", signer.shape_bias))
    tl = interpolate(keys, T)
    wrist = tl.wrist_target - contact_offset(tl.shape, tl.rot, signer.hand, 5)
    nd_rest = signer.rest_position(rng)
    nd = interpolate([key(0, nd_rest, "rest", "rest", signer.shape_bias)], T)
    nd_wrist = nd.wrist_target - contact_offset(nd.shape, nd.rot, signer.hand, 9)
    t = np.arange(T)
    head = signer.head_pose + np.deg2rad(2.0) * np.sin(t[:, None] / rng.uniform(8, 20, 3) + rng.uniform(0, 6, 3))
    jaw = np.abs(rng.normal(0.3, 0.15)) * (0.5 + 0.5 * np.sin(t / rng.uniform(2, 4)))   # mouthing while spelling
    tracks = Tracks(wrist, tl.shape, tl.rot, nd_wrist, nd.shape, nd.rot, head, jaw)
    if corrupt:
        tracks = _corrupt(tracks, rng, len(phrase))
    return tracks


def _corrupt(tracks: Tracks, rng: np.random.Generator, n_chars: int) -> Tracks:
    """Keep far fewer than 4 frames per character: a short block, or every k-th frame."""
    T = tracks.n_frames
    keep_n = int(np.clip(rng.uniform(0.05, 3.5) * n_chars, 1, max(1, T // 3)))
    if rng.random() < 0.5:
        start = int(rng.integers(0, max(1, T - keep_n)))
        idx = np.arange(start, start + keep_n)
    else:
        idx = np.linspace(0, T - 1, keep_n).round().astype(int)
    fields = ("dom_wrist", "dom_shape", "dom_rot", "nd_wrist", "nd_shape", "nd_rot", "head", "jaw")
    return Tracks(*(getattr(tracks, f)[idx] for f in fields), nd_active=tracks.nd_active)
