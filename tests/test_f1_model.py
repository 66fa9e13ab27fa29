"""F1's fingerspelling model (``model_name=f1``): features, masked BatchNorm, the shared rotary tables, the two
decoders' targets, the confidence head's target and fallback, cached greedy decoding, and a run of the one loop
(with gradient accumulation)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from aslkit import constants as C
from aslkit.config import make_config
from aslkit.runs import checkpoint_path, load_checkpoint
from aslkit.tasks.fingerspelling.ctc_ops import ctc_loss
from aslkit.tasks.fingerspelling.families.f1.features import F1FeatureConfig, F1Features
from aslkit.tasks.fingerspelling.families.f1.model import F1Config, F1Model, MaskedBatchNorm
from aslkit.tasks.fingerspelling.seq2seq import (
    IGNORE,
    Seq2SeqObjective,
    confidence_targets,
    decoder_io,
    phrase_of,
)
from aslkit.tensor_ops import Rotary
from aslkit.train import make_train_config, train

CFG = F1Config(dim=32, blocks=2, heads=2, conv_kernel=5, stem_channels=4, decoder_layers=2, decoder_heads=2,
               decoder_ffn=48, max_len=64, max_phrase=8, dropout=0.0, decoder_attn_dropout=0.0)


def model_and_batch(seed: int = 0) -> tuple[F1Model, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    features = F1Features()
    model = F1Model(CFG, features.part_sizes)
    rng = np.random.default_rng(seed)
    seqs = [rng.uniform(0.2, 0.8, (t, 130, 3)).astype(np.float32) for t in (20, 13)]
    seqs[1][:, 40:61] = np.nan                                              # a hand missing
    x = torch.zeros(2, 20, features.feature_dim)
    for i, s in enumerate(seqs):
        x[i, :len(s)] = features(torch.from_numpy(s))
    mask = torch.arange(20)[None, :] < torch.tensor([20, 13])[:, None]
    return model, x, mask


def test_features_normalise_globally_then_per_part_and_pad_to_zero():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(0.2, 0.8, (30, 130, 3)).astype(np.float32))
    x[5:9, 40:61] = float("nan")
    f = F1Features()
    out = f(x)
    assert out.shape == (30, 780) and not torch.isnan(out).any()
    glob = out[:, :390].reshape(30, 130, 3)
    valid = ~torch.isnan(x)
    for axis in range(3):                                                  # per axis: mean 0, std 1 (present)
        vals = glob[..., axis][valid[..., axis]]
        assert abs(float(vals.mean())) < 1e-4 and abs(float(vals.std(unbiased=False)) - 1) < 1e-3
    assert (glob[5:9, 40:61] == 0).all()
    padded = torch.cat([x, torch.full((7, 130, 3), float("nan"))])
    torch.testing.assert_close(f(padded)[:30], out)
    assert (f(padded)[30:] == 0).all()
    assert sum(f.part_sizes.values()) == 130 and list(f.part_sizes) == ["left_hand", "right_hand", "face", "pose"]


def reference_features(x: np.ndarray, parts: dict[str, np.ndarray]) -> np.ndarray:
    """F1's two normalisations written out plainly: per axis over the whole sequence, then per part, frame and axis
    (``parts``: point positions), missing values 0."""
    valid = ~np.isnan(x)
    dev = np.where(valid, x, 0.0)
    n = np.maximum(valid.sum((0, 1)), 1)
    dev = (dev - dev.sum((0, 1)) / n) * valid
    glob = dev / np.maximum(np.sqrt((dev ** 2).sum((0, 1)) / n), 1e-3)
    local = []
    for pos in parts.values():
        g, v = glob[:, pos], valid[:, pos]
        n = np.maximum(v.sum(1, keepdims=True), 1)
        d = (g - g.sum(1, keepdims=True) / n) * v
        local.append(d / np.maximum(np.sqrt((d ** 2).sum(1, keepdims=True) / n), 1e-3))
    return np.concatenate([glob.reshape(len(x), -1), np.concatenate(local, 1).reshape(len(x), -1)], 1)


def test_features_equal_the_plainly_written_normalisations():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.2, 0.8, (25, 130, 3)).astype(np.float32)
    x[3:8, 40:61] = np.nan                                                  # a hand missing in some frames
    x[:, 61:82] = np.nan                                                    # the other hand never seen
    x[10, 100, 2] = np.nan                                                  # one missing value
    f = F1Features()
    np.testing.assert_allclose(f(torch.from_numpy(x)).numpy(), reference_features(x.astype(np.float64),
                               f.part_positions), atol=2e-5, rtol=1e-5)


def test_masked_batchnorm_statistics_ignore_padded_frames():
    torch.manual_seed(0)
    a, b = MaskedBatchNorm(4).train(), MaskedBatchNorm(4).train()
    x = torch.randn(2, 6, 4, 3)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    longer = torch.cat([x, 100 * torch.randn(2, 5, 4, 3)], dim=1)          # extra padding full of garbage
    longer_mask = torch.cat([mask, torch.zeros(2, 5, dtype=torch.bool)], dim=1)
    longer[1, 4:6] = 50.0
    out_a, out_b = a(x, mask), b(longer, longer_mask)
    torch.testing.assert_close(out_a[mask], out_b[longer_mask])
    torch.testing.assert_close(a.bn.running_mean, b.bn.running_mean)
    torch.testing.assert_close(a.bn.running_var, b.bn.running_var)
    assert (out_b[~longer_mask] == 0).all()
    a.eval()                                                               # evaluation: running stats, per frame
    torch.testing.assert_close(a(x, mask)[mask], a.bn(x[mask]))


def test_encoder_output_does_not_depend_on_padding_and_rotary_tables_are_one_copy():
    model, x, mask = model_and_batch()
    model.train()
    rotaries = [m for m in model.modules() if isinstance(m, Rotary)]
    assert len(rotaries) == 1                                              # one table for all 2 blocks
    seen = []
    for block in model.encoder.blocks:
        block.attn.module.register_forward_hook(lambda mod, args, out: seen.append(args[1][0].data_ptr()))
    out = model.encoder(x, mask)
    assert len(seen) == 2 and len(set(seen)) == 1                          # every block got the same cos table
    longer = torch.cat([x, torch.randn(2, 6, x.shape[2])], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(2, 6, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(model.encoder(longer, longer_mask)[:, :20][mask], out[mask], atol=1e-4, rtol=1e-4)
    model.eval()                                # evaluation leaves padded frames unmasked inside: they must not leak
    torch.testing.assert_close(model.encoder(longer, longer_mask)[:, :20][mask], model.encoder(x, mask)[mask],
                               atol=1e-4, rtol=1e-4)
    assert (model.encoder(longer, longer_mask)[~longer_mask] == 0).all()


def test_decoder_targets_and_the_reversed_decoder_gets_the_reversed_phrase():
    ids, lengths = torch.tensor([3, 4, 5, 7, 8]), torch.tensor([3, 2])
    fin, fout = decoder_io(ids, lengths, 8, False, 0.0, None)
    rin, rout = decoder_io(ids, lengths, 8, True, 0.0, None)
    assert fin.tolist() == [[C.TOKEN_START, 3, 4, 5], [C.TOKEN_START, 7, 8, C.TOKEN_PAD]]
    assert fout.tolist() == [[3, 4, 5, C.TOKEN_END], [7, 8, C.TOKEN_END, IGNORE]]
    assert rin.tolist() == [[C.TOKEN_START, 5, 4, 3], [C.TOKEN_START, 8, 7, C.TOKEN_PAD]]
    assert rout.tolist() == [[5, 4, 3, C.TOKEN_END], [8, 7, C.TOKEN_END, IGNORE]]
    masked, _ = decoder_io(ids.repeat(50), lengths.repeat(50), 8, False, 0.5, np.random.default_rng(0))
    chars = masked[:, 1:][masked[:, 1:] != C.TOKEN_PAD]
    assert 0.35 < float((chars == C.TOKEN_MASK).float().mean()) < 0.65 and (masked[:, 0] == C.TOKEN_START).all()

    model, x, mask = model_and_batch()
    seen = {}
    model.reverse_decoder.register_forward_hook(lambda mod, args, out: seen.update(rev=args[0]))
    obj = Seq2SeqObjective(CFG)
    obj.train_step(model, (x, mask), (ids, lengths, torch.full((2,), float("nan"))), np.random.default_rng(0))
    assert seen["rev"].tolist() == rin.tolist()


def test_confidence_target_comes_from_the_runs_oof(tmp_path):
    run = tmp_path / "first"
    run.mkdir()
    pd.DataFrame({"sequence_id": [10, 11, 12], "participant_id": 1, "fold": 0, "phrase": ["abcd", "xy", "hello"],
                  "pred": ["abcd", "xyzzzz", "help"], "length": 9}).to_csv(run / "oof.csv", index=False)
    index = pd.DataFrame({"sequence_id": [12, 13, 10, 11]})
    np.testing.assert_allclose(confidence_targets(str(run), index), [0.6, np.nan, 1.0, 0.0])

    model, x, mask = model_and_batch()
    ids, lengths = torch.tensor([3, 4, 5, 7, 8]), torch.tensor([3, 2])
    obj = Seq2SeqObjective(CFG, confidence=np.array([0.9, np.nan]))
    batch = [(torch.zeros(3, 130, 3), (np.array([3, 4, 5]), 3), 0), (torch.zeros(2, 130, 3), (np.array([7, 8]), 2), 1)]
    assert torch.equal(torch.isnan(obj.collate(batch)[1][2]), torch.tensor([False, True]))
    for target, gets_grad in ((torch.tensor([0.9, float("nan")]), True), (torch.full((2,), float("nan")), False)):
        model.zero_grad()
        _, loss = obj.train_step(model, (x, mask), (ids, lengths, target), np.random.default_rng(0))
        loss.backward()
        grad = model.confidence.weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == gets_grad


def test_joint_ctc_loss_trains_the_ctc_head_on_the_phrase():
    ids, lengths, no_conf = torch.tensor([3, 4, 5, 7, 8]), torch.tensor([3, 2]), torch.full((2,), float("nan"))
    model, x, mask = model_and_batch()
    tokens = decoder_io(ids, lengths, 8, False, 0.0, None)[0]
    assert model.ctc is None and model(x, mask, tokens, tokens)[3] is None
    cfg = dataclasses.replace(CFG, ctc_weight=0.25)
    torch.manual_seed(0)
    joint = F1Model(cfg, F1Features().part_sizes)
    joint.load_state_dict(model.state_dict(), strict=False)
    _, attention = Seq2SeqObjective(CFG).train_step(model, (x, mask), (ids, lengths, no_conf), np.random.default_rng(0))
    _, loss = Seq2SeqObjective(cfg).train_step(joint, (x, mask), (ids, lengths, no_conf), np.random.default_rng(0))
    ctc = ctc_loss(joint.ctc(joint.encoder(x, mask)), mask, ids, lengths)
    torch.testing.assert_close(loss, 0.75 * attention + 0.25 * ctc)
    loss.backward()
    assert joint.ctc.weight.grad.abs().sum() > 0
    other = ctc_loss(joint.ctc(joint.encoder(x, mask)), mask, torch.tensor([9, 9, 9, 1, 2]), lengths)
    assert not torch.isclose(other, ctc)                                    # the CTC term reads the phrase


def test_cached_greedy_decoding_equals_step_by_step_without_cache():
    model, x, mask = model_and_batch(3)
    model.eval()
    with torch.no_grad():
        for p in model.decoder.head.parameters():                          # phrases of several characters
            p.add_(torch.randn_like(p))
        memory = model.encoder(x, mask)
        cached, plain = model.greedy(memory, mask), model.greedy(memory, mask, cache=False)
    assert cached.shape == (2, CFG.max_phrase + 1) and torch.equal(cached, plain)
    for row in cached.tolist():                                            # padding after the end token only
        if C.TOKEN_END in row:
            assert set(row[row.index(C.TOKEN_END) + 1:]) <= {C.TOKEN_PAD}


def test_fallback_fires_on_low_confidence_and_without_hands():
    obj = Seq2SeqObjective(CFG, confidence=np.zeros(2), fallback="zz", min_hand_frames=3)
    h, i, d = (C.CHAR_TO_INDEX[c] for c in "hid")
    tokens = torch.tensor([[h, i, C.TOKEN_END, C.TOKEN_PAD], [d, i, d, C.TOKEN_END], [d, C.TOKEN_END, 0, 0]])
    outputs = (None, None, None, tokens, torch.tensor([0.9, 0.1, 0.9]))
    assert obj.predictions(outputs, (None, None, torch.tensor([10, 10, 1]))) == ["hi", "zz", "zz"]
    no_head = Seq2SeqObjective(CFG, fallback="zz", min_hand_frames=3)
    assert no_head.predictions(outputs, (None, None, torch.tensor([10, 10, 10]))) == ["hi", "did", "d"]
    assert phrase_of([h, i, C.TOKEN_END, d]) == "hi"


def test_f1_trains_in_the_loop_with_gradient_accumulation(fs_synth, tmp_path, monkeypatch):
    from aslkit.tasks.fingerspelling.prepare import PrepareFSConfig, prepare_fingerspelling
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    cache = prepare_fingerspelling(make_config(PrepareFSConfig, "ci", {"data_dir": str(fs_synth),
                                                                       "out_dir": str(tmp_path / "prepared")}))
    common = ["task=asl-fingerspelling", "model_name=f1", f"prepared_dir={cache}", "optim.epochs=2", "threads=1"]
    run = train(make_train_config("ci", common + ["optim.grad_accumulation=2", f"run_name={tmp_path / 'acc'}"]))
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == 2 and metrics["train_loss"].iloc[-1] < metrics["train_loss"].iloc[0]
    assert {"sequence_id", "phrase", "pred"} <= set(pd.read_csv(run / "oof.csv").columns)
    confident = train(make_train_config("ci", common + [f"recipe.confidence_from={run}",
                                                        f"run_name={tmp_path / 'conf'}"]))
    assert (confident / "oof.csv").is_file()

    def steps(r):
        return load_checkpoint(checkpoint_path(r, "last"))["scheduler"]["last_epoch"]

    assert steps(confident) >= 4 and steps(run) == 2 * -(-(steps(confident) // 2) // 2)   # one step per 2 batches


def test_grader_graph_decodes_what_the_training_side_decodes_and_falls_back():
    from aslkit.data.fs import landmarks_to_blocks
    from aslkit.tasks.fingerspelling.decoder_graph import F1GraderModel
    from aslkit.tasks.fingerspelling.export import grader_decode
    from aslkit.tasks.fingerspelling.frames import hand_frames
    model, _, _ = model_and_batch(3)
    model.eval()
    with torch.no_grad():
        for p in model.decoder.head.parameters():
            p.add_(torch.randn_like(p))
    features = F1Features(make_config(F1FeatureConfig, overrides={"max_frames": 48}))
    rng = np.random.default_rng(5)
    seq = rng.uniform(0.2, 0.8, (30, 130, 3)).astype(np.float32)
    graph = F1GraderModel(features, model, fallback="zz", min_hand_frames=3).eval()
    obj = Seq2SeqObjective(CFG, fallback="zz", min_hand_frames=3)
    with torch.no_grad():
        out = graph(torch.from_numpy(landmarks_to_blocks(seq))).numpy()
        x = features(torch.from_numpy(seq)).unsqueeze(0)
        mask = torch.ones(1, 30, dtype=torch.bool)
        hands = torch.tensor([int(hand_frames(seq))])
        expected = obj.predictions(obj.forward(model, (x, mask, hands)), (x, mask, hands))[0]
    assert grader_decode(out) == expected and expected != "zz"
    assert out.shape == (min(len(expected) + 1, CFG.max_phrase + 1), C.TOKENS)   # stopped after the end token
    sure = F1GraderModel(features, model, fallback="zz", min_hand_frames=3, use_confidence=True).eval()
    with torch.no_grad():
        model.confidence.bias.fill_(-20.0)                                  # confidence ~ 0: below the threshold
        out = sure(torch.from_numpy(landmarks_to_blocks(seq))).numpy()
    assert grader_decode(out) == "zz" and len(out) == 2                     # stopped after the fallback's last row


def test_supplemental_sampling_draws_one_sequence_per_unique_phrase_each_epoch():
    from aslkit.tasks.fingerspelling.objective import FSSampler

    class Frames:                                                           # row i: 5 frames, every value i
        subset = C.FS_130

        def __getitem__(self, i):
            return np.full((5, len(C.FS_130), 3), float(i), np.float32)

    phrases = ["ab", "cd", "ab", "ab", "cd", "ef", "ab"]
    index = pd.DataFrame({"phrase": phrases, "participant_id": [1] * 7,
                          "source": ["train", "train", "supplemental", "supplemental", "supplemental",
                                     "supplemental", "supplemental"]})
    sampler = FSSampler(Frames(), index, lambda x, rng: x, 0.0, 10)
    is_supp = (index["source"] == "supplemental").to_numpy()
    rows = sampler.one_per_phrase(np.arange(7), is_supp)
    assert list(rows) == [0, 1, 2, 4, 5]                                    # train rows + one row per phrase
    drawn = {int(sampler(2, np.random.default_rng(epoch))[0][0, 0, 0]) for epoch in range(30)}
    assert drawn == {2, 3, 6}                                               # every "ab" supplemental row, no other
    assert int(sampler(2, None)[0][0, 0, 0]) == 2 and int(sampler(0, np.random.default_rng(0))[0][0, 0, 0]) == 0
