"""Transformer encoder on per-frame features (I2-T): HF BERT or DeBERTa-v2 from configs, Conditional Position
Encoding before every layer but the first, masked mean pooling and a linear head."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import BertConfig, BertModel, DebertaV2Config, DebertaV2Model

from aslkit.tensor_ops import masked_mean

ENCODERS = ("bert", "deberta")


@dataclass
class TransformerConfig:
    """Size and kind of the encoder (defaults: I2-T's 4 layers, hidden 256, intermediate 512)."""

    encoder: str = "bert"
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    intermediate: int = 512
    dropout: float = 0.1
    attention_dropout: float = 0.1
    cpe_kernel: int = 5
    max_len: int = 64
    num_classes: int = 250
    head_dropout: float = 0.2


def _hf_encoder(cfg: TransformerConfig) -> nn.Module:
    """An HF encoder with random weights; tanh-GELU keeps the TFLite graph to builtin ops."""
    common = dict(hidden_size=cfg.hidden, num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                  intermediate_size=cfg.intermediate, hidden_act="gelu_pytorch_tanh", vocab_size=1,
                  hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.attention_dropout,
                  max_position_embeddings=cfg.max_len, type_vocab_size=1)
    if cfg.encoder == "bert":
        return BertModel(BertConfig(**common), add_pooling_layer=False)
    if cfg.encoder == "deberta":
        return DebertaV2Model(DebertaV2Config(**common, relative_attention=True, position_buckets=cfg.max_len // 4,
                                              max_relative_positions=cfg.max_len, pos_att_type=["p2c", "c2p"],
                                              position_biased_input=False, norm_rel_ebd="layer_norm",
                                              share_att_key=True))
    raise ValueError(f"unknown encoder {cfg.encoder!r}; expected one of {ENCODERS}")


class ConditionalPositionEncoding(nn.Module):
    """Twins-style CPE: a depthwise 1-D convolution over time added to its input (``[B, L, D]``)."""

    def __init__(self, dim: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x.transpose(1, 2)).transpose(1, 2)


class SignTransformer(nn.Module):
    """Features ``[B, L, F]`` (+ optional mask ``[B, L]``) -> class logits ``[B, num_classes]``."""

    def __init__(self, cfg: TransformerConfig, in_features: int):
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Sequential(nn.Linear(in_features, cfg.hidden), nn.LayerNorm(cfg.hidden))
        self.encoder = _hf_encoder(cfg)
        self.encoder.embeddings.word_embeddings.requires_grad_(False)   # unused: inputs come as embeddings
        for layer in self.encoder.encoder.layer[1:]:        # CPE lives on the layer, so copies (EMA) stay right
            layer.add_module("cpe", ConditionalPositionEncoding(cfg.hidden, cfg.cpe_kernel))
            layer.register_forward_pre_hook(_apply_cpe, with_kwargs=True)
        self.head = nn.Sequential(nn.Dropout(cfg.head_dropout), nn.Linear(cfg.hidden, cfg.num_classes))

    def forward(self, feats: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.proj(feats)
        attn = None if mask is None else mask.to(torch.long)
        h = self.encoder(inputs_embeds=x, attention_mask=attn).last_hidden_state
        return self.head(masked_mean(h, mask))


def _apply_cpe(layer: nn.Module, args: tuple, kwargs: dict):
    """Forward pre-hook of an encoder layer: add its CPE to the incoming hidden states."""
    if args:
        return (layer.cpe(args[0]), *args[1:]), kwargs
    kwargs = dict(kwargs)
    kwargs["hidden_states"] = layer.cpe(kwargs["hidden_states"])
    return args, kwargs
