"""asl-fingerspelling end to end on a tiny run: train (CTC) -> validate -> convert (gates) -> submit -> grader clone.

The ci run trains for real (and resumes); its weights are then replaced by seeded random ones with a weak blank so
that the converted graph has non-empty phrases to agree on (a 3-epoch model answers mostly blanks)."""
from __future__ import annotations

import json
import shutil
import zipfile

import pandas as pd
import pytest
import torch

from aslkit import constants as C
from aslkit.config import make_config
from aslkit.evaluate import validate
from aslkit.export import ConvertConfig, convert
from aslkit.submit import score_run, submit
from aslkit.tasks.fingerspelling.export import degenerate_fs_inputs, grader_decode, load_fs_grader_model
from aslkit.tasks.fingerspelling.grade import grade_fingerspelling, selected_columns
from aslkit.tasks.fingerspelling.prepare import PrepareFSConfig, prepare_fingerspelling
from aslkit.tflite import tflite_runner
from aslkit.train import make_train_config, train

TINY = ["task=asl-fingerspelling", "optim.epochs=2", "features.max_frames=100", "model.dim=32", "model.layers=1",
        "model.heads=2"]


@pytest.fixture(scope="module")
def fs_runs(fs_synth, tmp_path_factory):
    root = tmp_path_factory.mktemp("fs_root")
    mp = pytest.MonkeyPatch()
    mp.setenv("ASLKIT_ROOT", str(root))
    cache = prepare_fingerspelling(make_config(PrepareFSConfig, "ci", {"data_dir": str(fs_synth),
                                                                       "out_dir": str(root / "prepared")}))
    run = train(make_train_config("ci", TINY + [f"prepared_dir={cache}", f"run_name={root / 'tiny'}"]))
    rand = root / "random"
    shutil.copytree(run, rand)
    model = load_fs_grader_model(run).model
    torch.manual_seed(0)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    with torch.no_grad():
        model.head.weight.mul_(10.0)                                     # clear winners: float16 keeps them
        model.head.bias[C.CTC_BLANK] = -2.0
    torch.save({"model": model.state_dict(), "epoch": 0, "score": 0.0}, rand / "checkpoints" / "best.pt")
    # random logits have near-ties that float16 weights can flip: float32 must pass, float16 may fail the phrase
    # agreement gate, and then submit_build=auto submits float32
    report = convert(make_config(ConvertConfig, None, {"run_dir": str(rand)}))
    yield run, rand, report
    mp.undo()


def test_training_writes_a_fingerspelling_run_folder(fs_runs):
    run, _, _ = fs_runs
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2] and metrics["val_score"].notna().all()
    oof = pd.read_csv(run / "oof.csv", keep_default_na=False, dtype={"phrase": str, "pred": str})
    assert list(oof.columns) == ["sequence_id", "participant_id", "fold", "phrase", "pred", "length"]
    assert (oof["fold"] == 0).all() and len(oof) > 0
    data = json.loads((run / "data.json").read_text())
    assert data["fallback_phrase"] and data["min_hand_frames"] == 3
    assert (run / "plots" / "learning_curves.png").is_file()
    report = validate([run])
    assert report["summary"]["n"] == len(oof) and (run / "validation" / "summary.json").is_file()


def test_builds_pass_every_gate_on_non_trivial_phrases(fs_runs):
    _, rand, report = fs_runs
    assert report["float32"]["failed"] == [] and report["float32"]["agreement"] >= 0.995
    assert report["float32"]["score_diff"] <= 0.002 and report["float32"]["tflite_runtime_agreement"] >= 0.98
    f16 = report["float16"]
    assert all(f.startswith(("phrase agreement", "score difference")) for f in f16["failed"])
    assert report["submitted"] == ("float16" if not f16["failed"] else "float32")
    for build in ("float32", "float16"):
        r = report[build]
        assert r["size_mb"] < 40 and r["non_builtin_ops"] == [] and r["agreement"] >= 0.85 and r["n_parity"] > 0
        assert all(r["degenerate_finite"].values()) and len(r["degenerate_finite"]) == 5
        assert r["latency_budget_ms"] == 750.0 and r["latency_ms_mean"] > 0    # 5 h for 24,000 phrases
    seqs = pd.read_csv(rand / "oof.csv")
    assert json.loads((rand / "export" / "inference_args.json").read_text())["selected_columns"] == \
        C.FS_130_COLUMNS
    assert len(seqs) == report["float32"]["n_parity"]


def test_tflite_phrases_equal_torch_on_edge_cases(fs_runs):
    _, rand, _ = fs_runs
    model = load_fs_grader_model(rand)
    runner = tflite_runner(rand / "export" / "model_float32.tflite")
    texts = {}
    for name, x in degenerate_fs_inputs().items():
        y = runner(x)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        assert y.shape == (50, 60) and grader_decode(y) == grader_decode(ref), name
        texts[name] = grader_decode(y)
    fallback = json.loads((rand / "data.json").read_text())["fallback_phrase"]
    assert texts["all-NaN hands"] == texts["all-NaN input"] == texts["1 frame"] == fallback
    assert texts["1000 frames"] and texts["1000 frames"] != fallback


def test_submission_holds_inference_args_and_grader_matches_torch(fs_runs, fs_synth):
    _, rand, report = fs_runs
    zip_path = submit(rand)
    with zipfile.ZipFile(zip_path) as z:
        assert sorted(z.namelist()) == ["inference_args.json", "model.tflite"]
    assert selected_columns(zip_path) == C.FS_130_COLUMNS
    res = score_run(rand)
    submitted = report[report["submitted"]]
    assert abs(res["score"] - submitted["score"]) <= 1e-9                # the grader clone = the submitted build
    assert abs(res["score"] - submitted["torch_score"]) <= 0.002
    assert res["n"] == report["float16"]["n_parity"] and res["latency_ms_mean"] > 0
    assert res["projected_hours"] > 0 and (rand / "score.json").is_file()


def test_grader_clone_reports_a_missing_sequence(fs_runs, fs_synth):
    _, rand, _ = fs_runs
    rows = pd.read_csv(fs_synth / "train.csv").head(1).assign(sequence_id=1)
    with pytest.raises(ValueError, match="no frames for sequence_id 1"):
        grade_fingerspelling(rand / "submission.zip", fs_synth, rows)


def test_resume_continues_a_fingerspelling_run(fs_runs):
    run, _, _ = fs_runs
    cfg_text = (run / "config.yaml").read_text().replace("epochs: 2", "epochs: 3")
    (run / "config.yaml").write_text(cfg_text)
    train(resume=run)
    assert list(pd.read_csv(run / "metrics.csv")["epoch"]) == [1, 2, 3]


def test_phrase_gates_name_what_failed():
    from aslkit.export import gate_failures
    rep = {"size_mb": 1.0, "non_builtin_ops": [], "degenerate_finite": {"1 frame": True}, "agreement": 0.99,
           "score_diff": 0.003}
    fails = gate_failures(rep, ConvertConfig())
    assert fails == ["phrase agreement 0.9900 < 0.995", "score difference 0.0030 > 0.002"]
    assert gate_failures({**rep, "agreement": 0.996, "score_diff": 0.001}, ConvertConfig()) == []


def test_auto_submits_the_smallest_build_that_passes():
    from aslkit.export import choose_build
    ok, bad = {"failed": []}, {"failed": ["phrase agreement 0.9 < 0.995"]}
    assert choose_build({"float16": ok, "float32": ok}, "auto") == "float16"
    assert choose_build({"float16": bad, "float32": ok}, "auto") == "float32"
    assert choose_build({"float16": bad, "float32": bad}, "auto") is None
    assert choose_build({"float16": bad, "float32": ok}, "float16") is None
    with pytest.raises(ValueError, match="submit_build"):
        choose_build({}, "int8")
