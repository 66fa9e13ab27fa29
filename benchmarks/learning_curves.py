"""Learning curves beyond the quick budget: each family's quick preset trained for 1x and 3x its epochs on the same
quick data (fold 0, seed 42; the schedule stretches with the epochs), to tell whether a family is limited by its
budget (3x the epochs gains), by generalisation to new signers (it fits its training signers, the held-out ones
stay behind) or by capacity (its own training data stays unfitted).

Runs go to logs/learning_curves/<family>_x<k>/ (finished runs kept, unfinished ones resumed). ``--x1-from DIR ...``
takes the 1x run of a family from DIR/<family> when that run's config is the one this script would train (e.g. the
asl-signs folder of a ``./run_all.sh`` quick run) or DIR itself when it is such a run (e.g. the asl-fingerspelling
folder of a quick run for ``fs_ctc``), so only the longer runs cost time; ``--xk-from DIR ...`` does the same for the
longer runs. The table is printed and
written to logs/learning_curves/<prefix>curves_table.md, the curves to logs/learning_curves/<prefix>learning_curves.png
(``--prefix fs_`` for the fingerspelling families keeps the asl-signs files).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from recipes_quick import markdown_table  # noqa: E402

from aslkit import constants as C  # noqa: E402
from aslkit.config import to_dict  # noqa: E402
from aslkit.paths import logs_root  # noqa: E402
from aslkit.runs import is_finished, read_run_config  # noqa: E402
from aslkit.train import TrainConfig, make_train_config, train  # noqa: E402

FAMILIES: dict[str, dict] = {"transformer": {"model_name": "transformer"}, "cnn": {"model_name": "cnn"},
                             "frames25": {"model_name": "frames25"}, "conv1d": {"model_name": "conv1d"},
                             "fs_ctc": {"task": C.SLUG_FS}, "fs_f1": {"task": C.SLUG_FS, "model_name": "f1"}}
# settings that change how fast a run goes, not what it learns
NOT_COMPARED = ("run_name", "threads", "workers")
BUDGET_GAIN = 0.03        # 3x the epochs gaining at least 3 points: budget-limited
GENERALISATION_GAP = 0.15  # training accuracy this far above held-out: the new signers are what is missing


def config_for(family: str, factor: int, root: Path, threads: int) -> TrainConfig:
    """The quick preset of ``family`` with ``factor`` times its epochs, in root/<family>_x<factor>."""
    base = make_train_config("quick", {**FAMILIES[family], "fold": 0, "seed": 42})
    return make_train_config("quick", {**FAMILIES[family], "fold": 0, "seed": 42, "threads": threads,
                                       "optim.epochs": base.optim.epochs * factor,
                                       "run_name": str(root / f"{family}_x{factor}")})


def same_training(a: TrainConfig, b: TrainConfig) -> bool:
    """True when two configs train the same model on the same data (speed settings aside)."""
    da, db = to_dict(a), to_dict(b)                              # JSON form: a tuple read back from YAML is a list
    return all(da[k] == db[k] for k in da if k not in NOT_COMPARED)


def run_for(family: str, factor: int, root: Path, threads: int, reuse_from: Sequence[Path] = (),
            train_missing: bool = True) -> Path:
    """The run of ``family`` at ``factor`` x its epochs: the first of the ``reuse_from`` folders (or their
    ``family`` folders) that trained the same, else kept, or (``train_missing``) resumed or trained."""
    cfg = config_for(family, factor, root, threads)
    for found in (f for d in reuse_from for f in (d / family, d)):
        if (found / "config.yaml").is_file():
            if same_training(read_run_config(found), cfg):
                return found
            print(f"{found}: trained with another config than the quick preset of {family}")
    out = Path(cfg.run_name)
    if train_missing and not is_finished(out, cfg.optim.epochs):
        train(resume=out) if (out / "checkpoints" / "last.pt").is_file() else train(cfg, overwrite=True)
    return out


def verdict(x1: pd.DataFrame, xk: pd.DataFrame, metric: str) -> str:
    """What limits the family, read from the 1x and the longer curve."""
    gain = xk[metric].max() - x1[metric].max()
    if gain >= BUDGET_GAIN:
        return f"budget ({100 * gain:+.1f} points with more epochs)"
    if "train_acc" in xk:
        gap = xk["train_acc"].iloc[-1] - xk[metric].max()
        if gap >= GENERALISATION_GAP:
            return f"generalisation to new signers (training signers {100 * gap:.0f} points ahead)"
        return f"capacity (training accuracy itself {100 * xk['train_acc'].iloc[-1]:.0f} %)"
    return "not the budget (more epochs gain < 3 points)"


def summary_row(family: str, runs: dict[int, Path]) -> dict:
    """One row: best held-out score and the last training accuracy of each run, and the verdict."""
    curves = {k: pd.read_csv(run / "metrics.csv") for k, run in runs.items()}
    metric = "val_acc" if "val_acc" in curves[1] else "val_score"
    row: dict = {"family": family}
    for k, m in curves.items():
        best = int(m[metric].idxmax())
        row[f"x{k} epochs"] = len(m)
        row[f"x{k} best held-out"] = f"{m[metric].iloc[best]:.3f} (epoch {m['epoch'].iloc[best]})"
        row[f"x{k} last train acc"] = f"{m['train_acc'].iloc[-1]:.3f}" if "train_acc" in m else "-"
        row[f"x{k} minutes"] = round(m["seconds"].sum() / 60, 1)
    row["limited by"] = verdict(curves[1], curves[max(curves)], metric)
    return row


def plot(all_runs: dict[str, dict[int, Path]], path: Path) -> None:
    """Held-out (solid) and training (dashed) accuracy per epoch fraction, one panel per family."""
    fig, axes = plt.subplots(1, len(all_runs), figsize=(3.6 * len(all_runs), 3.2), squeeze=False)
    for ax, (family, runs) in zip(axes[0], all_runs.items()):
        for k, run in runs.items():
            m = pd.read_csv(run / "metrics.csv")
            frac = m["epoch"] / len(m)
            metric = "val_acc" if "val_acc" in m else "val_score"
            line, = ax.plot(frac, m[metric], label=f"{k}x held-out")
            if "train_acc" in m:
                ax.plot(frac, m["train_acc"], ls="--", color=line.get_color(), label=f"{k}x train")
        ax.set_title(family), ax.set_xlabel("fraction of the run"), ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="transformer,cnn,frames25,conv1d",
                    help=f"comma-separated, of {', '.join(FAMILIES)} (default the four asl-signs families)")
    ap.add_argument("--factor", type=int, default=3, help="epochs of the longer run, times the preset's (default 3)")
    ap.add_argument("--threads", type=int, default=-1, help="torch threads per run (1 when two run side by side)")
    ap.add_argument("--x1-from", type=Path, nargs="*", default=[], help="folders with finished 1x runs (per family "
                    "or a run itself)")
    ap.add_argument("--xk-from", type=Path, nargs="*", default=[], help="the same for the longer (--factor) runs")
    ap.add_argument("--prefix", default="", help="prefix of the table and plot file names (e.g. fs_)")
    ap.add_argument("--table-only", action="store_true", help="the table of the families whose runs have finished")
    args = ap.parse_args()
    root = logs_root() / "learning_curves"
    families = args.families.split(",")
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise SystemExit(f"--families: unknown {unknown}; known: {', '.join(FAMILIES)}")
    all_runs = {}
    reuse = {1: args.x1_from, args.factor: args.xk_from}
    for family in families:
        runs = {k: run_for(family, k, root, args.threads, reuse[k], train_missing=not args.table_only)
                for k in (1, args.factor)}
        if all((r / "metrics.csv").is_file() for r in runs.values()):
            all_runs[family] = runs
    root.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([summary_row(f, runs) for f, runs in all_runs.items()])
    (root / f"{args.prefix}curves_table.md").write_text(markdown_table(table))
    if all_runs:
        plot(all_runs, root / f"{args.prefix}learning_curves.png")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
