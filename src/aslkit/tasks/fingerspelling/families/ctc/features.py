"""Per-frame features of the fingerspelling CTC model (F5's preprocessing).

``FSFeatures`` maps one sequence ``[T, P, 3]`` of a fingerspelling landmark set (default the 130 landmarks of the
1st place, ``constants.FS_130``; NaN = missing) to ``[T, F]``:

1. y is multiplied by the portrait aspect ratio (1.898) so that rotations and distances are isotropic;
2. the dominant hand (fewer missing points) is kept; when it is the left hand the whole frame is mirrored
   (x -> 1 - x with the left/right permutation), so the signing hand is always in the same slot;
3. each group (dominant hand, both arms, lips) is centred on its NaN-aware mean over all frames and points and
   scaled by its largest |x| or |y| deviation; missing points become 0.

Long sequences are subsampled to at most ``max_frames`` frames first (``..frames``), the same in training and in
the exported graph, which pads shorter sequences to ``max_frames`` so that every shape after it is static. The
dominant-hand choice is an arithmetic blend (no Python branch on data), as in the asl-signs features, so the module
can be exported.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from aslkit import constants as C
from aslkit.tensor_ops import dominant_side

ASPECT = 1.898


MIN_SCALE = 1e-3


@dataclass
class FSFeatureConfig:
    """Settings of ``FSFeatures``."""

    aspect: float = ASPECT        # y multiplier (image height / width of the portrait recordings)
    use_z: bool = True
    arms: bool = True
    lips: bool = True
    hand_shape: bool = True       # add the dominant hand normalised per frame (centre and size of that frame's hand)
    max_frames: int = 320         # longer sequences are subsampled to this many frames (the graph's static length)


class FSFeatures(nn.Module):
    """``[T, P, 3]`` fingerspelling landmarks -> ``[T, F]`` per-group normalised features of the dominant side."""

    def __init__(self, cfg: FSFeatureConfig | None = None, landmarks: np.ndarray | None = None):
        super().__init__()
        self.cfg = cfg = cfg or FSFeatureConfig()
        self.landmarks = np.asarray(C.FS_130 if landmarks is None else landmarks)
        flip = C.subset_flip_permutation(self.landmarks)
        groups = {"hand": C.RIGHT_HAND}
        if cfg.arms:
            groups["arms"] = np.concatenate([C.RIGHT_ARM, C.LEFT_ARM])
        if cfg.lips:
            groups["lips"] = C.LIPS
        self.group_sizes = {name: len(idx) for name, idx in groups.items()}
        keep = np.concatenate([C.subset_positions(self.landmarks, idx) for idx in groups.values()])
        self.register_buffer("keep", torch.as_tensor(keep), persistent=False)
        self.register_buffer("keep_mirrored", torch.as_tensor(flip[keep]), persistent=False)
        self.register_buffer("aspect", torch.tensor([1.0, cfg.aspect, 1.0]), persistent=False)

    @property
    def feature_dim(self) -> int:
        """F: points kept × (3 or 2) coordinates."""
        points = sum(self.group_sizes.values()) + (self.group_sizes["hand"] if self.cfg.hand_shape else 0)
        return points * (3 if self.cfg.use_z else 2)

    def forward(self, x: torch.Tensor, n_frames: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[T, P, 3]`` -> ``[T, F]``. A NaN-padded sequence (``tensor_ops.batch_features``) needs no
        ``n_frames``: its all-NaN padding frames leave every statistic unchanged and give zero rows."""
        if x.dim() != 3 or x.shape[1] != len(self.landmarks) or x.shape[2] != 3:
            raise ValueError(f"expected landmarks [T, {len(self.landmarks)}, 3], got {list(x.shape)}")
        pts, v = dominant_side(x.float(), self.keep, self.keep_mirrored, slice(0, self.group_sizes["hand"]))
        pts = pts * self.aspect
        out, start = [], 0
        for size in self.group_sizes.values():
            out.append(normalise_group(pts[:, start:start + size], v[:, start:start + size]))
            start += size
        if self.cfg.hand_shape:
            n = self.group_sizes["hand"]
            out.append(normalise_frames(pts[:, :n], v[:, :n]))
        feats = torch.cat(out, dim=1)
        feats = feats if self.cfg.use_z else feats[..., :2]
        return feats.reshape(feats.shape[0], -1)


def normalise_group(p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Points ``[T, K, 3]`` centred on their valid mean and divided by the largest valid |x| or |y| deviation
    (at least ``MIN_SCALE``); missing points stay 0."""
    vv = v.unsqueeze(-1)
    centre = (p * vv).sum(dim=(0, 1)) / v.sum().clamp(min=1.0)
    dev = (p - centre) * vv
    scale = dev[..., :2].abs().amax(dim=(0, 1, 2), keepdim=True).clamp(min=MIN_SCALE)   # [1, 1, 1]: onnx2tf
    return dev / scale                                                                 # fails on a scalar divisor


def normalise_frames(p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Points ``[T, K, 3]`` centred on each frame's valid mean and divided by that frame's largest |x| or |y|
    deviation (the hand shape without its position and size); missing points stay 0."""
    vv = v.unsqueeze(-1)
    centre = (p * vv).sum(dim=1, keepdim=True) / v.sum(dim=1, keepdim=True).unsqueeze(-1).clamp(min=1.0)
    dev = (p - centre) * vv
    scale = dev[..., :2].abs().amax(dim=(1, 2), keepdim=True).clamp(min=MIN_SCALE)
    return dev / scale
