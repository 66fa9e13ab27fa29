"""Before/after table of the training recipes on the synthetic data (`quick` profile, fold 0, seed 42, same data for
every run): each recipe is one switch on top of the same baseline, and its row compares with the run it changes.

Runs go to logs/recipes_quick/<name>/ (finished runs are kept, unfinished ones resumed); the table is printed and
written to logs/recipes_quick/recipes_table.md. ``--only a,b`` runs a subset (in this order of priority). The
Optuna row is read from logs/recipes_quick/tune/ when that study exists (``aslkit tune --preset quick --trials 4
--study logs/recipes_quick/tune model_name=transformer fold=0 seed=42``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import pandas as pd

from aslkit import constants as C
from aslkit.distill import distill_chain
from aslkit.paths import logs_root
from aslkit.runs import is_finished, read_run_config
from aslkit.tasks.fingerspelling.augment import FS_LIGHT_AUGMENT
from aslkit.train import make_train_config, train

# the quick transformer as it was when this table was measured (before the preset came from a search, README);
# lip_flip_p=0 replays its augmentation draws (the whole-frame flip it had was undone by the features)
SIGNS = {"model_name": "transformer", "optim.lr": 1e-3, "optim.epochs": 24, "optim.label_smoothing": 0.2,
         "model.dropout": 0.1, "augment.affine_p": 0.8, "augment.lip_flip_p": 0.0}
# the quick CTC preset as it was when this table was measured (before its search); its flip then was the whole-frame
# one the features undid, now the lip mirror, so the FS rows are not replayed draw for draw
FS = {"task": C.SLUG_FS, "optim.lr": 3e-3, "optim.epochs": 60, "model.dropout": 0.05,
      **{f"augment.{k}": v for k, v in FS_LIGHT_AUGMENT.items()}, "augment.lip_flip_p": 0.5}
SMALL = {"model.hidden": 64, "model.intermediate": 128}
FS_SMALL = {"model.dim": 64, "model.layers": 2}
# name: (overrides, the run it is compared with, what the row shows)
VARIANTS: dict[str, tuple[dict, str, str]] = {
    "baseline": ({**SIGNS, "recipe.soup_last": 5}, "", "transformer quick (soup checkpoints only saved)"),
    "ousm": ({**SIGNS, "recipe.ousm_k": 3}, "baseline", "OUSM k=3"),
    "awp": ({**SIGNS, "recipe.awp_lr": 0.2, "recipe.awp_start": 0.15}, "baseline", "AWP 0.2 from 15 % of the epochs"),
    "mean_teacher": ({**SIGNS, "optim.ema_decay": 0.97, "recipe.mean_teacher": True, "recipe.student": {
        "hidden": 64, "intermediate": 128}}, "baseline", "mean teacher (EMA 0.97) + consistency"),
    "small": ({**SIGNS, **SMALL}, "", "hidden 64 transformer from the labels"),
    "ema": ({**SIGNS, "optim.ema_decay": 0.99}, "baseline", "EMA 0.99 of the weights"),
    "smooth0": ({**SIGNS, "optim.label_smoothing": 0.0}, "baseline", "label smoothing 0 instead of 0.2"),
    "weighted": ({**SIGNS, "loss.class_weights_from": "@baseline"}, "baseline", "weighted CE from the baseline's OOF"),
    "weighted_half": ({**SIGNS, "loss.class_weights_from": "@baseline", "loss.class_weight_power": 0.5}, "baseline",
                      "weighted CE, weight power 0.5"),
    "layers2": ({**SIGNS, "model.layers": 2}, "", "2-layer transformer from the labels"),
    "fs_teacher": ({**FS}, "", "F5 CTC encoder quick (dim 128, 3 layers)"),
    "fs_small": ({**FS, **FS_SMALL}, "", "CTC encoder dim 64, 2 layers, from the labels"),
    "fs_small_kd": ({**FS, **FS_SMALL, "model.distill_head": True, "recipe.teacher": "@fs_teacher"}, "fs_small",
                    "+ distillation of fs_teacher's greedy labels through a separate head"),
}


def _resolve(ov: dict, root: Path) -> dict:
    """``@name`` values point at the run folder of variant ``name``."""
    return {k: str(root / v[1:]) if isinstance(v, str) and v.startswith("@") else v for k, v in ov.items()}


def _done(run: Path) -> bool:
    """True when the run logged every epoch of its config."""
    return (run / "config.yaml").is_file() and is_finished(run, read_run_config(run).optim.epochs)


def _best(run: Path) -> float:
    """Best validation score of a run (val_acc or val_score)."""
    m = pd.read_csv(run / "metrics.csv")
    return float(m["val_acc" if "val_acc" in m else "val_score"].max())


def run_variant(name: str, root: Path) -> Path:
    """Train (or resume, or keep) variant ``name``."""
    ov, _, _ = VARIANTS[name]
    out = root / name
    cfg = make_train_config("quick", {**_resolve(ov, root), "run_name": str(out), "fold": 0, "seed": 42})
    if not is_finished(out, cfg.optim.epochs):
        train(resume=out) if (out / "checkpoints" / "last.pt").is_file() else train(cfg, overwrite=True)
    return out


def run_chain(root: Path) -> list[Path]:
    """I2-T's chain at quick size (3, 3, 2 layers); stage 1 is the baseline's configuration, so it is linked."""
    stage1 = root / "kd" / "stage1"
    if not stage1.exists() and (root / "baseline" / "metrics.csv").is_file():
        stage1.parent.mkdir(parents=True, exist_ok=True)
        stage1.symlink_to("../baseline", target_is_directory=True)
    return distill_chain(root / "kd", "quick", {**SIGNS, "fold": 0, "seed": 42}, layers=(3, 3, 2))


def table(root: Path) -> pd.DataFrame:
    """One row per finished recipe: its score, the score of the run it changes, the difference."""
    rows = []

    def add(recipe: str, run: Path, score: float, ref_name: str, ref: float | None) -> None:
        rows.append({"recipe": recipe, "run": str(run.relative_to(root)), "score": round(score, 4),
                     "compared with": ref_name, "reference": None if ref is None else round(ref, 4),
                     "change": None if ref is None else round(score - ref, 4)})

    done = {n for n in VARIANTS if _done(root / n)}
    for n in VARIANTS:
        if n in done:
            ref = VARIANTS[n][1]
            add(VARIANTS[n][2], root / n, _best(root / n), ref, _best(root / ref) if ref in done else None)
    if (root / "baseline" / "soup.json").is_file():
        soup = json.loads((root / "baseline" / "soup.json").read_text())
        add(f"model soup of epochs {soup['epochs'][0]}-{soup['epochs'][-1]}", root / "baseline", soup["val_acc"],
            "baseline", soup["best_epoch_val_acc"])
    if _done(root / "mean_teacher" / "student"):
        add("student (hidden 64) trained alongside the mean teacher", root / "mean_teacher" / "student",
            _best(root / "mean_teacher" / "student"), "small", _best(root / "small") if "small" in done else None)
    if (root / "tune" / "best.json").is_file():
        best = json.loads((root / "tune" / "best.json").read_text())
        add(f"Optuna TPE on the `signs` space: best of {best['finished_trials']} trials", root / best["run"],
            best["value"], "baseline",
            _best(root / "baseline") if "baseline" in done else None)
    for k, ref in ((2, "baseline"), (3, "layers2")):
        st = root / "kd" / f"stage{k}"
        if _done(st):
            add(f"KD stage {k} ({'3 layers, KD from stage 1' if k == 2 else '2 layers from stage 2, KD'})", st,
                _best(st), ref, _best(root / ref) if ref in done else None)
    return pd.DataFrame(rows)


def _cell(column: str, v: object) -> str:
    """Scores as percentages, changes as signed points."""
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    if column in ("score", "reference"):
        return f"{100 * float(v):.1f} %"
    return f"{100 * float(v):+.1f}" if column == "change" else str(v)


def markdown_table(t: pd.DataFrame, cell: Callable[[str, object], str] = lambda column, v: str(v)) -> str:
    """A GitHub markdown table of ``t``, each value written by ``cell(column, value)``."""
    rows = [[cell(c, v) for c, v in zip(t.columns, r)] for r in t.itertuples(index=False)]
    cells = [[str(c) for c in t.columns]] + rows
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(lines[:1] + ["|" + "---|" * len(t.columns)] + lines[1:]) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", default="", help="comma-separated variants (and 'kd' for the chain); default all")
    ap.add_argument("--table-only", action="store_true", help="print the table of what has finished")
    args = ap.parse_args()
    root = logs_root() / "recipes_quick"
    names = args.only.split(",") if args.only else [*VARIANTS, "kd"]
    for n in [] if args.table_only else names:
        if n == "kd":
            run_chain(root)
        elif n in VARIANTS:
            run_variant(n, root)
        else:
            raise SystemExit(f"unknown variant {n!r}; known: {', '.join([*VARIANTS, 'kd'])}")
    t = table(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "recipes_table.md").write_text(markdown_table(t, _cell))
    print(t.to_string(index=False))


if __name__ == "__main__":
    main()
