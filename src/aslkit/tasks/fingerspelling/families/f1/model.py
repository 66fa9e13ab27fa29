"""F1's model (the 1st place): a Squeezeformer encoder over a Conv2d landmark-image stem, two attention decoders
(the phrase, and the reversed phrase as an auxiliary loss) and a confidence head.

* Stem: the globally normalised landmarks as a ``[3, T, P]`` image through Conv2d(3 -> 32, 3x3, stride (1, 2)) +
  BatchNorm + SiLU, flattened per frame and projected to the model width; four part stems (left hand, right hand,
  face, pose) of the per-part normalised landmarks, each a quarter of the width, concatenated and added.
* Encoder: Squeezeformer blocks (attention, feed-forward, convolution, feed-forward), each module
  ``LayerNorm(x + f(x * scale + bias))``: a learnable scale and bias in place of the pre-LayerNorm, a LayerNorm after
  it. Attention with rotary positions whose tables are built once and passed to every block; the convolution module
  pointwise -> GLU -> depthwise (kernel 51) -> masked BatchNorm -> SiLU -> pointwise. Every BatchNorm here is
  ``MaskedBatchNorm``: its statistics come from real frames only.
* Decoders: pre-LayerNorm transformer decoders (causal self-attention, cross-attention to the encoder, feed-forward;
  as HF's Speech2TextDecoder that F1 used), written out so that greedy decoding can keep a key/value cache and the
  encoder's cross-attention keys/values computed once, and be exported (HF's cache objects do not pass through
  torch -> ONNX -> TFLite).
* Confidence head: one linear layer on the first encoder frame (a logit; F1's target: the clipped normalised
  Levenshtein score of an earlier run's OOF prediction).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aslkit import constants as C
from aslkit.tensor_ops import Rotary, apply_rotary, key_padding_bias


@dataclass
class F1Config:
    """Sizes of F1's model (the defaults are F1's; the quick preset is much smaller)."""

    dim: int = 208
    blocks: int = 14
    heads: int = 4
    ff_mult: int = 1
    conv_mult: int = 2               # pointwise expansion before the GLU (which halves it)
    conv_kernel: int = 51
    dropout: float = 0.1
    stem_channels: int = 32
    bn_momentum: float = 0.1
    max_len: int = 384               # rows of the rotary tables
    decoder_layers: int = 2
    decoder_heads: int = 4
    decoder_ffn: int = 512
    decoder_attn_dropout: float = 0.2
    max_phrase: int = 31             # characters a decoder writes at most (decoding runs max_phrase + 1 steps)
    reverse_weight: float = 0.4      # weight of the reversed-phrase decoder's loss
    confidence_weight: float = 0.02  # weight of the confidence head's BCE (when there is a target)
    confidence_threshold: float = 0.15  # below it (with a trained head) the fallback phrase is answered
    ctc_weight: float = 0.0          # > 0: F2's joint CTC loss on a linear encoder head (F2: 0.25), training only


class MaskedBatchNorm(nn.Module):
    """BatchNorm over the channel axis 2 of ``[B, T, C, ...]`` whose batch statistics (and running averages) come
    from the frames where ``mask`` ``[B, T]`` is true; padded frames come out 0 in training. Evaluation uses the
    running averages, frame by frame (no indexing by the mask, so it exports), and leaves padded frames as they come:
    nothing reads them (attention masks them, the convolution module zeroes them, the encoder's output is masked),
    and zeroing them cost the exported graph a multiplication per frame and channel."""

    def __init__(self, channels: int, momentum: float = 0.1):
        super().__init__()
        self.bn = nn.BatchNorm1d(channels, momentum=momentum)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.training:
            out = torch.zeros_like(x)
            out[mask] = self.bn(x[mask]).to(x.dtype)
            return out
        b, t = x.shape[:2]
        return self.bn(x.reshape(b * t, *x.shape[2:])).reshape(x.shape)


class Stem(nn.Module):
    """``[B, T, K, 3]`` points -> ``[B, T, out]``: Conv2d(3 -> channels, 3x3, stride (1, 2)) over (time, points),
    masked BatchNorm, SiLU, flattened per frame, linear, masked BatchNorm."""

    def __init__(self, points: int, out: int, channels: int, momentum: float):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, stride=(1, 2), padding=1)
        self.bn1 = MaskedBatchNorm(channels, momentum)
        self.proj = nn.Linear(channels * ((points + 1) // 2), out)
        self.bn2 = MaskedBatchNorm(out, momentum)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 1, 3)              # [B, T, channels, K']
        h = F.silu(self.bn1(h, mask))
        return self.bn2(self.proj(h.flatten(2)), mask)


class ScaledResidual(nn.Module):
    """``LayerNorm(x + f(x * scale + bias))``: Squeezeformer's module wrapper."""

    def __init__(self, dim: int, module: nn.Module):
        super().__init__()
        self.scale, self.bias = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))
        self.module, self.norm = module, nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, *args) -> torch.Tensor:
        return self.norm(x + self.module(x * self.scale + self.bias, *args))


class RotaryAttention(nn.Module):
    """Self-attention with rotary positions and a key padding bias."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv, self.out, self.drop = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], bias: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for z in self.qkv(x).chunk(3, -1))
        q, k = apply_rotary(q / math.sqrt(d // self.heads), *rope), apply_rotary(k, *rope)  # scaled before q k^T:
        att = torch.softmax(q @ k.transpose(-1, -2) + bias, dim=-1)             # [T, dh], not [T, T] multiplications
        return self.drop(self.out((att @ v).transpose(1, 2).reshape(b, t, d)))


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, mult * dim), nn.SiLU(), nn.Dropout(dropout),
                                 nn.Linear(mult * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, *_) -> torch.Tensor:
        return self.net(x)


class ConvModule(nn.Module):
    """Pointwise (expansion) -> GLU -> depthwise over time -> masked BatchNorm -> SiLU -> pointwise."""

    def __init__(self, dim: int, mult: int, kernel: int, dropout: float, momentum: float):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"model.conv_kernel must be odd, got {kernel}")
        hidden = mult * dim // 2
        self.expand = nn.Linear(dim, 2 * hidden)
        self.depthwise = nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2, groups=hidden)
        self.bn = MaskedBatchNorm(hidden, momentum)
        self.project, self.drop = nn.Linear(hidden, dim), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, rope, bias, mask: torch.Tensor) -> torch.Tensor:
        h = F.glu(self.expand(x), dim=-1) * mask.unsqueeze(-1).to(x.dtype)      # padded frames out of the conv
        h = self.depthwise(h.transpose(1, 2)).transpose(1, 2)
        return self.drop(self.project(F.silu(self.bn(h, mask))))


class SqueezeformerBlock(nn.Module):
    """Attention, feed-forward, convolution, feed-forward; each a ``ScaledResidual``."""

    def __init__(self, cfg: F1Config):
        super().__init__()
        d = cfg.dim
        self.attn = ScaledResidual(d, RotaryAttention(d, cfg.heads, cfg.dropout))
        self.ff1 = ScaledResidual(d, FeedForward(d, cfg.ff_mult, cfg.dropout))
        self.conv = ScaledResidual(d, ConvModule(d, cfg.conv_mult, cfg.conv_kernel, cfg.dropout, cfg.bn_momentum))
        self.ff2 = ScaledResidual(d, FeedForward(d, cfg.ff_mult, cfg.dropout))

    def forward(self, x, rope, bias, mask):
        x = self.attn(x, rope, bias, mask)
        x = self.ff1(x)
        x = self.conv(x, rope, bias, mask)
        return self.ff2(x)


class F1Encoder(nn.Module):
    """``[B, T, 2 * P * 3]`` (``F1Features``) + frame mask -> ``[B, T, dim]`` (padded frames 0)."""

    def __init__(self, cfg: F1Config, part_sizes: dict[str, int]):
        super().__init__()
        if cfg.dim % 4 or (cfg.dim // cfg.heads) % 2:
            raise ValueError(f"model.dim={cfg.dim} must split into 4 part stems and heads of even size")
        self.points, self.part_sizes = sum(part_sizes.values()), dict(part_sizes)
        self.stem = Stem(self.points, cfg.dim, cfg.stem_channels, cfg.bn_momentum)
        self.part_stems = nn.ModuleList(Stem(k, cfg.dim // 4, cfg.stem_channels, cfg.bn_momentum)
                                        for k in part_sizes.values())
        self.rope = Rotary(cfg.dim // cfg.heads, cfg.max_len)                  # one table for every block
        self.blocks = nn.ModuleList(SqueezeformerBlock(cfg) for _ in range(cfg.blocks))

    def embed(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The stems: ``[B, T, 2 * P * 3]`` -> ``[B, T, dim]``, the all-landmark stem plus the part stems."""
        b, t, _ = x.shape
        n = self.points * 3
        x = x * mask.unsqueeze(-1).to(x.dtype)                                 # padded frames out of the stems
        h = self.stem(x[..., :n].reshape(b, t, self.points, 3), mask)
        parts, start = [], n
        for size, stem in zip(self.part_sizes.values(), self.part_stems):
            parts.append(stem(x[..., start:start + size * 3].reshape(b, t, size, 3), mask))
            start += size * 3
        return h + torch.cat(parts, dim=-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.embed(x, mask)
        valid = mask.to(h.dtype)
        bias = key_padding_bias(valid)
        rope = self.rope(h)
        for block in self.blocks:
            h = block(h, rope, bias, mask)
        return h * valid.unsqueeze(-1)


class CrossKV(nn.Module):
    """Keys and values of the encoder states for one decoder layer's cross-attention, split into heads
    ``[B, heads, T, dim / heads]`` (computed once per phrase)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.kv, self.heads = nn.Linear(dim, 2 * dim), heads

    def forward(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(memory).chunk(2, -1)
        return split_heads(k, self.heads), split_heads(v, self.heads)


def split_heads(z: torch.Tensor, heads: int) -> torch.Tensor:
    """``[B, L, D]`` -> ``[B, heads, L, D / heads]``."""
    b, n, d = z.shape
    return z.reshape(b, n, heads, d // heads).transpose(1, 2)


def merge_heads(z: torch.Tensor) -> torch.Tensor:
    """``[B, heads, L, dh]`` -> ``[B, L, heads * dh]``."""
    return z.transpose(1, 2).flatten(2)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | float,
           drop: nn.Dropout) -> torch.Tensor:
    """Attention of ``q`` ``[B, H, L, dh]`` over ``k``, ``v`` ``[B, H, S, dh]`` with an additive ``bias``
    broadcast to ``[B, H, L, S]``."""
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias, dim=-1)
    return drop(att) @ v


class DecoderLayer(nn.Module):
    """Pre-LayerNorm: causal self-attention, cross-attention to the encoder, ReLU feed-forward."""

    def __init__(self, cfg: F1Config):
        super().__init__()
        d = cfg.dim
        self.heads, self.dim = cfg.decoder_heads, d
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_qkv, self.self_out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.cross_q, self.cross_kv, self.cross_out = nn.Linear(d, d), CrossKV(d, cfg.decoder_heads), nn.Linear(d, d)
        self.ffn = nn.Sequential(nn.Linear(d, cfg.decoder_ffn), nn.ReLU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.decoder_ffn, d))
        self.attn_drop, self.drop = nn.Dropout(cfg.decoder_attn_dropout), nn.Dropout(cfg.dropout)

    def forward(self, y: torch.Tensor, cross: tuple[torch.Tensor, torch.Tensor], memory_bias: torch.Tensor,
                self_bias: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: ``y`` ``[B, L, D]`` (every position) -> its outputs."""
        q, k, v = (split_heads(z, self.heads) for z in self.self_qkv(self.norm1(y)).chunk(3, -1))
        y = y + self.drop(self.self_out(merge_heads(attend(q, k, v, self_bias, self.attn_drop))))
        return self.cross_and_ffn(y, cross, memory_bias, lambda z: split_heads(z, self.heads), merge_heads)

    def step(self, y: torch.Tensor, position: torch.Tensor, cross: tuple[torch.Tensor, torch.Tensor],
             memory_bias: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, tuple]:
        """One new position ``y`` ``[B, 1, D]`` at the one-hot ``position`` ``[S]`` -> its output and this layer's
        self-attention keys/values ``[B, H, S, dh]`` with the new position written in (``cache``: the earlier
        positions, later rows 0). Every shape is fixed (the positions after this one are masked out), and a single
        position needs reshapes only, no transposes: the exported decoding step stays small and static."""
        dh = self.dim // self.heads

        def split(z: torch.Tensor) -> torch.Tensor:
            return z.reshape(-1, self.heads, 1, dh)

        def merge(z: torch.Tensor) -> torch.Tensor:
            return z.reshape(-1, 1, self.dim)

        q, k, v = (split(z) for z in self.self_qkv(self.norm1(y)).chunk(3, -1))
        write = position[:, None]                                              # [S, 1]: the row of this position
        k, v = cache[0] + write * k, cache[1] + write * v
        later = position @ torch.ones(len(position), len(position), device=y.device, dtype=y.dtype).triu(1)
        y = y + self.drop(self.self_out(merge(attend(q, k, v, later * -1e4, self.attn_drop))))
        return self.cross_and_ffn(y, cross, memory_bias, split, merge), (k, v)

    def cross_and_ffn(self, y: torch.Tensor, cross: tuple[torch.Tensor, torch.Tensor], memory_bias: torch.Tensor,
                      split, merge) -> torch.Tensor:
        """Cross-attention to the encoder (keys/values already split) and the feed-forward, both residual."""
        c = attend(split(self.cross_q(self.norm2(y))), cross[0], cross[1], memory_bias, self.attn_drop)
        y = y + self.drop(self.cross_out(merge(c)))
        return y + self.drop(self.ffn(self.norm3(y)))


class Decoder(nn.Module):
    """Token embedding (x sqrt(dim)) + learned positions, decoder layers, LayerNorm, linear over the tokens."""

    def __init__(self, cfg: F1Config):
        super().__init__()
        self.scale = math.sqrt(cfg.dim)
        self.embed = nn.Embedding(C.TOKENS, cfg.dim)
        self.positions = nn.Embedding(cfg.max_phrase + 2, cfg.dim)
        for table in (self.embed, self.positions):      # HF's decoder init (std 0.02): with N(0, 1) the scaled token
            nn.init.normal_(table.weight, std=0.02)    # embedding drowned the cross-attention (an LM, not a reader)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        self.norm, self.head = nn.LayerNorm(cfg.dim), nn.Linear(cfg.dim, C.TOKENS)

    def cross(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every layer's cross-attention keys/values of the encoder states."""
        return [layer.cross_kv(memory) for layer in self.layers]

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits ``[B, L, TOKENS]`` of every position of ``tokens`` ``[B, L]``."""
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        y = self.embed(tokens) * self.scale + self.positions(pos)
        causal = torch.full((tokens.shape[1],) * 2, -1e4, device=y.device).triu(1)
        memory_bias = key_padding_bias(memory_mask.to(y.dtype))
        for layer, cross in zip(self.layers, self.cross(memory)):
            y = layer(y, cross, memory_bias, causal)
        return self.head(self.norm(y))

    def empty_cache(self, batch: int, steps: int, device: torch.device, dtype: torch.dtype) -> list:
        """Every layer's self-attention keys/values before the first step: zeros ``[B, H, steps, dh]``."""
        layer = self.layers[0]
        shape = (batch, layer.heads, steps, layer.dim // layer.heads)
        return [(torch.zeros(shape, device=device, dtype=dtype),) * 2 for _ in self.layers]

    def step(self, token: torch.Tensor, position: torch.Tensor, cross: list, memory_bias: torch.Tensor,
             cache: list) -> tuple[torch.Tensor, list]:
        """One greedy step: logits ``[B, TOKENS]`` of the one-hot ``token`` ``[B, TOKENS]`` at the one-hot
        ``position`` ``[S]`` and the cache with this position written in (``empty_cache`` before the first)."""
        positions = self.positions.weight[: len(position)]
        y = (token @ self.embed.weight * self.scale + position @ positions)[:, None]
        grown = []
        for layer, kv, layer_cache in zip(self.layers, cross, cache):
            y, layer_cache = layer.step(y, position, kv, memory_bias, layer_cache)
            grown.append(layer_cache)
        return self.head(self.norm(y))[:, 0], grown


class F1Model(nn.Module):
    """Encoder, phrase decoder, reversed-phrase decoder, confidence head."""

    def __init__(self, cfg: F1Config, part_sizes: dict[str, int]):
        super().__init__()
        self.cfg = cfg
        self.encoder = F1Encoder(cfg, part_sizes)
        self.decoder, self.reverse_decoder = Decoder(cfg), Decoder(cfg)
        self.confidence = nn.Linear(cfg.dim, 1)
        self.ctc = nn.Linear(cfg.dim, C.CTC_BLANK + 1) if cfg.ctc_weight > 0 else None

    def output_mask(self, mask: torch.Tensor) -> torch.Tensor:
        return mask

    def forward(self, x: torch.Tensor, mask: torch.Tensor, tokens: torch.Tensor, reverse_tokens: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Teacher forcing: phrase logits, reversed-phrase logits ``[B, L, TOKENS]``, confidence logits ``[B]`` and
        the CTC head's per-frame logits ``[B, T, 60]`` (None without ``ctc_weight``)."""
        memory = self.encoder(x, mask)
        return (self.decoder(tokens, memory, mask), self.reverse_decoder(reverse_tokens, memory, mask),
                self.confidence(memory[:, 0]).squeeze(-1), None if self.ctc is None else self.ctc(memory))

    def greedy(self, memory: torch.Tensor, mask: torch.Tensor, steps: int | None = None, cache: bool = True
               ) -> torch.Tensor:
        """Greedy tokens ``[B, steps]`` of the phrase decoder (default ``max_phrase + 1`` steps); after the end
        token every step writes padding. ``cache=False`` recomputes every earlier position at each step."""
        steps = self.cfg.max_phrase + 1 if steps is None else steps
        b, dev = memory.shape[0], memory.device
        tokens = torch.full((b, 1), C.TOKEN_START, dtype=torch.long, device=dev)
        done = torch.zeros(b, dtype=torch.bool, device=dev)
        cross, memory_bias = self.decoder.cross(memory), key_padding_bias(mask.to(memory.dtype))
        kv, where = self.decoder.empty_cache(b, steps, dev, memory.dtype), torch.eye(steps, device=dev)
        out = []
        for i in range(steps):
            if cache:
                token = F.one_hot(tokens[:, -1], C.TOKENS).to(memory.dtype)
                logits, kv = self.decoder.step(token, where[i].to(memory.dtype), cross, memory_bias, kv)
            else:
                logits = self.decoder(tokens, memory, mask)[:, -1]
            nxt = torch.where(done, torch.full_like(tokens[:, -1], C.TOKEN_PAD), logits.argmax(-1))
            done = done | (nxt == C.TOKEN_END)
            out.append(nxt)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        return torch.stack(out, dim=1)
