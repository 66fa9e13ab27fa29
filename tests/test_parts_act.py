"""Parts that could silently do nothing are held to account: the transformer's conditional position encoding, the
frames model's landmark embeddings, position CNN, part branches and hand max-merge, the CNN's hypercolumn head,
Ranger's lookahead and the learning-rate schedules. Each test fails when its part is skipped, zeroed or wired
wrongly."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from aslkit import constants as C
from aslkit.runs import OptimConfig
from aslkit.tasks.signs.families import FAMILIES
from aslkit.tasks.signs.families.cnn.model import SignCNN
from aslkit.tasks.signs.families.frames.features import FEATURE_BLOCKS, NUM_POINTS, POINT_TYPES, part_slices
from aslkit.tasks.signs.families.frames.model import FramesModel, FramesModelConfig
from aslkit.tasks.signs.families.transformer.model import (
    ConditionalPositionEncoding,
    SignTransformer,
    TransformerConfig,
)
from aslkit.train import build_ema, build_optimizer, build_scheduler, make_train_config

SUBSET = C.CACHE_SUBSETS["islr"]
TOL = 1e-3          # a part "acts" when removing it moves some logit by more than this
SAME = 1e-5         # "unchanged" up to float rounding


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# ------------------------------------------------------------------------------------------------------------------
# Transformer: conditional position encoding (CPE)
# ------------------------------------------------------------------------------------------------------------------
def tiny_transformer(encoder: str = "bert", layers: int = 3) -> SignTransformer:
    """A small ``SignTransformer`` (eval mode) on 12 input features, 16 frames."""
    torch.manual_seed(0)
    cfg = TransformerConfig(encoder=encoder, hidden=32, layers=layers, heads=2, intermediate=64, max_len=16,
                            num_classes=10)
    return SignTransformer(cfg, in_features=12).eval()


def zero_cpe(model: nn.Module, layers: list[int] | None = None) -> None:
    """Zero the depthwise convolution (weights and bias) of the CPE of the given encoder layers (all by default)."""
    stack = model.encoder.encoder.layer
    with torch.no_grad():
        for k in range(1, len(stack)) if layers is None else layers:
            stack[k].cpe.conv.weight.zero_()
            stack[k].cpe.conv.bias.zero_()


def transformer_inputs(batch: int = 2, length: int = 16, features: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(batch, length, features, generator=g)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[-1, length * 2 // 3:] = False
    return feats, mask


def test_ci_transformer_has_cpe_on_every_layer_but_the_first_and_it_acts() -> None:
    """The family-built (ci preset) transformer carries a CPE on layers 1.. (none on layer 0), and zeroing the
    CPEs changes its logits."""
    torch.manual_seed(0)
    features, model = FAMILIES.build_modules(make_train_config("ci", {"model_name": "transformer"}), SUBSET)
    model.eval()
    stack = model.encoder.encoder.layer
    assert len(stack) >= 2
    assert not hasattr(stack[0], "cpe")
    assert all(isinstance(layer.cpe, ConditionalPositionEncoding) for layer in stack[1:])
    assert stack[1].cpe.conv.groups == model.cfg.hidden                 # depthwise
    x = torch.randn(2, features.length, features.feature_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(x)
        zero_cpe(model)
        assert max_diff(model(x), ref) > TOL


@pytest.mark.parametrize("encoder", ["bert", "deberta"])
def test_each_layers_cpe_changes_the_output(encoder: str) -> None:
    """Zeroing the CPE of any one layer (1 or 2 of 3) alone changes the logits: every CPE is applied (its forward
    pre-hook fires), for both encoder kinds."""
    model = tiny_transformer(encoder)
    feats, mask = transformer_inputs()
    with torch.no_grad():
        ref = model(feats, mask)
        for k in (1, 2):
            m = copy.deepcopy(model)
            zero_cpe(m, [k])
            assert max_diff(m(feats, mask), ref) > TOL, f"the CPE of layer {k} does nothing"


def test_cpe_gives_frame_order_when_absolute_positions_are_removed() -> None:
    """With BERT's absolute position embeddings zeroed, attention + mean pooling ignore frame order: the logits
    are invariant to a permutation of the frames without CPE, and depend on it with CPE."""
    model = tiny_transformer("bert")
    with torch.no_grad():
        model.encoder.embeddings.position_embeddings.weight.zero_()
    feats, _ = transformer_inputs()
    perm = torch.randperm(feats.shape[1], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        with_cpe = max_diff(model(feats), model(feats[:, perm]))
        zero_cpe(model)
        without_cpe = max_diff(model(feats), model(feats[:, perm]))
    assert without_cpe < SAME                       # no other source of order left
    assert with_cpe > TOL


def test_cpe_is_a_local_depthwise_convolution_over_time_plus_its_input() -> None:
    """``ConditionalPositionEncoding`` adds to its input a depthwise conv over time: a change at frame t of channel
    c moves only channel c, only frames within kernel // 2 of t, and (through the conv) more than the identity."""
    torch.manual_seed(0)
    cpe = ConditionalPositionEncoding(dim=6, kernel=5)
    x = torch.randn(1, 20, 6)
    t, c, delta = 9, 2, 1.0
    y = x.clone()
    y[0, t, c] += delta
    with torch.no_grad():
        d = (cpe(y) - cpe(x)).abs()[0]                                       # [L, D]
    other = torch.ones_like(d, dtype=torch.bool)
    other[t - 2:t + 3, c] = False
    assert float(d[other].max()) < SAME                                 # other channels, far frames untouched
    assert float(d[[t - 2, t - 1, t + 1, t + 2], c].min()) > 1e-4       # neighbours within the kernel moved
    assert abs(float(d[t, c]) - delta) > 1e-4                           # the conv adds to the identity at t


def test_ema_copy_keeps_the_cpe() -> None:
    """The EMA copy (``build_ema``) carries its own CPEs with their hooks: it computes the same logits, and
    zeroing the copy's CPEs changes the copy's output, not the original's."""
    model = tiny_transformer("bert")
    ema = build_ema(model, 0.99)
    feats, mask = transformer_inputs()
    with torch.no_grad():
        ref = model(feats, mask)
        torch.testing.assert_close(ema.module.eval()(feats, mask), ref)
        zero_cpe(ema.module)
        assert max_diff(ema.module(feats, mask), ref) > TOL
        torch.testing.assert_close(model(feats, mask), ref)


# ------------------------------------------------------------------------------------------------------------------
# Frames (I6): landmark embeddings, position CNN, part branches, hand merge
# ------------------------------------------------------------------------------------------------------------------
def frames_model(**kw) -> FramesModel:
    """A small ``FramesModel`` (the ci preset's sizes, 25 frames), eval mode."""
    torch.manual_seed(0)
    cfg = dict(max_len=25, embed_dim=8, dense=32, width=32, layers=1, heads=2, intermediate=64)
    return FramesModel(FramesModelConfig(**{**cfg, **kw})).eval()


def frames_batch(batch: int = 3, length: int = 25, seed: int = 0) -> torch.Tensor:
    """Random frame features ``[B, L, 7P + 1]``: points, centred points, ~90 % valid points, 18..25 real frames."""
    g = torch.Generator().manual_seed(seed)
    blocks = {"points": torch.rand(batch, length, 3 * NUM_POINTS, generator=g),
              "centred": 0.3 * torch.randn(batch, length, 3 * NUM_POINTS, generator=g),
              "valid": (torch.rand(batch, length, NUM_POINTS, generator=g) > 0.1).float(),
              "mask": torch.ones(batch, length, 1)}
    for b in range(batch):
        blocks["mask"][b, length - 7 * b // max(1, batch - 1):] = 0.0
    return torch.cat([blocks[name] for name, _ in FEATURE_BLOCKS], dim=-1)


def frames_output_change(model: FramesModel, edit) -> float:
    """Largest logit change when ``edit(model)`` is applied (under no_grad) to a copy of ``model``."""
    x = frames_batch()
    other = copy.deepcopy(model)
    with torch.no_grad():
        edit(other)
        return max_diff(other(x), model(x))


@pytest.mark.parametrize("table", ["ids", "types"])
def test_landmark_id_and_type_embeddings_change_the_output(table: str) -> None:
    """Zeroing the landmark-id (or the landmark-type) embedding table changes the logits."""
    model = frames_model()
    assert frames_output_change(model, lambda m: getattr(m.embed, table).weight.zero_()) > TOL


def test_every_landmark_id_and_type_is_used() -> None:
    """Each of the ``NUM_POINTS`` id rows and each of the ``len(POINT_TYPES)`` type rows gets a gradient: every
    point has its own id and every type occurs."""
    model = frames_model().train()
    model(frames_batch()).logsumexp(-1).sum().backward()
    ids, types = model.embed.ids.weight.grad, model.embed.types.weight.grad
    assert ids is not None and types is not None
    assert ids.shape[0] == NUM_POINTS and types.shape[0] == len(POINT_TYPES)
    assert float(ids.abs().sum(1).min()) > 0 and float(types.abs().sum(1).min()) > 0


@pytest.mark.parametrize("conv", ["conv1", "conv1_centred", "conv2"])
def test_position_cnn_convolutions_change_the_output(conv: str) -> None:
    """Zeroing either first convolution (of the points, of the part-centred points) or the second one changes the
    logits."""
    model = frames_model(center_parts=True)

    def zero(m: FramesModel) -> None:
        module = getattr(m.embed, conv)
        for p in module.parameters():
            p.zero_()
    assert frames_output_change(model, zero) > TOL


def test_position_cnn_smooths_over_time_for_each_point_alone() -> None:
    """The position CNN convolves along time only: a change of one point at frame t moves that point's
    embedding at t and its neighbours (two kernel-5 convs: within 4 frames), and no other point or far frame."""
    model = frames_model()
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(1, 25, 3 * NUM_POINTS, generator=g)
    centred = torch.randn(1, 25, 3 * NUM_POINTS, generator=g)
    valid = torch.ones(1, 25, NUM_POINTS)
    t, p = 12, 30
    moved = pts.clone()
    moved[0, t, 3 * p:3 * p + 3] += 0.5
    with torch.no_grad():
        d = (model.embed(moved, centred, valid) - model.embed(pts, centred, valid)).abs().amax(-1)[0]   # [L, P]
    reach = 2 * (model.cfg.cnn_kernel // 2)
    inside = torch.zeros_like(d, dtype=torch.bool)
    inside[t - reach:t + reach + 1, p] = True
    assert float(d[~inside].max()) < SAME
    assert float(d[t - 2:t + 3, p].min()) > 1e-4                 # smoothed into neighbouring frames
    assert float(d[[t - reach, t + reach], p].min()) > 0          # reach of the two convolutions


@pytest.mark.parametrize("part", ["left_hand", "right_hand", "lips", "face", "all"])
def test_each_part_branch_changes_the_output(part: str) -> None:
    """Zeroing the Linear of any part branch (each hand its own MLP here) changes the logits."""
    model = frames_model(share_hand_mlp=False)

    def zero(m: FramesModel) -> None:
        linear = getattr(m, part)[0]
        linear.weight.zero_()
        linear.bias.zero_()
    assert frames_output_change(model, zero) > TOL


def merge_input(model: FramesModel, x: torch.Tensor, swap_hands: bool = False) -> torch.Tensor:
    """The input of ``model.merge`` (the concatenated branches ``[B, L, 4 dense]``), optionally with the left- and
    right-hand point embeddings swapped before the branches."""
    s = part_slices()
    seen: list[torch.Tensor] = []

    def swap(_module, _args, e: torch.Tensor) -> torch.Tensor:
        e = e.clone()
        e[:, :, s["left_hand"]], e[:, :, s["right_hand"]] = e[:, :, s["right_hand"]], e[:, :, s["left_hand"]].clone()
        return e
    hooks = [model.merge.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))]
    if swap_hands:
        hooks.append(model.embed.register_forward_hook(swap))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen[0]


def test_hands_are_merged_by_elementwise_max() -> None:
    """The hands block of the merged branches is the element-wise max of the two hand MLPs' outputs: it equals
    ``max(left_hand(left), right_hand(right))`` computed here from the point embeddings, taking values from both
    hands (the two MLPs differ, so a sum or a single hand fails)."""
    model = frames_model(share_hand_mlp=False)
    x = frames_batch()
    s, dense = part_slices(), model.cfg.dense
    emb: list[torch.Tensor] = []
    hook = model.embed.register_forward_hook(lambda _m, _a, out: emb.append(out))
    hands = merge_input(model, x)[..., :dense]
    hook.remove()
    b, length = x.shape[:2]
    with torch.no_grad():
        left = model.left_hand(emb[0][:, :, s["left_hand"]].reshape(b, length, -1))
        right = model.right_hand(emb[0][:, :, s["right_hand"]].reshape(b, length, -1))
    torch.testing.assert_close(hands, torch.maximum(left, right))
    assert max_diff(left, right) > TOL                             # the max picks from both, not one copy
    assert bool(((hands == left) | (hands == right)).all())
    assert 0 < float((hands == left).float().mean()) < 1


def test_shared_hand_mlp_merge_is_symmetric_in_the_hands() -> None:
    """With one MLP for both hands, swapping the hands' point embeddings leaves the hands branch unchanged (a
    symmetric max), while the all-points branch, which knows where each point sits, changes."""
    model = frames_model(share_hand_mlp=True)
    assert model.left_hand is model.right_hand
    x, dense = frames_batch(), model.cfg.dense
    plain, swapped = merge_input(model, x), merge_input(model, x, swap_hands=True)
    torch.testing.assert_close(swapped[..., :dense], plain[..., :dense], atol=SAME, rtol=0)
    assert max_diff(swapped[..., -dense:], plain[..., -dense:]) > TOL        # the swap did happen


# ------------------------------------------------------------------------------------------------------------------
# CNN: hypercolumn head
# ------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hyper_cnn() -> SignCNN:
    """The ci preset CNN (tinynet_e) with ``model.hypercolumn`` on, 3 stages, 10 classes."""
    torch.manual_seed(0)
    cfg = make_train_config("ci", {"model_name": "cnn", "model.hypercolumn": True, "model.hypercolumn_stages": 3,
                                   "model.num_classes": 10})
    return FAMILIES.build_modules(cfg, SUBSET)[1]


def batch_statistics(model: SignCNN) -> SignCNN:
    """A copy of ``model`` in train mode: deterministic (the ci preset has no dropout nor drop path), with batch
    norms on batch statistics (at initialisation, eval-mode feature maps are ~1e-5 and every logit ~1e-2)."""
    assert model.cfg.drop_rate == 0 and model.cfg.drop_path_rate == 0
    return copy.deepcopy(model).train()


def cnn_images(batch: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 32, 80, 3, generator=torch.Generator().manual_seed(seed))


def stage_blocks(model: SignCNN) -> list[slice]:
    """Column slices of the head input: one per hypercolumn stage, then the last feature map."""
    widths = [model.backbone.feature_info[i]["num_chs"] for i in model.stage_indices] + [model.backbone.num_features]
    starts = [sum(widths[:i]) for i in range(len(widths) + 1)]
    return [slice(a, b) for a, b in zip(starts[:-1], starts[1:])]


def test_hypercolumn_head_reads_the_pooled_stages(hyper_cnn: SignCNN) -> None:
    """The head is wider than the last feature map, and its input holds the spatial means of the chosen stages'
    feature maps (taken by hooks on the backbone blocks) followed by that of the last feature map."""
    model = batch_statistics(hyper_cnn)
    info = model.backbone.feature_info
    assert model.stage_indices == [len(info) - 3, len(info) - 2, len(info) - 1]
    blocks = stage_blocks(model)
    assert model.head.in_features == blocks[-1].stop > model.backbone.num_features
    maps: dict[int, torch.Tensor] = {}
    hooks = [model.backbone.get_submodule(info[i]["module"]).register_forward_hook(
        lambda _m, _a, out, i=i: maps.__setitem__(i, out)) for i in model.stage_indices]
    seen: list[torch.Tensor] = []
    hooks.append(model.head.register_forward_pre_hook(lambda _m, args: seen.append(args[0])))
    try:
        with torch.no_grad():
            model(cnn_images())
    finally:
        for h in hooks:
            h.remove()
    for i, cols in zip(model.stage_indices, blocks):
        torch.testing.assert_close(seen[0][:, cols], maps[i].mean(dim=(2, 3)))
        assert float(seen[0][:, cols].abs().max()) > TOL


def test_zeroing_a_stage_in_the_hypercolumn_head_changes_the_output(hyper_cnn: SignCNN) -> None:
    """Zeroing the head weights of any one intermediate stage (or of the last map) changes the logits: the head
    reads every stage, not only the last one."""
    model = batch_statistics(hyper_cnn)
    x = cnn_images()
    with torch.no_grad():
        ref = model(x)
        for cols in stage_blocks(model):
            m = copy.deepcopy(model)
            m.head.weight[:, cols] = 0.0
            assert max_diff(m(x), ref) > TOL


def stage_map_grad(model: SignCNN, x: torch.Tensor, stage: int) -> torch.Tensor:
    """The gradient of the summed logits with respect to the feature map of backbone stage ``stage``."""
    seen: list[torch.Tensor] = []

    def keep(_module, _args, out: torch.Tensor) -> None:
        out.retain_grad()
        seen.append(out)
    hook = model.backbone.get_submodule(model.backbone.feature_info[stage]["module"]).register_forward_hook(keep)
    try:
        model(x).sum().backward()
    finally:
        hook.remove()
    return seen[0].grad


def test_hypercolumn_head_sends_gradients_straight_to_each_stage(hyper_cnn: SignCNN) -> None:
    """Each stage's feature map gets, on top of the gradient through the later stages, the head's own: zeroing
    that stage's head weights takes away exactly ``sum_j W[j, stage] / (H W)`` at every position (the mean pool
    of the head), so the head is trained through the stage (no detach) and trains the stage."""
    model = batch_statistics(hyper_cnn)
    x = cnn_images()
    for stage, cols in zip(model.stage_indices, stage_blocks(model)):        # zip leaves out the last map
        cut = copy.deepcopy(model)
        with torch.no_grad():
            cut.head.weight[:, cols] = 0.0
        full, without = stage_map_grad(model, x, stage), stage_map_grad(cut, x, stage)
        direct = model.head.weight[:, cols].detach().sum(0) / (full.shape[2] * full.shape[3])
        assert float(direct.abs().max()) > TOL
        torch.testing.assert_close(full - without, direct[None, :, None, None].expand_as(full),
                                   atol=1e-6, rtol=1e-4)


def test_hypercolumn_head_trains(hyper_cnn: SignCNN) -> None:
    """Gradients reach every stage's block of the head weights, and a few Adam steps lower the loss on a fixed
    batch."""
    model = batch_statistics(hyper_cnn)
    x, y = cnn_images(8, seed=1), torch.arange(8) % 10
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    for cols in stage_blocks(model):
        assert float(model.head.weight.grad[:, cols].abs().sum()) > 0
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = float(loss.detach())
    for _ in range(8):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.8 * first


# ------------------------------------------------------------------------------------------------------------------
# Ranger: RAdam + Lookahead
# ------------------------------------------------------------------------------------------------------------------
def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def _loss_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_ranger_lookahead_pulls_fast_weights_back_every_k_steps() -> None:
    """Ranger (``build_optimizer``) against plain RAdam of the same settings on the same batches.

    timm's Lookahead takes its slow copy lazily at the first sync (step k), so that sync leaves the weights where
    RAdam put them: Ranger equals RAdam for the first 2k - 1 steps. At step 2k the fast weights are pulled back to
    the slow ones moved alpha of the way, ``w_k + alpha (w_2k - w_k)`` of RAdam's weights; from then on the two
    differ. The slow copy stays put between syncs and moves at each multiple of k, the fast weights reset to it."""
    from timm.optim import create_optimizer_v2
    cfg = OptimConfig(optimizer="ranger", lr=5e-2, weight_decay=0.01)
    ranger_net, radam_net = _tiny_net(), _tiny_net()
    ranger = build_optimizer(ranger_net, cfg)
    radam = create_optimizer_v2(radam_net, opt="radam", lr=cfg.lr, weight_decay=cfg.weight_decay)
    assert type(ranger).__name__ == "Lookahead" and isinstance(ranger._base_optimizer, type(radam))
    k, alpha = ranger.param_groups[0]["lookahead_k"], ranger.param_groups[0]["lookahead_alpha"]
    assert (k, alpha) == (6, 0.5)                               # Ranger's published settings
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)

    def both_step() -> None:
        _loss_step(ranger_net, ranger, x, y)
        _loss_step(radam_net, radam, x, y)

    def slow() -> torch.Tensor:
        return torch.cat([ranger._base_optimizer.state[p]["lookahead_slow_buff"].reshape(-1)
                          for p in ranger_net.parameters()])
    w_k = _flat(radam_net)
    for step in range(1, 2 * k):
        both_step()
        torch.testing.assert_close(_flat(ranger_net), _flat(radam_net), msg=f"Ranger left RAdam at step {step}")
        if step == k:
            w_k = _flat(radam_net)
        if step >= k:
            torch.testing.assert_close(slow(), w_k)             # the first slow copy; it waits until step 2k
    both_step()                                                 # step 2k: the pull-back
    w_2k = _flat(radam_net)
    assert max_diff(w_2k, w_k) > TOL
    torch.testing.assert_close(_flat(ranger_net), w_k + alpha * (w_2k - w_k))
    assert max_diff(_flat(ranger_net), w_2k) > TOL
    slow_2k = slow().clone()
    torch.testing.assert_close(slow_2k, _flat(ranger_net))
    for _ in range(k - 1):
        both_step()
        torch.testing.assert_close(slow(), slow_2k)             # slow weights wait between syncs
    before = _flat(ranger_net).clone()                          # fast weights after 3k - 1 steps
    both_step()                                                 # step 3k: the next sync
    assert max_diff(slow(), slow_2k) > TOL                      # the slow weights moved ...
    torch.testing.assert_close(_flat(ranger_net), slow())      # ... and the fast weights were reset to them
    assert max_diff(_flat(ranger_net), before) > TOL
    assert max_diff(_flat(ranger_net), _flat(radam_net)) > TOL


# ------------------------------------------------------------------------------------------------------------------
# Learning-rate schedules
# ------------------------------------------------------------------------------------------------------------------
def schedule_lrs(schedule: str, total: int, lr: float = 1e-3, **kw) -> tuple[list[float], float]:
    """The learning rate used at each of ``total`` steps (Ranger + ``build_scheduler``), and the one after."""
    cfg = OptimConfig(optimizer="ranger", schedule=schedule, lr=lr, **kw)
    model = _tiny_net()
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, total)
    lrs = []
    for _ in range(total):
        assert len({g["lr"] for g in opt.param_groups}) == 1                # decay and no-decay groups agree
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs, opt.param_groups[0]["lr"]


def test_warmup_cosine_rises_linearly_then_follows_the_cosine() -> None:
    """``warmup_cosine`` (100 steps, 10 % warm-up): lr/10 at step 0, +lr/10 per step, the peak lr at steps 9 and
    10, half the peak at step 55 (half-way down the cosine), then falling to 0 after the last step."""
    lr = 1e-3
    lrs, after = schedule_lrs("warmup_cosine", 100, lr, warmup_fraction=0.1)
    assert lrs[0] == pytest.approx(lr / 10)
    for s in range(10):
        assert lrs[s] == pytest.approx(lr * (s + 1) / 10)
    assert max(lrs) == pytest.approx(lr) and lrs[9] == pytest.approx(lr) and lrs[10] == pytest.approx(lr)
    assert lrs[55] == pytest.approx(lr / 2)
    assert lrs[99] == pytest.approx(lr * 0.5 * (1 + math.cos(math.pi * 89 / 90)))
    assert all(a > b for a, b in zip(lrs[10:], lrs[11:]))
    assert after == pytest.approx(0.0, abs=1e-12)


def test_flat_cosine_stays_flat_then_follows_the_cosine() -> None:
    """``flat_cosine`` (120 steps, half flat): exactly the lr for steps 0-59, then a cosine through half the lr at
    step 90 down to 0 after the last step."""
    lr = 2e-3
    lrs, after = schedule_lrs("flat_cosine", 120, lr, flat_fraction=0.5)
    assert lrs[:61] == [pytest.approx(lr)] * 61                         # step 60 is the cosine's start (cos 0)
    assert lrs[61] < lr
    assert lrs[90] == pytest.approx(lr / 2)
    assert lrs[75] == pytest.approx(lr * 0.5 * (1 + math.cos(math.pi * 15 / 60)))
    assert all(a > b for a, b in zip(lrs[60:], lrs[61:]))
    assert after == pytest.approx(0.0, abs=1e-12)


def test_onecycle_warms_up_to_the_peak_then_anneals() -> None:
    """``onecycle`` (100 steps, 10 % warm-up): starts at lr / 25, rises to the peak lr at step 9, half-way
    between peak and end at step 54, and ends at lr / 25 / 1e4 at the last step."""
    lr = 3e-3
    lrs, _ = schedule_lrs("onecycle", 100, lr, warmup_fraction=0.1)
    assert lrs[0] == pytest.approx(lr / 25)
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10]))
    assert lrs[9] == pytest.approx(lr) and max(lrs) == pytest.approx(lr)
    end = lr / 25 / 1e4
    assert lrs[54] == pytest.approx((lr + end) / 2)
    assert lrs[99] == pytest.approx(end)
    assert all(a > b for a, b in zip(lrs[9:], lrs[10:]))


@pytest.mark.parametrize("schedule", ["warmup_cosine", "onecycle", "flat_cosine"])
def test_warmup_epochs_are_the_epochs_the_learning_rate_rises(schedule: str) -> None:
    """``OptimConfig.warmup_epochs`` (what ``aslkit tune`` checks ``--prune-after`` against) counts the epochs in
    which the schedule's learning rate rises: 20 epochs of 10 steps, 25 % warm-up -> 5 (none for flat_cosine)."""
    cfg = OptimConfig(schedule=schedule, epochs=20, warmup_fraction=0.25)
    lrs, _ = schedule_lrs(schedule, 200, warmup_fraction=0.25)
    peak_epoch = max(range(200), key=lambda s: (lrs[s], -s)) // 10      # the epoch of the first peak step
    rising = peak_epoch + 1 if schedule != "flat_cosine" else 0
    assert cfg.warmup_epochs() == rising == {"flat_cosine": 0}.get(schedule, 5)
