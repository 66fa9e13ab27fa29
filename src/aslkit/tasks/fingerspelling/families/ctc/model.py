"""F5's fingerspelling encoder with a CTC head: a Conv1d stem, pre-LN transformer blocks with rotary position
embeddings (cos/sin tables computed once and shared by all layers), LayerDrop, and a linear CTC head
(59 characters + blank)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aslkit.constants import CTC_BLANK
from aslkit.tensor_ops import Rotary, apply_rotary, key_padding_bias


@dataclass
class CTCConfig:
    """Size of the encoder (F5's student: 24 layers of 256; the quick preset is much smaller)."""

    dim: int = 256
    layers: int = 6
    heads: int = 4
    ffn_mult: int = 4
    dropout: float = 0.1
    layerdrop: float = 0.1
    conv_kernel: int = 3
    stride: int = 1                  # time downsampling of the stem (2: one output frame per two input frames)
    max_len: int = 1024              # rows of the rotary tables (longest sequence the model can take)
    num_classes: int = CTC_BLANK + 1  # 59 characters + the blank (index 59)
    distill_head: bool = False       # a second head for distillation from a teacher's labels (F5), not exported


class Block(nn.Module):
    """Pre-LN transformer block: rotary self-attention with a key padding mask, then a GELU feed-forward."""

    def __init__(self, cfg: CTCConfig):
        super().__init__()
        self.heads = cfg.heads
        self.norm1, self.norm2 = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.out = nn.Linear(cfg.dim, cfg.dim)
        self.ffn = nn.Sequential(nn.Linear(cfg.dim, cfg.ffn_mult * cfg.dim), nn.GELU(approximate="tanh"),
                                 nn.Dropout(cfg.dropout), nn.Linear(cfg.ffn_mult * cfg.dim, cfg.dim))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], bias: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        dh = D // self.heads
        q, k, v = (t.reshape(B, T, self.heads, dh).transpose(1, 2) for t in self.qkv(self.norm1(x)).chunk(3, -1))
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        att = torch.softmax(q @ k.transpose(-1, -2) / dh ** 0.5 + bias, dim=-1)
        h = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.drop(self.out(h))
        return x + self.drop(self.ffn(self.norm2(x)))


class CTCEncoder(nn.Module):
    """Frame features ``[B, T, F]`` (+ valid-frame mask ``[B, T]``) -> per-frame CTC logits ``[B, T, classes]``."""

    def __init__(self, cfg: CTCConfig, in_features: int):
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(in_features, cfg.dim)
        if cfg.conv_kernel % 2 == 0:
            raise ValueError(f"model.conv_kernel must be odd, got {cfg.conv_kernel}")
        self.stem = nn.Conv1d(cfg.dim, cfg.dim, cfg.conv_kernel, stride=cfg.stride, padding=cfg.conv_kernel // 2)
        self.rope = Rotary(cfg.dim // cfg.heads, cfg.max_len)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)
        self.distill_head = nn.Linear(cfg.dim, cfg.num_classes) if cfg.distill_head else None

    @property
    def ddp_find_unused_parameters(self) -> bool:
        """Whether DDP must look for parameters without a gradient in each step (``find_unused_parameters``, read
        by the training loop): a block LayerDrop skips takes no part in the graph, and the distillation head only
        takes part with a ``kd`` teacher. The ranks may then skip different blocks: each rank's unused parameters
        add zero to the gradient average, and parameters no rank used keep no gradient (as in one process)."""
        return self.cfg.layerdrop > 0 or self.distill_head is not None

    def output_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Valid output frames ``[B, ceil(T / stride)]`` of an input frame mask ``[B, T]``."""
        return mask[:, ::self.cfg.stride]

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's layer groups (input layers, then one per block; the final norm and the heads, unmatched, last):
        what ``optim.layer_decay`` scales the learning rate by."""
        return {"stem": r"^proj|^stem", "blocks": r"^blocks\.(\d+)"}

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None,
               replace: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The final normalised states ``[B, T', dim]`` and every block's output (before the final norm).
        ``replace`` = (input frames ``[B, T]`` bool, vector ``[dim]``): those frames' projected inputs become the
        vector (the masked student of data2vec pretraining)."""
        valid = torch.ones_like(x[..., 0]) if mask is None else mask.to(x.dtype)
        h = self.proj(x)
        if replace is not None:
            h = torch.where(replace[0].unsqueeze(-1), replace[1].to(h.dtype), h)
        h = h * valid.unsqueeze(-1)
        conv = F.gelu(self.stem(h.transpose(1, 2)).transpose(1, 2), approximate="tanh")
        valid = self.output_mask(valid)
        h = (h[:, ::self.cfg.stride] + conv) * valid.unsqueeze(-1)
        bias = key_padding_bias(valid)
        rope = self.rope(h)
        layers = []
        for block in self.blocks:
            if self.training and self.cfg.layerdrop > 0 and torch.rand(()) < self.cfg.layerdrop:
                continue                                                          # LayerDrop: skip the block
            h = block(h, rope, bias)
            layers.append(h)
        return self.norm(h), layers

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, distill: bool = False):
        """Logits ``[B, ceil(T / stride), classes]``; with ``distill``, also those of the distillation head."""
        h = self.encode(x, mask)[0]
        return (self.head(h), self.distill_head(h)) if distill else self.head(h)
