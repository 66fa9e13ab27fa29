"""Several models of one task side by side, as the notebooks run them: one run folder per model under an experiment
folder, an ensemble of them (asl-signs), and one table of every model and the ensemble on the same held-out
participants (OOF accuracy, TFLite grader-clone accuracy, latency, size).

Layout of an experiment folder ``<run>``: asl-signs ``<run>/<model_name>/`` per family and ``<run>/ensemble/``;
fingerspelling (one CTC model) ``<run>`` itself.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from aslkit import constants as C

if TYPE_CHECKING:
    from aslkit.train import TrainConfig

# Families trained by the notebooks when ``models`` is empty, per profile (I6's ``frames25`` / ``frames80`` are left
# out of quick until their quick preset is shown to learn on the synthetic data; name them in ``models`` to add them).
DEFAULT_MODELS: dict[str, list[str]] = {"ci": ["transformer", "conv1d"],
                                        "quick": ["transformer", "cnn", "frames25", "conv1d"],
                                        "full": ["transformer", "cnn", "frames25", "frames80", "conv1d"]}
ENSEMBLE_DIR = "ensemble"


def zoo_members(task: str, profile: str, models: list[str] | None = None) -> list[str]:
    """Model names of an experiment: ``models`` or the profile's default zoo (asl-signs); ``[""]`` (the run folder
    itself) for fingerspelling."""
    if task == C.SLUG_FS:
        return [""]
    return list(models) if models else list(DEFAULT_MODELS[profile])


def member_dir(run: str | Path, name: str) -> Path:
    """The run folder of model ``name`` in experiment ``run`` (``run`` itself for the unnamed member)."""
    return Path(run) / name if name else Path(run)


def submitted_dir(run: str | Path, members: list[str]) -> Path:
    """The folder whose model is submitted: the ensemble when there are several members, else the one run."""
    return Path(run) / ENSEMBLE_DIR if len(members) > 1 else member_dir(run, members[0])


def member_configs(profile: str, task: str, run: str | Path, members: list[str], overrides: dict | None = None,
                   data_dir: str = "") -> dict[str, "TrainConfig"]:
    """The training config of every member (profile preset, the family's preset, then ``overrides``)."""
    from aslkit.train import make_train_config
    out = {}
    for name in members:
        ov = {"task": task, "run_name": str(member_dir(run, name).resolve()), "data_dir": data_dir,
              **({"model_name": name} if name else {}), **(overrides or {})}
        out[name] = make_train_config(profile, ov)
    return out


def train_zoo(cfgs: dict[str, "TrainConfig"]) -> dict[str, Path]:
    """Train every member's config (resume an interrupted run, keep a finished one); returns the run folders."""
    from aslkit.train import train
    out = {}
    for name, cfg in cfgs.items():
        folder = Path(cfg.run_name)
        last = folder / "checkpoints" / "last.pt"
        if last.is_file() and _finished(folder, cfg.optim.epochs):
            print(f"{folder}: already trained ({cfg.optim.epochs} epochs)")
            out[name] = folder
        else:
            out[name] = train(resume=folder) if last.is_file() else train(cfg)
    return out


def _finished(folder: Path, epochs: int) -> bool:
    metrics = folder / "metrics.csv"
    return metrics.is_file() and len(pd.read_csv(metrics)) >= epochs


def zoo_metrics(runs: dict[str, Path]) -> pd.DataFrame:
    """The best epoch of each member: its validation metrics, parameter count and training time."""
    rows = {}
    for name, run in runs.items():
        m = pd.read_csv(Path(run) / "metrics.csv")
        key = "val_acc" if "val_acc" in m else "val_score"
        best = m.loc[m[key].idxmax()] if m[key].notna().any() else m.iloc[-1]
        rows[name or Path(run).name] = {"best epoch": int(best["epoch"]), key: best[key],
                                        "val_loss": best["val_loss"], "epochs": len(m),
                                        "train minutes": m["seconds"].sum() / 60}
    return pd.DataFrame(rows).T


def make_zoo_ensemble(run: str | Path, members: list[str]):
    """The ensemble folder of an asl-signs experiment (weights fitted on the members' OOF logits), or None when
    there is a single member."""
    if len(members) < 2:
        return None
    from aslkit.ensemble import EnsembleConfig, make_ensemble
    return make_ensemble(EnsembleConfig(runs=[str(member_dir(run, m)) for m in members],
                                        name=str((Path(run) / ENSEMBLE_DIR).resolve())))


def convert_zoo(run: str | Path, members: list[str], overrides: dict | None = None) -> dict[str, dict]:
    """``convert`` every member and the ensemble (which must exist when there are several members); returns the
    reports by name."""
    from aslkit.config import make_config
    from aslkit.export import ConvertConfig, convert
    folders = {m or Path(run).name: member_dir(run, m) for m in members}
    if len(members) > 1:
        folders[ENSEMBLE_DIR] = Path(run) / ENSEMBLE_DIR
    return {name: convert(make_config(ConvertConfig, None, {"run_dir": str(f), **(overrides or {})}))
            for name, f in folders.items()}


def conversion_summary(reports: dict[str, dict]) -> pd.DataFrame:
    """One row per converted model: the submitted build, its size and agreement with torch, and failed gates."""
    rows = {}
    for name, rep in reports.items():
        b = rep["submitted"]
        r = rep[b]
        rows[name] = {"submitted": b, "size (MB)": r["size_mb"], "agreement": r.get("agreement"),
                      "float16 failed": "; ".join(rep["float16"]["failed"]) or "-"}
    return pd.DataFrame(rows).T


def score_zoo(run: str | Path, members: list[str]) -> dict[str, dict]:
    """Grade every member's and the ensemble's converted model with the grader clone (``score_run``)."""
    from aslkit.submit import package, score_run
    folders = {m or Path(run).name: member_dir(run, m) for m in members}
    if len(members) > 1:
        folders[ENSEMBLE_DIR] = Path(run) / ENSEMBLE_DIR
    return {name: score_run(f, package(f, f / "export" / "graded_submission.zip")) for name, f in folders.items()}


def zoo_table(run: str | Path, members: list[str]) -> pd.DataFrame:
    """Every member and the ensemble on the same held-out participants: OOF accuracy (torch), and where the model
    was converted and graded, the TFLite grader-clone accuracy, mean latency per sequence and size."""
    from aslkit.families import FAMILIES, family_module
    folders = {m or Path(run).name: member_dir(run, m) for m in members}
    if (Path(run) / ENSEMBLE_DIR / "ensemble.json").is_file() and len(members) > 1:
        folders[ENSEMBLE_DIR] = Path(run) / ENSEMBLE_DIR
    rows = {}
    for name, f in folders.items():
        oof = pd.read_csv(f / "oof.csv")
        row = {"model": family_module(name).DESCRIPTION if name in FAMILIES else name, "n": len(oof)}
        if "label" in oof:
            row["OOF accuracy"] = float((oof["pred"] == oof["label"]).mean())
        score = f / "score.json"
        if score.is_file():
            s = json.loads(score.read_text())
            row.update({"TFLite accuracy": s.get("accuracy", s.get("score")), "latency (ms)": s["latency_ms_mean"],
                        "size (MB)": s["size_mb"]})
        if name == ENSEMBLE_DIR:
            rec = json.loads((f / "ensemble.json").read_text())
            row["model"] = "ensemble: " + " + ".join(f"{w:.2f} x {m}" for m, w in zip(rec["families"], rec["weights"]))
        rows[name] = row
    return pd.DataFrame(rows).T
