"""asl-fingerspelling end to end on a tiny run: train (CTC) -> validate -> convert (gates) -> submit -> grader clone.

The ci run trains for real (and resumes); its weights are then replaced by seeded random ones with a weak blank so
that the converted graph has non-empty phrases to agree on (a 3-epoch model answers mostly blanks)."""
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
from aslkit.config import make_config
from aslkit.evaluate import validate
from aslkit.export import ConvertConfig, convert
from aslkit.submit import score_run, submit
from aslkit.tasks.fingerspelling.export import degenerate_fs_inputs, grader_decode, load_fs_grader_model
from aslkit.tasks.fingerspelling.grade import grade_fingerspelling
from aslkit.tasks.fingerspelling.prepare import PreparedFS, PrepareFSConfig, prepare_fingerspelling
from aslkit.tflite import selected_columns, tflite_runner
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
    with pytest.raises(ValueError, match=r"no frames for sequence_id\(s\) \[1\]"):
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


# ------------------------------------------------------------------------------------------------------------------
# aslkit predict on new recordings
# ------------------------------------------------------------------------------------------------------------------
def _held_out_file(run: Path) -> tuple[Path, pd.DataFrame]:
    """The landmark file of a run's first held-out phrase and the OOF rows of that file."""
    from aslkit.tasks.fingerspelling.evaluate import read_fs_oof
    from aslkit.tasks.fingerspelling.predict import held_out
    rows, oof = held_out(run, 0), read_fs_oof(run / "oof.csv")
    assert list(rows["sequence_id"]) == list(oof["sequence_id"]) and list(rows["truth"]) == list(oof["phrase"])
    same = (rows["file"] == rows["file"][0]).to_numpy()
    return rows["file"][0], oof[same].reset_index(drop=True)


def test_predict_phrases_equal_the_oof_file_and_the_grader_clone(fs_runs):
    from aslkit.predict import predict
    run, rand, _ = fs_runs
    path, oof = _held_out_file(run)
    by_id = {r["id"]: r["phrase"] for r in predict(run, [path])}           # every sequence of the file
    assert set(oof["sequence_id"]) <= set(by_id)
    assert [by_id[s] for s in oof["sequence_id"]] == list(oof["pred"])     # torch = the OOF predictions (empty
    # after 2 epochs; the random-weight copy below spells phrases)
    zip_path = rand / "submission.zip" if (rand / "submission.zip").is_file() else submit(rand)
    rows = pd.DataFrame({"path": f"{path.parent.name}/{path.name}", "sequence_id": oof["sequence_id"],
                         "phrase": oof["phrase"]})
    graded = grade_fingerspelling(zip_path, path.parents[1], rows)["predictions"]
    assert len(set(graded)) > 1                                            # phrases, not one fallback
    for model, tflite in ((zip_path, False), (rand, True), (rand, False)):   # the submission, the export, torch
        results = predict(model, [path], tflite=tflite)
        got = {r["id"]: r["phrase"] for r in results}
        assert [got[s] for s in oof["sequence_id"]] == graded               # = the grader clone
    one = predict(rand, [path], tflite=True, sequence_id=int(oof["sequence_id"][0]))
    assert [r["id"] for r in one] == [int(oof["sequence_id"][0])] and one[0]["phrase"] == graded[0]


def test_predict_reads_a_npy_recording_through_the_selected_columns(fs_runs, tmp_path):
    from aslkit.data.fs import columns_to_landmarks
    from aslkit.predict import predict
    from aslkit.tasks.fingerspelling.grade import graded_sequences
    run, _, _ = fs_runs
    path, oof = _held_out_file(run)
    sid = int(oof["sequence_id"][0])
    wide = graded_sequences(path, C.FS_130_COLUMNS, [sid])[sid]
    np.save(tmp_path / "phrase.npy", columns_to_landmarks(wide, C.FS_130_COLUMNS))
    a = predict(run, [path], sequence_id=sid)[0]
    b = predict(run, [tmp_path / "phrase.npy"])[0]
    assert a["phrase"] == b["phrase"] == oof["pred"][0] and b["frames"] == len(wide)


def test_predict_refuses_an_asl_signs_recording_in_one_line(fs_runs, islr_synth, capsys):
    from aslkit.cli import main
    run, _, _ = fs_runs
    long = next((islr_synth / "train_landmark_files").rglob("*.parquet"))
    path, _ = _held_out_file(run)
    capsys.readouterr()
    for args, message in (([str(long)], f"{long}: a long-format asl-signs recording"),
                          ([str(path), "--sequence-id", "1"], f"{path}: no frames for sequence_id(s) [1]")):
        assert main(["predict", str(run), *args]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"aslkit predict: error: {message}") and len(err.strip().splitlines()) == 1, err
    assert main(["predict", str(run), str(path), "--json"]) == 0
    assert all(set(r) >= {"phrase", "id", "frames", "model"} for r in json.loads(capsys.readouterr().out))


def test_held_out_table_and_the_recording_of_a_phrase(fs_runs):
    from aslkit.data.fs import columns_to_landmarks
    from aslkit.predict import held_out_predictions, recording
    from aslkit.tasks.fingerspelling.grade import graded_sequences
    _, rand, _ = fs_runs
    table = held_out_predictions(rand, k=3)
    assert list(table.columns) == ["file", "sequence_id", "truth", "torch", "tflite"] and len(table) == 3
    assert list(table["torch"]) == list(table["tflite"]) and table["torch"].str.len().gt(2).all()
    path, sid = table["file"][0], int(table["sequence_id"][0])
    full = recording(rand, path, sid)
    assert full.shape[1:] == (C.ROWS_PER_FRAME, 3) and np.isfinite(full[:, C.POSE]).any()   # every landmark read
    wide = graded_sequences(path, C.FS_130_COLUMNS, [sid])[sid]
    np.testing.assert_array_equal(columns_to_landmarks(wide, C.FS_130_COLUMNS)[:, C.FS_130], full[:, C.FS_130])


def test_align_writes_ordered_character_spans_that_the_sampler_reads(fs_runs, tmp_path, capsys):
    from aslkit.cli import main
    from aslkit.runs import read_run_config, run_cache
    from aslkit.tasks.fingerspelling.align import read_alignment
    from aslkit.tasks.fingerspelling.objective import build_task
    _, rand, _ = fs_runs
    assert main(["align", str(rand)]) == 0
    assert "sequences aligned" in capsys.readouterr().out
    alignment = read_alignment(rand)
    _, prepared = run_cache(rand, PreparedFS)
    index = prepared.index.set_index("sequence_id")
    assert 0 < len(alignment) <= len(index)
    for sid, spans in alignment.items():
        assert len(spans) == len(index.loc[sid, "phrase"])                  # one span per character
        assert (spans[:, 0] <= spans[:, 1]).all() and (spans[1:, 0] > spans[:-1, 1]).all()
        assert spans.min() >= 0 and spans.max() < len(prepared[int(np.flatnonzero(index.index == sid)[0])])
    cfg = read_run_config(rand)
    cfg.augment = {**cfg.augment, "cutmix_alignment": str(rand)}
    assert build_task(cfg, prepared).sample.alignment.keys() == alignment.keys()
    (tmp_path / "config.yaml").write_text("task: asl-signs\n")
    assert main(["align", str(tmp_path)]) == 1
    assert "runs of this task have no CTC alignment" in capsys.readouterr().err
