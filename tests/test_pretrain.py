"""data2vec 2.0 pretraining of the fingerspelling encoder (``aslkit pretrain``): block masks, the EMA teacher that
never gets gradients, the loss at masked frames only, the run folder (resumable, ``encoder.pt``) and fine-tuning
from it (encoder copied, CTC head fresh, layer-wise learning-rate decay)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aslkit import constants as C
from aslkit.cli import main
from aslkit.config import ConfigError, make_config
from aslkit.pretrain import make_pretrain_config, pretrain
from aslkit.recipes import init_from_run
from aslkit.runs import OptimConfig, checkpoint_path, load_checkpoint
from aslkit.tasks.fingerspelling.families.ctc.model import CTCConfig, CTCEncoder
from aslkit.tasks.fingerspelling.pretrain import (
    Data2Vec,
    Data2VecConfig,
    Data2VecObjective,
    block_mask,
    masked_mse,
)
from aslkit.train import build_optimizer, make_train_config, train

FEATURES = 12


def encoder(layers: int = 2, stride: int = 1, layerdrop: float = 0.0) -> CTCEncoder:
    torch.manual_seed(0)
    return CTCEncoder(CTCConfig(dim=16, layers=layers, heads=2, ffn_mult=2, dropout=0.0, layerdrop=layerdrop,
                                stride=stride, max_len=64), FEATURES)


def batch(b: int = 3, t: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    x = torch.randn(b, t, FEATURES)
    mask = torch.arange(t)[None, :] < torch.tensor([t, t - 5, t - 9])[:b, None]
    return x * mask[..., None], mask


def test_block_masks_cover_the_ratio_of_each_sequence_in_blocks():
    rng = np.random.default_rng(0)
    lengths = [40, 17, 1, 0, 100]
    m = block_mask(lengths, 100, 0.5, 8, rng)
    assert m.shape == (5, 100)
    assert [int(r.sum()) for r in m] == [20, 8, 1, 0, 50]
    for row, n in zip(m, lengths):
        assert not row[n:].any()                                          # nothing beyond the length
        starts = np.flatnonzero(np.diff(np.r_[0, row.astype(int)]) == 1)
        assert len(starts) <= int(row.sum()) // 8 + 2                     # blocks, not scattered frames
    assert not np.array_equal(m, block_mask(lengths, 100, 0.5, 8, np.random.default_rng(1)))


def test_teacher_is_the_ema_of_the_student_and_never_gets_gradients():
    model = Data2Vec(encoder(), Data2VecConfig(copies=2, ema_start=0.9, ema_end=0.9, decoder_layers=1))
    assert all(not p.requires_grad for p in model.teacher.parameters())
    assert all(torch.equal(t, s) for t, s in zip(model.teacher.parameters(), model.student.parameters()))
    obj = Data2VecObjective(model.cfg, features=None)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    x, mask = batch()
    model.train()
    for step in range(2):
        _, loss = obj.train_step(model, (x, mask), None, np.random.default_rng(step))
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is None for p in model.teacher.parameters())
        assert model.mask_embedding.grad is not None and model.student.proj.weight.grad.abs().sum() > 0
        before = [p.detach().clone() for p in model.teacher.parameters()]
        opt.step()
        student = [p.detach().clone() for p in model.student.parameters()]
        obj.train_step(model, (x, mask), None, np.random.default_rng(9))     # the next forward updates the teacher
        for t, b, s in zip(model.teacher.parameters(), before, student):
            torch.testing.assert_close(t, 0.9 * b + 0.1 * s)
    assert not model.teacher.training and int(model.updates) == 4
    model.eval()
    frozen = [p.detach().clone() for p in model.teacher.parameters()]
    obj.forward(model, (x, mask))                                          # validation leaves the teacher alone
    assert all(torch.equal(t, f) for t, f in zip(model.teacher.parameters(), frozen))


def test_the_decay_anneals_from_start_to_end():
    model = Data2Vec(encoder(), Data2VecConfig(ema_start=0.9, ema_end=0.99, ema_anneal_steps=10))
    assert model.teacher_decay() == pytest.approx(0.9)
    model.updates.fill_(5)
    assert model.teacher_decay() == pytest.approx(0.945)
    model.updates.fill_(50)
    assert model.teacher_decay() == pytest.approx(0.99)


@pytest.mark.parametrize("stride", [1, 2])
def test_the_loss_is_computed_at_masked_frames_only(stride):
    model = Data2Vec(encoder(stride=stride), Data2VecConfig(copies=2, top_k=1, decoder_layers=1)).eval()
    x, mask = batch()
    obj = Data2VecObjective(model.cfg, features=None)
    frames = obj.masks(mask, np.random.default_rng(0))
    pred, target, positions = model(x, mask, frames)
    assert pred.shape == target.shape == (6, -(-20 // stride), 16)
    assert torch.equal(positions, frames[:, ::stride] & model.output_mask(mask).repeat(2, 1))
    assert positions.any(1).all() and (~positions & model.output_mask(mask).repeat(2, 1)).any()
    pred = pred.detach().requires_grad_(True)
    masked_mse(pred, target, positions).sum().backward()
    assert (pred.grad.abs().sum(-1) > 0).eq(positions).all()              # gradient exactly at the masked frames
    changed = pred.detach().clone()
    changed[~positions] += 100.0
    torch.testing.assert_close(masked_mse(changed, target, positions), masked_mse(pred.detach(), target, positions))


def test_the_teacher_sees_the_whole_sequence_and_the_student_the_masked_copies():
    model = Data2Vec(encoder(), Data2VecConfig(copies=2, top_k=2, decoder_layers=1)).eval()
    x, mask = batch()
    a = model(x, mask, torch.zeros(6, 20, dtype=torch.bool))
    frames = torch.zeros(6, 20, dtype=torch.bool)
    frames[:, 3:9] = True
    b = model(x, mask, frames)
    torch.testing.assert_close(a[1], b[1])                                 # targets: the unmasked sequence
    assert not torch.allclose(a[0], b[0])                                  # the student saw the mask vector
    layers = model.teacher.encode(x, mask)[1]
    assert len(layers) == 2 and a[1].shape == (6, 20, 16)


def test_pretrain_run_resumes_exactly_and_fine_tuning_starts_from_its_encoder(fs_synth, tmp_path, monkeypatch):
    from aslkit.tasks.fingerspelling.prepare import PrepareFSConfig, prepare_fingerspelling
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    cache = prepare_fingerspelling(make_config(PrepareFSConfig, "ci", {"data_dir": str(fs_synth),
                                                                       "out_dir": str(tmp_path / "prepared")}))
    common = [f"prepared_dir={cache}", "optim.epochs=2", "threads=1"]
    straight = checkpoint_path(pretrain(make_pretrain_config("ci", common + [f"run_name={tmp_path / 'straight'}"])),
                               "encoder")

    class Stop(Exception):
        pass

    def stop(row):
        raise Stop

    halted = tmp_path / "halted"
    with pytest.raises(Stop):
        train(make_pretrain_config("ci", common + [f"run_name={halted}"]), on_epoch=stop)
    pretrain(resume=halted)
    a, b = load_checkpoint(straight)["model"], load_checkpoint(checkpoint_path(halted, "encoder"))["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not any(k.startswith(("head.", "teacher.", "decoder.")) for k in a)
    metrics = (tmp_path / "straight" / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("epoch,train_loss,val_loss,neg_val_loss") and len(metrics) == 3

    ft = train(make_train_config("ci", ["task=asl-fingerspelling", f"prepared_dir={cache}", "optim.epochs=1",
                                        f"recipe.init_from={tmp_path / 'straight'}", "optim.layer_decay=0.7",
                                        f"run_name={tmp_path / 'ft'}"]))
    copied = json.loads((ft / "init.json").read_text())["tensors"]
    assert set(copied) == set(a) and "head.weight" not in copied
    fresh = make_train_config("ci", ["task=asl-fingerspelling"])
    from aslkit.tasks.registry import build_modules
    model = build_modules(fresh, np.asarray(C.FS_130))[1]
    head = model.head.weight.detach().clone()
    assert set(init_from_run(model, tmp_path / "straight")) == set(a)
    assert all(torch.equal(model.state_dict()[k], a[k]) for k in a)
    assert torch.equal(model.head.weight, head)                            # the CTC head starts fresh


def test_layer_decay_scales_each_layer_group():
    model = encoder(layers=2)
    opt = build_optimizer(model, OptimConfig(optimizer="adamw", lr=1.0, layer_decay=0.5))
    lr_of = {}
    for group in opt.param_groups:
        for p in group["params"]:
            lr_of[p] = group["lr"]
    assert lr_of[model.head.weight] == lr_of[model.norm.weight] == 1.0
    assert lr_of[model.blocks[1].qkv.weight] == 0.5 and lr_of[model.blocks[0].qkv.weight] == 0.25
    assert lr_of[model.proj.weight] == lr_of[model.stem.weight] == 0.125
    plain = build_optimizer(model, OptimConfig(optimizer="adamw", lr=1.0))
    assert {g["lr"] for g in plain.param_groups} == {1.0}
    with pytest.raises(ConfigError, match="optim.layer_decay=0.5: Linear has no layer groups"):
        build_optimizer(torch.nn.Linear(2, 2), OptimConfig(optimizer="adamw", layer_decay=0.5))


def test_pretraining_settings_and_refusals(capsys):
    cfg = make_pretrain_config("quick")
    assert (cfg.task, cfg.stage, cfg.augment["cutmix_p"], cfg.pretrain["copies"]) == ("asl-fingerspelling",
                                                                                     "pretrain", 0.0, 4)
    assert make_config(Data2VecConfig, overrides=make_pretrain_config("full").pretrain).copies == 8   # F5's M
    with pytest.raises(ConfigError, match="'asl-signs' has no pretraining stage"):
        make_pretrain_config("ci", ["task=asl-signs"])
    with pytest.raises(ConfigError, match="cannot use recipe.ousm_k"):
        make_pretrain_config("ci", ["recipe.ousm_k=2"])
    with pytest.raises(ConfigError, match="pretrain.mask_ratio"):
        Data2Vec(encoder(), Data2VecConfig(mask_ratio=1.0))
    assert main(["pretrain", "--preset", "ci", "pretrain.decoder_kernel=4", "run_name=never"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pretrain.decoder_kernel must be odd" in err[0]
