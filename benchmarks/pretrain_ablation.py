"""F5's recipes on the quick synthetic fingerspelling data, before and after: the CTC encoder from scratch against
the one fine-tuned from a data2vec 2.0 pretraining run (``aslkit pretrain``, its budget in the table), each without
and with aligned CutMix + time flip (CutMix cut between characters found by ``aslkit align`` with the scratch run;
frames and phrase reversed with p 0.5). Same seed, same fold, the same fine-tuning budget (the quick preset);
validation on the fold's held-out participants.

Runs go to logs/pretrain_ablation/fold<k>/<variant>/ (finished runs kept, unfinished ones resumed). ``--only`` trains
some variants (e.g. two processes side by side with ``--threads 1``); a variant waits for nothing: it fails with a
clear line when what it needs (the pretraining run, the alignment) is not there yet. The table is printed and
written to logs/pretrain_ablation/fold<k>/table.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from recipes_quick import markdown_table

from aslkit import constants as C
from aslkit.paths import logs_root
from aslkit.pretrain import pretrain_run
from aslkit.runs import checkpoint_path, is_finished
from aslkit.tasks.fingerspelling.align import ALIGNMENT_FILE, align_run
from aslkit.train import make_train_config, train

# variant -> (pretrained, aligned CutMix + time flip)
VARIANTS = {"scratch": (False, False), "scratch_recipes": (False, True),
            "pretrained": (True, False), "pretrained_recipes": (True, True)}
TIME_FLIP_P = 0.5                  # F5's
EARLY_EPOCHS = (10, 20, 40)        # held-out scores part-way through (a pretrained start may only be faster)


def common(fold: int, threads: int) -> dict:
    return {"task": C.SLUG_FS, "fold": fold, "seed": 42, "threads": threads}


def pretrain_ablation_run(root: Path, fold: int, threads: int, epochs: int) -> Path:
    """The pretraining run (kept when finished, resumed when not: ``aslkit.pretrain.pretrain_run``)."""
    return pretrain_run(C.SLUG_FS, "quick", root / "pretrain", epochs=epochs or -1, overrides=common(fold, threads))


def variant_config(name: str, root: Path, fold: int, threads: int):
    """The quick fine-tuning config of a variant (ValueError naming what it needs that is not there yet)."""
    pretrained, recipes = VARIANTS[name]
    ov = {**common(fold, threads), "run_name": str(root / name)}
    if pretrained:
        if not checkpoint_path(root / "pretrain", "encoder").is_file():
            raise ValueError(f"{name}: {root / 'pretrain'} has no encoder.pt yet (train the 'pretrain' variant)")
        ov["recipe.init_from"] = str(root / "pretrain")
    if recipes:
        if not (root / "scratch" / ALIGNMENT_FILE).is_file():
            raise ValueError(f"{name}: {root / 'scratch' / ALIGNMENT_FILE} missing (train the 'scratch' variant)")
        ov.update({"augment.cutmix_alignment": str(root / "scratch"), "augment.time_flip_p": TIME_FLIP_P})
    return make_train_config("quick", ov)


def train_variant(name: str, root: Path, fold: int, threads: int) -> Path:
    """Train (or resume, or keep) a variant; the scratch run is then aligned for the CutMix variants."""
    cfg = variant_config(name, root, fold, threads)
    run = Path(cfg.run_name)
    if not is_finished(run, cfg.optim.epochs):
        train(resume=run) if checkpoint_path(run, "last").is_file() else train(cfg, overwrite=True)
    if name == "scratch" and not (run / ALIGNMENT_FILE).is_file():
        align_run(run)
    return run


def table(root: Path) -> pd.DataFrame:
    """One row per finished variant: its settings, best and last held-out score, minutes."""
    rows = []
    pre = root / "pretrain" / "metrics.csv"
    pre_m = pd.read_csv(pre) if pre.is_file() else None
    for name, (pretrained, recipes) in VARIANTS.items():
        metrics = root / name / "metrics.csv"
        if not metrics.is_file():
            continue
        m = pd.read_csv(metrics)
        best = int(m["val_score"].idxmax())
        rows.append({"variant": name,
                     "encoder": (f"pretrained ({len(pre_m)} epochs, {pre_m['seconds'].sum() / 60:.1f} min)"
                                 if pretrained and pre_m is not None else "scratch"),
                     "aligned CutMix + time flip": "yes" if recipes else "no",
                     **{f"epoch {e}": f"{m['val_score'].iloc[e - 1]:.3f}" for e in EARLY_EPOCHS if e <= len(m)},
                     "best held-out (N - D) / N": f"{m['val_score'].iloc[best]:.3f} (epoch {m['epoch'].iloc[best]})",
                     "last epoch": f"{m['val_score'].iloc[-1]:.3f}", "epochs": len(m),
                     "fine-tune min": round(m["seconds"].sum() / 60, 1)})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help=f"comma-separated of pretrain, {', '.join(VARIANTS)} (default all, "
                                               f"in that order)")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--threads", type=int, default=-1, help="torch threads per run (1 when two run side by side)")
    ap.add_argument("--pretrain-epochs", type=int, default=0, help="pretraining epochs (0: the quick preset's)")
    ap.add_argument("--table-only", action="store_true", help="the table of what has finished")
    args = ap.parse_args()
    root = logs_root() / "pretrain_ablation" / f"fold{args.fold}"
    names = args.only.split(",") if args.only else ["pretrain", *VARIANTS]
    unknown = sorted(set(names) - {"pretrain", *VARIANTS})
    if unknown:
        raise SystemExit(f"--only: unknown {unknown}")
    for name in [] if args.table_only else names:
        if name == "pretrain":
            pretrain_ablation_run(root, args.fold, args.threads, args.pretrain_epochs)
        else:
            train_variant(name, root, args.fold, args.threads)
    t = table(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "table.md").write_text(markdown_table(t))
    print(t.to_string(index=False))


if __name__ == "__main__":
    main()
