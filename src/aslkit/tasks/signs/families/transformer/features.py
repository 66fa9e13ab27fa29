"""Hand-crafted per-frame features of the asl-signs transformer (the I2-T design of the 2nd-place solution).

``SignFeatures`` maps one sequence ``[T, S, 3]`` (float32, NaN where a landmark was not detected; ``S`` points of a
cache subset such as ``constants.CACHE_SUBSETS["islr"]``) to a fixed-size feature matrix ``[L, F]``:

1. **Dominant hand and mirroring.** The hand with fewer NaN values is the dominant one. When it is the left hand,
   the whole frame is mirrored (``x -> 1 - x`` and the left/right flip permutation), so the dominant hand always sits
   in the right-hand slot and a left-handed signer gives the same features as the mirrored right-handed one.
   The choice is a 0/1 weight blended arithmetically, so it is part of the exported graph (no Python branch on data).
2. **Points.** The 40 lip points followed by the 21 points of the dominant hand (61 points).
3. **Normalisation** (positions and motion only): centre = NaN-aware mean of each axis over all frames and the
   61 points; scale = NaN-aware RMS distance of x and y to that centre (one scalar for all three axes, so shapes are
   not distorted; at least ``MIN_SCALE``). Distances and angles use the raw (mirrored) coordinates, as in I2-T.
4. **Time.** NaN-aware linear resample to ``L`` frames (longer sequences are subsampled, shorter ones upsampled):
   a point is missing at a resampled time only when both neighbouring source frames miss it; when one of them
   misses it, the other one is used alone. Missing values then become 0.
5. **Features** per resampled frame: positions, history motion ``p[t] - p[t-1]``, future motion ``p[t+1] - p[t]``
   (0 at the ends and where either frame misses the point), the 210 pairwise hand distances (x, y), 15 finger joint
   cosines (x, y, z), distances of a seeded subset of lip point pairs (x, y) and 8 lip corner cosines (x, y, z).

Every op follows the torch -> ONNX -> onnx2tf rules of ``depstack.md`` sections 5-6: Gather-based resampling with
the time length taken from a tensor, ``reshape`` with static sizes only, no dynamic slices, no boolean indexing.
With the defaults ``F = 972`` (I2-T's feature size). Pick a model width different from ``L`` (rule 4).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from aslkit import constants as C
from aslkit.tensor_ops import check_landmarks, dominant_side, masked_linear_resample

MIN_SCALE = 1e-3   # lower bound of the normalisation scale (coordinates are in [0, 1] image units)


EPS = 1e-6         # lower bound of vector norms in the cosines


N_LIPS = len(C.LIPS)


N_HAND = len(C.RIGHT_HAND)


N_LIP_PAIRS_MAX = N_LIPS * (N_LIPS - 1) // 2


@dataclass
class FeatureConfig:
    """Settings of ``SignFeatures``: output length, lip pair subset and which feature groups are on."""

    max_len: int = 64              # L: resampled length (a power of two: exact in float16 TFLite)
    lip_pairs: int = 190           # how many of the 780 lip point pairs give a distance
    lip_pair_seed: int = 0         # seed of that subset (part of the model: keep it with the checkpoint)
    use_z: bool = True             # z in the positions and motion
    positions: bool = True
    motion: bool = True            # history and future motion
    hand_distances: bool = True
    finger_angles: bool = True
    lip_distances: bool = True
    lip_angles: bool = True


def hand_pairs() -> tuple[np.ndarray, np.ndarray]:
    """All 210 hand landmark pairs ``(i, j)``, ``i < j``, in row-major upper-triangle order."""
    return np.triu_indices(N_HAND, k=1)


def finger_triplets() -> np.ndarray:
    """``[15, 3]`` consecutive joint triplets ``(a, b, c)`` along each finger route; the angle is at ``b``."""
    return np.array([route[i:i + 3] for route in C.hand_routes() for i in range(len(route) - 2)], dtype=np.int64)


def lip_triplets() -> np.ndarray:
    """``[8, 3]`` lip-point triplets (positions within ``constants.LIPS``): the corners of the outer and the inner
    lip quadrilateral (mouth corner, upper middle, other corner, lower middle: every fifth point of each closed
    contour of ``constants.lip_connections``), angle at the middle point of each triplet."""
    pairs = C.lip_connections()
    n = len(pairs) // 2
    lip_pos = {int(face): i for i, face in enumerate(C.LIPS_FACE)}
    out = []
    for contour in (pairs[:n], pairs[n:]):
        ring = [a for a, _ in contour]
        quad = [lip_pos[ring[k * n // 4]] for k in range(4)]
        out += [[quad[(k - 1) % 4], quad[k], quad[(k + 1) % 4]] for k in range(4)]
    return np.array(out, dtype=np.int64)


def lip_pairs(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, seeded subset of ``count`` lip point pairs ``(i, j)``, ``i < j``, sorted (positions in LIPS)."""
    if not 0 <= count <= N_LIP_PAIRS_MAX:
        raise ValueError(f"lip_pairs must be within 0..{N_LIP_PAIRS_MAX}, got {count}")
    i, j = np.triu_indices(N_LIPS, k=1)
    pick = np.sort(np.random.default_rng(seed).choice(len(i), size=count, replace=False))
    return i[pick], j[pick]


def pair_distances(p: torch.Tensor, v: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``[L, K]`` between points ``i[k]`` and ``j[k]`` of ``p`` ``[L, P, D]`` (0 if missing)."""
    d = torch.linalg.vector_norm(p.index_select(1, i) - p.index_select(1, j), dim=-1)
    return d * v.index_select(1, i) * v.index_select(1, j)


def joint_cosines(p: torch.Tensor, v: torch.Tensor, triplets: torch.Tensor) -> torch.Tensor:
    """Cosine ``[L, K]`` of the angle at ``b`` between ``a - b`` and ``c - b`` for each triplet ``(a, b, c)``
    (0 where a point is missing or a segment has zero length)."""
    a, b, c = triplets[:, 0], triplets[:, 1], triplets[:, 2]
    pb = p.index_select(1, b)
    u = p.index_select(1, a) - pb
    w = p.index_select(1, c) - pb
    nu = torch.linalg.vector_norm(u, dim=-1).clamp(min=EPS)
    nw = torch.linalg.vector_norm(w, dim=-1).clamp(min=EPS)
    cos = (u * w).sum(-1) / (nu * nw)
    return cos * v.index_select(1, a) * v.index_select(1, b) * v.index_select(1, c)


def centre_and_scale(p: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NaN-aware centre ``[3]`` (per-axis mean) and scale ``[]`` (RMS x,y distance to it, at least ``MIN_SCALE``)
    of points ``p`` ``[T, P, 3]`` (zeros where missing) with validity ``v`` ``[T, P]``."""
    count = v.sum().clamp(min=1.0)
    centre = (p * v.unsqueeze(-1)).sum(dim=(0, 1)) / count
    dev = (p[..., :2] - centre[:2]) * v.unsqueeze(-1)
    scale = torch.sqrt((dev * dev).sum() / (2 * count))
    return centre, scale.clamp(min=MIN_SCALE)


class SignFeatures(nn.Module):
    """``[T, S, 3]`` landmarks of a cache subset (NaN = missing) -> ``[L, F]`` finite I2-T features."""

    def __init__(self, cfg: FeatureConfig | None = None, subset: np.ndarray | None = None):
        super().__init__()
        self.cfg = cfg = cfg or FeatureConfig()
        if cfg.max_len < 2 or cfg.max_len & (cfg.max_len - 1):
            raise ValueError(f"max_len must be a power of two >= 2, got {cfg.max_len}")
        self.subset = np.asarray(C.CACHE_SUBSETS["islr"] if subset is None else subset)
        self.num_points = len(self.subset)
        self.length = cfg.max_len
        lips = C.subset_positions(self.subset, C.LIPS)
        keep = np.concatenate([lips, C.subset_positions(self.subset, C.RIGHT_HAND)])
        flip = C.subset_flip_permutation(self.subset)
        lip_i, lip_j = lip_pairs(cfg.lip_pairs, cfg.lip_pair_seed)
        hand_i, hand_j = hand_pairs()
        tables = {
            "keep": keep, "keep_mirrored": flip[keep],
            "hand_i": hand_i + N_LIPS, "hand_j": hand_j + N_LIPS, "lip_i": lip_i, "lip_j": lip_j,
            "finger_triplets": finger_triplets() + N_LIPS, "lip_triplets": lip_triplets(),
            "prev": np.maximum(np.arange(self.length) - 1, 0),
            "next": np.minimum(np.arange(self.length) + 1, self.length - 1),
        }
        for name, idx in tables.items():
            self.register_buffer(name, torch.as_tensor(np.asarray(idx, dtype=np.int64)), persistent=False)
        self._groups = self._group_sizes()
        if not self._groups:
            raise ValueError(f"FeatureConfig turns every feature group off: {cfg}")

    def _group_sizes(self) -> dict[str, int]:
        """Enabled feature groups and their widths, in output order."""
        cfg, n_pts = self.cfg, N_LIPS + N_HAND
        dims = 3 if cfg.use_z else 2
        sizes = {
            "positions": n_pts * dims * cfg.positions,
            "history_motion": n_pts * dims * cfg.motion,
            "future_motion": n_pts * dims * cfg.motion,
            "hand_distances": len(self.hand_i) * cfg.hand_distances,
            "finger_angles": len(self.finger_triplets) * cfg.finger_angles,
            "lip_distances": len(self.lip_i) * cfg.lip_distances,
            "lip_angles": len(self.lip_triplets) * cfg.lip_angles,
        }
        return {k: v for k, v in sizes.items() if v}

    @property
    def feature_dim(self) -> int:
        """F: the width of the output."""
        return sum(self._groups.values())

    def describe(self) -> dict[str, int]:
        """The feature groups in output order with their widths (they sum to ``feature_dim``)."""
        return dict(self._groups)

    def select_points(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Lips + dominant hand ``[T, 61, 3]`` (mirrored when the left hand dominates; 0 where missing) and their
        validity ``[T, 61]``."""
        return dominant_side(x, self.keep, self.keep_mirrored, slice(N_LIPS, None))

    def forward(self, x: torch.Tensor, n_frames: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[T, S, 3]`` -> features ``[L, F]`` (of the first ``n_frames`` frames when ``x`` is NaN-padded)."""
        if not torch.onnx.is_in_onnx_export():
            check_landmarks(x, self.num_points)
        cfg, length = self.cfg, self.length
        pts, v = self.select_points(x.float())
        centre, scale = centre_and_scale(pts, v)
        raw, vr = masked_linear_resample(pts, v, length, n_frames)                 # static L from here on
        dims = 3 if cfg.use_z else 2
        pos = ((raw - centre) / scale * vr.unsqueeze(-1))[..., :dims]
        out = []
        if cfg.positions:
            out.append(pos.reshape(length, -1))
        if cfg.motion:
            hist = (pos - pos.index_select(0, self.prev)) * (vr * vr.index_select(0, self.prev)).unsqueeze(-1)
            fut = (pos.index_select(0, self.next) - pos) * (vr * vr.index_select(0, self.next)).unsqueeze(-1)
            out += [hist.reshape(length, -1), fut.reshape(length, -1)]
        if cfg.hand_distances:
            out.append(pair_distances(raw[..., :2], vr, self.hand_i, self.hand_j))
        if cfg.finger_angles:
            out.append(joint_cosines(raw, vr, self.finger_triplets))
        if cfg.lip_distances:
            out.append(pair_distances(raw[..., :2], vr, self.lip_i, self.lip_j))
        if cfg.lip_angles:
            out.append(joint_cosines(raw, vr, self.lip_triplets))
        return torch.cat(out, dim=-1)
