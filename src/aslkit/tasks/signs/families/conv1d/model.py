"""The ISLR 1st-place model: a Conv1D + transformer hybrid on masked frame sequences.

Input ``[B, L, F + 1]`` (``features``: F = 708 feature channels, then a 0/1 frame mask; padded rows come
after the real ones) -> logits ``[B, num_classes]``:

* stem: Linear(F -> dim) + masked BatchNorm;
* ``blocks`` stages of ``[Conv1DBlock x conv_per_block + TransformerBlock]``:
  ``Conv1DBlock`` = Linear expand x2 + Swish -> causal depthwise Conv1D (k = 17) -> masked BatchNorm -> ECA ->
  Linear project, per-sample drop-path, residual; ``TransformerBlock`` = masked BatchNorm + multi-head
  self-attention (padded keys masked out) + masked BatchNorm + Swish MLP x2, drop-path, residuals;
* Linear(dim -> 2 dim), masked global average pooling, ``LateDropout``, Linear head.

Padded rows never reach real ones: the depthwise convolution is causal (padding sits after the sequence), attention
ignores padded keys, pooling, ECA and BatchNorm statistics use real rows only, and padded rows are zeroed after the
stem and after every block. So in eval mode the logits do not depend on the padding or on ``L`` (no weight depends
on ``L`` either: a model trained at one ``max_len`` runs at another, e.g. a shorter one for faster inference).

``LateDropout`` (dropout on the pooled vector from epoch ``start_epoch`` on): the training loop calls
``set_epoch(epoch)`` (0-based) on every module that has it (``set_epoch(model, epoch)`` here does that); before
the first call, or before ``start_epoch``, its rate is 0.

Export: the causal depthwise convolution is exported as the convolution (``export_conv="conv"``: onnx2tf makes it a
grouped CONV_2D) or, inside ``torch.onnx.export``, as a sum of ``k`` shifted slices times per-channel weights
(``"slices"``). Measured as TFLite float16 at T = 38 (1 thread, CPU time): dim 192, 2 stages, L = 380: conv 23 ms,
slices 29 ms; dim 96, 1 stage, L = 48: conv 1.6 ms, slices 1.7 ms; so ``"conv"`` is the default. BatchNorm in eval
is a per-channel multiply-add; Swish is ``x * sigmoid(x)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

EXPORT_CONV_FORMS = ("slices", "conv")
ATTENTION_MASK_VALUE = -1e4     # added to the scores of padded keys (finite: safe in float16)


@dataclass
class Conv1DConfig:
    """Size and regularisation of ``Conv1DNet`` (defaults: the ISLR 1st-place model, 1.8 M parameters)."""

    dim: int = 192
    blocks: int = 2                  # stages of [conv_per_block x Conv1DBlock + TransformerBlock]
    conv_per_block: int = 3
    kernel: int = 17                 # causal depthwise convolution width (frames)
    expand: int = 2                  # Conv1DBlock channel expansion
    heads: int = 4
    mlp_ratio: int = 2               # TransformerBlock MLP width = mlp_ratio x dim
    eca_kernel: int = 5
    drop_path: float = 0.2           # per-sample drop of each block's residual branch
    attn_dropout: float = 0.2
    late_dropout: float = 0.8        # dropout on the pooled vector, on from late_dropout_start
    late_dropout_start: int = 15     # epoch (0-based) from which late dropout is on
    bn_momentum: float = 0.05        # torch convention (Keras 0.95)
    max_len: int = 384               # static rows of the input (set from features.max_len by the family)
    num_classes: int = 250
    export_conv: str = "conv"        # exported depthwise conv: conv (faster in TFLite here) | slices

    def validate(self, in_features: int) -> None:
        """ValueError naming the first bad value."""
        positive = {"dim": self.dim, "blocks": self.blocks, "conv_per_block": self.conv_per_block,
                    "kernel": self.kernel, "expand": self.expand, "heads": self.heads, "mlp_ratio": self.mlp_ratio,
                    "eca_kernel": self.eca_kernel, "max_len": self.max_len, "num_classes": self.num_classes}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"model.{name} must be >= 1, got {value}")
        if self.dim % self.heads:
            raise ValueError(f"model.dim={self.dim} is not divisible by model.heads={self.heads}")
        if self.eca_kernel % 2 == 0:
            raise ValueError(f"model.eca_kernel must be odd, got {self.eca_kernel}")
        for name in ("drop_path", "attn_dropout", "late_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 < self.bn_momentum <= 1.0:
            raise ValueError(f"model.bn_momentum must be in (0, 1], got {self.bn_momentum}")
        if self.late_dropout_start < 0:
            raise ValueError(f"model.late_dropout_start must be >= 0, got {self.late_dropout_start}")
        if self.export_conv not in EXPORT_CONV_FORMS:
            raise ValueError(f"model.export_conv must be one of {EXPORT_CONV_FORMS}, got {self.export_conv!r}")
        check_static_widths(self, in_features)

    def widths(self, in_features: int) -> dict[str, int]:
        """The static widths of the graph (the static length must differ from all of them)."""
        return {"model.dim": self.dim, "expanded (expand x dim)": self.expand * self.dim, "qkv (3 x dim)": 3 * self.dim,
                "head size": self.dim // self.heads, "MLP": self.mlp_ratio * self.dim, "top (2 x dim)": 2 * self.dim,
                "classes": self.num_classes, "features": in_features, "features + mask": in_features + 1}


def check_static_widths(cfg: Conv1DConfig, in_features: int) -> None:
    """ValueError when a static row count of the graph (``max_len``, or ``max_len + kernel - 1`` of the padded
    convolution input) equals one of its widths: onnx2tf then lays out the square tensor wrongly."""
    rows = {cfg.max_len, cfg.max_len + cfg.kernel - 1}
    clash = [name for name, w in cfg.widths(in_features).items() if w in rows]
    if clash:
        raise ValueError(f"max_len={cfg.max_len} (padded conv input {cfg.max_len + cfg.kernel - 1} rows) equals the "
                         f"width of {clash}; choose another features.max_len (square tensors break the TFLite "
                         f"conversion)")


# ---------------------------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------------------------
def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over time of ``x`` ``[B, L, C]`` on the rows where ``mask`` ``[B, L, 1]`` is 1 -> ``[B, C]``."""
    return (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class MaskedBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the channels of ``[B, L, C]`` whose training statistics use the real rows only
    (``mask`` ``[B, L, 1]``); running statistics as ``nn.BatchNorm1d`` (unbiased variance). In eval mode a
    per-channel multiply-add."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.training:
            xf, mf = x.float(), mask.float()
            count = mf.sum().clamp(min=1.0)
            mean = (xf * mf).sum(dim=(0, 1)) / count
            var = (((xf - mean) * mf) ** 2).sum(dim=(0, 1)) / count
            with torch.no_grad():
                m = self.momentum
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                unbiased = var.detach() * count / (count - 1).clamp(min=1.0)
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
                self.num_batches_tracked.add_(1)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight * torch.rsqrt(var + self.eps)
        return x * scale + (self.bias - mean * scale)


class CausalDepthwiseConv1d(nn.Module):
    """Depthwise convolution over time of ``[B, L, C]``, causal (output ``t`` sees inputs ``t - k + 1 .. t``;
    zeros before the start), no bias. ``export_conv`` picks the exported form (``"conv"`` or ``"slices"``)."""

    def __init__(self, channels: int, kernel: int, export_conv: str = "conv"):
        super().__init__()
        if export_conv not in EXPORT_CONV_FORMS:
            raise ValueError(f"export_conv must be one of {EXPORT_CONV_FORMS}, got {export_conv!r}")
        self.kernel, self.export_conv = kernel, export_conv
        self.conv = nn.Conv1d(channels, channels, kernel, groups=channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export() and self.export_conv == "slices":
            return self.shifted_slices(x)
        return self.conv(F.pad(x.transpose(1, 2), (self.kernel - 1, 0))).transpose(1, 2)

    def shifted_slices(self, x: torch.Tensor) -> torch.Tensor:
        """The same convolution as a sum of ``kernel`` time-shifted copies of ``x`` times per-channel weights."""
        length = x.shape[1]
        xp = F.pad(x, (0, 0, self.kernel - 1, 0))
        w = self.conv.weight[:, 0, :]                                           # [C, k]
        out = xp[:, 0:length] * w[:, 0]
        for j in range(1, self.kernel):
            out = out + xp[:, j:j + length] * w[:, j]
        return out


class ECA(nn.Module):
    """Efficient channel attention: the masked mean over time of ``[B, L, C]``, a width-``kernel`` convolution over
    the channel axis (zero padded), a sigmoid gate per channel."""

    def __init__(self, kernel: int = 5):
        super().__init__()
        self.kernel = kernel
        self.weight = nn.Parameter(torch.empty(kernel).uniform_(-1 / math.sqrt(kernel), 1 / math.sqrt(kernel)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = masked_mean(x, mask)                                           # [B, C]
        channels, half = pooled.shape[1], self.kernel // 2
        padded = F.pad(pooled, (half, half))
        g = padded[:, 0:channels] * self.weight[0]
        for j in range(1, self.kernel):
            g = g + padded[:, j:j + channels] * self.weight[j]
        return x * torch.sigmoid(g).unsqueeze(1)


class DropPath(nn.Module):
    """Drops the whole input of a sample (residual branch) with probability ``p`` in training, scaling the kept
    ones by ``1 / (1 - p)`` (Keras ``Dropout(noise_shape=(None, 1, 1))``)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0:
            return x
        keep = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1 - self.p)


class LateDropout(nn.Module):
    """Dropout with rate ``p`` that is on only in training and from epoch ``start_epoch`` on (0-based), as told
    by ``set_epoch``; until then (and before any ``set_epoch`` call when ``start_epoch > 0``) it is the identity."""

    def __init__(self, p: float, start_epoch: int = 0):
        super().__init__()
        self.p, self.start_epoch, self.epoch = p, int(start_epoch), 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch about to be trained (0-based)."""
        self.epoch = int(epoch)

    @property
    def active(self) -> bool:
        """Whether the dropout is on (in training mode)."""
        return self.p > 0 and self.epoch >= self.start_epoch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=True) if self.training and self.active else x

    def extra_repr(self) -> str:
        return f"p={self.p}, start_epoch={self.start_epoch}, epoch={self.epoch}"


def set_epoch(model: nn.Module, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on every submodule that has it (the training loop's convention)."""
    for m in model.modules():
        if m is not model and callable(getattr(m, "set_epoch", None)):
            m.set_epoch(epoch)


# ---------------------------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------------------------
class Conv1DBlock(nn.Module):
    """Expand + Swish, causal depthwise conv, masked BatchNorm, ECA, project, drop-path, residual."""

    def __init__(self, cfg: Conv1DConfig):
        super().__init__()
        inner = cfg.expand * cfg.dim
        self.expand = nn.Linear(cfg.dim, inner)
        self.dwconv = CausalDepthwiseConv1d(inner, cfg.kernel, cfg.export_conv)
        self.norm = MaskedBatchNorm(inner, momentum=cfg.bn_momentum)
        self.eca = ECA(cfg.eca_kernel)
        self.project = nn.Linear(inner, cfg.dim)
        self.drop = DropPath(cfg.drop_path)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.expand(x))
        h = self.eca(self.norm(self.dwconv(h), mask), mask)
        return (x + self.drop(self.project(h))) * mask


class Attention(nn.Module):
    """Multi-head self-attention over ``[B, L, D]`` with an additive key mask ``[B, 1, 1, L]``."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        dh = d // self.heads
        q, k, v = (t.reshape(b, length, self.heads, dh).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        att = self.drop(torch.softmax(q @ k.transpose(-1, -2) * dh ** -0.5 + bias, dim=-1))
        return self.out((att @ v).transpose(1, 2).reshape(b, length, d))


class TransformerBlock(nn.Module):
    """Masked BatchNorm + attention, masked BatchNorm + Swish MLP, each with drop-path and a residual."""

    def __init__(self, cfg: Conv1DConfig):
        super().__init__()
        self.norm1 = MaskedBatchNorm(cfg.dim, momentum=cfg.bn_momentum)
        self.attn = Attention(cfg.dim, cfg.heads, cfg.attn_dropout)
        self.norm2 = MaskedBatchNorm(cfg.dim, momentum=cfg.bn_momentum)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, cfg.mlp_ratio * cfg.dim), nn.SiLU(),
                                 nn.Linear(cfg.mlp_ratio * cfg.dim, cfg.dim))
        self.drop1, self.drop2 = DropPath(cfg.drop_path), DropPath(cfg.drop_path)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.drop1(self.attn(self.norm1(x, mask), bias))
        x = x + self.drop2(self.mlp(self.norm2(x, mask)))
        return x * mask


# ---------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------
class Conv1DNet(nn.Module):
    """``[B, L, in_features + 1]`` (features, then the frame mask) -> logits ``[B, num_classes]``."""

    def __init__(self, cfg: Conv1DConfig, in_features: int):
        super().__init__()
        cfg.validate(in_features)
        self.cfg, self.in_features = cfg, in_features
        self.stem = nn.Linear(in_features, cfg.dim, bias=False)
        self.stem_norm = MaskedBatchNorm(cfg.dim, momentum=cfg.bn_momentum)
        layers: list[nn.Module] = []
        for _ in range(cfg.blocks):
            layers += [Conv1DBlock(cfg) for _ in range(cfg.conv_per_block)] + [TransformerBlock(cfg)]
        self.layers = nn.ModuleList(layers)
        self.top = nn.Linear(cfg.dim, 2 * cfg.dim)
        self.late_dropout = LateDropout(cfg.late_dropout, cfg.late_dropout_start)
        self.head = nn.Linear(2 * cfg.dim, cfg.num_classes)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``[B, L, F]`` and the frame mask ``[B, L, 1]`` of an input ``[B, L, F + 1]``."""
        if not torch.onnx.is_in_onnx_export() and (x.dim() != 3 or x.shape[-1] != self.in_features + 1):
            raise ValueError(f"expected input [B, L, {self.in_features + 1}] (features + mask), got {list(x.shape)}")
        return x[..., :self.in_features], x[..., self.in_features:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, mask = self.split(x)
        bias = ((1.0 - mask) * ATTENTION_MASK_VALUE).transpose(1, 2).unsqueeze(1)   # [B, 1, 1, L]
        h = self.stem_norm(self.stem(feats), mask) * mask
        for layer in self.layers:
            h = layer(h, mask, bias) if isinstance(layer, TransformerBlock) else layer(h, mask)
        pooled = masked_mean(self.top(h), mask)
        return self.head(self.late_dropout(pooled))

    def set_epoch(self, epoch: int) -> None:
        """Tell the late dropout which epoch is being trained (0-based)."""
        self.late_dropout.set_epoch(epoch)
