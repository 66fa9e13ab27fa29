"""Training recipes: OUSM, distillation terms, AWP, mean teacher, init from a run, model soup, the I6 student and
I2-T's three-stage chain (each test fails if its switch did nothing)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from aslkit.cli import main
from aslkit.config import make_config
from aslkit.distill import distill_chain
from aslkit.recipes import (
    AWP,
    TeacherTerm,
    consistency_per_sample,
    consistency_ramp,
    init_from_run,
    kd_per_sample,
    ousm_mean,
    uniform_soup,
)
from aslkit.runs import load_checkpoint
from aslkit.tasks.fingerspelling.ctc_ops import ctc_loss, greedy_decode
from aslkit.tasks.fingerspelling.families.ctc.model import CTCConfig, CTCEncoder
from aslkit.tasks.fingerspelling.objective import CTCObjective
from aslkit.tasks.registry import load_run_model
from aslkit.tasks.signs.families.transformer.model import SignTransformer, TransformerConfig
from aslkit.tasks.signs.objective import ClassificationObjective
from aslkit.tasks.signs.prepare import PrepareConfig, prepare_signs
from aslkit.train import build_ema, load_teacher, make_train_config, train

TINY = ["optim.batch_size=16", "max_train_samples=64", "model.hidden=32", "model.heads=2", "model.intermediate=64",
        "features.max_len=16", "seed=3", "workers=0"]


@pytest.fixture(scope="module")
def cache(islr_synth, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "islr"
    return prepare_signs(make_config(PrepareConfig, "ci", {"data_dir": str(islr_synth), "out_dir": str(out)}))


# ------------------------------------------------------------------------------------------------------------------
# Loss terms
# ------------------------------------------------------------------------------------------------------------------
def test_ousm_ignores_exactly_the_k_largest_losses():
    per = torch.tensor([1.0, 5.0, 2.0, 9.0, 3.0])
    assert float(ousm_mean(per, 2)) == pytest.approx(2.0)                        # mean of 1, 2, 3
    assert float(ousm_mean(per, 0)) == pytest.approx(4.0)
    assert float(ousm_mean(per, 5)) == pytest.approx(4.0)                        # would drop all: keeps all
    norm = torch.tensor([1.0, 1.0, 2.0, 1.0, 0.5])
    assert float(ousm_mean(per, 1, norm)) == pytest.approx((1 + 5 + 2 + 3) / 4.5)


def test_classification_step_drops_the_worst_samples_and_matches_weighted_cross_entropy():
    torch.manual_seed(0)
    model, x, y = nn.Linear(6, 5), torch.randn(12, 6), torch.randint(0, 5, (12,))
    w = torch.rand(5) + 0.5
    plain = ClassificationObjective(0.1, None, w.numpy())
    _, loss = plain.train_step(model, x, y, np.random.default_rng(0))
    ref = nn.functional.cross_entropy(model(x), y, weight=w, label_smoothing=0.1)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    per = nn.functional.cross_entropy(model(x), y, reduction="none")
    _, loss3 = ClassificationObjective(0.0, None, None, ousm_k=3).train_step(model, x, y, np.random.default_rng(0))
    assert loss3.item() == pytest.approx(per.sort().values[:9].mean().item(), rel=1e-5)


def test_distillation_and_consistency_terms():
    s, t = torch.randn(4, 7), torch.randn(4, 7)
    assert torch.allclose(kd_per_sample(t, t, 2.0), torch.zeros(4), atol=1e-6)
    ref = nn.functional.kl_div((s / 2).log_softmax(-1), (t / 2).log_softmax(-1), log_target=True,
                               reduction="none").sum(-1) * 4
    assert torch.allclose(kd_per_sample(s, t, 2.0), ref, atol=1e-5)
    assert torch.allclose(consistency_per_sample(s, t), (s.softmax(-1) - t.softmax(-1)).pow(2).mean(-1))
    assert consistency_ramp(0.0, 0.25) == pytest.approx(np.exp(-5)) and consistency_ramp(0.3, 0.25) == 1.0


def test_classification_teacher_term_is_added_on_the_same_batch():
    torch.manual_seed(1)
    model, teacher, x, y = nn.Linear(6, 5), nn.Linear(6, 5), torch.randn(8, 6), torch.randint(0, 5, (8,))
    obj = ClassificationObjective()
    _, base = obj.train_step(model, x, y, np.random.default_rng(0))
    _, with_kd = obj.train_step(model, x, y, np.random.default_rng(0), [TeacherTerm(teacher, "kd", 0.5, 2.0)])
    expected = 0.5 * kd_per_sample(model(x), teacher(x), 2.0).mean()
    assert (with_kd - base).item() == pytest.approx(expected.item(), rel=1e-5)


def _ctc(distill: bool) -> CTCEncoder:
    return CTCEncoder(CTCConfig(dim=16, layers=1, heads=2, layerdrop=0.0, dropout=0.0, max_len=32,
                                distill_head=distill), 10)


def test_ctc_student_learns_the_teachers_greedy_labels_through_its_own_head():
    torch.manual_seed(2)
    student, teacher = _ctc(True).eval(), _ctc(False).eval()
    x, mask = torch.randn(3, 20, 10), torch.arange(20)[None] < torch.tensor([[20], [15], [9]])
    ids, lengths = torch.tensor([1, 2, 3, 4, 5, 6]), torch.tensor([2, 3, 1])
    obj = CTCObjective()
    _, loss = obj.train_step(student, (x, mask, None), (ids, lengths), np.random.default_rng(0),
                             [TeacherTerm(teacher, "kd", 10.0)])
    logits, d_logits = student(x, mask, distill=True)
    labels = greedy_decode(teacher(x, mask), mask)
    kd = ctc_loss(d_logits, mask, torch.tensor(sum(labels, []), dtype=torch.long),
                  torch.tensor([len(s) for s in labels]))
    assert float(loss) == pytest.approx(float(ctc_loss(logits, mask, ids, lengths) + 10.0 * kd), rel=1e-5)
    loss.backward()
    assert student.distill_head.weight.grad.abs().sum() > 0                      # the separate head is trained
    assert torch.equal(student(x, mask), logits)                                 # inference: the main head only


# ------------------------------------------------------------------------------------------------------------------
# AWP, mean teacher, soup, init
# ------------------------------------------------------------------------------------------------------------------
def test_awp_moves_weights_along_the_gradient_within_bounds_and_restores_them():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    model(torch.randn(5, 4)).pow(2).sum().backward()
    w0, b0, g = model[0].weight.detach().clone(), model[0].bias.detach().clone(), model[0].weight.grad.clone()
    awp = AWP(model, lr=0.2, eps=0.01)
    assert [p.shape for p in awp.params] == [w0.shape]                           # no biases, no norms
    awp.perturb()
    step = 0.2 * g / g.norm() * w0.norm()
    expected = torch.minimum(torch.maximum(w0 + step, w0 - 0.01 * w0.abs()), w0 + 0.01 * w0.abs())
    assert torch.allclose(model[0].weight, expected) and not torch.equal(model[0].weight, w0)
    assert torch.equal(model[0].bias, b0)
    awp.restore()
    assert torch.equal(model[0].weight, w0)


def test_awp_step_uses_the_gradient_at_the_perturbed_weights():
    from aslkit.recipes import RecipeRun
    from aslkit.train import MixedPrecision, _awp_backward
    torch.manual_seed(4)
    model, x, y = nn.Linear(6, 5), torch.randn(8, 6), torch.randint(0, 5, (8,))
    obj, opt = ClassificationObjective(), torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = MixedPrecision(amp=True, device=torch.device("cpu"))            # off on the CPU
    cfg = make_train_config("ci", {"recipe.awp_lr": 0.5, "recipe.awp_eps": 0.05, "recipe.awp_start": 0.5})
    rec = RecipeRun(cfg, model, None, 10, torch.device("cpu"))
    assert not rec.awp_on(0) and rec.awp_on(cfg.optim.epochs - 1)
    obj.train_step(model, x, y, np.random.default_rng(0))[1].backward()
    clean = model.weight.grad.clone()
    probe = copy.deepcopy(model)
    probe.weight.grad = clean.clone()
    AWP(probe, 0.5, 0.05).perturb()
    probe.zero_grad()
    obj.train_step(probe, x, y, np.random.default_rng(0))[1].backward()
    w = model.weight.detach().clone()
    _awp_backward(rec, model, opt, obj, x, y, [0], [], scaler)
    assert torch.equal(model.weight, w)                                          # weights restored
    assert torch.allclose(model.weight.grad, probe.weight.grad) and not torch.allclose(model.weight.grad, clean)


def test_mean_teacher_is_the_true_average_then_the_ema_of_the_student():
    model, decay = nn.Linear(3, 2), 0.8
    ema = build_ema(model, decay, true_average=True)
    history = []
    for n in range(1, 7):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        history.append(copy.deepcopy(model.state_dict()))
        ema.update(model, step=n)
        if n == 3:                                                               # 1 - 1/n < decay: plain average
            mean = sum(h["weight"] for h in history) / 3
            assert torch.allclose(ema.module.weight, mean, atol=1e-6)
    expected = history[0]["weight"]
    for n, h in enumerate(history[1:], 2):
        d = min(decay, 1 - 1 / n)
        expected = d * expected + (1 - d) * h["weight"]
    assert torch.allclose(ema.module.weight, expected, atol=1e-6)


def test_uniform_soup_is_the_mean_of_the_checkpoints():
    states = [{"w": torch.full((2,), float(i)), "n": torch.tensor(i)} for i in (1, 2, 6)]
    soup = uniform_soup(states)
    assert torch.equal(soup["w"], torch.full((2,), 3.0)) and int(soup["n"]) == 6


def test_init_from_run_copies_the_teachers_first_layers(tmp_path):
    teacher = SignTransformer(TransformerConfig(hidden=16, layers=4, heads=2, intermediate=32), 12)
    (tmp_path / "checkpoints").mkdir()
    torch.save({"model": teacher.state_dict()}, tmp_path / "checkpoints" / "best.pt")
    student = SignTransformer(TransformerConfig(hidden=16, layers=3, heads=2, intermediate=32), 12)
    copied = init_from_run(student, tmp_path)
    assert len(copied) == len(student.state_dict())                               # all of the student matches
    t, s = teacher.state_dict(), student.state_dict()
    for k in s:
        assert torch.equal(s[k], t[k]), k
    assert not any(".layer.3." in k for k in copied)
    with pytest.raises(ValueError, match="no tensor"):
        init_from_run(nn.Linear(2, 2), tmp_path)


# ------------------------------------------------------------------------------------------------------------------
# In the loop
# ------------------------------------------------------------------------------------------------------------------
def test_soup_student_ousm_awp_and_mean_teacher_in_one_run(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    cfg = make_train_config("ci", TINY + [f"prepared_dir={cache}", "run_name=mt", "optim.epochs=3",
                                          "model.layers=2", "optim.ema_decay=0.97", "recipe.mean_teacher=true",
                                          "recipe.soup_last=2", "recipe.ousm_k=3", "recipe.awp_lr=0.1",
                                          "recipe.awp_start=0.3", "recipe.student={layers: 1, hidden: 16}"])
    run = train(cfg)
    soup = load_checkpoint(run / "checkpoints" / "soup.pt")
    parts = [load_checkpoint(run / "checkpoints" / f"epoch_{e:03d}.pt")["model"] for e in (2, 3)]
    assert soup["epochs"] == [2, 3] and not (run / "checkpoints" / "epoch_001.pt").exists()
    for k, v in soup["model"].items():
        if v.is_floating_point():
            assert torch.allclose(v, (parts[0][k] + parts[1][k]) / 2, atol=1e-6), k
    record = json.loads((run / "soup.json").read_text())
    assert {"val_acc", "best_epoch_val_acc", "epochs"} <= set(record)
    student = run / "student"
    assert (student / "teacher").resolve() == run.resolve()
    assert len(pd.read_csv(student / "metrics.csv")) == 3
    s_cfg, _, s_model = load_run_model(student)                                  # an ordinary run folder
    assert s_cfg.model["layers"] == 1 and s_cfg.recipe.student == {}
    assert sum(p.numel() for p in s_model.parameters()) < sum(p.numel() for p in load_run_model(run)[2].parameters())
    _, _, soup_model = load_run_model(run, "soup")
    assert soup_model is not None


def test_three_stage_chain_links_teachers_and_starts_stage3_from_stage2(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    stages = distill_chain(tmp_path / "kd", "ci", TINY + [f"prepared_dir={cache}", "optim.epochs=1",
                                                          "recipe.kd_weight=2.0"], layers=(2, 2, 1))
    s1, s2, s3 = stages
    assert [s.name for s in stages] == ["stage1", "stage2", "stage3"] and not (s1 / "teacher").exists()
    assert (s2 / "teacher").resolve() == s1 and (s3 / "teacher").resolve() == s2
    cfg3 = load_run_model(s3)[0]
    assert cfg3.recipe.teacher == str(s2) and cfg3.recipe.init_from == str(s2) and cfg3.model["layers"] == 1
    assert load_run_model(s2)[0].recipe.init_from == ""                           # same size: from scratch
    init = json.loads((s3 / "init.json").read_text())
    assert init["from"] == str(s2)
    assert any(".layer.0." in k for k in init["tensors"]) and not any(".layer.1." in k for k in init["tensors"])
    mtime = (s3 / "metrics.csv").stat().st_mtime
    assert main(["distill", "--preset", "ci", "--run", str(tmp_path / "kd"), "--layers", "2,2,1",
                 *TINY, f"prepared_dir={cache}", "optim.epochs=1"]) == 0
    assert (s3 / "metrics.csv").stat().st_mtime == mtime                       # finished stages are kept


def test_teacher_must_read_the_same_features(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    run = train(make_train_config("ci", TINY + [f"prepared_dir={cache}", "run_name=t", "optim.epochs=1",
                                                "model.layers=1"]))
    other = make_train_config("ci", TINY + [f"prepared_dir={cache}", "features.max_len=24"])
    with pytest.raises(ValueError, match="other inputs"):
        load_teacher(run, other)
    assert not load_teacher(run, make_train_config("ci", TINY + [f"prepared_dir={cache}"])).training


def test_fingerspelling_student_distils_a_teacher_run_with_ousm_and_soup(fs_synth, tmp_path, monkeypatch):
    from aslkit.tasks.fingerspelling.prepare import PrepareFSConfig, prepare_fingerspelling
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    cache = prepare_fingerspelling(make_config(PrepareFSConfig, "ci", {"data_dir": str(fs_synth),
                                                                       "out_dir": str(tmp_path / "prepared")}))
    fs = ["task=asl-fingerspelling", "optim.epochs=2", "features.max_frames=100", "model.dim=32", "model.heads=2",
          f"prepared_dir={cache}"]
    teacher = train(make_train_config("ci", fs + ["model.layers=2", f"run_name={tmp_path / 'large'}"]))
    run = train(make_train_config("ci", fs + ["model.layers=1", "model.distill_head=true", "recipe.kd_weight=10",
                                              f"recipe.teacher={teacher}", "recipe.ousm_k=2", "recipe.soup_last=2",
                                              f"run_name={tmp_path / 'small'}"]))
    assert {"val_score", "best_epoch_val_score"} <= set(json.loads((run / "soup.json").read_text()))
    cfg, _, model = load_run_model(run, "soup")
    assert cfg.recipe.teacher == str(teacher) and model.distill_head is not None
    start = load_checkpoint(run / "checkpoints" / "epoch_001.pt")["model"]["distill_head.weight"]
    assert not torch.equal(start, load_checkpoint(run / "checkpoints" / "epoch_002.pt")["model"]["distill_head.weight"])
