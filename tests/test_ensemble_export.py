"""An ensemble of two families through ``aslkit convert RUN RUN``: one TFLite file that passes every gate and scores
on the grader clone what the torch ensemble scores, at least as well as its best member."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aslkit.cli import main
from aslkit.config import make_config
from aslkit.submit import score_run
from aslkit.tasks.signs.ensemble import load_ensemble_model
from aslkit.tasks.signs.graph import load_grader_model
from aslkit.tasks.signs.prepare import PrepareConfig, prepare_signs
from aslkit.train import make_train_config, train

SMALL = ["optim.epochs=3", "max_train_samples=160"]


@pytest.fixture(scope="module")
def ensemble(islr_synth, tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble_root")
    mp = pytest.MonkeyPatch()
    mp.setenv("ASLKIT_ROOT", str(root))
    cache = prepare_signs(make_config(PrepareConfig, "ci", {"data_dir": str(islr_synth),
                                                            "out_dir": str(root / "prepared")}))
    runs = [train(make_train_config("ci", SMALL + [f"prepared_dir={cache}", f"model_name={m}",
                                                   f"run_name={root / 'logs' / m}"]))
            for m in ("transformer", "conv1d")]
    assert main(["convert", "--name", str(root / "logs" / "ens"), *map(str, runs), "parity_limit=0"]) == 0
    yield runs, root / "logs" / "ens"
    mp.undo()


def test_one_file_passes_every_gate(ensemble):
    runs, ens = ensemble
    rec = json.loads((ens / "ensemble.json").read_text())
    assert rec["families"] == ["transformer", "conv1d"] and sum(rec["weights"]) == pytest.approx(1)
    report = json.loads((ens / "export" / "report.json").read_text())
    assert report["submitted"] == "float16"                   # float16 by default when it passes
    f16 = report["float16"]
    assert f16["failed"] == [] and f16["agreement"] >= 0.999 and f16["n_parity"] == rec_n(ens)
    assert all(f16["degenerate_finite"].values()) and f16["size_mb"] < 40


def rec_n(ens) -> int:
    return len(np.load(ens / "oof_logits.npy"))


def test_graph_is_the_weighted_sum_of_the_members(ensemble):
    runs, ens = ensemble
    rec = json.loads((ens / "ensemble.json").read_text())
    model = load_ensemble_model(ens)
    x = torch.from_numpy(np.random.default_rng(0).uniform(0.2, 0.8, (30, 543, 3)).astype(np.float32))
    with torch.no_grad():
        want = sum(w * load_grader_model(r)(x) for w, r in zip(rec["weights"], runs))
        assert torch.allclose(model(x), want, atol=1e-4)


def test_grader_clone_scores_at_least_the_best_member(ensemble):
    runs, ens = ensemble
    res = score_run(ens, ens / "export" / "model.tflite")
    rec = json.loads((ens / "ensemble.json").read_text())
    assert res["n"] == rec_n(ens)
    assert res["accuracy"] == pytest.approx(rec["oof_accuracy"], abs=1.5 / res["n"])   # TFLite = torch
    assert rec["oof_accuracy"] >= max(rec["member_oof_accuracy"])
    assert res["accuracy"] >= max(rec["member_oof_accuracy"]) - 1.5 / res["n"]
