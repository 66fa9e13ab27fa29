"""Conversion gates, the submission and the grader clone, on a tiny trained asl-signs run."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from aslkit.config import make_config
from aslkit.export import ConvertConfig, convert, gate_failures
from aslkit.runs import file_digest
from aslkit.submit import make_submission, score_run, submit
from aslkit.tasks.base import degenerate_inputs
from aslkit.tasks.signs.graph import load_grader_model
from aslkit.tasks.signs.prepare import PrepareConfig, prepare_signs
from aslkit.tflite import tflite_runner
from aslkit.train import make_train_config, train

TINY = ["optim.epochs=2", "optim.batch_size=16", "max_train_samples=64", "model.hidden=32", "model.layers=2",
        "model.heads=2", "model.intermediate=64", "features.max_len=16"]


@pytest.fixture(scope="module")
def converted(islr_synth, tmp_path_factory):
    root = tmp_path_factory.mktemp("export_root")
    mp = pytest.MonkeyPatch()
    mp.setenv("ASLKIT_ROOT", str(root))
    cache = prepare_signs(make_config(PrepareConfig, "ci", {"data_dir": str(islr_synth),
                                                            "out_dir": str(root / "prepared")}))
    run = train(make_train_config("ci", TINY + [f"prepared_dir={cache}", "run_name=tiny"]))
    report = convert(make_config(ConvertConfig, None, {"run_dir": str(run), "parity_limit": 40}))
    yield run, report
    mp.undo()


def test_builds_pass_every_gate(converted):
    run, report = converted
    for build in ("float32", "float16"):
        r = report[build]
        assert r["failed"] == [] and r["size_mb"] < 40 and r["non_builtin_ops"] == []
        assert r["agreement"] >= 0.999 and r["n_parity"] == 40
        assert all(r["degenerate_finite"].values()) and len(r["degenerate_finite"]) == 5
        assert r["tflite_runtime_agreement"] >= 0.98                      # tf.lite runs it too
    assert report["float16"]["size_mb"] < report["float32"]["size_mb"]
    assert json.loads((run / "export" / "report.json").read_text())["float32"]["failed"] == []
    best = run / "checkpoints" / "best.pt"
    assert report["sources"] == {str(best.resolve()): file_digest(best)}      # what submit checks against


def test_tflite_matches_torch_on_degenerate_inputs(converted):
    run, _ = converted
    model = load_grader_model(run)
    runner = tflite_runner(run / "export" / "model_float32.tflite")
    for name, x in degenerate_inputs().items():
        y = runner(x)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        assert y.shape == (250,), name
        assert np.abs(y - ref).max() < 0.05, name


def test_submission_and_grader_clone(converted):
    run, _ = converted
    zip_path = submit(run)
    with zipfile.ZipFile(zip_path) as z:
        assert z.namelist() == ["model.tflite"]
    res = score_run(run)
    assert res["n"] == len(np.load(run / "oof_logits.npy"))
    assert abs(res["accuracy"] - res["torch_oof_accuracy"]) <= 0.005
    assert res["latency_ms_mean"] > 0 and res["size_mb"] < 40
    assert (run / "score.json").is_file()


def test_deberta_encoder_converts_and_passes_the_gates(converted):
    run, _ = converted
    cache = json.loads((run / "data.json").read_text())["prepared_dir"]
    deb = train(make_train_config("ci", TINY + [f"prepared_dir={cache}", f"run_name={run.parent / 'deb'}",
                                                       "optim.epochs=1", "model.encoder=deberta"]))
    report = convert(make_config(ConvertConfig, None, {"run_dir": str(deb), "parity_limit": 20}))
    assert report["float32"]["failed"] == [] and report["float32"]["agreement"] == 1.0
    assert report["float32"]["max_abs_diff"] < 5e-3


def test_onehot_gather_equals_gather():
    from aslkit.tensor_ops import onehot_gather
    x = torch.randn(3, 5, 8)
    idx = torch.randint(0, 8, (3, 5, 6))
    assert torch.equal(onehot_gather(x, -1, idx), torch.gather(x, -1, idx))


def test_gate_failures_name_the_gate():
    cfg = ConvertConfig()
    ok = {"size_mb": 1.0, "non_builtin_ops": [], "degenerate_finite": {"1 frame": True}, "agreement": 1.0}
    assert gate_failures(ok, cfg) == []
    assert "size" in gate_failures({**ok, "size_mb": 41.0}, cfg)[0]
    assert "non-builtin" in gate_failures({**ok, "non_builtin_ops": ["FlexErf"]}, cfg)[0]
    assert "1 frame" in gate_failures({**ok, "degenerate_finite": {"1 frame": False}}, cfg)[0]
    assert "agreement" in gate_failures({**ok, "agreement": 0.99}, cfg)[0]


def test_submission_needs_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TFLite model"):
        make_submission(tmp_path / "missing.tflite", tmp_path / "s.zip")
