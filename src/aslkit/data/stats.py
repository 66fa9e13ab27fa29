"""Statistics of landmark sequences (lengths, missing parts) and the real competitions' figures to compare with.

The real figures are whole-dataset numbers from public analyses (docs/synthetic_data.md §4 of the design notes).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aslkit import constants as C

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


def islr_dataset_stats(data_dir, max_sequences: int = 500, seed: int = 0) -> pd.DataFrame:
    """``sequence_stats`` of up to ``max_sequences`` random asl-signs recordings of a Kaggle-layout folder."""
    from aslkit.data.islr import load_relevant_data_subset, read_train_csv
    df = read_train_csv(data_dir)
    pick = df.sample(min(max_sequences, len(df)), random_state=seed)
    stats = sequence_stats([load_relevant_data_subset(Path(data_dir) / p) for p in pick["path"]])
    return stats.assign(sign=pick["sign"].to_numpy(), participant_id=pick["participant_id"].to_numpy())


def fs_dataset_stats(data_dir, max_files: int = 2) -> pd.DataFrame:
    """``sequence_stats`` of the sequences in the first ``max_files`` train parquets, with phrase and participant."""
    from aslkit.data.fs import read_fs_file, read_metadata, wide_to_landmarks
    meta = read_metadata(data_dir, "train")
    frames = []
    for path in sorted(meta["path"].unique())[:max_files]:
        seqs = read_fs_file(Path(data_dir) / path, C.FS_COLUMNS)
        rows = meta[meta["path"] == path].set_index("sequence_id")
        stats = sequence_stats([wide_to_landmarks(seqs[s]) for s in rows.index])
        frames.append(stats.assign(phrase=rows["phrase"].to_numpy(), participant_id=rows["participant_id"].to_numpy()))
    return pd.concat(frames, ignore_index=True)


def compare(real: dict[str, float], ours: dict[str, float]) -> pd.DataFrame:
    """Side-by-side table of the real and the measured figures."""
    return pd.DataFrame({"real": pd.Series(real), "this data": pd.Series(ours)}).round(3)
