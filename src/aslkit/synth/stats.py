"""Statistics of landmark sequences, the real data's numbers (docs/synthetic_data.md §4), and samples to compare."""
from __future__ import annotations

import numpy as np
import pandas as pd

from aslkit import constants as C
from aslkit.synth.body import render, sample_signer
from aslkit.synth.signs import lexicon, perform_sign
from aslkit.synth.spelling import perform_phrase, random_phrase

# Whole-dataset figures of the real competitions (share of frames for the NaN rates).
REAL_ISLR = {"frames_median": 22.0, "frames_mean": 37.9, "left_hand_nan": 0.6964, "right_hand_nan": 0.6912,
             "hand_nan_mean": 0.6938, "face_nan": 0.0068, "pose_nan": 0.0}
REAL_FS = {"frames_mean": 159.7, "frames_median": 148.0, "frames_per_char_mean": 9.02,
           "frames_per_char_median": 8.86, "dominant_hand_nan": 0.52, "other_hand_nan": 0.89, "any_hand": 0.56,
           "corrupt_share": 0.078, "phrase_len_mean": 17.8}


def sequence_stats(seqs: list[np.ndarray]) -> pd.DataFrame:
    """Per sequence ``[T, 543, 3]``: frames and the share of frames where each part is missing / any hand present."""
    rows = []
    for x in seqs:
        miss = {p: np.isnan(x[:, C.part_range(p)[0], 0]) for p in C.PART_NAMES}
        rows.append({"frames": len(x), "face_nan": miss["face"].mean(), "left_hand_nan": miss["left_hand"].mean(),
                     "right_hand_nan": miss["right_hand"].mean(), "pose_nan": miss["pose"].mean(),
                     "any_hand": (~miss["left_hand"] | ~miss["right_hand"]).mean(),
                     "both_hands": (~miss["left_hand"] & ~miss["right_hand"]).mean()})
    return pd.DataFrame(rows)


def _frame_weighted(df: pd.DataFrame, col: str) -> float:
    return float(np.average(df[col], weights=df["frames"]))


def summarize_islr(df: pd.DataFrame) -> dict[str, float]:
    """Dataset-level figures comparable with ``REAL_ISLR`` (NaN rates weighted by frames)."""
    out = {"frames_median": float(df["frames"].median()), "frames_mean": float(df["frames"].mean())}
    for col in ("left_hand_nan", "right_hand_nan", "face_nan", "pose_nan"):
        out[col] = _frame_weighted(df, col)
    out["hand_nan_mean"] = (out["left_hand_nan"] + out["right_hand_nan"]) / 2
    return out


def summarize_fs(df: pd.DataFrame, phrases: list[str], dominant: list[str]) -> dict[str, float]:
    """Dataset-level figures comparable with ``REAL_FS``; ``dominant`` is each sequence's signer's dominant hand."""
    df = df.assign(chars=[len(p) for p in phrases], dominant=dominant)
    df["fpc"] = df["frames"] / df["chars"]
    dom_nan = np.where(df["dominant"] == "right", df["right_hand_nan"], df["left_hand_nan"])
    other_nan = np.where(df["dominant"] == "right", df["left_hand_nan"], df["right_hand_nan"])
    ok = df["fpc"] >= 4
    return {"frames_mean": float(df["frames"].mean()), "frames_median": float(df["frames"].median()),
            "frames_per_char_mean": float(df.loc[ok, "fpc"].mean()),
            "frames_per_char_median": float(df.loc[ok, "fpc"].median()),
            "dominant_hand_nan": float(np.average(dom_nan, weights=df["frames"])),
            "other_hand_nan": float(np.average(other_nan, weights=df["frames"])),
            "any_hand": _frame_weighted(df, "any_hand"), "corrupt_share": float((~ok).mean()),
            "phrase_len_mean": float(df["chars"].mean())}


def sample_islr(n_signers: int, per_signer: int, seed: int = 0) -> tuple[list[np.ndarray], list[str], list[int]]:
    """Synthetic asl-signs recordings without writing files: (sequences, glosses, signer index)."""
    lex = lexicon()
    glosses = list(lex)
    seqs, labels, who = [], [], []
    for p in range(n_signers):
        rng = np.random.default_rng([seed, 1, p])
        signer = sample_signer(rng, p, C.SLUG_SIGNS)
        for _ in range(per_signer):
            g = glosses[int(rng.integers(0, len(glosses)))]
            seqs.append(render(signer, perform_sign(lex[g], signer, rng), rng))
            labels.append(g)
            who.append(p)
    return seqs, labels, who


def sample_fs(n_signers: int, per_signer: int, seed: int = 0, corrupt_rate: float = 0.07
              ) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Synthetic fingerspelling recordings without files: (sequences, phrases, dominant hand of each signer)."""
    seqs, phrases, dominant = [], [], []
    for p in range(n_signers):
        rng = np.random.default_rng([seed, 2, p])
        signer = sample_signer(rng, p, C.SLUG_FS)
        for k in range(per_signer):
            phrase = random_phrase(rng, supplemental=k % 4 == 3)
            seqs.append(render(signer, perform_phrase(phrase, signer, rng, rng.random() < corrupt_rate), rng))
            phrases.append(phrase)
            dominant.append(signer.dominant)
    return seqs, phrases, dominant
