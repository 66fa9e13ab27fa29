"""Hyper-parameter search (``aslkit tune``): an Optuna study over ``TrainConfig`` keys, every trial an ordinary run.

- The search space maps dotted ``TrainConfig`` keys (``optim.lr``, ``model.dropout``, ``augment.lip_flip_p``, ...) to
  specs: ``{"type": "float", "low": 1e-4, "high": 3e-3, "log": true}``, ``{"type": "int", "low": 16, "high": 32,
  "step": 4}`` or ``{"type": "categorical", "choices": ["ranger", "adamw"]}``. ``SPACES`` holds named ones; a key
  also given as a base override is fixed at that value and left out of the search.
- Trial ``n`` trains ``<study>/trial_<n:03d>/`` with ``aslkit.train.train`` (config.yaml, metrics.csv, checkpoints,
  OOF files as any run); its value is the best epoch's ``score_key`` of the task (``val_acc`` / ``val_score``).
- The study lives in ``<study>/study.db`` (SQLite). ``n_trials`` is the **total** number of finished trials wanted:
  running the same study folder again runs only the missing ones, and a trial that was interrupted (still marked
  running) is marked failed and its parameters run again, continuing its run folder from the last checkpoint. One
  process at a time works a study folder.
- After every trial: ``trials.csv``, ``best.json`` and ``plots/tune_summary.png`` (value per trial with the best so
  far, and the value against each parameter).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import pandas as pd

from aslkit.config import default_profile, parse_overrides, save_config
from aslkit.paths import logs_root
from aslkit.runs import TrainConfig, checkpoint_path, write_csv_atomic, write_json_atomic
from aslkit.tasks.registry import plugin
from aslkit.train import build_optimizer, make_train_config, train

if TYPE_CHECKING:
    import optuna

SPEC_TYPES = ("float", "int", "categorical")
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "random")
PRUNERS = ("none", "median")

# Named search spaces. Epoch ranges are sized for the ``quick`` profile; fix a key with a base override to leave it
# out (``aslkit tune --preset ci optim.epochs=2``).
_SIGNS = {
    "optim.lr": {"type": "float", "low": 2e-4, "high": 3e-3, "log": True},
    "optim.label_smoothing": {"type": "float", "low": 0.0, "high": 0.4},
    "optim.epochs": {"type": "int", "low": 16, "high": 32, "step": 4},
    "optim.optimizer": {"type": "categorical", "choices": ["ranger", "adamw"]},
    "model.dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "augment.affine_p": {"type": "float", "low": 0.3, "high": 1.0},
    "augment.interp_p": {"type": "float", "low": 0.0, "high": 0.6},
    "augment.finger_p": {"type": "float", "low": 0.3, "high": 1.0},
    "augment.lip_flip_p": {"type": "float", "low": 0.0, "high": 0.5},
}
SPACES: dict[str, dict[str, dict[str, Any]]] = {
    # asl-signs, transformer family (I2-T's augmentations, BERT dropout)
    "signs": _SIGNS,
    # the same plus the power of the class-weighted loss (needs loss.class_weights_from=<finished run>)
    "signs_weighted": {**_SIGNS, "loss.class_weight_power": {"type": "float", "low": 0.5, "high": 2.0}},
    # asl-fingerspelling (task=asl-fingerspelling): CTC encoder dropout and F1/F5 augmentation probabilities
    "fs": {
        "optim.lr": {"type": "float", "low": 5e-4, "high": 5e-3, "log": True},
        "optim.epochs": {"type": "int", "low": 40, "high": 80, "step": 10},
        "optim.optimizer": {"type": "categorical", "choices": ["adamw", "ranger"]},
        "model.dropout": {"type": "float", "low": 0.0, "high": 0.3},
        "augment.resample_p": {"type": "float", "low": 0.0, "high": 0.8},
        "augment.affine_p": {"type": "float", "low": 0.2, "high": 1.0},
        "augment.lip_flip_p": {"type": "float", "low": 0.0, "high": 0.5},
        "augment.cutmix_p": {"type": "float", "low": 0.0, "high": 0.5},
        "augment.time_mask_p": {"type": "float", "low": 0.0, "high": 0.5},
    },
}


@dataclass
class TuneConfig:
    """``aslkit tune``: where the study lives, what each trial trains, and what is searched."""

    study_dir: str = ""              # folder under logs/ (or an absolute path); empty: tune_<space name>
    study_name: str = ""             # empty: the folder's name
    preset: str = ""                 # profile of make_train_config (ci | quick | full); empty: $ASLKIT_PROFILE/quick
    overrides: dict = field(default_factory=dict)   # base TrainConfig overrides of every trial (e.g. model_name)
    space_name: str = ""             # a key of SPACES, used when ``space`` is empty (empty: signs or fs by task)
    space: dict = field(default_factory=dict)       # {dotted TrainConfig key: spec}
    n_trials: int = 20               # total finished trials wanted (a resumed study runs only the missing ones)
    direction: str = "maximize"
    sampler: str = "tpe"             # tpe | random
    seed: int = 0                    # sampler seed (offset by the trials already in the study)
    pruner: str = "none"             # none | median: stop a trial whose epoch score is below the median of earlier
                                     # trials at that epoch (Optuna's MedianPruner)
    prune_startup: int = 2           # finished trials before any trial is pruned
    prune_warmup: int = 5            # epochs a trial runs before it can be pruned


# ------------------------------------------------------------------------------------------------------------------
# The search space
# ------------------------------------------------------------------------------------------------------------------
def _number(key: str, spec: Mapping[str, Any], name: str, kind: type) -> float | int:
    """``spec[name]`` as a number of ``kind`` (ValueError naming the key otherwise)."""
    v = spec.get(name)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (kind is float or isinstance(v, int))
    if not ok or (isinstance(v, float) and not math.isfinite(v)):
        raise ValueError(f"space[{key!r}]: {name} must be a finite {kind.__name__}, got {v!r}")
    return kind(v)


def validate_spec(key: str, spec: Any) -> dict[str, Any]:
    """The normalised spec of ``key`` (ValueError naming the key and the bad value)."""
    if not isinstance(key, str) or not key or key.startswith(".") or key.endswith("."):
        raise ValueError(f"space key {key!r} is not a dotted TrainConfig key such as optim.lr")
    if not isinstance(spec, Mapping):
        raise ValueError(f"space[{key!r}]: expected a mapping with a 'type', got {spec!r}")
    kind = spec.get("type")
    if kind not in SPEC_TYPES:
        raise ValueError(f"space[{key!r}]: type must be one of {SPEC_TYPES}, got {kind!r}")
    allowed = {"float": {"type", "low", "high", "log", "step"}, "int": {"type", "low", "high", "log", "step"},
               "categorical": {"type", "choices"}}[kind]
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ValueError(f"space[{key!r}]: unknown fields {extra} for type {kind}; allowed: {sorted(allowed)}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise ValueError(f"space[{key!r}]: choices must be a non-empty list, got {choices!r}")
        bad = [c for c in choices if c is not None and not isinstance(c, (bool, int, float, str))]
        if bad:
            raise ValueError(f"space[{key!r}]: choices must be null, bool, int, float or str, got {bad!r}")
        return {"type": kind, "choices": list(choices)}
    num = float if kind == "float" else int
    low, high = _number(key, spec, "low", num), _number(key, spec, "high", num)
    if low > high:
        raise ValueError(f"space[{key!r}]: low={low!r} is above high={high!r}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"space[{key!r}]: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise ValueError(f"space[{key!r}]: a log scale needs low > 0, got low={low!r}")
    out = {"type": kind, "low": low, "high": high, "log": log}
    if spec.get("step") is not None:
        step = _number(key, spec, "step", num)
        if step <= 0 or log:
            raise ValueError(f"space[{key!r}]: step must be > 0 and cannot be combined with log, got {step!r}")
        out["step"] = step
    return out


def validate_space(space: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every spec of ``space`` normalised (ValueError on the first bad one; an empty space is an error too)."""
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"the search space must be a non-empty mapping of TrainConfig keys to specs, got {space!r}")
    return {key: validate_spec(key, spec) for key, spec in space.items()}


def load_space(name_or_path: str) -> dict[str, dict[str, Any]]:
    """A named space of ``SPACES``, or the mapping in a YAML/JSON file (validated)."""
    if name_or_path in SPACES:
        return validate_space(SPACES[name_or_path])
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"unknown search space {name_or_path!r}: neither a name in {sorted(SPACES)} nor a file")
    import yaml
    return validate_space(yaml.safe_load(path.read_text()))


def base_overrides(cfg: TuneConfig) -> dict[str, Any]:
    """The base TrainConfig overrides of every trial as a flat dict (a ``run_name`` is refused: each trial has its
    own folder)."""
    base = parse_overrides(cfg.overrides)
    if "run_name" in base:
        raise ValueError("run_name cannot be a base override of a study: trial n trains <study>/trial_<n>")
    return base


def space_name(cfg: TuneConfig) -> str:
    """The named space (or space file) of ``cfg``: ``space_name``, else the task's default (``signs``, ``fs``);
    ``custom`` when ``cfg.space`` is given."""
    if cfg.space:
        return "custom"
    task = str(base_overrides(cfg).get("task", TrainConfig.task))
    return cfg.space_name or plugin(task).tune_space


def search_space(cfg: TuneConfig) -> dict[str, dict[str, Any]]:
    """The space searched by ``cfg``: ``cfg.space`` (or the named one), without the keys fixed by base overrides."""
    space = validate_space(cfg.space) if cfg.space else load_space(space_name(cfg))
    fixed = set(base_overrides(cfg))
    searched = {k: v for k, v in space.items() if k not in fixed}
    if not searched:
        raise ValueError(f"every key of the search space is fixed by a base override: {sorted(space)}")
    return searched


def corner_values(space: Mapping[str, Mapping[str, Any]], end: int) -> dict[str, Any]:
    """One value per key: the low end (``end=0``: low / first choice) or the high end (``end=1``: high / last)."""
    out = {}
    for key, spec in space.items():
        if spec["type"] == "categorical":
            out[key] = spec["choices"][-1 if end else 0]
        else:
            out[key] = spec["high" if end else "low"]
    return out


def _build_without_data(tcfg) -> None:
    """Build the feature module, the model, the augmentation and the optimiser of a run config without data, so
    that every key of the free-form sub-configs (model, features, augment) is checked against its dataclass."""
    task_plugin = plugin(tcfg.task)
    subset = task_plugin.default_subset
    task_plugin.families.build_augment(tcfg, subset)
    _, model = task_plugin.families.build_modules(tcfg, subset)
    build_optimizer(model, tcfg.optim)


def corner_train_config(cfg: TuneConfig, space: Mapping[str, Mapping[str, Any]], end: int) -> TrainConfig:
    """The run config of a trial at the low (``end=0``) or high (``end=1``) end of ``space``."""
    return make_train_config(preset_of(cfg), {**base_overrides(cfg), **corner_values(space, end)})


def check_space(cfg: TuneConfig, space: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise (naming the key) unless every key of ``space`` is a field of the trial's config: the run config and
    its model, features, augmentation and optimiser are built at the low and the high end of the space."""
    for end in (0, 1):
        values = corner_values(space, end)
        try:
            tcfg = corner_train_config(cfg, space, end)
            _build_without_data(tcfg)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"search space {sorted(space)} does not fit the trial config "
                             f"(values {values}): {e}") from e
        if tcfg.fold < 0:
            raise ValueError("fold=-1 trains without a validation fold: nothing to score a trial on")
        if "loss.class_weight_power" in space and not tcfg.loss.class_weights_from:
            raise ValueError("space key 'loss.class_weight_power' has no effect without "
                             "loss.class_weights_from=<finished run>")


def longest_warmup_epochs(cfg: TuneConfig, space: Mapping[str, Mapping[str, Any]]) -> int:
    """Epochs of learning-rate warmup of the trial at the high end of ``space`` (the most epochs and the largest
    warmup fraction there)."""
    return corner_train_config(cfg, space, 1).optim.warmup_epochs()


def pruner_warning(cfg: TuneConfig, space: Mapping[str, Mapping[str, Any]]) -> str:
    """One line when the median pruner may stop trials inside their learning-rate warmup (``prune_warmup`` below
    the longest trial's warmup), where trials with longer schedules are compared on their early slope; else ''."""
    if cfg.pruner != "median":
        return ""
    warm = longest_warmup_epochs(cfg, space)
    if cfg.prune_warmup >= warm:
        return ""
    return (f"warning: --prune-after {cfg.prune_warmup} is inside the {warm}-epoch learning-rate warmup of the "
            f"longest trial; the pruner will compare schedules on their early slope (give --prune-after {warm} or "
            f"more)")


# ------------------------------------------------------------------------------------------------------------------
# The study
# ------------------------------------------------------------------------------------------------------------------
def preset_of(cfg: TuneConfig) -> str:
    """The training profile of the trials (``cfg.preset``, else ``$ASLKIT_PROFILE``, else quick)."""
    return cfg.preset or default_profile()


def study_folder(cfg: TuneConfig) -> Path:
    """``logs/<study_dir>``, or ``study_dir`` itself when absolute (``logs/tune_<space name>`` when empty)."""
    name = cfg.study_dir or f"tune_{Path(space_name(cfg)).stem}"
    return Path(name) if Path(name).is_absolute() else logs_root() / name


def score_key(task: str) -> str:
    """The metrics.csv column that picks a run's best epoch (and is a trial's value)."""
    return plugin(task).score_key


def run_score(run: str | Path, key: str, direction: str = "maximize") -> tuple[float, list[float]]:
    """Best value of column ``key`` over the epochs of a finished run (and the per-epoch values)."""
    path = Path(run) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the trial's run wrote no metrics")
    col = pd.read_csv(path).get(key)
    values = [] if col is None else [float(v) for v in col]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        raise ValueError(f"{path}: no {key} values (a run needs a validation fold to be scored)")
    return (max(finite) if direction == "maximize" else min(finite)), values


def suggest(trial: "optuna.Trial", key: str, spec: Mapping[str, Any]) -> Any:
    """The trial's value of ``key`` drawn from its (validated) spec."""
    if spec["type"] == "categorical":
        return trial.suggest_categorical(key, spec["choices"])
    kw = {"step": spec["step"]} if "step" in spec else {"log": spec["log"]}
    if spec["type"] == "int":
        return trial.suggest_int(key, spec["low"], spec["high"], **kw)
    return trial.suggest_float(key, spec["low"], spec["high"], **kw)


def _sampler(cfg: TuneConfig, offset: int) -> "optuna.samplers.BaseSampler":
    """TPE or random sampler seeded with ``cfg.seed + offset`` (a resumed study does not redraw earlier points)."""
    import optuna
    if cfg.sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {cfg.sampler!r}")
    seed = cfg.seed + offset
    return optuna.samplers.TPESampler(seed=seed) if cfg.sampler == "tpe" else optuna.samplers.RandomSampler(seed)


def _pruner(cfg: TuneConfig) -> "optuna.pruners.BasePruner":
    """No pruning, or the median rule after ``prune_startup`` trials and ``prune_warmup`` epochs."""
    import optuna
    if cfg.pruner not in PRUNERS:
        raise ValueError(f"pruner must be one of {PRUNERS}, got {cfg.pruner!r}")
    if cfg.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=cfg.prune_startup, n_warmup_steps=cfg.prune_warmup)


def open_study(cfg: TuneConfig, space: Mapping[str, Any]) -> tuple["optuna.Study", "optuna.storages.RDBStorage"]:
    """Create ``<study>/study.db`` or load the study already there (ValueError when it was started with another
    preset, base overrides or space); returns the study and its storage."""
    import optuna
    import yaml
    if cfg.direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {cfg.direction!r}")
    folder = study_folder(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{folder / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name=cfg.study_name or folder.name, direction=cfg.direction,
                                load_if_exists=True)
    base = {k: yaml.safe_load(v) if isinstance(v, str) else v for k, v in base_overrides(cfg).items()}  # "1" = 1
    setup = json.loads(json.dumps({"preset": preset_of(cfg), "overrides": base, "space": dict(space)}, default=str))
    if "setup" not in study.user_attrs:
        study.set_user_attr("setup", setup)
    elif study.user_attrs["setup"] != setup:
        raise ValueError(f"{folder / 'study.db'} holds a study of another setup: {study.user_attrs['setup']}; "
                         f"this one: {setup}. Use another study folder.")
    study.sampler, study.pruner = _sampler(cfg, len(study.trials)), _pruner(cfg)
    return study, storage


def requeue_interrupted(study: "optuna.Study", storage: "optuna.storages.BaseStorage") -> int:
    """Mark trials left running by an interrupted process as failed and enqueue their parameters again (the new
    trial continues the old run folder); returns how many. A study folder is worked by one process at a time."""
    from optuna.trial import TrialState
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in stale:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"resume_run": t.user_attrs.get("run", ""),
                                                  "resumed_trial": t.number})
    return len(stale)


def finished_trials(study: "optuna.Study") -> int:
    """Trials that count towards ``n_trials`` (complete or pruned)."""
    from optuna.trial import TrialState
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def epoch_reporter(trial: "optuna.Trial", key: str, reported: set[int]) -> Callable[[dict], None]:
    """``train``'s ``on_epoch`` for a trial: report the epoch's ``key`` and raise ``optuna.TrialPruned`` when the
    study's pruner says so (the run folder keeps the epochs done)."""
    import optuna

    def on_epoch(row: dict) -> None:
        v = row.get(key)
        if v is None or not math.isfinite(v):
            return
        trial.report(v, row["epoch"])
        reported.add(row["epoch"])
        if trial.should_prune():
            raise optuna.TrialPruned(f"trial {trial.number} pruned at epoch {row['epoch']} ({key} {v:.4f})")
    return on_epoch


def make_objective(cfg: TuneConfig, space: Mapping[str, Mapping[str, Any]], folder: Path):
    """``trial -> value``: train the trial's run folder (reporting every epoch, pruned by the study's pruner) and
    return its best epoch's score."""
    preset, base = preset_of(cfg), base_overrides(cfg)

    def objective(trial: "optuna.Trial") -> float:
        params = {key: suggest(trial, key, spec) for key, spec in space.items()}
        tcfg = make_train_config(preset, {**base, **params, "run_name": str(folder / f"trial_{trial.number:03d}")})
        reported: set[int] = set()
        on_epoch = epoch_reporter(trial, score_key(tcfg.task), reported)
        old = Path(trial.user_attrs.get("resume_run") or folder / "-")
        if checkpoint_path(old, "last").is_file():
            trial.set_user_attr("run", str(old))
            print(f"trial {trial.number}: continuing {old}", flush=True)
            run = train(resume=old, on_epoch=on_epoch)
        else:
            trial.set_user_attr("run", tcfg.run_name)
            print(f"trial {trial.number}: {params}", flush=True)
            run = train(tcfg, on_epoch=on_epoch, overwrite=True)     # the study owns its trial folders
        value, per_epoch = run_score(run, score_key(tcfg.task), cfg.direction)
        for step, v in enumerate(per_epoch, 1):       # epochs of an interrupted earlier attempt
            if math.isfinite(v) and step not in reported:
                trial.report(v, step)
        return value
    return objective


def run_study(cfg: TuneConfig) -> "optuna.Study":
    """Run (or continue) the study of ``cfg`` until it holds ``cfg.n_trials`` finished trials; the summary files
    are rewritten after every trial."""
    space = search_space(cfg)
    check_space(cfg, space)
    folder = study_folder(cfg)
    study, storage = open_study(cfg, space)
    save_config(cfg, folder / "tune.yaml")
    requeued = requeue_interrupted(study, storage)
    missing = max(0, cfg.n_trials - finished_trials(study))
    print(f"study {study.study_name} in {folder}: {finished_trials(study)} finished trials, {missing} to run "
          f"({requeued} interrupted, run again); searching {sorted(space)}", flush=True)
    warning = pruner_warning(cfg, space)
    if warning:
        print(warning, flush=True)
    try:
        if missing:
            study.optimize(make_objective(cfg, space, folder), n_trials=missing,
                           callbacks=[lambda s, t: write_summary(s, folder, space)])
    finally:
        write_summary(study, folder, space)
    return study


# ------------------------------------------------------------------------------------------------------------------
# Summary
# ------------------------------------------------------------------------------------------------------------------
def trials_frame(study: "optuna.Study") -> pd.DataFrame:
    """One row per trial: number, state, value, run folder, seconds, then one column per parameter."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else float("nan")
        rows.append({"number": t.number, "state": t.state.name, "value": t.value, "run": t.user_attrs.get("run", ""),
                     "seconds": round(seconds, 1), **t.params})
    return pd.DataFrame(rows, columns=None if rows else ["number", "state", "value", "run", "seconds"])


def best_record(study: "optuna.Study") -> dict[str, Any] | None:
    """The best finished trial: number, value, params, run folder (None before the first one)."""
    from optuna.trial import TrialState
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    b = study.best_trial
    return {"number": b.number, "value": b.value, "params": b.params, "run": b.user_attrs.get("run", ""),
            "direction": study.direction.name.lower(), "finished_trials": finished_trials(study)}


def write_summary(study: "optuna.Study", folder: Path, space: Mapping[str, Mapping[str, Any]]) -> None:
    """``trials.csv``, ``best.json`` and ``plots/tune_summary.png`` of the study in ``folder``."""
    df = trials_frame(study)
    write_csv_atomic(df, folder / "trials.csv", index=False)
    best = best_record(study)
    if best is not None:
        write_json_atomic(folder / "best.json", json.loads(json.dumps(best, default=str)))
    plot_summary(df, space, study.direction.name.lower(), folder / "plots" / "tune_summary.png")


def plot_summary(df: pd.DataFrame, space: Mapping[str, Mapping[str, Any]], direction: str, path: str | Path):
    """Value per trial with the best so far, then the value against each searched parameter; saved to ``path``."""
    import matplotlib.pyplot as plt

    import aslkit.plotting  # noqa: F401  (selects the Agg backend outside notebooks)
    done = df[df["state"] == "COMPLETE"] if len(df) else df
    keys = list(space)
    cols = min(4, len(keys) + 1)
    nrows = -(-(len(keys) + 1) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.8 * nrows), squeeze=False)
    ax = axes.flat[0]
    if len(done):
        best = done["value"].cummax() if direction == "maximize" else done["value"].cummin()
        ax.plot(done["number"], done["value"], "o", label="trial")
        ax.step(done["number"], best, where="post", c="tab:red", label="best so far")
        ax.legend(fontsize=7)
    ax.set_xlabel("trial"), ax.set_ylabel("value"), ax.set_title("optimisation history", fontsize=9)
    for ax, key in zip(list(axes.flat)[1:], keys):
        spec = space[key]
        if len(done) and key in done:
            x = done[key]
            if spec["type"] == "categorical":
                labels = [str(c) for c in spec["choices"]]
                ax.set_xticks(range(len(labels)), labels, fontsize=7)
                ax.set_xlim(-0.5, len(labels) - 0.5)
                x = x.map(lambda v: labels.index(str(v)) if str(v) in labels else np.nan)
            ax.scatter(x, done["value"], c=done["number"], cmap="viridis", s=18)
        if spec.get("log"):
            ax.set_xscale("log")
        ax.set_title(key, fontsize=9)
    for ax in list(axes.flat)[len(keys) + 1:]:
        ax.axis("off")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
