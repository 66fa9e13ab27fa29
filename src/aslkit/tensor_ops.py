"""Exportable torch helpers shared by the feature modules and models of every family.

Every op here follows the torch -> ONNX -> onnx2tf rules of ``depstack.md`` sections 5-6 (Gather-based resampling
with the time length taken from a tensor, static reshapes, no boolean indexing), so a feature module built from them
is carried through the TFLite export unchanged:

* resampling along time (``linear_resample``, ``masked_linear_resample``) and exact integer division in float16
  builds (``floor_div``);
* batches of sequences: ``pack_landmarks`` (raw landmarks one frame after another, and their lengths) and
  ``batch_features``, a feature module applied to every sequence of such a batch at once (``torch.func.vmap`` over
  NaN-padded groups of similar length;
  each module takes ``n_frames``, the real length of a padded sequence: ``frame_count``, ``real_frames``);
* NaN handling (``nan_to_zero``) and masked pooling (``masked_mean``);
* manifold mixup inside a model (``MixPlan``, ``apply_mix``);
* ``export_friendly``: DeBERTa-v2's relative-position gather as a one-hot product while exporting;
* rotary position embeddings with tables built once (``Rotary``, ``apply_rotary``; both fingerspelling encoders).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn


def check_landmarks(x: torch.Tensor, num_points: int) -> None:
    """ValueError unless ``x`` is ``[T >= 1, num_points, 3]`` floating point (a feature module's input)."""
    if x.dim() != 3 or x.shape[0] < 1 or x.shape[1] != num_points or x.shape[2] != 3:
        raise ValueError(f"expected landmarks [T, {num_points}, 3], got {list(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected floating point landmarks, got {x.dtype}")


def frame_count(frames: torch.Tensor, n_frames: torch.Tensor | None = None) -> torch.Tensor:
    """The number of frames of ``frames`` ``[T, ...]`` as a float tensor: traced from the shape (so it stays dynamic
    in an exported graph), or ``n_frames`` when the sequence is padded (``batch_features``)."""
    if n_frames is not None:
        return n_frames.to(frames.dtype)
    first = frames[(slice(None),) + (0,) * (frames.dim() - 1)]                 # [T]
    return torch.ones_like(first).sum()


def real_frames(frames: torch.Tensor, n_frames: torch.Tensor | None) -> torch.Tensor | None:
    """``[T]`` 1 for the first ``n_frames`` frames of a padded sequence, 0 for its padding; None when not padded."""
    if n_frames is None:
        return None
    steps = torch.arange(frames.shape[0], device=frames.device, dtype=frames.dtype)
    return (steps < n_frames).to(frames.dtype)


def pack_landmarks(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences ``[T_i, S, 3]`` as one batch without padding: their frames one after another ``[sum T_i, S, 3]``
    and their lengths ``[B]`` (``batch_features`` pads each group of similar lengths itself, so a long sequence
    does not make the whole batch long in memory, in a loader's shared memory or on the way to the device)."""
    return torch.cat(list(seqs)), torch.as_tensor([len(x) for x in seqs], dtype=torch.long)


def pad_packed(frames: torch.Tensor, lengths: list[int], rows: list[int]) -> torch.Tensor:
    """Sequences ``rows`` of a packed batch (``pack_landmarks``) as ``[len(rows), max T, S, 3]``, padded with NaN
    (missing landmarks to every feature module)."""
    seqs = torch.split(frames, lengths)
    return torch.nn.utils.rnn.pad_sequence([seqs[i] for i in rows], batch_first=True, padding_value=float("nan"))


#: Padding frames worth one more feature call when ``batch_features`` groups a batch by length, per device type
#: (``benchmarks/feature_groups.py``): on the CPU a call over a group costs about what 600 padded frames do (3 groups
#: in a quick asl-signs batch of 64, 1-2 in a fingerspelling batch of 16; the cheapest setting within a few per cent
#: for every family); on CUDA one call over the whole batch is cheapest.
CHUNK_CALL_FRAMES = {"cpu": 600, "cuda": 1 << 30}


def length_chunks(lengths: list[int], call_frames: int) -> list[list[int]]:
    """Positions of a batch grouped by length, each group padded to its longest: the grouping of the sorted lengths
    with the fewest padded frames plus ``call_frames`` per group (exact, by dynamic programming)."""
    if not lengths or call_frames >= len(lengths) * max(lengths):      # two calls cost more than any padding
        return [list(range(len(lengths)))]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    ordered = [lengths[i] for i in order]
    best, cut = [0] + [0] * len(ordered), [0] * (len(ordered) + 1)
    for stop in range(1, len(ordered) + 1):
        best[stop], cut[stop] = min((best[start] + (stop - start) * ordered[stop - 1] + call_frames, start)
                                    for start in range(stop))
    chunks, stop = [], len(ordered)
    while stop:
        chunks.append(order[cut[stop]:stop])
        stop = cut[stop]
    return chunks[::-1]


def pad_to(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``t`` zero-padded at the end of every axis but the first to ``shape[1:]``."""
    pads = [p for have, want in zip(reversed(t.shape[1:]), reversed(shape[1:])) for p in (0, want - have)]
    return torch.nn.functional.pad(t, pads) if any(pads) else t


def batch_features(features: torch.nn.Module, frames: torch.Tensor, lengths: torch.Tensor,
                   call_frames: int | None = None) -> torch.Tensor:
    """``features`` (a module of one sequence ``[T, S, 3]`` with a ``n_frames`` argument) on every sequence of a
    packed batch (``pack_landmarks``): ``[B, ...]``, sample ``i`` equal to ``features`` of sequence ``i`` alone
    (frame-level outputs are zero after its length, up to the longest sequence). Sequences of similar length are
    computed together (``torch.func.vmap`` over NaN-padded groups, ``length_chunks`` with the device's
    ``CHUNK_CALL_FRAMES`` unless ``call_frames``)."""
    if call_frames is None:
        call_frames = CHUNK_CALL_FRAMES.get(frames.device.type, CHUNK_CALL_FRAMES["cuda"])
    sizes = lengths.tolist()
    with torch.no_grad():
        parts, order = [], []
        for chunk in length_chunks(sizes, call_frames):
            index = torch.as_tensor(chunk, device=lengths.device)
            parts.append(torch.func.vmap(features)(pad_packed(frames, sizes, chunk), lengths[index]))
            order += chunk
        if len(parts) == 1:
            out = parts[0]
        else:
            shape = torch.Size(max(dims) for dims in zip(*(p.shape for p in parts)))
            out = torch.cat([pad_to(p, shape) for p in parts])
        if order == sorted(order):                   # one group in batch order: nothing to put back
            return out
        return out[torch.argsort(torch.as_tensor(order, device=out.device))]


def resample_positions(frames: torch.Tensor, length: int, n_frames: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices ``i0``, ``i1`` and weight ``w`` ``[length]`` of a linear resample of the leading axis of
    ``frames`` (its first ``n_frames`` when padded) to ``length`` (the sampling of ``interpolate(mode="linear",
    align_corners=False)``)."""
    n = frame_count(frames, n_frames)
    pos = (torch.arange(length, dtype=frames.dtype, device=frames.device) + 0.5) * (n / length) - 0.5
    pos = torch.minimum(pos.clamp(min=0.0), n - 1)
    i0f = pos.floor()
    w = pos - i0f
    i0 = i0f.long()
    i1 = torch.minimum(i0 + 1, (n - 1).long())
    return i0, i1, w


def _expand(w: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``w`` ``[L]`` reshaped to broadcast over the trailing axes of ``like``."""
    return w.reshape([w.shape[0]] + [1] * (like.dim() - 1))


def linear_resample(f: torch.Tensor, length: int) -> torch.Tensor:
    """``f`` ``[T, ...]`` linearly resampled along its first axis to ``[length, ...]`` (Gather-based)."""
    i0, i1, w = resample_positions(f, length)
    w = _expand(w, f)
    return f.index_select(0, i0) * (1 - w) + f.index_select(0, i1) * w


def masked_linear_resample(f: torch.Tensor, valid: torch.Tensor, length: int, n_frames: torch.Tensor | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """NaN-aware linear resample of ``f`` ``[T, P, C]`` (zeros where missing) with ``valid`` ``[T, P]`` (0/1), of its
    first ``n_frames`` when padded.

    Returns ``([length, P, C], [length, P])``: the validity-weighted blend of the two neighbouring frames (the valid
    one alone when the other misses the point) and whether any neighbour with a non-zero weight was valid.
    """
    i0, i1, w = resample_positions(f, length, n_frames)
    w = _expand(w, valid)
    a = (1 - w) * valid.index_select(0, i0)
    b = w * valid.index_select(0, i1)
    den = a + b
    has = (den > 0).to(f.dtype)
    safe = den + (1 - has)
    out = (f.index_select(0, i0) * a.unsqueeze(-1) + f.index_select(0, i1) * b.unsqueeze(-1)) / safe.unsqueeze(-1)
    return out * has.unsqueeze(-1), has


def floor_div(num: torch.Tensor, den: int) -> torch.Tensor:
    """``floor(num / den)`` of integer-valued float ``num`` (exact below 2**24), exact in the float16 TFLite build
    too, where the converter multiplies by a float16 reciprocal of ``den`` (see ``fix_quotient``)."""
    return fix_quotient(num, torch.floor(num / float(den)), den)


def fix_quotient(num: torch.Tensor, q: torch.Tensor, den: int, corrections: int = 2) -> torch.Tensor:
    """``floor(num / den)`` from an estimate ``q`` that is at most ``corrections`` off, using exact integer products
    (an estimate through a float16 reciprocal is at most 1 off for quotients below about 2,000, 2 below 4,000)."""
    for _ in range(corrections):
        q = q + (num >= (q + 1.0) * den).to(num.dtype) - (num < q * den).to(num.dtype)
    return q


def nan_to_zero(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` ``[..., 3]`` with NaN points set to 0, and the point validity ``[...]`` (1 when all 3 are finite)."""
    valid = 1.0 - torch.isnan(x.sum(-1)).to(x.dtype)
    x0 = torch.where(torch.isnan(x), torch.zeros_like(x), x) * valid.unsqueeze(-1)
    return x0, valid


def dominant_side(x: torch.Tensor, keep: torch.Tensor, keep_mirrored: torch.Tensor, hand: slice
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Points ``keep`` of ``x`` ``[T, S, 3]`` (0 where missing) and their validity ``[T, len(keep)]``, read from the
    mirrored frame (``keep_mirrored``, the flip permutation of ``keep``, with ``x -> 1 - x``) when that shows more of
    the hand at positions ``hand`` of ``keep`` (the left hand has fewer missing points): a left-handed recording
    gives the points of the mirrored right-handed one. An arithmetic blend, no branch on data (exportable)."""
    pts, v = nan_to_zero(x.index_select(1, keep))
    mpts, mv = nan_to_zero(x.index_select(1, keep_mirrored))
    sign = torch.tensor([-1.0, 1.0, 1.0], dtype=x.dtype, device=x.device)
    offset = torch.tensor([1.0, 0.0, 0.0], dtype=x.dtype, device=x.device)
    mpts = (mpts * sign + offset) * mv.unsqueeze(-1)
    w = (mv[:, hand].sum() > v[:, hand].sum()).to(pts.dtype)
    return w * mpts + (1 - w) * pts, w * mv + (1 - w) * v


def masked_mean(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over time of ``h`` ``[B, L, D]``, counting only frames where ``mask`` is 1 (all frames if None)."""
    if mask is None:
        return h.mean(dim=1)
    m = mask.to(h.dtype).unsqueeze(-1)
    return (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


@dataclass
class MixPlan:
    """Mix hidden states ``lam * h + (1 - lam) * h[perm]`` at mixing point ``point`` of the model."""

    perm: torch.Tensor
    lam: float
    point: int


def apply_mix(h: torch.Tensor, plan: MixPlan | None, point: int) -> torch.Tensor:
    """``h`` mixed by ``plan`` when ``plan`` is for ``point``, else ``h`` unchanged."""
    if plan is None or plan.point != point:
        return h
    return plan.lam * h + (1.0 - plan.lam) * h[plan.perm]


def onehot_gather(x: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """``torch.gather`` along the last axis as a one-hot product (exports as Equal/Mul/ReduceSum, not GatherElements).

    Numerically identical to ``torch.gather(x, -1, index)`` for ``x`` ``[..., Q, K2]`` and ``index`` ``[..., Q, K]``.
    """
    if dim not in (-1, x.dim() - 1):
        return torch.gather(x, dim, index)
    classes = torch.arange(x.shape[-1], device=x.device)
    onehot = (index.unsqueeze(-1) == classes).to(x.dtype)                   # [..., Q, K, K2]
    return (onehot * x.unsqueeze(-2)).sum(-1)


class _TorchWithOnehotGather:
    """``torch`` as seen by the DeBERTa-v2 module during export: the same, except ``gather``."""

    gather = staticmethod(onehot_gather)

    def __getattr__(self, name: str):
        return getattr(torch, name)


@contextmanager
def export_friendly():
    """While exporting, DeBERTa-v2's relative-position ``torch.gather`` becomes ``onehot_gather``: onnx2tf cannot
    convert that GatherElements in strict mode, and without strict mode it mis-lays-out other parts of the graph."""
    from transformers.models.deberta_v2 import modeling_deberta_v2 as deberta
    original = deberta.torch
    deberta.torch = _TorchWithOnehotGather()
    try:
        yield
    finally:
        deberta.torch = original


class Rotary(nn.Module):
    """Rotary position embedding tables ``cos``/``sin`` ``[max_len, head_dim]``, built once, looked up by gather."""

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head size, got {head_dim}")
        inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        ang = torch.arange(max_len, dtype=torch.float32)[:, None] * inv[None, :]
        ang = torch.cat([ang, ang], dim=-1)
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``cos``, ``sin`` ``[T, head_dim]`` for the time axis (dim 1) of ``x`` ``[B, T, ...]``."""
        pos = torch.ones_like(x[0, :, 0], dtype=torch.long).cumsum(0) - 1      # 0..T-1 without a dynamic slice
        return self.cos[pos], self.sin[pos]


def key_padding_bias(valid: torch.Tensor) -> torch.Tensor:
    """``[B, 1, 1, T]`` additive attention bias of a float frame mask ``[B, T]``: 0 for real frames, -1e4 for
    padding (padded keys get no attention)."""
    return ((1.0 - valid) * -1e4)[:, None, None, :]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``[B, H, T, D]`` by the per-position angles (the rotate-half convention)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin
