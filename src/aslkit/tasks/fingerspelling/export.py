"""The asl-fingerspelling grader graph: selected wide columns in, the decoded phrase as one-hot rows out.

``FSGraderModel`` takes exactly what Kaggle's grader feeds (``inputs`` float32 ``[T, 390]``: the columns of
``inference_args.json`` = ``constants.FS_130_COLUMNS``, all x then all y then all z, NaNs included) and returns
``outputs`` ``[ceil(max_frames / stride), 60]``. The grader takes the per-row argmax and maps it through the
character map, dropping unknown indices, with no CTC collapse; so the graph does the greedy CTC decoding itself: a
row carries its frame's best character only where it differs from the previous frame's, otherwise (and for blanks
and padding rows) index 59, which the grader drops. Every shape after the frame selection is static
(``max_frames``): shorter sequences are padded with NaN frames, longer ones subsampled
(``frames.padded_frame_positions``, the same frames as in training). When fewer than ``min_hand_frames`` frames show
a hand, the rows spell the fallback phrase.

``F1GraderModel`` (``decoder_graph``) is the graph of attention-decoder models (``model_name=f1``): the same input
and frames, the encoder, then greedy autoregressive decoding inside the graph over ``max_phrase + 1`` steps with a
key/value cache; each output row ``[max_phrase + 1, 63]`` is one token, and after the end token the rows carry
padding (59), which the grader drops. The fallback phrase also answers when the confidence head (if it was trained)
is below its threshold.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from aslkit import constants as C
from aslkit.data.fs import landmarks_to_blocks, read_fs_file
from aslkit.runs import (
    checkpoint_path,
    ensemble_record,
    is_ensemble,
    load_checkpoint,
    read_data_record,
    read_run_config,
)
from aslkit.tasks.base import TaskExport, degenerate_inputs
from aslkit.tasks.fingerspelling.decoder_graph import F1GraderModel, phrase_rows
from aslkit.tasks.fingerspelling.evaluate import fs_score
from aslkit.tasks.fingerspelling.families import FAMILIES, attention_decoder
from aslkit.tasks.fingerspelling.frames import grader_frames, hand_frames
from aslkit.tasks.fingerspelling.grade import LATENCY_BUDGET_MS, held_out_rows


def grader_decode(output: np.ndarray) -> str:
    """The grader's line: ``"".join(rev_character_map.get(s, "") for s in np.argmax(output, axis=1))``."""
    rev = dict(enumerate(C.CHARACTERS))
    return "".join(rev.get(int(s), "") for s in np.argmax(output, axis=1))


def wide_columns(landmarks: np.ndarray | None = None) -> list[str]:
    """The selected columns of the graph's input (and of ``inference_args.json``), in order."""
    return C.FS_130_COLUMNS if landmarks is None else C.fs_columns(landmarks)


def inference_args(landmarks: np.ndarray | None = None) -> str:
    """``inference_args.json`` text: ``{"selected_columns": [...]}`` from the same constant the graph reshapes by."""
    return json.dumps({"selected_columns": wide_columns(landmarks)})


class FSGraderModel(nn.Module):
    """Grader input ``[T, 3 * P]`` (block order, NaNs) -> ``[max_frames, classes]`` one-hot rows of the phrase."""

    def __init__(self, features: nn.Module, model: nn.Module, fallback: str = "", min_hand_frames: int = 0):
        super().__init__()
        self.features, self.model = features, model
        self.n_landmarks = len(features.landmarks)
        self.max_frames = features.cfg.max_frames
        self.min_hand_frames = float(min_hand_frames)
        n_classes, rows = model.cfg.num_classes, -(-self.max_frames // model.cfg.stride)
        self.register_buffer("fallback_rows", phrase_rows(fallback, rows, C.CTC_BLANK, n_classes), persistent=False)
        self.register_buffer("classes", torch.arange(n_classes), persistent=False)

    def frames(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return grader_frames(inputs, self.n_landmarks, self.max_frames)

    def iterated(self) -> None:
        """Converted whole (``F1GraderModel.iterated``: converted as a start and a step graph)."""
        return None

    def decoded_ids(self, logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Greedy CTC decoding as a fixed-length row of ids: the best id where it changes, else the blank."""
        best = logits.argmax(-1)
        prev = torch.cat([torch.full_like(best[:1], -1), best[:-1]])
        return torch.where((best != prev) & valid, best, torch.full_like(best, C.CTC_BLANK))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x, valid = self.frames(inputs)
        logits = self.model(self.features(x).unsqueeze(0), valid.unsqueeze(0))[0]
        out_valid = self.model.output_mask(valid.unsqueeze(0))[0]
        rows = (self.decoded_ids(logits, out_valid)[:, None] == self.classes[None, :]).float()
        use_fallback = (hand_frames(x, self.features.landmarks) < self.min_hand_frames).float()
        return use_fallback * self.fallback_rows + (1.0 - use_fallback) * rows


def trained_modules(run: str | Path, checkpoint: str = "best") -> tuple[nn.Module, nn.Module, object]:
    """The feature module, the trained model and the config of a fingerspelling run folder."""
    data, cfg = read_data_record(run), read_run_config(run)
    features, model = FAMILIES.build_modules(cfg, np.array(data["subset"]))
    model.load_state_dict(load_checkpoint(checkpoint_path(run, checkpoint))["model"])
    return features, model.eval(), cfg


def member_runs(run: str | Path, checkpoint: str = "best") -> tuple[list[Path], str]:
    """The run folders a grader graph is built from (an ensemble's members, else the run) and their checkpoint."""
    if is_ensemble(run):
        rec = ensemble_record(run)
        return [Path(m) for m in rec["members"]], rec.get("checkpoint", checkpoint)
    return [Path(run)], checkpoint


def fs_grader_graph(cfg, features: nn.Module, models: list[nn.Module], fallback: str = "",
                    min_hand_frames: int = 0) -> nn.Module:
    """The grader graph of models of config ``cfg``: ``FSGraderModel`` for CTC families (one model),
    ``F1GraderModel`` for attention decoders (``OBJECTIVE = "seq2seq"``; several models: their decoder logits
    averaged; the confidence fallback when ``cfg.recipe.confidence_from`` trained the head)."""
    if attention_decoder(cfg.model_name):
        return F1GraderModel(features, models, fallback, min_hand_frames,
                             use_confidence=bool(cfg.recipe.confidence_from)).eval()
    if len(models) > 1:
        raise ValueError(f"model_name={cfg.model_name}: CTC models have no one-file ensemble")
    return FSGraderModel(features, models[0], fallback, min_hand_frames).eval()


def load_fs_grader_model(run: str | Path, checkpoint: str = "best") -> nn.Module:
    """The trained model of a fingerspelling run folder as its grader graph (``fs_grader_graph``; fallback from
    data.json), of every member for an ensemble folder."""
    data = read_data_record(run)
    runs, checkpoint = member_runs(run, checkpoint)
    members = [trained_modules(r, checkpoint) for r in runs]
    cfgs = [c for _, _, c in members]
    if len({bool(c.recipe.confidence_from) for c in cfgs}) > 1:
        raise ValueError(f"{run}: some members trained a confidence head and some did not")
    return fs_grader_graph(cfgs[0], members[0][0], [m for _, m, _ in members], data.get("fallback_phrase", ""),
                           data.get("min_hand_frames", 0))


def fs_validation_sequences(run: str | Path, limit: int = 0) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Grader inputs ``[T, 390]`` of a run's validation sequences, read from the original parquet files with the
    selected columns exactly as the grader does, and their ``oof.csv`` rows (same order)."""
    data, oof = held_out_rows(run, limit)
    cols = wide_columns(np.array(data["subset"]))
    seqs: dict[int, np.ndarray] = {}
    for rel, grp in oof.groupby("path", sort=False):
        seqs.update(read_fs_file(Path(data["data_dir"]) / rel, cols, grp["sequence_id"]))
    return [seqs[int(s)] for s in oof["sequence_id"]], oof.drop(columns="path")


def degenerate_fs_inputs(landmarks: np.ndarray | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """``tasks.base.degenerate_inputs`` of the fingerspelling landmarks as grader rows ``[T, 3 * P]``."""
    landmarks = C.FS_130 if landmarks is None else landmarks
    return {k: landmarks_to_blocks(x) for k, x in degenerate_inputs(landmarks, seed).items()}


def phrase_parity(texts: list[str], ref: list[str], labels: list[str]) -> dict:
    """How a build's decoded phrases compare with torch's: share of equal strings, both scores, their gap."""
    s_build, s_torch = fs_score(labels, texts), fs_score(labels, ref)
    return {"agreement": float(np.mean([a == b for a, b in zip(texts, ref)])), "score": s_build,
            "torch_score": s_torch, "score_diff": abs(s_build - s_torch), "n_parity": len(texts)}


def compare_phrases(outs: list[np.ndarray], ref: list[np.ndarray], oof: pd.DataFrame) -> dict:
    """asl-fingerspelling parity: decoded phrases (the grader's decoding) equal to torch's, and the two scores."""
    return phrase_parity([grader_decode(o) for o in outs], [grader_decode(o) for o in ref],
                         list(oof["phrase"].iloc[:len(outs)]))


def task_export(run: Path, checkpoint: str = "best", parity_limit: int = 0) -> TaskExport:
    """What ``aslkit convert`` needs from a fingerspelling run: the grader graph (selected wide columns in, decoded
    one-hot rows out), edge cases, the validation sequences read as the grader does, the phrase comparison and
    ``inference_args.json``."""
    model = load_fs_grader_model(run, checkpoint)
    runs, ckpt = member_runs(run, checkpoint)
    n = model.n_landmarks
    seqs, oof = fs_validation_sequences(run, parity_limit) if (run / "oof.csv").is_file() else ([], None)
    return TaskExport(model, torch.rand(23, 3 * n), (None, 3 * n), degenerate_fs_inputs(model.features.landmarks),
                      seqs, oof, compare_phrases, {"inference_args.json": inference_args(model.features.landmarks)},
                      [checkpoint_path(r, ckpt) for r in runs], LATENCY_BUDGET_MS,
                      model.iterated())
