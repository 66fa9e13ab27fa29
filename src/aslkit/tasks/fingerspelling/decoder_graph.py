"""The grader graph of attention-decoder models (``model_name=f1``): the encoder once, then greedy autoregressive
decoding, one token per output row, for one model or a one-file ensemble of several (their decoders' logits
averaged at every step, F1's submission).

The graph is two graphs that pass flat float vectors, the decoding state (``FlatState``), to each other:

* ``DecoderStart``: grader input ``[T, 3 * P]`` -> the first state: the changing part (the output row, the start
  token, the first position, empty self-attention caches, whether the fallback phrase answers: fewer than
  ``min_hand_frames`` hand frames, or a confidence below the model's threshold when its head was trained), then the
  fixed part (the encoder's cross-attention keys/values of every decoder layer, computed once per phrase, and the
  padding bias of the encoder frames).
* ``DecoderStep``: (changing part, fixed part) -> changing part: one greedy step of every model with its fixed-size
  key/value cache, the argmax of the averaged logits (padding once the end token was written), the output row, first
  in the state, and ``done``: the end token was written (with the fallback: the fallback phrase's last row was). The
  fixed part is a second input, not carried through the step (over the encoder frames, it is most of the state).

``F1GraderModel`` runs the start graph and then the step graph until ``done`` or ``max_phrase + 1`` steps; its output
rows ``[n, 63]`` are the states' first entries (rows after ``done`` would only be padding, which the grader drops).
Conversion exports the two graphs separately and runs the step in a loop inside the TFLite graph
(``TaskExport.iterated``): converted whole, an unrolled decoder made onnx2tf's per-node checks grow with the square of
the graph (> 25 min for 32 steps at ci size), and the loop stops at the end token like F1's conditional skip.
"""
from __future__ import annotations

from math import prod

import numpy as np
import torch
from torch import nn

from aslkit import constants as C
from aslkit.data.fs import encode_phrase
from aslkit.tasks.base import IteratedGraph
from aslkit.tasks.fingerspelling.frames import grader_frames, hand_frames
from aslkit.tensor_ops import key_padding_bias


class FlatState:
    """Named tensors of fixed shapes packed into flat float vectors: the ``changing`` ones (``[size]``, rewritten at
    every decoding step), then the ``fixed`` ones (``[fixed_size]``, the same at every step, passed to the step
    graph as a second input so that a step does not copy them)."""

    def __init__(self, changing: dict[str, tuple[int, ...]], fixed: dict[str, tuple[int, ...]]):
        self.shapes = {**changing, **fixed}
        self.offsets, start = {}, 0
        for name, shape in self.shapes.items():
            self.offsets[name] = (start, start + prod(shape))
            start += prod(shape)
        self.size = sum(prod(shape) for shape in changing.values())
        self.fixed_size = start - self.size

    def pack(self, parts: dict[str, torch.Tensor], changing_only: bool = False) -> torch.Tensor:
        """The vector ``[size + fixed_size]`` of ``parts`` (every name, any dtype), or ``[size]`` of the changing
        ones."""
        names = [k for k in self.shapes if not changing_only or self.offsets[k][0] < self.size]
        missing = set(names) - set(parts)
        if missing:
            raise KeyError(f"state parts missing: {sorted(missing)}")
        return torch.cat([parts[k].reshape(-1).float() for k in names])

    def unpack(self, state: torch.Tensor, fixed: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every named tensor, in its shape, of the changing ``state`` ``[size]`` and the ``fixed`` ``[fixed_size]``."""
        return {k: (state[a:b] if a < self.size else fixed[a - self.size:b - self.size]).reshape(self.shapes[k])
                for k, (a, b) in self.offsets.items()}


def decoder_state(models: list[nn.Module], frames: int) -> FlatState:
    """The state of greedy decoding with ``models`` over ``frames`` encoder frames: the output row first; the
    encoder's padding bias and cross-attention keys/values fixed."""
    steps = models[0].cfg.max_phrase + 1
    changing: dict[str, tuple[int, ...]] = {"row": (C.TOKENS,), "token": (1, C.TOKENS), "done": (1,),
                                            "fallback": (1,), "position": (steps,)}
    fixed: dict[str, tuple[int, ...]] = {"memory_bias": (1, 1, 1, frames)}
    for m, model in enumerate(models):
        heads, dim = model.cfg.decoder_heads, model.cfg.dim
        for i in range(model.cfg.decoder_layers):
            for kv in "kv":
                changing[f"cache{m}.{i}.{kv}"] = (1, heads, steps, dim // heads)
                fixed[f"cross{m}.{i}.{kv}"] = (1, heads, frames, dim // heads)
    return FlatState(changing, fixed)


def model_parts(parts: dict[str, torch.Tensor], kind: str, m: int, layers: int) -> list[tuple]:
    """Model ``m``'s per-layer (keys, values) of ``kind`` (``cross`` or ``cache``) in a state's parts."""
    return [(parts[f"{kind}{m}.{i}.k"], parts[f"{kind}{m}.{i}.v"]) for i in range(layers)]


class DecoderStart(nn.Module):
    """Grader input ``[T, 3 * P]`` -> the first decoding state (see the module docstring)."""

    def __init__(self, features: nn.Module, models: list[nn.Module], state: FlatState, min_hand_frames: float,
                 threshold: float):
        super().__init__()
        self.features, self.models, self.state = features, nn.ModuleList(models), state
        self.n_landmarks, self.max_frames = len(features.landmarks), features.cfg.max_frames
        self.min_hand_frames, self.threshold = float(min_hand_frames), float(threshold)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x, valid = grader_frames(inputs, self.n_landmarks, self.max_frames)
        mask = valid.unsqueeze(0)
        feats = self.features(x).unsqueeze(0)
        steps = self.state.shapes["position"][0]
        parts = {"row": torch.zeros(C.TOKENS), "token": nn.functional.one_hot(torch.tensor([C.TOKEN_START]), C.TOKENS),
                 "done": torch.zeros(1), "position": torch.eye(steps)[0],
                 "memory_bias": key_padding_bias(mask.float())}
        confidence = torch.zeros(())
        for m, model in enumerate(self.models):
            memory = model.encoder(feats, mask)
            empty = model.decoder.empty_cache(1, steps, memory.device, memory.dtype)
            for i, ((k, v), (ck, cv)) in enumerate(zip(model.decoder.cross(memory), empty)):
                parts |= {f"cross{m}.{i}.k": k, f"cross{m}.{i}.v": v, f"cache{m}.{i}.k": ck, f"cache{m}.{i}.v": cv}
            confidence = confidence + torch.sigmoid(model.confidence(memory[:, :1])).reshape(()) / len(self.models)
        few_hands = hand_frames(x, self.features.landmarks) < self.min_hand_frames
        parts["fallback"] = (few_hands | (confidence < self.threshold)).float()
        return self.state.pack(parts)


class DecoderStep(nn.Module):
    """State -> state: one greedy step of every model, their logits averaged (see the module docstring)."""

    def __init__(self, models: list[nn.Module], state: FlatState, fallback_rows: torch.Tensor):
        super().__init__()
        self.models, self.state = nn.ModuleList(models), state
        self.register_buffer("fallback_rows", fallback_rows, persistent=False)      # [steps, TOKENS]
        self.register_buffer("fallback_done", last_rows(fallback_rows, C.TOKEN_PAD), persistent=False)  # [steps]
        self.register_buffer("classes", torch.arange(C.TOKENS), persistent=False)

    def forward(self, state: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        p = self.state.unpack(state, fixed)
        logits, out = 0.0, dict(p)
        for m, model in enumerate(self.models):
            layers = model.cfg.decoder_layers
            step_logits, cache = model.decoder.step(p["token"], p["position"], model_parts(p, "cross", m, layers),
                                                    p["memory_bias"], model_parts(p, "cache", m, layers))
            logits = logits + step_logits / len(self.models)
            for i, (k, v) in enumerate(cache):
                out |= {f"cache{m}.{i}.k": k, f"cache{m}.{i}.v": v}
        best = torch.where(p["done"] > 0.5, torch.full_like(self.classes[:1], C.TOKEN_PAD), logits.argmax(-1))
        token = (best[:, None] == self.classes[None, :]).float()                  # [1, TOKENS]
        fallback = p["fallback"]
        done = torch.maximum(p["done"], token[:, C.TOKEN_END])
        out |= {"token": token, "done": fallback * (p["position"] * self.fallback_done).sum(0, keepdim=True)
                + (1.0 - fallback) * done,
                "row": fallback * (p["position"] @ self.fallback_rows) + (1.0 - fallback) * token[0],
                "position": torch.cat([torch.zeros_like(p["position"][:1]), p["position"][:-1]])}
        return self.state.pack(out, changing_only=True)


def last_rows(rows: torch.Tensor, pad: int) -> torch.Tensor:
    """``[steps]``: 1 from the last row of ``rows`` ``[steps, classes]`` that is not ``pad`` on (every row when all
    are): after writing it, a graph answering ``rows`` is done."""
    written = (rows.argmax(-1) != pad).nonzero()
    last = int(written[-1]) if len(written) else 0
    return (torch.arange(len(rows)) >= last).float()


def phrase_rows(phrase: str, rows: int, pad: int, classes: int) -> torch.Tensor:
    """``[rows, classes]`` one-hot rows spelling ``phrase`` (cut to ``rows``), then id ``pad``: the fallback
    answer of a grader graph."""
    ids = np.full(rows, pad, dtype=np.int64)
    fb = encode_phrase(phrase)[:rows]
    ids[: len(fb)] = fb
    return nn.functional.one_hot(torch.as_tensor(ids), classes).float()


class F1GraderModel(nn.Module):
    """Grader input ``[T, 3 * P]`` -> ``[n <= max_phrase + 1, 63]`` one-hot token rows of the greedy phrase of one model
    or of the averaged logits of several (``models``: same features, same ``max_phrase``)."""

    def __init__(self, features: nn.Module, models: nn.Module | list[nn.Module], fallback: str = "",
                 min_hand_frames: int = 0, use_confidence: bool = False):
        super().__init__()
        models = list(models) if isinstance(models, (list, tuple, nn.ModuleList)) else [models]
        if len({m.cfg.max_phrase for m in models}) != 1:
            raise ValueError(f"ensemble members decode different lengths: {[m.cfg.max_phrase for m in models]}")
        self.features, self.models = features, nn.ModuleList(models)
        self.n_landmarks, self.max_frames = len(features.landmarks), features.cfg.max_frames
        self.steps = models[0].cfg.max_phrase + 1
        threshold = float(np.mean([m.cfg.confidence_threshold for m in models])) if use_confidence else -1.0
        state = decoder_state(models, self.max_frames)
        self.start = DecoderStart(features, models, state, min_hand_frames, threshold)
        self.step = DecoderStep(models, state, phrase_rows(fallback, self.steps, C.TOKEN_PAD, C.TOKENS))

    def iterated(self) -> IteratedGraph:
        """The graph as the kit converts it: the start graph, then the step graph until ``done`` (at most
        ``steps`` times)."""
        state = self.start.state
        return IteratedGraph(self.start, self.step, self.steps, C.TOKENS, state.size, state.fixed_size,
                             stop_index=state.offsets["done"][0])

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        first, rows = self.start(inputs), []
        size, done = self.start.state.size, self.start.state.offsets["done"][0]
        state, fixed = first[:size], first[size:]
        for _ in range(self.steps):
            state = self.step(state, fixed)
            rows.append(state[: C.TOKENS])
            if state[done] > 0.5:
                break
        return torch.stack(rows)
