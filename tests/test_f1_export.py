"""F1's grader graph (``decoder_graph``) end to end: the members' decoder logits averaged at every step, a one-file
ensemble folder of two ci runs converted to TFLite (the start graph, then the step graph in a loop inside the TFLite
graph that stops at the end token) through every gate, submitted and graded by the clone.

The ci runs train for real (one epoch); their decoder heads are then replaced by seeded random ones so that the
members spell different, non-empty phrases (a 1-epoch model answers nearly the same phrase everywhere)."""
from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest
import torch

from aslkit import constants as C
from aslkit.config import make_config
from aslkit.export import ConvertConfig, convert
from aslkit.runs import checkpoint_path, load_checkpoint
from aslkit.submit import score_run, submit
from aslkit.tasks.fingerspelling.decoder_graph import F1GraderModel
from aslkit.tasks.fingerspelling.ensemble import make_fs_ensemble
from aslkit.tasks.fingerspelling.evaluate import fs_score, read_fs_oof
from aslkit.tasks.fingerspelling.export import degenerate_fs_inputs, grader_decode, load_fs_grader_model
from aslkit.tasks.fingerspelling.families.f1.features import F1FeatureConfig, F1Features
from aslkit.tasks.fingerspelling.families.f1.model import F1Config, F1Model
from aslkit.tasks.fingerspelling.prepare import PrepareFSConfig, prepare_fingerspelling
from aslkit.tflite import op_names, tflite_runner
from aslkit.train import make_train_config, train

CFG = F1Config(dim=32, blocks=1, heads=2, conv_kernel=5, stem_channels=4, decoder_layers=2, decoder_heads=2,
               decoder_ffn=48, max_len=48, max_phrase=10, dropout=0.0, decoder_attn_dropout=0.0)


def random_head(model: torch.nn.Module, seed: int) -> None:
    """A seeded random phrase-decoder head with clear winners: phrases of several characters that depend on the
    input and on the seed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head = model.decoder.head
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * 4.0)
        head.bias.zero_()
        head.bias[C.TOKEN_END] = -6.0


def reference_ensemble_phrase(features, models, seq: np.ndarray) -> str:
    """Greedy decoding of the average of the members' teacher-forced logits, written out without any cache."""
    x = features(torch.from_numpy(seq)).unsqueeze(0)
    mask = torch.ones(1, len(seq), dtype=torch.bool)
    memories = [m.encoder(x, mask) for m in models]
    tokens = torch.tensor([[C.TOKEN_START]])
    for _ in range(CFG.max_phrase + 1):
        logits = sum(m.decoder(tokens, mem, mask)[:, -1] for m, mem in zip(models, memories)) / len(models)
        nxt = logits.argmax(-1)
        if int(nxt) == C.TOKEN_END:
            break
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
    return "".join(dict(enumerate(C.CHARACTERS)).get(int(t), "") for t in tokens[0, 1:])


def test_the_ensemble_graph_averages_the_members_decoder_logits_at_every_step():
    from aslkit.data.fs import landmarks_to_blocks
    features = F1Features(make_config(F1FeatureConfig, overrides={"max_frames": 48}))
    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        models.append(F1Model(CFG, features.part_sizes).eval())
        random_head(models[-1], seed)
    seq = np.random.default_rng(5).uniform(0.2, 0.8, (48, 130, 3)).astype(np.float32)
    with torch.no_grad():
        alone = [grader_decode(F1GraderModel(features, m).eval()(torch.from_numpy(landmarks_to_blocks(seq))).numpy())
                 for m in models]
        both = grader_decode(F1GraderModel(features, models).eval()(torch.from_numpy(landmarks_to_blocks(seq))).numpy())
        expected = reference_ensemble_phrase(features, models, seq)
    assert both == expected and len(expected) >= 3
    assert alone[0] != alone[1] and both not in alone                  # the average is neither member's phrase


@pytest.fixture(scope="module")
def f1_ensemble(fs_synth, tmp_path_factory):
    root = tmp_path_factory.mktemp("f1_root")
    mp = pytest.MonkeyPatch()
    mp.setenv("ASLKIT_ROOT", str(root))
    cache = prepare_fingerspelling(make_config(PrepareFSConfig, "ci", {"data_dir": str(fs_synth),
                                                                       "out_dir": str(root / "prepared")}))
    run = train(make_train_config("ci", ["task=asl-fingerspelling", "model_name=f1", "optim.epochs=1",
                                         "model.max_phrase=12", f"prepared_dir={cache}", f"run_name={root / 'f1'}"]))
    members = []
    for seed in (1, 2):
        member = root / f"seed{seed}"
        shutil.copytree(run, member)
        model = load_fs_grader_model(member).models[0]
        random_head(model, seed)
        ckpt = load_checkpoint(checkpoint_path(member, "best"))
        torch.save({**ckpt, "model": model.state_dict()}, checkpoint_path(member, "best"))
        members.append(member)
    folder = make_fs_ensemble(members, root / "ensemble")
    report = convert(make_config(ConvertConfig, None, {"run_dir": str(folder)}))
    yield run, members, folder, report
    mp.undo()


def test_an_ensemble_folder_holds_its_members_and_its_own_oof(f1_ensemble):
    _, members, folder, _ = f1_ensemble
    rec = json.loads((folder / "ensemble.json").read_text())
    assert rec["task"] == C.SLUG_FS and rec["members"] == [str(m.resolve()) for m in members]
    model = load_fs_grader_model(folder)
    assert len(model.models) == 2 and model.steps == 13
    oof = read_fs_oof(folder / "oof.csv")
    assert len(oof) == rec["n_oof"] > 0 and rec["oof_score"] == fs_score(list(oof["phrase"]), list(oof["pred"]))
    assert list(oof["sequence_id"]) == list(read_fs_oof(members[0] / "oof.csv")["sequence_id"])


def test_the_converted_ensemble_passes_every_gate_and_loops_the_step_until_the_end_token(f1_ensemble):
    _, _, folder, report = f1_ensemble
    f32 = report["float32"]
    assert f32["failed"] == [] and f32["agreement"] >= 0.995 and f32["score_diff"] <= 0.002
    assert f32["tflite_runtime_agreement"] >= 0.98 and f32["n_parity"] > 0
    assert all(f.startswith(("phrase agreement", "score difference")) for f in report["float16"]["failed"])
    for build in ("float32", "float16"):
        r = report[build]
        assert r["size_mb"] < 40 and r["non_builtin_ops"] == [] and all(r["degenerate_finite"].values())
    assert (folder / "export" / "step.onnx").is_file() and (folder / "export" / "start.onnx").is_file()
    model = load_fs_grader_model(folder)
    assert "WHILE" in op_names(folder / "export" / "model_float32.tflite")
    runner = tflite_runner(folder / "export" / "model_float32.tflite")
    texts, rows = {}, {}
    for name, x in degenerate_fs_inputs().items():
        y = runner(x)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        assert y.shape == ref.shape and y.shape[1] == C.TOKENS and grader_decode(y) == grader_decode(ref), name
        texts[name], rows[name] = grader_decode(y), len(y)
    fallback = json.loads((folder / "data.json").read_text())["fallback_phrase"]
    assert texts["all-NaN hands"] == texts["1 frame"] == fallback and len(set(texts.values())) >= 2
    for name, text in texts.items():                    # the loop stops after the end token / the fallback's last row
        assert rows[name] == min(13, max(len(text), 1) if text == fallback else len(text) + 1), name


def test_the_ensemble_submission_is_graded_like_a_run(f1_ensemble):
    _, _, folder, report = f1_ensemble
    with zipfile.ZipFile(submit(folder)) as z:
        assert sorted(z.namelist()) == ["inference_args.json", "model.tflite"]
    res = score_run(folder)
    submitted = report[report["submitted"]]
    assert abs(res["score"] - submitted["score"]) <= 1e-9
    assert abs(res["torch_oof_score"] - submitted["torch_score"]) <= 1e-9  # oof.csv = the ensemble's torch phrases
    model = folder / "export" / "model.tflite"
    current = model.read_bytes()
    try:                                                # converted again after submit: the old zip is not graded
        model.write_bytes((folder / "export" / "model_float32.tflite").read_bytes())
        with pytest.raises(ValueError, match="run aslkit submit"):
            score_run(folder)
    finally:
        model.write_bytes(current)


def test_an_ensemble_refuses_a_ctc_run_and_weights(f1_ensemble, tmp_path):
    run, members, _, _ = f1_ensemble
    ctc = tmp_path / "ctc"
    shutil.copytree(run, ctc)
    (ctc / "config.yaml").write_text((ctc / "config.yaml").read_text().replace("model_name: f1", "model_name: ctc"))
    with pytest.raises(ValueError, match="ctc"):
        make_fs_ensemble([members[0], ctc], tmp_path / "bad")
    with pytest.raises(ValueError, match="equal weights"):
        make_fs_ensemble(members, tmp_path / "bad", weights=[0.3, 0.7])
