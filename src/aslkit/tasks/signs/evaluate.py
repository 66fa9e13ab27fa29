"""The asl-signs validation report (``aslkit validate``): OOF accuracy and top-5 per fold, participant and sign,
the most confused pairs, and their plots."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aslkit import constants as C
from aslkit.plotting import plt
from aslkit.runs import write_csv_atomic, write_json_atomic
from aslkit.tasks.base import participant_spread


def load_oof(runs: list[str | Path]) -> tuple[pd.DataFrame, np.ndarray]:
    """Concatenated ``oof.csv`` rows and logits of several runs (e.g. one per fold)."""
    frames, logits = [], []
    for run in map(Path, runs):
        if not (run / "oof.csv").is_file():
            raise FileNotFoundError(f"{run}: no oof.csv (train with a validation fold first)")
        frames.append(pd.read_csv(run / "oof.csv"))
        logits.append(np.load(run / "oof_logits.npy"))
    return pd.concat(frames, ignore_index=True), np.concatenate(logits)


def topk_hits(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean per row: the label is among the ``k`` highest logits."""
    return (np.argsort(-logits, axis=1)[:, :k] == labels[:, None]).any(1)


def per_participant_accuracy(oof: pd.DataFrame, top5: np.ndarray | None = None) -> pd.DataFrame:
    """``n`` and ``accuracy`` (and ``top5`` with the rows' top-5 hits, ``topk_hits``) per ``participant_id`` of OOF
    rows, worst first (ties by participant id)."""
    df = oof.assign(correct=oof["pred"] == oof["label"])
    aggs = {"n": ("correct", "size"), "accuracy": ("correct", "mean")}
    if top5 is not None:
        df = df.assign(top5=np.asarray(top5))
        aggs["top5"] = ("top5", "mean")
    return df.groupby("participant_id").agg(**aggs).sort_values("accuracy", kind="mergesort")


def oof_summary(run: str | Path) -> dict:
    """A run folder's row of the zoo table: ``n`` and ``OOF accuracy`` of its ``oof.csv``, and the spread of the
    per-participant accuracy (``per_participant_accuracy``) over the held-out participants."""
    oof = pd.read_csv(Path(run) / "oof.csv")
    return {"n": len(oof), "OOF accuracy": float((oof["pred"] == oof["label"]).mean()),
            **participant_spread(per_participant_accuracy(oof), "accuracy")}


def report_tables(oof: pd.DataFrame, logits: np.ndarray, names: list[str]) -> dict[str, pd.DataFrame]:
    """Accuracy overall/per fold, per participant and per sign, and the most confused (true, predicted) pairs."""
    df = oof.assign(correct=oof["pred"] == oof["label"], top5=topk_hits(logits, oof["label"].to_numpy(), 5))
    per_fold = df.groupby("fold").agg(n=("correct", "size"), accuracy=("correct", "mean"), top5=("top5", "mean"))
    per_fold.loc["all"] = [len(df), df["correct"].mean(), df["top5"].mean()]
    per_part = per_participant_accuracy(oof, df["top5"].to_numpy())
    per_sign = df.groupby("label").agg(n=("correct", "size"), accuracy=("correct", "mean")).reset_index()
    per_sign.insert(1, "sign", [names[i] for i in per_sign["label"]])
    wrong = df[~df["correct"]]
    conf = wrong.groupby(["label", "pred"]).size().rename("count").reset_index().sort_values("count",
                                                                                           ascending=False)
    conf.insert(1, "sign", [names[i] for i in conf["label"]])
    conf.insert(3, "predicted", [names[i] for i in conf["pred"]])
    return {"per_fold": per_fold, "per_participant": per_part, "per_sign": per_sign.sort_values("accuracy"),
            "confusions": conf.reset_index(drop=True)}


def plot_per_sign(per_sign: pd.DataFrame, worst: int = 30):
    """Accuracy of the worst signs, and the distribution over all signs."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    w = per_sign.nsmallest(worst, "accuracy")
    a.bar(range(len(w)), w["accuracy"])
    a.set_xticks(range(len(w)), w["sign"], rotation=90, fontsize=7)
    a.set_ylabel("accuracy"), a.set_title(f"{worst} worst signs")
    b.hist(per_sign["accuracy"], bins=20)
    b.set_xlabel("per-sign accuracy"), b.set_title("all signs")
    fig.tight_layout()
    return fig


def plot_top_confusions(oof: pd.DataFrame, names: list[str], k: int = 12):
    """Confusion matrix restricted to the signs involved in the ``k`` most frequent confusions."""
    wrong = oof[oof["pred"] != oof["label"]]
    pairs = wrong.groupby(["label", "pred"]).size().nlargest(k)
    signs = sorted({i for p in pairs.index for i in p})
    sub = oof[oof["label"].isin(signs) & oof["pred"].isin(signs)]
    pos = {s: i for i, s in enumerate(signs)}
    mat = np.zeros((len(signs), len(signs)), dtype=int)
    for t, p in zip(sub["label"], sub["pred"]):
        mat[pos[t], pos[p]] += 1
    fig, ax = plt.subplots(figsize=(0.45 * len(signs) + 2, 0.45 * len(signs) + 1.5))
    ax.imshow(mat, cmap="Blues")
    labels = [names[s] for s in signs]
    ax.set_xticks(range(len(signs)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(signs)), labels, fontsize=8)
    for (i, j), v in np.ndenumerate(mat):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="k" if v < mat.max() / 2 else "w")
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title("top confusions")
    fig.tight_layout()
    return fig


def validate(runs: list[str | Path], out_dir: str | Path | None = None) -> dict:
    """Validation report of the runs' OOF predictions, written to ``<first run>/validation/`` (or ``out_dir``)."""
    oof, logits = load_oof(runs)
    names = list(C.signs())
    tables = report_tables(oof, logits, names)
    out = Path(out_dir) if out_dir else Path(runs[0]) / "validation"
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        write_csv_atomic(table, out / f"{name}.csv")
    plot_per_sign(tables["per_sign"]).savefig(out / "per_sign.png", dpi=100)
    plot_top_confusions(oof, names).savefig(out / "top_confusions.png", dpi=100)
    plt.close("all")
    summary = {"n": int(len(oof)), "accuracy": float((oof["pred"] == oof["label"]).mean()),
               "top5": float(topk_hits(logits, oof["label"].to_numpy(), 5).mean()),
               "participants": int(oof["participant_id"].nunique()), "runs": [str(r) for r in runs]}
    write_json_atomic(out / "summary.json", summary)
    print(f"validation: {summary['n']} sequences, accuracy {summary['accuracy']:.4f}, top-5 {summary['top5']:.4f}"
          f" -> {out}")
    return {"summary": summary, **tables}


def validation_plots(runs: list[str | Path], report: dict) -> list:
    """The figures of a validation report: the worst signs and the top confusions."""
    oof, _ = load_oof(runs)
    return [plot_per_sign(report["per_sign"]), plot_top_confusions(oof, list(C.signs()))]
