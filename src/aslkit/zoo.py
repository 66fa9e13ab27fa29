"""Several models of one task side by side, as the notebooks run them: one run folder per model under an experiment
folder, an ensemble of them (asl-signs), and one table of every model and the ensemble on the same held-out
participants (OOF accuracy and its lowest and highest value per participant, TFLite grader-clone accuracy,
latency, size).

Layout of an experiment folder ``<run>``: ``<run>/<model_name>/`` per family and ``<run>/ensemble/`` (asl-signs);
with a single unnamed member (fingerspelling's default) ``<run>`` itself is the run folder.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from aslkit.config import default_profile, make_config
from aslkit.export import ConvertConfig, convert
from aslkit.paths import logs_root
from aslkit.runs import TrainConfig, checkpoint_path, is_finished, run_task
from aslkit.submit import package, score_run
from aslkit.tasks.registry import ensemble_candidate, plugin, reference_run
from aslkit.train import make_train_config, train

ENSEMBLE_DIR = "ensemble"


class Experiment(NamedTuple):
    """One notebook experiment: its profile, folder and member model names (see ``experiment``)."""

    profile: str
    run: Path
    members: list[str]


def experiment(task: str, profile: str | None = None, run: str | Path = "", models: list[str] | None = None
               ) -> Experiment:
    """The experiment of a notebook's parameters, printed: ``profile`` (default ``$ASLKIT_PROFILE`` or quick), the
    folder ``run`` (default ``logs/<task>_<profile>``) and the members (``models`` or the task's default zoo)."""
    profile = profile or default_profile()
    folder = Path(run) if run else logs_root() / f"{task}_{profile}"
    exp = Experiment(profile, folder, zoo_members(task, profile, models))
    print("profile:", exp.profile, "| experiment folder:", exp.run, "| models:", exp.members)
    return exp


def zoo_members(task: str, profile: str, models: list[str] | None = None) -> list[str]:
    """Model names of an experiment: ``models``, or the task's default for the profile (asl-signs: the zoo of
    families; fingerspelling: ``[""]``, the experiment folder itself)."""
    return plugin(task).zoo_members(profile, models)


def member_dir(run: str | Path, name: str) -> Path:
    """The run folder of model ``name`` in experiment ``run`` (``run`` itself for the unnamed member)."""
    return Path(run) / name if name else Path(run)


def member_family(name: str) -> tuple[str, int | None]:
    """A member name's family and seed: ``"f1@43"`` -> ``("f1", 43)`` (a second seed of a family), ``"cnn"`` ->
    ``("cnn", None)``; ValueError naming a seed that is not an integer."""
    family, at, seed = name.partition("@")
    if at and not seed.lstrip("-").isdigit():
        raise ValueError(f"model {name!r}: the seed after '@' must be an integer (e.g. {family}@43)")
    return family, int(seed) if at else None


def ensemble_members(run: str | Path, members: list[str]) -> list[str]:
    """The members an ensemble is made of: every trained member the task can ensemble (no reference: the non-deep
    baseline; fingerspelling: attention decoders only)."""
    return [m for m in members if ensemble_candidate(member_dir(run, m))]


def oof_metric(task: str, folder: Path) -> float | None:
    """The OOF metric of a run or ensemble folder (the task's ``OOF ...`` entry of its zoo-table row), None without
    an ``oof.csv``."""
    if not (folder / "oof.csv").is_file():
        return None
    return next(float(v) for k, v in plugin(task).oof_summary(folder).items() if k.startswith("OOF "))


def selection_metric(task: str, folder: Path) -> float | None:
    """The OOF metric that competes for submission: an ensemble whose weights were fitted on the sequences it is
    scored on counts with its cross-fitted accuracy (weights fitted on the other half of the participants)."""
    record = folder / "ensemble.json"
    if record.is_file() and (cross := json.loads(record.read_text()).get("fit_oof_accuracy_cross_fitted")) is not None:
        return float(cross)
    return oof_metric(task, folder)


def submitted_dir(run: str | Path, members: list[str]) -> Path:
    """The folder whose model is submitted: of the ensemble (when there is one) and the members that are no
    reference, the one with the best ``selection_metric`` (the ensemble on a tie; without OOF files the ensemble,
    else the first member); a reference only when it is the only model. Fingerspelling: a CTC member can beat the
    ensemble of the attention decoders."""
    models = [m for m in members if not reference_run(member_dir(run, m))] or members
    folders = ([Path(run) / ENSEMBLE_DIR] if len(ensemble_members(run, members)) > 1 else []) + \
        [member_dir(run, m) for m in models]
    scores = [selection_metric(run_task(folders[-1]), f) for f in folders]
    if all(v is not None for v in scores):
        return folders[max(range(len(folders)), key=lambda i: (scores[i], -i))]
    return folders[0]


def member_configs(profile: str, task: str, run: str | Path, members: list[str], overrides: dict | None = None,
                   data_dir: str = "") -> dict[str, TrainConfig]:
    """The training config of every member (profile preset, the family's preset, then ``overrides``)."""
    out = {}
    for name in members:
        family, seed = member_family(name)
        ov = {"task": task, "run_name": str(member_dir(run, name).resolve()), "data_dir": data_dir,
              **({"model_name": family} if family else {}), **({"seed": seed} if seed is not None else {}),
              **(overrides or {})}
        out[name] = make_train_config(profile, ov)
    return out


def train_zoo(cfgs: dict[str, TrainConfig]) -> dict[str, Path]:
    """Train every member's config (resume an interrupted run, keep a finished one); returns the run folders."""
    out = {}
    for name, cfg in cfgs.items():
        folder = Path(cfg.run_name)
        last = checkpoint_path(folder, "last")
        if last.is_file() and is_finished(folder, cfg.optim.epochs):
            print(f"{folder}: already trained ({cfg.optim.epochs} epochs)")
            out[name] = folder
        else:
            out[name] = train(resume=folder) if last.is_file() else train(cfg, overwrite=True)
    return out


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


def make_zoo_ensemble(task: str, run: str | Path, members: list[str]) -> Path | None:
    """The one-file ensemble folder of an experiment (weights fitted on the OOF logits of its ``ensemble_members``),
    or None when there is a single such member or the task has no ensembles."""
    make, members = plugin(task).make_ensemble, ensemble_members(run, members)
    if len(members) < 2 or make is None:
        return None
    return make([member_dir(run, m) for m in members], (Path(run) / ENSEMBLE_DIR).resolve())


def convert_zoo(run: str | Path, members: list[str], overrides: dict | None = None) -> dict[str, dict]:
    """``convert`` every member and the ensemble (which must exist when there are several members); returns the
    reports by name."""
    folders = _model_folders(run, members)
    return {name: convert(make_config(ConvertConfig, None, {"run_dir": str(f), **(overrides or {})}))
            for name, f in folders.items()}


def _model_folders(run: str | Path, members: list[str]) -> dict[str, Path]:
    """Every member's run folder by name, and the ensemble's when it has several members."""
    folders = {m or Path(run).name: member_dir(run, m) for m in members}
    if len(ensemble_members(run, members)) > 1:
        folders[ENSEMBLE_DIR] = Path(run) / ENSEMBLE_DIR
    return folders


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
    folders = _model_folders(run, members)
    return {name: score_run(f, package(f, f / "export" / "graded_submission.zip")) for name, f in folders.items()}


def zoo_table(task: str, run: str | Path, members: list[str]) -> pd.DataFrame:
    """Every member and the ensemble on the same held-out participants: OOF accuracy (torch; fingerspelling: OOF
    score) with its spread over the participants (the worst participant's accuracy and id, the best one's: the
    task's ``oof_summary``, from the validation report's per-participant table), and where the model was converted
    and graded, the TFLite grader-clone accuracy, mean latency per sequence and size."""
    task_plugin = plugin(task)
    families = task_plugin.families
    folders = {m or Path(run).name: member_dir(run, m) for m in members}
    if (Path(run) / ENSEMBLE_DIR / "ensemble.json").is_file() and len(ensemble_members(run, members)) > 1:
        folders[ENSEMBLE_DIR] = Path(run) / ENSEMBLE_DIR
    rows = {}
    for name, f in folders.items():
        family, seed = member_family(name)
        row = {"model": families.description(family) + ("" if seed is None else f" (seed {seed})"),
               **task_plugin.oof_summary(f)}
        score = f / "score.json"
        if score.is_file():
            s = json.loads(score.read_text())
            row.update({"TFLite accuracy": s.get("accuracy", s.get("score")), "latency (ms)": s["latency_ms_mean"],
                        "size (MB)": s["size_mb"]})
        if name == ENSEMBLE_DIR:
            rec = json.loads((f / "ensemble.json").read_text())
            row["model"] = "ensemble: " + " + ".join(f"{w:.2f} x {m}" for m, w in zip(rec["families"], rec["weights"]))
            if "fit_oof_accuracy_cross_fitted" in rec:
                row["model"] += (f" (OOF accuracy {rec['fit_oof_accuracy_cross_fitted']:.3f} with weights fitted on the"
                                 f" other half of the participants)")
        rows[name] = row
    return pd.DataFrame(rows).T
