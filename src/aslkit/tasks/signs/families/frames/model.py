"""The I6 model (6th place): per-point embeddings, part MLPs, a DeBERTa-v2 frame transformer, masked mean pooling.

Input: ``FramesFeatures`` matrices ``[B, L, 7P + 1]`` (normalised points, part-centred points, point validity,
frame mask; see ``features``). Per point and frame:

* a **position CNN** over time, shared by all points: two convolutions with kernel ``k`` along the frame axis only
  (``Conv2d`` with a ``(k, 1)`` kernel on ``[B, C, L, P]``, i.e. a ``Conv1d`` run over time for each point; 3 -> 8
  -> 16 channels by default; with ``center_parts`` the first one also reads the part-centred points, I6's
  "centering before the MLP layers");
* a **landmark-id** and a **landmark-type** embedding; the three are combined by a Linear (as a sum of three
  Linears, the same map as one Linear of their concatenation) and the activation into ``embed_dim`` features, zero
  where the point is missing.

Per frame, **part branches** (Linear -> LayerNorm or BatchNorm -> Dropout -> activation): the two hands (one MLP
shared by both, or one each; merged by element-wise max), the lips, the face, all points; concatenated -> Linear
-> LayerNorm -> the transformer width. Then **DeBERTa-v2 layers** (HF ``DebertaV2Layer`` s of a
``DebertaV2Config``, random weights, relative attention with ``position_buckets = max_relative_positions =
max_len`` by default, tanh-GELU; ``FramesSelfAttention`` computes HF's attention in a TFLite-exact form), each key
masked by the frame mask, **masked mean pooling** over the taken frames and a Linear head.

Manifold mixup: ``forward(x, mix)`` with an ``aslkit.tensor_ops.MixPlan`` mixes the hidden states before encoder
layer ``mix.point`` (``mix_points`` = number of layers); each sample keeps its own frame mask.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import DebertaV2Config
from transformers.models.deberta_v2.modeling_deberta_v2 import (
    DebertaV2Encoder,
    DisentangledSelfAttention,
    build_relative_position,
)

from aslkit.tasks.signs.families.frames.features import (
    FEATURE_DIM,
    NUM_POINTS,
    POINT_TYPES,
    part_slices,
    point_types,
    split_features,
)
from aslkit.tensor_ops import MixPlan, apply_mix, masked_mean

ACTIVATIONS = ("gelu", "silu", "relu")
NORMS = ("layer", "batch")
BRANCH_PARTS = ("hands", "lips", "face", "all")


@dataclass
class FramesModelConfig:
    """Sizes of the I6 model (defaults: a small model; the presets scale it)."""

    max_len: int = 25                     # L, from the features
    embed_dim: int = 16                   # per-point embedding
    cnn_channels: tuple[int, int] = (8, 16)
    cnn_kernel: int = 5
    center_parts: bool = True             # also feed part-centred points to the position CNN
    dense: int = 128                      # width of each part branch
    share_hand_mlp: bool = True           # one MLP for both hands (else one each)
    norm: str = "batch"                   # branch norm: batch (I6; padding frames are in its statistics) | layer
    activation: str = "gelu"              # gelu (tanh approximation) | silu | relu
    branch_dropout: float = 0.05
    width: int = 256                      # transformer width
    layers: int = 2
    heads: int = 4
    intermediate: int = 512
    dropout: float = 0.1                  # transformer hidden dropout
    attention_dropout: float = 0.1
    position_buckets: int = 0             # relative-position buckets (and max_relative_positions); 0: max_len
    head_dropout: float = 0.1
    num_classes: int = 250


def check_config(cfg: FramesModelConfig, feature_dim: int) -> None:
    """ValueError naming the bad value of a ``FramesModelConfig``; also when ``max_len`` equals a width of the
    graph (onnx2tf guesses the layout of square ``[L, width]`` tensors wrongly)."""
    if cfg.activation not in ACTIVATIONS:
        raise ValueError(f"model.activation must be one of {ACTIVATIONS}, got {cfg.activation!r}")
    if cfg.norm not in NORMS:
        raise ValueError(f"model.norm must be one of {NORMS}, got {cfg.norm!r}")
    if cfg.width % cfg.heads:
        raise ValueError(f"model.width={cfg.width} is not divisible by model.heads={cfg.heads}")
    if cfg.cnn_kernel < 1 or cfg.cnn_kernel % 2 == 0:
        raise ValueError(f"model.cnn_kernel must be odd and >= 1, got {cfg.cnn_kernel}")
    if len(cfg.cnn_channels) != 2 or min(cfg.cnn_channels) < 1:
        raise ValueError(f"model.cnn_channels must be two positive channel counts, got {cfg.cnn_channels}")
    if cfg.position_buckets < 0:
        raise ValueError(f"model.position_buckets must be >= 0 (0: max_len), got {cfg.position_buckets}")
    slices = part_slices()
    widths = {"model.embed_dim": cfg.embed_dim, "model.dense": cfg.dense, "4 x model.dense": 4 * cfg.dense,
              "model.width": cfg.width, "model.intermediate": cfg.intermediate, "head size": cfg.width // cfg.heads,
              "cnn channels": cfg.cnn_channels[0], "cnn channels 2": cfg.cnn_channels[1],
              "2 x position_buckets": 2 * (cfg.position_buckets or cfg.max_len),
              "points": NUM_POINTS, "classes": cfg.num_classes, "features": feature_dim,
              **{f"{p} x embed_dim": (s.stop - s.start) * cfg.embed_dim for p, s in slices.items()}}
    clash = sorted(name for name, w in widths.items() if w in (cfg.max_len, cfg.max_len + 1))
    if clash:
        raise ValueError(f"features.max_len={cfg.max_len} (or the {cfg.max_len + 1} attention keys) equals the width "
                         f"of {clash}; choose other widths (square tensors break the TFLite conversion)")


def activation(name: str) -> nn.Module:
    """The activation module of ``name`` (tanh-GELU keeps the TFLite graph to builtin ops)."""
    return {"gelu": nn.GELU(approximate="tanh"), "silu": nn.SiLU(), "relu": nn.ReLU()}[name]


class FrameNorm(nn.Module):
    """LayerNorm, or BatchNorm over every frame of the batch, of ``[B, L, D]``."""

    def __init__(self, dim: int, kind: str):
        super().__init__()
        self.kind = kind
        self.norm = nn.LayerNorm(dim) if kind == "layer" else nn.BatchNorm1d(dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.kind == "layer":
            return self.norm(h)
        b, length, d = h.shape
        return self.norm(h.reshape(b * length, d)).reshape(b, length, d)


def branch(in_dim: int, cfg: FramesModelConfig) -> nn.Sequential:
    """Linear -> norm -> Dropout -> activation, ``[B, L, in_dim]`` -> ``[B, L, dense]``."""
    return nn.Sequential(nn.Linear(in_dim, cfg.dense), FrameNorm(cfg.dense, cfg.norm), nn.Dropout(cfg.branch_dropout),
                         activation(cfg.activation))


class PointEmbedding(nn.Module):
    """Points and part-centred points ``[B, L, 3P]`` (point-major) with validity ``[B, L, P]`` -> per-point
    embeddings ``[B, L, P, embed_dim]``."""

    def __init__(self, cfg: FramesModelConfig):
        super().__init__()
        c1, c2 = cfg.cnn_channels
        k, e = cfg.cnn_kernel, cfg.embed_dim
        # the first convolution of [points, centred points] as two convolutions added (no 4-D concatenation)
        self.conv1 = nn.Conv2d(3, c1, (k, 1), padding=(k // 2, 0))
        self.conv1_centred = nn.Conv2d(3, c1, (k, 1), padding=(k // 2, 0), bias=False) if cfg.center_parts else None
        self.conv2 = nn.Sequential(activation(cfg.activation), nn.Conv2d(c1, c2, (k, 1), padding=(k // 2, 0)),
                                   activation(cfg.activation))
        self.ids = nn.Embedding(NUM_POINTS, e)
        self.types = nn.Embedding(len(POINT_TYPES), e)
        self.register_buffer("type_ids", torch.as_tensor(point_types()), persistent=False)
        self.from_cnn = nn.Linear(c2, e)
        self.from_id = nn.Linear(e, e, bias=False)
        self.from_type = nn.Linear(e, e, bias=False)
        self.act = activation(cfg.activation)

    @staticmethod
    def _channels_first(x: torch.Tensor) -> torch.Tensor:
        """``[B, L, 3P]`` -> ``[B, 3, L, P]``."""
        return x.reshape(x.shape[0], x.shape[1], NUM_POINTS, 3).permute(0, 3, 1, 2)

    def forward(self, pts: torch.Tensor, centred: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self._channels_first(pts))
        if self.conv1_centred is not None:
            h = h + self.conv1_centred(self._channels_first(centred))
        h = self.conv2(h).permute(0, 2, 3, 1)                                        # [B, L, P, c2]
        static = self.from_id(self.ids.weight) + self.from_type(self.types(self.type_ids))   # [P, e]
        return self.act(self.from_cnn(h) + static) * valid.unsqueeze(-1)


def _deberta_config(cfg: FramesModelConfig) -> DebertaV2Config:
    """The DeBERTa-v2 config of the encoder layers (relative attention, no absolute positions)."""
    buckets = cfg.position_buckets or cfg.max_len
    return DebertaV2Config(hidden_size=cfg.width, num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                           intermediate_size=cfg.intermediate, hidden_act="gelu_pytorch_tanh",
                           hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.attention_dropout,
                           max_position_embeddings=cfg.max_len, vocab_size=1, type_vocab_size=0,
                           relative_attention=True, position_buckets=buckets, max_relative_positions=buckets,
                           pos_att_type=["p2c", "c2p"], position_biased_input=False, norm_rel_ebd="layer_norm",
                           share_att_key=True)


class FramesSelfAttention(DisentangledSelfAttention):
    """HF DeBERTa-v2 disentangled self-attention (c2p + p2c, shared keys; same weights and values) for a fixed
    length ``L``, written so that the TFLite conversion is exact:

    * the keys get one extra, always masked, slot (``L + 1`` keys): onnx2tf otherwise swaps the two axes of square
      ``[heads, L, L]`` score tensors (the parity test caught it); the extra key has zero attention weight;
    * the relative-position lookups are Gathers of constant indices (the same values as HF's ``torch.gather``)
      instead of ``export_friendly``'s ``[heads, L, L, 2 * buckets]`` one-hot, which at ``L = 80`` made the TFLite
      file 17 MB larger and 20 ms slower.

    The attention mask it takes is ``[B, 1, 1, L + 1]`` (keys; the last one 0).
    """

    def __init__(self, config: DebertaV2Config, length: int):
        super().__init__(config)
        if not self.share_att_key or not self.relative_attention:
            raise ValueError("FramesSelfAttention needs relative_attention=True and share_att_key=True")
        span, self.length = self.pos_ebd_size, length
        probe = torch.zeros(length, 1)
        rel = build_relative_position(probe, probe, bucket_size=self.position_buckets,
                                      max_position=self.max_relative_positions)[0]                  # [L(q), L(k)]
        rel = torch.cat([rel, rel[:, -1:]], dim=1)                          # the extra key: any index (masked)
        rows = torch.arange(length + 1)[:, None] * (2 * span)
        c2p = rows[:length] + torch.clamp(rel + span, 0, 2 * span - 1)          # [q, k]: in row q of c2p scores
        p2c = rows + torch.clamp(rel.t() + span, 0, 2 * span - 1)     # [k, q]: in row k of p2c scores (buckets
                                                                         # are odd: bucket(k - q) = -rel[q, k])
        self.register_buffer("c2p_index", c2p, persistent=False)
        self.register_buffer("p2c_index", p2c.t().contiguous(), persistent=False)   # read out as [q, k]

    def relative_scores(self, q: torch.Tensor, k: torch.Tensor, rel_embeddings: torch.Tensor,
                        scale: float) -> torch.Tensor:
        """c2p + p2c relative-position scores ``[B * heads, L, L + 1]`` of queries ``q`` and keys ``k``."""
        span, heads = self.pos_ebd_size, self.num_attention_heads
        rel = rel_embeddings[0:2 * span].unsqueeze(0)
        repeat = q.shape[0] // heads
        score = 0
        if "c2p" in self.pos_att_type:
            pos_key = self.transpose_for_scores(self.key_proj(rel), heads).repeat(repeat, 1, 1)
            c2p = torch.bmm(q, pos_key.transpose(-1, -2))                                # [BH, L, 2S]
            score = score + c2p.reshape(-1, c2p.shape[1] * 2 * span)[:, self.c2p_index] / scale
        if "p2c" in self.pos_att_type:
            pos_query = self.transpose_for_scores(self.query_proj(rel), heads).repeat(repeat, 1, 1)
            p2c = torch.bmm(k, pos_query.transpose(-1, -2))                              # [BH, L + 1, 2S]
            score = score + p2c.reshape(-1, p2c.shape[1] * 2 * span)[:, self.p2c_index] / scale
        return score

    def forward(self, hidden_states, attention_mask, output_attentions=False, query_states=None, relative_pos=None,
                rel_embeddings=None):
        """Context ``[B, L, width]`` (and the attention weights when asked) of ``hidden_states`` ``[B, L, width]``."""
        heads, length = self.num_attention_heads, self.length
        padded = torch.cat([hidden_states, torch.zeros_like(hidden_states[:, :1])], dim=1)          # [B, L + 1, W]
        q = self.transpose_for_scores(self.query_proj(hidden_states), heads)                      # [BH, L, d]
        k = self.transpose_for_scores(self.key_proj(padded), heads)                               # [BH, L + 1, d]
        v = self.transpose_for_scores(self.value_proj(padded), heads)
        scale = math.sqrt(q.shape[-1] * (1 + len(self.pos_att_type)))
        scores = torch.bmm(q, k.transpose(-1, -2) / scale)
        scores = scores + self.relative_scores(q, k, self.pos_dropout(rel_embeddings), scale)
        scores = scores.view(-1, heads, length, length + 1)
        scores = scores.masked_fill(~attention_mask.bool(), torch.finfo(q.dtype).min)
        probs = self.dropout(torch.softmax(scores, dim=-1))
        ctx = torch.bmm(probs.view(-1, length, length + 1), v)                                    # [BH, L, d]
        ctx = ctx.view(-1, heads, length, ctx.shape[-1]).permute(0, 2, 1, 3).contiguous()
        ctx = ctx.view(ctx.shape[0], length, -1)
        return ctx, (probs if output_attentions else None)


def _init_weights(module: nn.Module, std: float) -> None:
    """BERT-style initialisation: normal(0, std) Linear and Embedding weights, zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class FramesModel(nn.Module):
    """Frame features ``[B, L, 7P + 1]`` -> class logits ``[B, num_classes]``."""

    def __init__(self, cfg: FramesModelConfig, in_features: int = FEATURE_DIM):
        super().__init__()
        check_config(cfg, in_features)
        self.cfg = cfg
        e, s = cfg.embed_dim, part_slices()
        self.embed = PointEmbedding(cfg)
        n_hand = s["left_hand"].stop - s["left_hand"].start
        self.left_hand = branch(n_hand * e, cfg)
        self.right_hand = self.left_hand if cfg.share_hand_mlp else branch(n_hand * e, cfg)
        self.lips = branch((s["lips"].stop - s["lips"].start) * e, cfg)
        self.face = branch((s["face"].stop - s["face"].start) * e, cfg)
        self.all = branch(NUM_POINTS * e, cfg)
        self.merge = nn.Sequential(nn.Linear(len(BRANCH_PARTS) * cfg.dense, cfg.width), nn.LayerNorm(cfg.width))
        self.deberta = _deberta_config(cfg)
        self.encoder = DebertaV2Encoder(self.deberta)
        for layer in self.encoder.layer:
            layer.attention.self = FramesSelfAttention(self.deberta, cfg.max_len)
        _init_weights(self.encoder, self.deberta.initializer_range)
        self.head = nn.Sequential(nn.Dropout(cfg.head_dropout), nn.Linear(cfg.width, cfg.num_classes))

    @property
    def mix_points(self) -> int:
        """How many places a batch can be mixed: before each encoder layer."""
        return self.cfg.layers

    def frame_states(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame inputs of the transformer ``[B, L, width]`` and the frame mask ``[B, L]``."""
        f = split_features(feats)
        m = f["mask"]                                                  # [B, L, 1]; padding rows count as
        e = self.embed(f["points"] * m, f["centred"] * m, f["valid"] * m)   # missing, whatever they hold
        b, length = e.shape[0], e.shape[1]
        s = part_slices()

        def part(name: str) -> torch.Tensor:
            return e[:, :, s[name]].reshape(b, length, (s[name].stop - s[name].start) * self.cfg.embed_dim)

        hands = torch.maximum(self.left_hand(part("left_hand")), self.right_hand(part("right_hand")))
        h = torch.cat([hands, self.lips(part("lips")), self.face(part("face")),
                       self.all(e.reshape(b, length, NUM_POINTS * self.cfg.embed_dim))], dim=-1)
        return self.merge(h), m[..., 0]

    def forward(self, feats: torch.Tensor, mix: MixPlan | None = None) -> torch.Tensor:
        h, mask = self.frame_states(feats)
        keys = torch.cat([mask, torch.zeros_like(mask[:, :1])], dim=1)            # + the always-masked extra key
        attn = keys[:, None, None, :]                                  # keys only: every query sees >= 1 frame
        rel_emb = self.encoder.get_rel_embedding()
        for k, layer in enumerate(self.encoder.layer):
            h = apply_mix(h, mix, k)
            h = layer(h, attn, rel_embeddings=rel_emb)[0]
        return self.head(masked_mean(h, mask))
