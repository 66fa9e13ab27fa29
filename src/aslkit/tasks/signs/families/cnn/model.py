"""The asl-signs CNN: a timm image classifier (I2: EfficientNet-B0) on the landmark image of ``features``.

``SignCNN`` takes a batch of images ``[B, L, P, 3]`` (time, points, xyz), makes them channels-first
``[B, 3, L, P]`` and returns ``[B, num_classes]`` logits, either from the timm model's own head or from a
hypercolumn head (the global average of the feature maps of several stages and of the last one, concatenated,
then one linear layer).

TFLite speed: ``ShiftedDepthwiseConv2d`` computes a depthwise convolution as a sum of shifted slices times
per-channel weights while it is being exported to ONNX (the normal convolution otherwise: same weights, same
results). ``use_shifted_depthwise`` swaps it into a model; ``SignCNN`` does so when ``CNNConfig.shifted_depthwise``
is on. It is off by default: ``benchmarks/depthwise_speed.py`` found it 10 to 40 times *slower* than the plain
depthwise convolution in TFLite with the XNNPack delegate (I2's 3x gain was measured on another runtime), so the
kit exports the plain form.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class CNNConfig:
    """The CNN of the asl-signs CNN family: which timm model, regularisation, head, export form."""

    backbone: str = "efficientnet_b0"   # any timm model name (built with pretrained=False)
    num_classes: int = 250
    drop_rate: float = 0.2              # dropout before the classifier
    drop_path_rate: float = 0.2         # stochastic depth
    hypercolumn: bool = False           # pool several stages + the last feature map, concatenate, linear
    hypercolumn_stages: int = 5         # how many of the backbone's feature stages (the last ones)
    shifted_depthwise: bool = False     # export depthwise convs as shifted slices (slower with XNNPack)
    timm_kwargs: dict = field(default_factory=dict)   # more keyword arguments of timm.create_model


# ------------------------------------------------------------------------------------------------------------------
# Depthwise convolution as shifted slices
# ------------------------------------------------------------------------------------------------------------------
def is_plain_depthwise(m: nn.Module) -> bool:
    """Whether ``m`` is a plain ``nn.Conv2d`` depthwise convolution (one filter per channel, zero padding given as
    numbers, no dilation) that ``shifted_depthwise`` can compute."""
    return (type(m) is nn.Conv2d and m.groups == m.in_channels == m.out_channels and m.groups > 1
            and m.dilation == (1, 1) and m.padding_mode == "zeros" and not isinstance(m.padding, str))


def shifted_depthwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                      padding: tuple[int, int]) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, groups=C)`` for ``x`` ``[B, C, H, W]`` and a depthwise
    ``weight`` ``[C, 1, kh, kw]``, as a sum over the kernel taps of a strided slice of the zero-padded input times
    that tap's per-channel weight (static shapes: the slices are fixed by ``H`` and ``W``)."""
    c, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    h_out = (x.shape[2] + 2 * ph - kh) // sh + 1
    w_out = (x.shape[3] + 2 * pw - kw) // sw + 1
    xp = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x
    out = None
    for i in range(kh):
        for j in range(kw):
            tap = xp[:, :, i:i + sh * (h_out - 1) + 1:sh, j:j + sw * (w_out - 1) + 1:sw]
            term = tap * weight[:, 0, i, j].reshape(1, c, 1, 1)
            out = term if out is None else out + term
    return out if bias is None else out + bias.reshape(1, c, 1, 1)


class ShiftedDepthwiseConv2d(nn.Conv2d):
    """A depthwise ``nn.Conv2d`` (same parameters and state dict) that is exported to ONNX as shifted slices."""

    def shifted(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution computed as shifted slices (equal to ``forward`` up to float rounding)."""
        return shifted_depthwise(x, self.weight, self.bias, self.stride, self.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            return self.shifted(x)
        return super().forward(x)


def use_shifted_depthwise(model: nn.Module) -> int:
    """Turn every plain depthwise ``nn.Conv2d`` inside ``model`` into a ``ShiftedDepthwiseConv2d`` in place (the
    parameters are kept); returns how many were turned."""
    count = 0
    for m in model.modules():
        if is_plain_depthwise(m):
            m.__class__ = ShiftedDepthwiseConv2d
            count += 1
    return count


# ------------------------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------------------------
class SignCNN(nn.Module):
    """Landmark images ``[B, L, P, 3]`` -> ``[B, num_classes]`` logits through a timm image model."""

    def __init__(self, cfg: CNNConfig | None = None):
        super().__init__()
        import timm
        self.cfg = cfg = cfg or CNNConfig()
        if cfg.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {cfg.num_classes}")
        head_classes = 0 if cfg.hypercolumn else cfg.num_classes
        try:
            self.backbone = timm.create_model(cfg.backbone, pretrained=False, num_classes=head_classes, in_chans=3,
                                              drop_rate=cfg.drop_rate, drop_path_rate=cfg.drop_path_rate,
                                              **cfg.timm_kwargs)
        except RuntimeError as e:
            raise ValueError(f"model.backbone={cfg.backbone!r} is not a timm model ({e})") from e
        self.stage_indices: list[int] = []
        if cfg.hypercolumn:
            if not hasattr(self.backbone, "forward_intermediates"):
                raise ValueError(f"model.hypercolumn needs a timm model with forward_intermediates; "
                                 f"{cfg.backbone!r} has none")
            info = self.backbone.feature_info
            if not 1 <= cfg.hypercolumn_stages <= len(info):
                raise ValueError(f"model.hypercolumn_stages must be within 1..{len(info)} for {cfg.backbone!r}, "
                                 f"got {cfg.hypercolumn_stages}")
            self.stage_indices = list(range(len(info) - cfg.hypercolumn_stages, len(info)))
            width = sum(info[i]["num_chs"] for i in self.stage_indices) + self.backbone.num_features
            self.head_drop = nn.Dropout(cfg.drop_rate)
            self.head = nn.Linear(width, cfg.num_classes)
        self.shifted_convs = use_shifted_depthwise(self) if cfg.shifted_depthwise else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, L, P, 3]`` -> logits ``[B, num_classes]``."""
        x = x.permute(0, 3, 1, 2).contiguous()                                      # [B, 3, L, P]
        if not self.cfg.hypercolumn:
            return self.backbone(x)
        last, stages = self.backbone.forward_intermediates(x, indices=self.stage_indices)
        pooled = [f.mean(dim=(2, 3)) for f in stages] + [last.mean(dim=(2, 3))]
        return self.head(self.head_drop(torch.cat(pooled, dim=1)))
