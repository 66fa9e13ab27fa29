"""``aslkit align`` (F5's CTC alignment for CutMix): every sequence of a run's prepared cache aligned to its phrase by
the run's trained CTC model, stored as ``<run>/alignment.parquet`` (sequence_id, character k, first and last frame
of the cache sequence), and CutMix that cuts two sequences between two characters at their aligned boundary.

The alignment runs the model on the un-augmented sequence as the training loop feeds it (at most ``max_frames``
frames, ``frames.frame_positions``); an output frame ``j`` of a model with time stride ``s`` covers the model's input
frames ``j * s .. j * s + s - 1``, which map back to frames of the cached sequence. Sequences too short for their
phrase get no alignment (CutMix then cuts them at a fraction, as ``outer_cutmix`` does).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from aslkit.data.cache import write_atomic
from aslkit.data.errors import DataError, require_columns
from aslkit.data.fs import encode_phrase
from aslkit.runs import run_cache
from aslkit.tasks.fingerspelling.augment import cut_index, outer_cutmix
from aslkit.tasks.fingerspelling.ctc_ops import character_spans, ctc_forced_align
from aslkit.tasks.fingerspelling.export import FSGraderModel, load_fs_grader_model
from aslkit.tasks.fingerspelling.frames import frame_positions
from aslkit.tasks.fingerspelling.prepare import PreparedFS

ALIGNMENT_FILE = "alignment.parquet"
COLUMNS = ["sequence_id", "char", "start", "end"]


def sequence_spans(features: torch.nn.Module, model: torch.nn.Module, x: np.ndarray, phrase: str
                   ) -> np.ndarray | None:
    """First and last frame ``[len(phrase), 2]`` of every character of one cached sequence ``[T, P, 3]``, or None
    when its frames cannot hold the phrase."""
    positions = frame_positions(len(x), features.cfg.max_frames)
    with torch.no_grad():
        feats = features(torch.from_numpy(np.ascontiguousarray(x[positions], dtype=np.float32)))
        logits = model(feats[None], torch.ones(1, len(positions), dtype=torch.bool))[0]
    try:
        states, _ = ctc_forced_align(logits.float().log_softmax(-1).numpy(), encode_phrase(phrase))
    except ValueError:
        return None
    stride = model.cfg.stride
    spans = character_spans(states, len(phrase))
    first, last = spans[:, 0] * stride, np.minimum(spans[:, 1] * stride + stride - 1, len(positions) - 1)
    return np.stack([positions[first], positions[last]], axis=1)


def align_run(run: str | Path, checkpoint: str = "best") -> Path:
    """``<run>/alignment.parquet``: every sequence of the run's cache aligned by its trained model (written
    atomically); the number of sequences too short for their phrase is printed."""
    run = Path(run)
    _, prepared = run_cache(run, PreparedFS)
    graph = load_fs_grader_model(run, checkpoint)
    if not isinstance(graph, FSGraderModel):
        raise ValueError(f"{run}: CTC alignment needs a CTC model (model_name=ctc), not {type(graph.model).__name__}")
    features, model = graph.features, graph.model
    parts, skipped = [], 0
    for row, (sid, phrase) in enumerate(zip(prepared.index["sequence_id"], prepared.index["phrase"])):
        spans = sequence_spans(features, model, np.asarray(prepared[row]), str(phrase))
        if spans is None:
            skipped += 1
            continue
        parts.append(pd.DataFrame({"sequence_id": int(sid), "char": np.arange(len(spans)), "start": spans[:, 0],
                                   "end": spans[:, 1]}))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    path = run / ALIGNMENT_FILE
    write_atomic(path, table.astype("int64").to_parquet(index=False))
    print(f"alignment: {len(parts)} sequences aligned, {skipped} too short for their phrase -> {path}")
    return path


def read_alignment(run: str | Path) -> dict[int, np.ndarray]:
    """``{sequence_id: [n_chars, 2] first and last frame}`` of ``<run>/alignment.parquet`` (``aslkit align``)."""
    path = Path(run) / ALIGNMENT_FILE
    if not path.is_file():
        raise DataError(path, f"no alignment (run aslkit align {run} first)")
    table = pd.read_parquet(path)
    require_columns(path, table.columns, COLUMNS)
    table = table.sort_values(["sequence_id", "char"], kind="stable")
    return {int(sid): g[["start", "end"]].to_numpy(np.int64) for sid, g in table.groupby("sequence_id", sort=False)}


def boundary(spans: np.ndarray, k: int) -> int:
    """The frame where a sequence is cut before its character ``k`` (``1 <= k < n_chars``): the middle of the gap
    between the last frame of character ``k - 1`` and the first of character ``k``."""
    return int((spans[k - 1, 1] + 1 + spans[k, 0] + 1) // 2)


def aligned_cutmix(x1: np.ndarray, phrase1: str, spans1: np.ndarray | None, x2: np.ndarray, phrase2: str,
                   spans2: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """``outer_cutmix`` with the cuts between two characters at their aligned boundary (F5): one fraction picks the
    character cut ``k = round(len(phrase) * f)`` of both phrases, the frames are cut at ``boundary(spans, k)``, so
    ``x = a[c_a:] ++ b[:c_b]`` holds exactly the characters of ``phrase = pa[k_a:] + pb[:k_b]``. Without both
    alignments (or a phrase of one character) it is ``outer_cutmix``. Same draws as ``outer_cutmix``."""
    if spans1 is None or spans2 is None or min(len(phrase1), len(phrase2)) < 2:
        return outer_cutmix(x1, phrase1, x2, phrase2, rng)
    if x1.ndim != 3 or x2.ndim != 3 or x1.shape[1:] != x2.shape[1:]:
        raise ValueError(f"aligned_cutmix: sequences must be [T, S, 3] with the same S, got {x1.shape} and "
                         f"{x2.shape}")
    f = rng.random()
    (a, pa, sa), (b, pb, sb) = (((x2, phrase2, spans2), (x1, phrase1, spans1)) if rng.random() < 0.5 else
                                ((x1, phrase1, spans1), (x2, phrase2, spans2)))
    k_a, k_b = cut_index(len(pa), f), cut_index(len(pb), f)
    return np.concatenate([a[boundary(sa, k_a):], b[:boundary(sb, k_b)]]), pa[k_a:] + pb[:k_b]
