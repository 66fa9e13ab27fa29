"""Conversion gates, the submission and the grader clone, on a tiny trained asl-signs run."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from aslkit import constants as C
from aslkit.cli import main
from aslkit.config import make_config
from aslkit.data.errors import DataError
from aslkit.export import ConvertConfig, convert, gate_failures
from aslkit.runs import file_digest
from aslkit.submit import make_submission, score_run, submit
from aslkit.tasks.base import degenerate_inputs
from aslkit.tasks.signs.export import validation_sequences
from aslkit.tasks.signs.graph import load_grader_model
from aslkit.tasks.signs.prepare import PrepareConfig, prepare_signs
from aslkit.tflite import GateError, tflite_runner
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
        assert r["latency_budget_ms"] == 100.0 and 0 < r["latency_ms_mean"] < 50
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
    assert json.loads((run / "score.json").read_text())["latency_failure"] == ""
    assert (run / "export" / "convert.log").is_file()                   # the libraries' messages, not the console


def test_score_gates_the_latency_with_the_safety_factor(converted, monkeypatch):
    run, _ = converted
    monkeypatch.setattr("aslkit.tasks.signs.grade.LATENCY_LIMIT_MS", 0.001)   # as if Kaggle allowed 1 microsecond
    with pytest.raises(GateError, match=rf"{run}: mean latency [\d.]+ ms x safety factor 2 > 0 ms per sequence"):
        score_run(run)
    assert "x safety factor 2" in json.loads((run / "score.json").read_text())["latency_failure"]


def test_score_and_convert_refuse_a_cache_prepared_again_since_the_run(converted, tmp_path, capsys):
    run, _ = converted
    copy = shutil.copytree(run, tmp_path / "run")
    data = json.loads((copy / "data.json").read_text())
    cache = shutil.copytree(data["prepared_dir"], tmp_path / "cache")
    (copy / "data.json").write_text(json.dumps({**data, "prepared_dir": str(cache)}))
    assert len(validation_sequences(copy, limit=3)[0]) == 3                 # the same cache, elsewhere: fine
    prepare_signs(make_config(PrepareConfig, "ci", {"data_dir": data["data_dir"], "out_dir": str(cache),
                                                    "fold_method": "random", "seed": 5}))
    with pytest.raises(DataError, match=f"{cache}: prepared again since run {copy} was trained on it"):
        validation_sequences(copy, limit=3)
    capsys.readouterr()
    assert main(["score", str(copy)]) == 1
    assert capsys.readouterr().err.startswith(f"aslkit score: error: {cache}: prepared again since run {copy}")


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
    timed = {**ok, "latency_ms_mean": 60.0, "latency_budget_ms": 100.0}
    assert gate_failures(timed, cfg) == ["mean latency 60.0 ms x safety factor 2 > 100 ms per sequence (Kaggle's "
                                         "limit on average)"]
    assert gate_failures(timed, ConvertConfig(latency_safety=1.5)) == []
    assert gate_failures({**timed, "latency_budget_ms": 0.0}, cfg) == []     # a task without a time limit


def test_submission_needs_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TFLite model"):
        make_submission(tmp_path / "missing.tflite", tmp_path / "s.zip")


# ------------------------------------------------------------------------------------------------------------------
# aslkit predict on new recordings
# ------------------------------------------------------------------------------------------------------------------
def _held_out_files(run: Path, k: int = 4) -> tuple[list[Path], pd.DataFrame]:
    """The first ``k`` held-out recordings of a run: their parquet paths and OOF rows."""
    from aslkit.tasks.signs.predict import held_out
    rows, oof = held_out(run, k), pd.read_csv(run / "oof.csv").iloc[:k]
    assert list(rows["truth"]) == [C.signs()[i] for i in oof["label"]] and rows["sequence_id"].isna().all()
    assert [int(f.stem) for f in rows["file"]] == list(oof["sequence_id"])
    return list(rows["file"]), oof


def test_predict_answers_what_the_oof_file_and_the_grader_clone_say(converted):
    from aslkit.predict import predict
    from aslkit.tasks.signs.grade import grade_signs
    run, _ = converted
    paths, oof = _held_out_files(run)
    torch_top = [r["top"][0]["index"] for r in predict(run, paths)]
    assert torch_top == list(oof["pred"])                                   # torch = the OOF predictions
    zip_path = submit(run)
    rows = pd.DataFrame({"path": [str(p) for p in paths], "label": oof["label"]})
    graded = grade_signs(zip_path, "/", rows)["predictions"]
    for model, tflite in ((run, True), (zip_path, False)):                  # the run's export, the submission
        results = predict(model, paths, tflite=tflite, top_k=3)
        assert [r["top"][0]["index"] for r in results] == list(graded)      # TFLite = the grader clone
        assert all(r["model"].startswith("tflite ") and len(r["top"]) == 3 for r in results)
    res = predict(run, paths[:1], top_k=250)[0]
    probs = [t["probability"] for t in res["top"]]
    assert abs(sum(probs) - 1) < 1e-6 and probs == sorted(probs, reverse=True)
    assert res["id"] == int(oof["sequence_id"].iloc[0]) and res["top"][0]["sign"] == C.signs()[torch_top[0]]


def test_predict_reads_npy_and_answers_the_same(converted, tmp_path):
    from aslkit.data.islr import load_relevant_data_subset
    from aslkit.predict import predict
    run, _ = converted
    paths, _ = _held_out_files(run, 1)
    npy = tmp_path / "rec.npy"
    np.save(npy, load_relevant_data_subset(paths[0]).astype(np.float64))
    a, b = predict(run, [paths[0], npy])
    assert a["top"] == b["top"] and b["id"] == "rec" and a["frames"] == b["frames"]


def test_predict_cli_prints_one_line_or_json_and_one_error_line(converted, tmp_path, fs_synth, capsys):
    run, _ = converted
    paths, oof = _held_out_files(run, 2)
    capsys.readouterr()
    assert main(["predict", str(run), *map(str, paths), "--json", "--top-k", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["top"][0]["index"] for r in out] == list(oof["pred"]) and len(out[0]["top"]) == 2
    assert main(["predict", str(run), str(paths[0])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model: torch") and lines[1].startswith(f"{paths[0]} [{oof['sequence_id'][0]}, ")
    wide = next((fs_synth / "train_landmarks").glob("*.parquet"))
    no_x = tmp_path / "no_x.parquet"
    pd.read_parquet(paths[0]).drop(columns=["x"]).to_parquet(no_x)
    bad_npy = tmp_path / "bad.npy"
    np.save(bad_npy, np.zeros((5, 75, 3)))
    for args, message in (([str(wide)], f"{wide}: a fingerspelling (wide) landmark file"),
                          ([str(no_x)], f"{no_x}: missing columns: x"),
                          ([str(bad_npy)], f"{bad_npy}: expected a numeric array [T, 543, 3]"),
                          ([str(paths[0]), "--sequence-id", "3"], f"{paths[0]}: --sequence-id picks a phrase"),
                          ([str(paths[0]), "--top-k", "0"], "--top-k must be at least 1")):
        assert main(["predict", str(run), *args]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"aslkit predict: error: {message}") and len(err.strip().splitlines()) == 1, err
    assert main(["predict", str(tmp_path), str(paths[0])]) == 1
    assert "not a run folder" in capsys.readouterr().err


def test_held_out_table_shows_truth_torch_and_tflite_side_by_side(converted):
    from aslkit.data.islr import load_relevant_data_subset
    from aslkit.predict import held_out_predictions, recording
    run, _ = converted
    paths, oof = _held_out_files(run, 3)
    table = held_out_predictions(run, k=3, top_k=2)
    assert list(table.columns) == ["file", "sequence_id", "truth", "torch", "tflite"] and len(table) == 3
    first = [t.split(" ")[0] for t in table["torch"]]
    assert first == [C.signs()[i] for i in oof["pred"]] and all(t.count(",") == 1 for t in table["torch"])
    assert [t.split(" ")[0] for t in table["tflite"]] == first
    np.testing.assert_array_equal(recording(run, paths[0]), load_relevant_data_subset(paths[0]))


def test_video_landmarks_round_trip_to_a_prediction(converted, tmp_path):
    pytest.importorskip("mediapipe", reason="the video extra is not installed (pip install -r requirements-video.txt)")
    pytest.importorskip("skimage.data", reason="scikit-image (requirements-video.txt) gives the photograph")
    from conftest import write_photo_video

    from aslkit.predict import predict, video_landmarks
    run, _ = converted
    video = write_photo_video(tmp_path / "astronaut.avi", 4)
    out = video_landmarks(video, C.SLUG_SIGNS, tmp_path / "astronaut.parquet")
    by_torch, by_tflite = predict(run, [out]), predict(run, [out], tflite=True)
    assert by_torch[0]["frames"] == by_tflite[0]["frames"] == 4
    assert by_torch[0]["top"][0]["index"] == by_tflite[0]["top"][0]["index"]
