"""Fingerspelling metric and validation report (``aslkit validate`` on an asl-fingerspelling run).

The metric is Kaggle's: (N - D) / N over the whole set, N the total number of label characters and D the summed
``Levenshtein.distance`` between labels and predictions (can be negative).
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Sequence

import Levenshtein
import numpy as np
import pandas as pd

from aslkit.plotting import plt
from aslkit.runs import write_csv_atomic, write_json_atomic
from aslkit.tasks.base import participant_spread


def fs_score(labels: Sequence[str], preds: Sequence[str]) -> float:
    """Normalised total Levenshtein score ``(N - D) / N`` of predictions against labels (Kaggle's metric)."""
    if len(labels) != len(preds):
        raise ValueError(f"{len(labels)} labels but {len(preds)} predictions")
    n = sum(len(s) for s in labels)
    if n == 0:
        raise ValueError("the labels hold no characters; the metric is undefined")
    d = sum(Levenshtein.distance(a, b) for a, b in zip(labels, preds))
    return (n - d) / n


# ------------------------------------------------------------------------------------------------------------------
# Validation report of one or more run folders (their out-of-fold predictions)
# ------------------------------------------------------------------------------------------------------------------
LENGTH_BINS = (0, 50, 100, 200, 400, np.inf)                  # frames per sequence
FRAMES_PER_CHAR_BINS = (0, 1, 2, 3, 4, 6, 10, np.inf)         # frames per label character


def phrase_type(phrase: str) -> str:
    """Kind of a phrase by the public competition heuristic.

    ``"phone"`` when it consists only of digits, ``+`` and ``-``; ``"url"`` when it holds ``www``, ``.`` or ``/`` and
    no space; ``"address/name"`` otherwise (street addresses and names; the classes overlap only roughly).
    """
    if re.fullmatch(r"[\d+-]+", phrase):
        return "phone"
    if any(s in phrase for s in ("www", ".", "/")) and " " not in phrase:
        return "url"
    return "address/name"


def read_fs_oof(path: str | Path) -> pd.DataFrame:
    """One ``oof.csv`` with ``phrase`` and ``pred`` kept as text (``"nan"``, ``"123"``; a missing pred is ``""``)."""
    df = pd.read_csv(path, dtype={"phrase": str, "pred": str}, keep_default_na=False)
    return _as_text(df)


def _as_text(oof: pd.DataFrame) -> pd.DataFrame:
    """``phrase`` and ``pred`` as ``str`` columns, NaN/None predictions as ``""``."""
    return oof.assign(phrase=oof["phrase"].fillna("").astype(str), pred=oof["pred"].fillna("").astype(str))


def load_fs_oof(runs: Sequence[str | Path]) -> pd.DataFrame:
    """Concatenated ``oof.csv`` rows of several runs (e.g. one per fold)."""
    frames = []
    for run in map(Path, runs):
        if not (run / "oof.csv").is_file():
            raise FileNotFoundError(f"{run}: no oof.csv (train with a validation fold first)")
        frames.append(read_fs_oof(run / "oof.csv"))
    if not frames:
        raise ValueError("no runs given")
    return pd.concat(frames, ignore_index=True)


def _with_distances(oof: pd.DataFrame) -> pd.DataFrame:
    """OOF rows plus ``chars`` (label length), ``distance`` (Levenshtein), ``phrase_type`` and ``frames_per_char``."""
    df = _as_text(oof)
    chars = df["phrase"].str.len()
    return df.assign(chars=chars,
                     distance=[Levenshtein.distance(a, b) for a, b in zip(df["phrase"], df["pred"])],
                     phrase_type=df["phrase"].map(phrase_type),
                     frames_per_char=df["length"] / chars.where(chars > 0))


def _score_table(df: pd.DataFrame, by) -> pd.DataFrame:
    """n, chars, summed distance and score ``(chars - distance) / chars`` per group of ``by``."""
    t = df.groupby(by, observed=True).agg(n=("distance", "size"), chars=("chars", "sum"),
                                          distance=("distance", "sum"))
    return t.assign(score=(t["chars"] - t["distance"]) / t["chars"].where(t["chars"] > 0))


def _bin_labels(edges: Sequence[float]) -> list[str]:
    """``"a-b"`` labels of half-open bins ``[a, b)``, the last one open as ``"a+"``."""
    fmt = lambda v: f"{v:g}"  # noqa: E731
    return [f"{fmt(a)}+" if np.isinf(b) else f"{fmt(a)}-{fmt(b)}" for a, b in zip(edges[:-1], edges[1:])]


def _binned(values: pd.Series, edges: Sequence[float]) -> pd.Series:
    """Values cut into the half-open bins ``[a, b)`` of ``edges``."""
    return pd.cut(values, list(edges), right=False, labels=_bin_labels(edges))


def _per_participant(df: pd.DataFrame) -> pd.DataFrame:
    """``_score_table`` per ``participant_id`` of OOF rows with distances, worst first (ties by participant id)."""
    return _score_table(df, "participant_id").sort_values("score", kind="mergesort")


def per_participant_scores(oof: pd.DataFrame) -> pd.DataFrame:
    """n, chars, summed distance and score ``(chars - distance) / chars`` per participant, worst first."""
    return _per_participant(_with_distances(oof))


def oof_summary(run: str | Path) -> dict:
    """A run folder's row of the zoo table: ``n`` and ``OOF score`` ((N - D) / N) of its ``oof.csv``, and the
    spread of the per-participant score (``per_participant_scores``) over the held-out participants."""
    oof = read_fs_oof(Path(run) / "oof.csv")
    return {"n": len(oof), "OOF score": fs_score(oof["phrase"], oof["pred"]),
            **participant_spread(per_participant_scores(oof), "score")}


def edit_counts(oof: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Edit operations from label to prediction: (label char, predicted char) replacement counts, and per character
    its count in the labels, times replaced, deleted (missing from the prediction) and inserted (spurious)."""
    df = _as_text(oof)
    repl, deleted, inserted = Counter(), Counter(), Counter()
    for a, b in zip(df["phrase"], df["pred"]):
        for op, i, j in Levenshtein.editops(a, b):
            if op == "replace":
                repl[a[i], b[j]] += 1
            elif op == "delete":
                deleted[a[i]] += 1
            else:
                inserted[b[j]] += 1
    subs = pd.DataFrame([(a, b, c) for (a, b), c in repl.items()], columns=["label", "pred", "count"])
    subs = subs.sort_values(["count", "label", "pred"], ascending=[False, True, True], kind="mergesort")
    in_labels = Counter("".join(df["phrase"]))
    replaced = Counter()
    for (a, _), c in repl.items():
        replaced[a] += c
    chars = sorted(set(in_labels) | set(replaced) | set(deleted) | set(inserted))
    per_char = pd.DataFrame({"char": chars, "in_labels": [in_labels[c] for c in chars],
                             "replaced": [replaced[c] for c in chars], "deleted": [deleted[c] for c in chars],
                             "inserted": [inserted[c] for c in chars]})
    per_char["error_rate"] = (per_char["replaced"] + per_char["deleted"]) / per_char["in_labels"].where(
        per_char["in_labels"] > 0)
    per_char = per_char.sort_values(["in_labels", "char"], ascending=[False, True], kind="mergesort")
    return subs.reset_index(drop=True), per_char.reset_index(drop=True)


def example_rows(df: pd.DataFrame, k: int = 20) -> pd.DataFrame:
    """``k`` example rows, half the worst and half the best by distance per label character (ties by sequence)."""
    d = df.assign(cer=df["distance"] / df["chars"].where(df["chars"] > 0))
    tie = ["sequence_id"] if "sequence_id" in d else []
    d = d.sort_values(["cer", *tie], ascending=[False] + [True] * len(tie), kind="mergesort", na_position="last")
    worst = d.head((k + 1) // 2)
    best = d.drop(worst.index).sort_values(["cer", *tie], kind="mergesort").head(k - len(worst))
    cols = [c for c in ("sequence_id", "participant_id", "phrase", "pred", "distance", "cer") if c in d]
    return pd.concat([worst[cols].assign(kind="worst"), best[cols].assign(kind="best")], ignore_index=True)


def fs_report_tables(oof: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Score overall/per fold, per participant, phrase type, length bin and frames-per-character bin, the most
    frequent substitutions, per-character errors and example predictions."""
    df = _with_distances(oof)
    overall = _score_table(df.assign(_all="all"), "_all")
    if "fold" in df:
        overall = pd.concat([_score_table(df, "fold"), overall])
    overall.index.name = "fold"
    subs, per_char = edit_counts(df)
    return {"overall": overall,
            "per_participant": _per_participant(df),
            "per_phrase_type": _score_table(df, "phrase_type"),
            "per_length_bin": _score_table(df.assign(length_bin=_binned(df["length"], LENGTH_BINS)), "length_bin"),
            "per_frames_per_char": _score_table(
                df.assign(frames_per_char_bin=_binned(df["frames_per_char"], FRAMES_PER_CHAR_BINS)),
                "frames_per_char_bin"),
            "substitutions": subs, "char_errors": per_char, "examples": example_rows(df)}


def plot_fs_per_participant(per_participant: pd.DataFrame):
    """Score per participant (bars, worst first)."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.18 * len(per_participant) + 2), 3.5))
    ax.bar(range(len(per_participant)), per_participant["score"])
    ax.set_xticks(range(len(per_participant)), per_participant.index.astype(str), rotation=90, fontsize=7)
    ax.set_xlabel("participant"), ax.set_ylabel("score"), ax.set_title("score per participant")
    fig.tight_layout()
    return fig


def plot_fs_groups(tables: dict[str, pd.DataFrame]):
    """Score per phrase type, per length bin and per frames-per-character bin (bars labelled with their ``n``)."""
    names = [("per_phrase_type", "phrase type"), ("per_length_bin", "frames"),
             ("per_frames_per_char", "frames per character")]
    fig, axes = plt.subplots(1, len(names), figsize=(12, 3.5))
    for ax, (name, xlabel) in zip(axes, names):
        t = tables[name]
        bars = ax.bar(range(len(t)), t["score"].fillna(0))
        ax.bar_label(bars, [f"n={n}" for n in t["n"]], fontsize=7)
        ax.set_xticks(range(len(t)), t.index.astype(str), rotation=30, fontsize=8)
        ax.set_xlabel(xlabel), ax.set_ylabel("score")
    fig.tight_layout()
    return fig


def validate_fs(runs: Sequence[str | Path], out_dir: str | Path | None = None) -> dict:
    """Fingerspelling validation report of the runs' OOF predictions, written to ``<first run>/validation/`` (or
    ``out_dir``): one CSV per table, ``per_participant.png``, ``per_group.png`` and ``summary.json``."""
    oof = load_fs_oof(runs)
    tables = fs_report_tables(oof)
    out = Path(out_dir) if out_dir else Path(runs[0]) / "validation"
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        write_csv_atomic(table, out / f"{name}.csv", index=name not in ("substitutions", "char_errors", "examples"))
    plot_fs_per_participant(tables["per_participant"]).savefig(out / "per_participant.png", dpi=100)
    plot_fs_groups(tables).savefig(out / "per_group.png", dpi=100)
    plt.close("all")
    total = tables["overall"].loc["all"]
    summary = {"n": int(total["n"]), "chars": int(total["chars"]), "distance": int(total["distance"]),
               "score": float(total["score"]), "participants": int(oof["participant_id"].nunique()),
               "runs": [str(r) for r in runs]}
    write_json_atomic(out / "summary.json", summary)
    print(f"validation: {summary['n']} sequences, {summary['chars']} characters, distance {summary['distance']},"
          f" score {summary['score']:.4f} -> {out}")
    return {"summary": summary, **tables}


# ------------------------------------------------------------------------------------------------------------------
# Constant-prediction baseline
# ------------------------------------------------------------------------------------------------------------------
def _total_distance(candidate: str, phrases: Sequence[str], weights: Sequence[float]) -> float:
    """Weighted summed Levenshtein distance of one candidate to every phrase."""
    return sum(w * Levenshtein.distance(candidate, p) for p, w in zip(phrases, weights))


def fallback_phrase(phrases: Sequence[str], max_phrases: int = 2000, max_set: int = 300, seed: int = 0) -> str:
    """The constant prediction with (approximately) the least total Levenshtein distance to ``phrases``.

    Candidates: the greedy generalised median (``Levenshtein.median``), its improvement by perturbations
    (``Levenshtein.median_improve``) and the best phrase of the set (``Levenshtein.setmedian``); the one with the
    least total distance wins. Distinct phrases are weighted by their counts; when there are more than
    ``max_phrases`` of them (``max_set`` for the quadratic set median), a deterministic random subsample (``seed``)
    stands in for them, so on large sets the result is an approximation. Never empty: an empty median is replaced by
    the most common character.
    """
    counts = Counter("" if p is None else str(p) for p in phrases)
    if not counts or not any(counts):
        raise ValueError("no non-empty phrases")
    uniq = sorted(counts)
    rng = np.random.default_rng(seed)

    def sample(k: int) -> list[str]:
        return uniq if len(uniq) <= k else [uniq[i] for i in sorted(rng.choice(len(uniq), k, replace=False))]

    strs = sample(max_phrases)
    weights = [float(counts[s]) for s in strs]
    median = Levenshtein.median(strs, weights)
    candidates = [median, Levenshtein.median_improve(median, strs, weights)]
    small = sample(max_set)
    candidates.append(Levenshtein.setmedian(small, [float(counts[s]) for s in small]))
    char_counts = Counter()
    for s, n in counts.items():
        for c in s:
            char_counts[c] += n
    common = char_counts.most_common(1)[0][0]
    candidates = [c if c else common for c in candidates]
    return min(candidates, key=lambda c: (_total_distance(c, strs, weights), c))


def constant_baseline(phrases: Sequence[str], constant: str) -> float:
    """``fs_score`` of predicting ``constant`` for every phrase."""
    return fs_score(list(phrases), [constant] * len(phrases))


def validation_plots(runs: Sequence[str | Path], report: dict) -> list:
    """The figures of a validation report: scores per participant, and per phrase type / length."""
    return [plot_fs_per_participant(report["per_participant"]), plot_fs_groups(report)]
