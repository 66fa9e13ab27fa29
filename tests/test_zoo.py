"""The model-zoo plumbing: family registry and presets, same-class partners, batch mixing, class weights, and the
ensemble weights and graph."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from aslkit import constants as C
from aslkit.runs import LossConfig
from aslkit.tasks.signs.ensemble import (
    EnsembleConfig,
    EnsembleGraderModel,
    aligned_oof,
    cross_fitted_accuracy,
    fit_weights,
    make_ensemble,
    simplex_grid,
)
from aslkit.tasks.signs.families import FAMILIES
from aslkit.tasks.signs.objective import ClassificationObjective, SignsSampler, class_weights
from aslkit.tensor_ops import MixPlan, apply_mix
from aslkit.train import make_train_config, set_epoch
from aslkit.transforms import Compose, Transform
from aslkit.zoo import ENSEMBLE_DIR, submitted_dir, zoo_table


# ------------------------------------------------------------------------------------------------------------------
# Registry and presets
# ------------------------------------------------------------------------------------------------------------------
def test_every_family_module_has_the_contract():
    for name in FAMILIES:
        mod = FAMILIES.module(name)
        assert isinstance(mod.DESCRIPTION, str) and mod.DESCRIPTION
        assert {"ci", "quick", "full"} <= set(mod.PRESETS), name
        assert callable(mod.build_modules) and callable(mod.build_augment)


def test_family_presets_are_applied_before_overrides():
    cfg = make_train_config("quick", {"model_name": "transformer", "model.layers": 2})
    assert cfg.model["hidden"] == 128 and cfg.model["layers"] == 2 and cfg.features["max_len"] == 32
    assert cfg.optim.epochs == 40 and cfg.optim.lr == 2.5e-3 and cfg.synth_size == "quick"   # the family's preset
    assert make_train_config("quick", {"model_name": "transformer", "optim.epochs": 7}).optim.epochs == 7
    assert make_train_config("quick", {"model_name": "conv1d"}).optim.lr != 2.5e-3   # its own preset
    with pytest.raises(ValueError, match="unknown model_name 'nope'.*transformer"):
        make_train_config("quick", {"model_name": "nope"})


def test_variant_overrides_come_with_the_name():
    for name, entry in FAMILIES.entries.items():
        cfg = make_train_config("ci", {"model_name": name})
        for key, value in entry.overrides.items():
            head, _, rest = key.partition(".")
            assert getattr(cfg, head)[rest] == value, name


# ------------------------------------------------------------------------------------------------------------------
# Same-class partners
# ------------------------------------------------------------------------------------------------------------------
class _TakePartner(Transform):
    needs_partner = True

    def apply(self, x, rng, partner):
        return partner(rng)


def test_partner_is_drawn_from_training_rows_of_the_same_sign():
    labels = np.array([0, 1, 0, 1, 0, 2])
    data = [np.full((2, 4, 3), i, np.float32) for i in range(6)]
    sampler = SignsSampler(data, labels, Compose([_TakePartner(1.0)]))
    sampler.fit(np.array([0, 1, 2, 3, 5]))                       # row 4 is a validation row
    seen = {int(sampler(0, np.random.default_rng(s))[0][0, 0, 0]) for s in range(40)}
    assert seen == {2}                                             # sign 0, training, not itself
    assert int(sampler(5, np.random.default_rng(0))[0][0, 0, 0]) == 5   # alone in its class: itself
    assert np.array_equal(sampler(4, None)[0], data[4])             # no augmentation without rng


def test_pair_transform_without_partner_is_an_error():
    with pytest.raises(ValueError, match="partner="):
        _TakePartner(1.0)(np.zeros((2, 4, 3), np.float32), np.random.default_rng(0))


# ------------------------------------------------------------------------------------------------------------------
# Batch mixing and weights
# ------------------------------------------------------------------------------------------------------------------
class _Toy(nn.Module):
    mix_points = 2

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 5)
        self.plans = []

    def forward(self, x, mix: MixPlan | None = None):
        self.plans.append(mix)
        h = apply_mix(x, mix, 0)
        return self.b(apply_mix(torch.relu(self.a(h)), mix, 1))


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 4, generator=g), torch.tensor([0, 1, 2, 3, 4, 0])


def test_input_mixup_mixes_inputs_and_labels():
    model, (x, y) = _Toy(), _batch()
    obj = ClassificationObjective(0.0, LossConfig(mixup_p=1.0, mixup_alpha=0.4))
    out, loss = obj.train_step(model, x, y, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    rng.random(), rng.random()
    lam = rng.beta(0.4, 0.4)
    perm = torch.as_tensor(rng.permutation(6))
    ref = model(lam * x + (1 - lam) * x[perm])
    assert torch.allclose(out, ref)
    want = lam * nn.functional.cross_entropy(ref, y) + (1 - lam) * nn.functional.cross_entropy(ref, y[perm])
    assert torch.isclose(loss, want.float()) and not torch.isclose(loss, nn.functional.cross_entropy(ref, y))


def test_manifold_mixup_passes_a_plan_and_plain_batches_do_not():
    model, (x, y) = _Toy(), _batch()
    ClassificationObjective(0.0, LossConfig(manifold_mixup_p=1.0)).train_step(model, x, y, np.random.default_rng(0))
    plan = model.plans[-1]
    assert isinstance(plan, MixPlan) and plan.point in (0, 1) and sorted(plan.perm.tolist()) == list(range(6))
    ClassificationObjective(0.0, LossConfig()).train_step(model, x, y, np.random.default_rng(0))
    assert model.plans[-1] is None
    h = torch.arange(6.0).reshape(3, 2)
    mixed = apply_mix(h, MixPlan(torch.tensor([2, 0, 1]), 0.25, 1), 1)
    assert torch.allclose(mixed, 0.25 * h + 0.75 * h[[2, 0, 1]])
    assert torch.equal(apply_mix(h, MixPlan(torch.tensor([2, 0, 1]), 0.25, 1), 0), h)


def test_class_weights_favour_missed_and_confused_classes():
    labels = np.array([0, 0, 1, 1, 2, 2])
    logits = np.eye(4)[[0, 0, 1, 0, 2, 2]] * 5.0            # one sample of class 1 predicted as class 0
    w = class_weights(logits, labels, power=1.0, num_classes=4)
    assert w.mean() == pytest.approx(1.0)
    assert w[0] > w[2] and w[1] > w[2] and w[2] == pytest.approx(w[3])
    assert w[1] / w[2] == pytest.approx(1.5)                  # class 1: 1 miss of 2 samples
    assert w[0] / w[2] == pytest.approx(4 / 3)                # class 0: 1 false positive of 3 predictions
    weighted = ClassificationObjective(0.0, None, w)
    out = torch.zeros(2, 4)
    loss0 = weighted.loss(out, torch.tensor([0, 0]), None, reduction="sum")
    loss2 = weighted.loss(out, torch.tensor([2, 2]), None, reduction="sum")
    assert loss0 / loss2 == pytest.approx(w[0] / w[2], rel=1e-5)


def test_class_weights_stay_bounded_when_one_class_absorbs_the_predictions():
    labels = np.arange(10).repeat([1] + [5] * 9)              # class 0 has one sample ...
    logits = np.zeros((len(labels), 10))
    logits[:, 0] = 1.0                                        # ... and every sample is predicted as class 0
    w = class_weights(logits, labels, power=2.0, num_classes=10)
    assert w.max() / w.min() <= 3.0 ** 2
    assert w[0] < w[1]                                        # 49 false positives weigh less than missing them all


def test_set_epoch_reaches_submodules():
    class Late(nn.Module):
        epoch = -1

        def set_epoch(self, e):
            self.epoch = e
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(Late()))
    set_epoch(net, 7)
    assert net[1][0].epoch == 7


# ------------------------------------------------------------------------------------------------------------------
# Ensembles
# ------------------------------------------------------------------------------------------------------------------
def test_simplex_grid_covers_the_simplex():
    g = simplex_grid(3, 0.25)
    assert np.allclose(g.sum(1), 1) and (g >= 0).all() and len(g) == 15
    assert any(np.allclose(r, [1, 0, 0]) for r in g)


def test_fit_weights_finds_the_complementary_mix():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 200)
    good = np.eye(5)[labels] * 2 + rng.normal(0, 1, (200, 5))
    noise = rng.normal(0, 1, (200, 5))
    w = fit_weights([noise, good], labels, 0.1)
    assert w[1] > w[0] and w.sum() == pytest.approx(1)
    acc = lambda z: (z.argmax(1) == labels).mean()  # noqa: E731
    assert acc(w[0] * noise + w[1] * good) >= acc(good)
    w5 = fit_weights([noise, good, noise, noise, good], labels, 0.1)          # coordinate ascent path
    assert w5.sum() == pytest.approx(1) and acc(sum(a * z for a, z in zip(w5, [noise, good, noise, noise, good]))) \
        >= acc(good)


def _fake_run(path, order, logits, labels, model_name="transformer"):
    path.mkdir(parents=True)
    pd.DataFrame({"sequence_id": order, "participant_id": 1, "label": labels[order], "fold": 0,
                  "pred": logits.argmax(1)}).to_csv(path / "oof.csv", index=False)
    np.save(path / "oof_logits.npy", logits.astype(np.float32))
    (path / "config.yaml").write_text(f"task: asl-signs\nmodel_name: {model_name}\n")
    (path / "data.json").write_text(json.dumps({"prepared_dir": "p", "data_dir": "d", "subset": [0]}))
    return path


def test_make_ensemble_aligns_members_and_writes_its_oof(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 30)
    za, zb = rng.normal(0, 1, (30, 4)), np.eye(4)[labels] * 3 + rng.normal(0, 1, (30, 4))
    order = rng.permutation(30)
    a = _fake_run(tmp_path / "a", np.arange(30), za, labels)
    b = _fake_run(tmp_path / "b", order, zb[order], labels, "cnn")       # same sequences, other order
    oof, (la, lb) = aligned_oof([a, b])
    assert np.allclose(lb, zb) and np.allclose(la, za)
    out = make_ensemble(EnsembleConfig(runs=[str(a), str(b)], name=str(tmp_path / "ens")))
    rec = json.loads((out / "ensemble.json").read_text())
    assert rec["families"] == ["transformer", "cnn"] and sum(rec["weights"]) == pytest.approx(1)
    z = np.load(out / "oof_logits.npy")
    assert np.allclose(z, rec["weights"][0] * za + rec["weights"][1] * zb, atol=1e-5)
    assert rec["oof_accuracy"] >= max(rec["member_oof_accuracy"])
    c = _fake_run(tmp_path / "c", np.arange(20), za[:20], labels)
    with pytest.raises(ValueError, match="other sequences"):
        aligned_oof([a, c])
    with pytest.raises(ValueError, match="at least two"):
        make_ensemble(EnsembleConfig(runs=[str(a)]))


def test_ensemble_graph_is_the_weighted_logit_sum():
    class Const(nn.Module):
        def __init__(self, v):
            super().__init__()
            self.v = torch.tensor(v)

        def forward(self, x):
            return self.v + 0 * x.sum()
    ens = EnsembleGraderModel([Const([1.0, 0.0]), Const([0.0, 4.0]), Const([9.0, 9.0])], [0.75, 0.25, 0.0])
    assert torch.allclose(ens(torch.zeros(3, 543, 3)), torch.tensor([0.75, 1.0]))
    with pytest.raises(ValueError, match="weights"):
        EnsembleGraderModel([Const([1.0])], [0.5, 0.5])
    assert C.SLUG_SIGNS == "asl-signs"


# ------------------------------------------------------------------------------------------------------------------
# The zoo table: accuracy spread over the held-out participants
# ------------------------------------------------------------------------------------------------------------------
def _participant_run(path, participants, correct, confident, model_name):
    """A fake run whose OOF predictions are right exactly where ``correct`` says, with logit 4 on its prediction
    where ``confident`` and 1 elsewhere (so a 50/50 ensemble follows the confident member)."""
    labels = np.arange(len(correct)) % 4
    pred = np.where(correct, labels, (labels + 1) % 4)
    logits = np.eye(4)[pred] * np.where(confident, 4.0, 1.0)[:, None]
    path.mkdir(parents=True)
    pd.DataFrame({"sequence_id": np.arange(len(correct)), "participant_id": participants, "label": labels,
                  "fold": 0, "pred": pred}).to_csv(path / "oof.csv", index=False)
    np.save(path / "oof_logits.npy", logits.astype(np.float32))
    (path / "config.yaml").write_text(f"task: asl-signs\nmodel_name: {model_name}\n")
    (path / "data.json").write_text(json.dumps({"prepared_dir": "p", "data_dir": "d", "subset": [0]}))
    return path


def test_zoo_table_shows_the_spread_over_participants(tmp_path):
    participants = np.repeat([13, 11, 12], 4)                    # 4 sequences each, not in id order
    per = lambda a, b, c: np.array(a + b + c, bool)  # noqa: E731  (participant 13, 11, 12)
    # transformer: 13 -> 4/4, 11 -> 1/4, 12 -> 3/4; confident on 13 and 12
    _participant_run(tmp_path / "transformer", participants, per([1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 0]),
                     participants != 11, "transformer")
    # cnn: 13 -> 1/4, 11 -> 2/4, 12 -> 1/4 (the worst is a tie of 12 and 13: the smaller id); confident on 11
    _participant_run(tmp_path / "cnn", participants, per([1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1]),
                     participants == 11, "cnn")
    make_ensemble(EnsembleConfig(runs=[str(tmp_path / "transformer"), str(tmp_path / "cnn")],
                                 name=str(tmp_path / ENSEMBLE_DIR), weights=[0.5, 0.5]))
    # the ensemble follows the confident member: 13 -> 4/4 (transformer), 11 -> 2/4 (cnn), 12 -> 3/4 (transformer)
    t = zoo_table(C.SLUG_SIGNS, tmp_path, ["transformer", "cnn"])
    assert list(t.index) == ["transformer", "cnn", ENSEMBLE_DIR]
    cols = ["n", "OOF accuracy", "min participant accuracy", "worst participant", "max participant accuracy"]
    assert set(cols) <= set(t.columns)
    assert t.loc["transformer", cols].tolist() == [12, 8 / 12, 0.25, 11, 1.0]
    assert t.loc["cnn", cols].tolist() == [12, 4 / 12, 0.25, 12, 0.5]
    assert t.loc[ENSEMBLE_DIR, cols].tolist() == [12, 9 / 12, 0.5, 11, 1.0]


def test_cross_fitted_accuracy_scores_each_half_with_weights_from_the_other(tmp_path):
    participants = np.repeat([4, 1, 3, 2], 6)                     # halves by id: {1, 2} and {3, 4}
    first_half = np.isin(participants, [1, 2])
    labels = np.arange(24) % 4
    # member a is right only on the first half, b only on the second: each half's weights pick the member that is
    # wrong on the other half, so the cross-fitted ensemble gets nothing right while the whole-fold fit gets most
    za = np.eye(4)[np.where(first_half, labels, (labels + 1) % 4)] * 2.0
    zb = np.eye(4)[np.where(first_half, (labels + 2) % 4, labels)]
    assert cross_fitted_accuracy([za, zb], labels, participants, 0.1) == 0.0
    w = fit_weights([za, zb], labels, 0.1)
    assert ((w[0] * za + w[1] * zb).argmax(1) == labels).mean() >= 0.5
    good = np.eye(4)[labels] * 3.0                                 # a member right everywhere keeps its accuracy
    assert cross_fitted_accuracy([za, good], labels, participants, 0.1) == 1.0
    runs = [_participant_run(tmp_path / m, participants, c, np.ones(24, bool), m)
            for m, c in (("transformer", first_half), ("cnn", ~first_half))]
    make_ensemble(EnsembleConfig(runs=[str(r) for r in runs], name=str(tmp_path / ENSEMBLE_DIR), grid_step=0.1))
    rec = json.loads((tmp_path / ENSEMBLE_DIR / "ensemble.json").read_text())
    assert rec["fit_oof_accuracy_cross_fitted"] == 0.0 and rec["fit_oof_accuracy"] >= 0.5
    t = zoo_table(C.SLUG_SIGNS, tmp_path, ["transformer", "cnn"])
    assert "OOF accuracy 0.000 with weights fitted on the other half" in t.loc[ENSEMBLE_DIR, "model"]
    # fitted on its own sequences the ensemble beats both members (0.75 against 0.5), but its cross-fitted 0 hands the
    # submission to the first of the tied members
    assert rec["oof_accuracy"] == 0.75 and rec["member_oof_accuracy"] == [0.5, 0.5]
    assert submitted_dir(tmp_path, ["transformer", "cnn"]) == tmp_path / "transformer"


def test_fingerspelling_zoo_table_shows_the_score_spread_over_participants(tmp_path):
    run = tmp_path / "fs_run"                                     # the unnamed member: the folder itself
    run.mkdir()
    pd.DataFrame({"sequence_id": [1, 2, 3], "participant_id": [9, 5, 5], "fold": 0,
                  "phrase": ["hello", "abcd", "nan"], "pred": ["hallo", "abcd", ""],
                  "length": [40, 40, 40]}).to_csv(run / "oof.csv", index=False)
    t = zoo_table(C.SLUG_FS, run, [""])
    # participant 9: 5 characters, 1 edit; participant 5: 7 characters ("nan" is a phrase), 3 edits
    assert t.loc["fs_run", ["n", "OOF score", "min participant score", "worst participant",
                            "max participant score"]].tolist() == [3, 8 / 12, 4 / 7, 5, 4 / 5]


def test_member_names_with_a_seed_and_the_fingerspelling_ensemble_holds_attention_decoders_only(tmp_path):
    from aslkit.zoo import ensemble_members, member_configs, member_family
    assert member_family("f1@43") == ("f1", 43) and member_family("cnn") == ("cnn", None)
    with pytest.raises(ValueError, match="'f1@x'"):
        member_family("f1@x")
    members = ["ctc", "f1", "f1@43"]
    cfgs = member_configs("ci", C.SLUG_FS, tmp_path, members)
    assert [(c.model_name, c.seed) for c in cfgs.values()] == [("ctc", 42), ("f1", 42), ("f1", 43)]
    assert cfgs["f1@43"].run_name == str((tmp_path / "f1@43").resolve())
    for name, cfg in cfgs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(f"task: {C.SLUG_FS}\nmodel_name: {cfg.model_name}\n")
    assert ensemble_members(tmp_path, members) == ["f1", "f1@43"]


def test_the_submitted_model_is_the_best_oof_of_the_ensemble_and_the_members(tmp_path):
    from aslkit.zoo import submitted_dir

    def folder(name: str, model_name: str | None, preds: list[str]) -> None:
        (tmp_path / name).mkdir()
        if model_name:
            (tmp_path / name / "config.yaml").write_text(f"task: {C.SLUG_FS}\nmodel_name: {model_name}\n")
        pd.DataFrame({"sequence_id": [1, 2], "participant_id": [5, 6], "fold": 0, "phrase": ["abcd", "efgh"],
                      "pred": preds, "length": 40}).to_csv(tmp_path / name / "oof.csv", index=False)

    folder("ctc", "ctc", ["abcd", "efgh"])                                 # 1.0
    folder("f1", "f1", ["abzz", "efgh"])
    folder("f1@43", "f1", ["abcz", "efgh"])
    folder(ENSEMBLE_DIR, None, ["abcz", "efgh"])
    members = ["ctc", "f1", "f1@43"]
    assert submitted_dir(tmp_path, members) == tmp_path / "ctc"            # the CTC beats the F1 ensemble
    pd.DataFrame({"sequence_id": [1, 2], "participant_id": [5, 6], "fold": 0, "phrase": ["abcd", "efgh"],
                  "pred": ["abcd", "efgh"], "length": 40}).to_csv(tmp_path / ENSEMBLE_DIR / "oof.csv", index=False)
    assert submitted_dir(tmp_path, members) == tmp_path / ENSEMBLE_DIR     # a tie goes to the ensemble
    (tmp_path / "f1" / "oof.csv").unlink()
    assert submitted_dir(tmp_path, members) == tmp_path / ENSEMBLE_DIR     # without every OOF: the ensemble
