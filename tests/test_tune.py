"""``aslkit tune``: space specs and presets, a real two-trial study on ci data, resuming it, and the command."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from aslkit.cli import build_parser, main, tune_config
from aslkit.config import make_config
from aslkit.tasks.signs.prepare import PrepareConfig, prepare_signs
from aslkit.tune import (
    SPACES,
    TuneConfig,
    check_space,
    epoch_reporter,
    load_space,
    longest_warmup_epochs,
    open_study,
    pruner_warning,
    run_study,
    search_space,
    study_folder,
    suggest,
    validate_space,
    validate_spec,
)

TINY = {"optim.epochs": 1, "optim.batch_size": 16, "max_train_samples": 32, "model.hidden": 32, "model.layers": 1,
        "model.heads": 2, "model.intermediate": 64, "features.max_len": 16, "seed": 3}
SPACE = {"optim.lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
         "model.dropout": {"type": "float", "low": 0.0, "high": 0.3},
         "augment.lip_flip_p": {"type": "float", "low": 0.0, "high": 0.5},
         "optim.optimizer": {"type": "categorical", "choices": ["ranger", "adamw"]}}


@pytest.fixture(scope="module")
def cache(islr_synth, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "islr"
    return prepare_signs(make_config(PrepareConfig, "ci", {"data_dir": str(islr_synth), "out_dir": str(out)}))


@pytest.mark.parametrize("key, spec, match", [
    ("optim.lr", {"low": 1e-4, "high": 1e-3}, r"'optim.lr'.*type must be one of"),
    ("optim.lr", {"type": "float", "low": 1e-3, "high": 1e-4}, r"'optim.lr'.*low=0.001 is above high=0.0001"),
    ("optim.lr", {"type": "float", "low": 0.0, "high": 1e-3, "log": True}, r"'optim.lr'.*log scale needs low > 0"),
    ("optim.epochs", {"type": "int", "low": 1.5, "high": 4}, r"'optim.epochs'.*low must be a finite int, got 1.5"),
    ("optim.epochs", {"type": "int", "low": 1, "high": 4, "stepp": 1}, r"'optim.epochs'.*unknown fields \['stepp'\]"),
    ("optim.optimizer", {"type": "categorical", "choices": []}, r"'optim.optimizer'.*non-empty list"),
    ("augment.affine_scale", {"type": "categorical", "choices": [[0.8, 1.2]]}, r"'augment.affine_scale'.*choices"),
    ("model.dropout", 0.1, r"'model.dropout'.*expected a mapping"),
])
def test_bad_specs_are_rejected_naming_the_key(key, spec, match):
    with pytest.raises(ValueError, match=match):
        validate_spec(key, spec)


def test_spec_defaults_and_empty_space():
    assert validate_spec("optim.lr", {"type": "float", "low": 1e-4, "high": 1e-3}) == \
        {"type": "float", "low": 1e-4, "high": 1e-3, "log": False}
    assert validate_spec("optim.epochs", {"type": "int", "low": 8, "high": 16, "step": 4})["step"] == 4
    with pytest.raises(ValueError, match="non-empty"):
        validate_space({})


SPACE_SETUPS = {"signs": {}, "signs_weighted": {"loss.class_weights_from": "/some/run"},
                "fs": {"task": "asl-fingerspelling"}}


@pytest.mark.parametrize("name", sorted(SPACES))
def test_every_preset_space_resolves_to_config_fields(name):
    kinds = {"lr", "label_smoothing", "epochs", "optimizer", "dropout", "class_weight_power"}
    cfg = TuneConfig(space_name=name, overrides=SPACE_SETUPS[name], preset="ci")
    space = search_space(cfg)
    assert space == validate_space(SPACES[name])
    assert any(k.startswith("augment.") and k.endswith("_p") for k in space)
    assert {k.split(".")[-1] for k in space} & kinds
    check_space(cfg, space)            # builds config, features, model, augmentation and optimiser at both ends


def test_preset_spaces_cover_the_issue_kinds():
    keys = {k for space in SPACES.values() for k in space}
    for key in ("optim.lr", "optim.label_smoothing", "optim.epochs", "optim.optimizer", "model.dropout",
                "loss.class_weight_power"):
        assert key in keys


@pytest.mark.parametrize("key, value", [("model.dropoutt", 0.1), ("augment.no_such_p", 0.5), ("optim.lrr", 1e-3)])
def test_unknown_keys_are_caught_before_training(key, value):
    cfg = TuneConfig(space={key: {"type": "float", "low": 0.0, "high": value}}, preset="ci")
    with pytest.raises(ValueError, match=key.split(".")[-1]):
        check_space(cfg, search_space(cfg))


def test_weight_power_needs_a_weights_run_and_base_overrides_fix_keys():
    with pytest.raises(ValueError, match="class_weights_from"):
        cfg = TuneConfig(space_name="signs_weighted", preset="ci")
        check_space(cfg, search_space(cfg))
    fixed = search_space(TuneConfig(space_name="signs", overrides={"optim.epochs": 2}))
    assert "optim.epochs" not in fixed and "optim.lr" in fixed
    with pytest.raises(ValueError, match="run_name"):
        search_space(TuneConfig(overrides={"run_name": "x"}))


def _trial_cfg(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


def test_study_trials_resume_and_command(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    base = {**TINY, "prepared_dir": str(cache)}
    cfg = TuneConfig(study_dir="study", preset="ci", overrides=base, space=SPACE, n_trials=2, seed=1)
    folder = tmp_path / "logs" / "study"
    assert study_folder(cfg) == folder

    study = run_study(cfg)
    trials = study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert (folder / "study.db").is_file() and (folder / "tune.yaml").is_file()
    for t in trials:                                   # every trial an ordinary run folder of its own values
        run = folder / f"trial_{t.number:03d}"
        assert t.user_attrs["run"] == str(run)
        c = _trial_cfg(run)
        assert c["optim"]["lr"] == pytest.approx(t.params["optim.lr"])
        assert c["optim"]["optimizer"] == t.params["optim.optimizer"]
        assert c["model"]["dropout"] == pytest.approx(t.params["model.dropout"])
        assert c["augment"]["lip_flip_p"] == pytest.approx(t.params["augment.lip_flip_p"])
        assert c["optim"]["epochs"] == 1 and c["max_train_samples"] == 32
        metrics = pd.read_csv(run / "metrics.csv")
        assert t.value == pytest.approx(metrics["val_acc"].max())
        assert (run / "checkpoints" / "best.pt").is_file()
        assert t.intermediate_values == {1: pytest.approx(metrics["val_acc"].iloc[0])}
    assert trials[0].params != trials[1].params
    table = pd.read_csv(folder / "trials.csv")
    assert list(table["number"]) == [0, 1] and set(SPACE) <= set(table.columns)
    assert list(table["run"]) == [str(folder / "trial_000"), str(folder / "trial_001")]
    best = json.loads((folder / "best.json").read_text())
    assert best["value"] == max(t.value for t in trials) and best["params"] == study.best_trial.params
    assert best["run"] == study.best_trial.user_attrs["run"]
    plot = folder / "plots" / "tune_summary.png"
    assert plot.is_file() and plot.stat().st_size > 5000

    # resume: n_trials is the total, so the same folder with 3 runs only trial 2; earlier trials are kept
    first = [(t.params, t.value) for t in trials]
    study = run_study(TuneConfig(**{**cfg.__dict__, "n_trials": 3}))
    assert len(study.trials) == 3 and [(t.params, t.value) for t in study.trials[:2]] == first
    assert study.trials[2].params not in [p for p, _ in first]   # the sampler does not replay earlier draws
    assert (folder / "trial_002" / "metrics.csv").is_file()
    assert len(pd.read_csv(folder / "trials.csv")) == 3
    stamp = (folder / "trial_002" / "metrics.csv").stat().st_mtime_ns
    assert len(run_study(TuneConfig(**{**cfg.__dict__, "n_trials": 3})).trials) == 3   # nothing missing: no-op
    assert (folder / "trial_002" / "metrics.csv").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="another setup"):
        run_study(TuneConfig(**{**cfg.__dict__, "overrides": {**base, "seed": 4}}))

    # a trial left running by a killed process: marked failed, its parameters run again in its own run folder
    interrupted = folder / "killed_run"
    shutil.copytree(folder / "trial_000", interrupted)
    study, _ = open_study(cfg, search_space(cfg))
    dists = study.trials[0].distributions
    t = study.ask({k: dists[k] for k in SPACE})
    t.set_user_attr("run", str(interrupted))
    stale = t.number

    # the command: same study (space from a YAML file, base overrides as key=value), 1 more finished trial
    space_file = tmp_path / "space.yaml"
    space_file.write_text(yaml.safe_dump(SPACE))
    argv = ["tune", "--study", str(folder), "--space", str(space_file), "--trials", "4", "--preset", "ci",
            "--seed", "1", *[f"{k}={v}" for k, v in base.items()]]
    assert main(argv) == 0
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{folder / 'study.db'}")
    states = [t.state.name for t in study.trials]
    assert states[stale] == "FAIL" and states.count("COMPLETE") == 4 and len(states) == 5
    redo = study.trials[-1]
    assert redo.params == study.trials[stale].params and redo.user_attrs["run"] == str(interrupted)
    assert not (folder / f"trial_{redo.number:03d}").exists()
    assert len(pd.read_csv(folder / "trials.csv")) == 5


def test_median_pruner_stops_a_trial_below_earlier_ones_at_the_same_epoch():
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=2))
    first = study.ask()
    for epoch in (1, 2, 3):
        first.report(0.9, epoch)
    study.tell(first, 0.9)
    trial, reported = study.ask(), set()
    on_epoch = epoch_reporter(trial, "val_acc", reported)
    on_epoch({"epoch": 1, "val_acc": float("nan")})            # no validation score: not reported
    on_epoch({"epoch": 1, "val_acc": 0.1})                     # before 2 epochs: reported, not pruned
    with pytest.raises(optuna.TrialPruned, match="pruned at epoch 2"):
        on_epoch({"epoch": 2, "val_acc": 0.1})
    assert reported == {1, 2}
    keep = epoch_reporter(study.ask(), "val_acc", set())
    keep({"epoch": 2, "val_acc": 0.95})                        # above the median: goes on


def test_run_study_prunes_a_trial_below_the_median(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    overrides = {**TINY, "optim.epochs": 3, "prepared_dir": str(cache)}
    cfg = TuneConfig(study_dir="pruned", preset="ci", overrides=overrides, space=SPACE, n_trials=2, seed=1,
                     pruner="median", prune_startup=1, prune_warmup=1)
    study, _ = open_study(cfg, search_space(cfg))
    first = study.ask()                                        # an earlier trial that scored 1.0 at every epoch
    for key, spec in search_space(cfg).items():
        suggest(first, key, spec)
    for epoch in (1, 2, 3):
        first.report(1.0, epoch)
    study.tell(first, 1.0)
    study = run_study(cfg)                                     # one more trial: below 1.0 at epoch 1, so pruned
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED"]
    run = Path(study.trials[1].user_attrs["run"])
    assert len(pd.read_csv(run / "metrics.csv")) == 1 and (run / "checkpoints" / "last.pt").is_file()
    assert list(pd.read_csv(tmp_path / "logs" / "pruned" / "trials.csv")["state"]) == ["COMPLETE", "PRUNED"]


def test_pruner_setting_reaches_the_study(tmp_path, monkeypatch):
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    cfg = TuneConfig(study_dir="p", preset="ci", space=SPACE, pruner="median", prune_startup=3, prune_warmup=7)
    study, _ = open_study(cfg, search_space(cfg))
    assert isinstance(study.pruner, optuna.pruners.MedianPruner)
    assert study.pruner._n_startup_trials == 3 and study.pruner._n_warmup_steps == 7
    study, _ = open_study(TuneConfig(**{**cfg.__dict__, "pruner": "none"}), search_space(cfg))
    assert isinstance(study.pruner, optuna.pruners.NopPruner)
    with pytest.raises(ValueError, match="pruner must be one of"):
        open_study(TuneConfig(**{**cfg.__dict__, "pruner": "hyperband"}), search_space(cfg))
    args = build_parser().parse_args(["tune", "--pruner", "median", "--prune-after", "20", "optim.epochs=80"])
    cfg = tune_config(args)
    assert (cfg.pruner, cfg.prune_warmup, cfg.overrides) == ("median", 20, {"optim.epochs": "80"})
    assert tune_config(build_parser().parse_args(["tune"])).prune_warmup == TuneConfig().prune_warmup


def test_tune_help():
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["tune", "--help"])
    assert e.value.code == 0


def test_pruner_warns_inside_the_longest_warmup():
    """The frames25 quick space reaches 60 epochs with a 10 % warmup: pruning after 5 epochs compares trials still
    warming up (6 epochs), after 15 it does not; no pruner, no warning."""
    path = Path(__file__).parents[1] / "experiments" / "spaces" / "tune_signs_frames25_quick.yaml"
    space = search_space(TuneConfig(space=load_space(str(path))))
    base = {"model_name": "frames25"}
    early = TuneConfig(preset="quick", overrides=base, pruner="median", prune_warmup=5)
    assert longest_warmup_epochs(early, space) == 6
    assert "--prune-after 5 is inside the 6-epoch" in pruner_warning(early, space)
    assert pruner_warning(TuneConfig(preset="quick", overrides=base, pruner="median", prune_warmup=15), space) == ""
    assert pruner_warning(TuneConfig(preset="quick", overrides=base, prune_warmup=5), space) == ""
