"""The contract between the stages and a competition plug-in.

* ``TaskPlugin``: what a competition provides (presets, families, preparation, the loop's parts, conversion,
  grading, validation, zoo members);
* ``TaskParts`` and the ``Objective`` protocol: what the one training loop needs from a task;
* ``FamilyRegistry``: the model families of a competition, picked by ``model_name``;
* ``TaskExport`` and ``degenerate_inputs``: what the conversion stage needs to build and check a TFLite graph.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from aslkit import constants as C
from aslkit.config import ConfigError

Sample = Callable[[int, "np.random.Generator | None"], tuple[np.ndarray, Any]]


class Objective(Protocol):
    """How the loop turns a task's samples into batches, losses, predictions, metrics and OOF files."""

    score_key: str                  # the validation metric that picks the best epoch (higher is better)
    train_stat: str | None          # the training-progress statistic it reports (e.g. train_acc), if any

    def collate(self, batch: list) -> tuple[Any, Any, torch.Tensor]: ...      # raw samples -> padded landmarks

    def featurize(self, raw: Any) -> Any: ...        # collated landmarks -> model inputs (whole batch, same device)

    def train_step(self, model: nn.Module, inputs: Any, targets: Any, rng: np.random.Generator,
                   teachers: Sequence[Any] = ()) -> tuple[Any, torch.Tensor]: ...

    def forward(self, model: nn.Module, inputs: Any) -> Any: ...

    def loss(self, outputs: Any, targets: Any, inputs: Any, reduction: str = "mean") -> torch.Tensor: ...

    def hits(self, outputs: Any, targets: Any, inputs: Any) -> int: ...

    def predictions(self, outputs: Any, inputs: Any) -> list: ...

    def metrics(self, preds: list, idx: np.ndarray, index: pd.DataFrame, loss_sum: float) -> dict[str, float]: ...

    def save_oof(self, run: Path, preds: list, idx: np.ndarray, index: pd.DataFrame) -> None: ...


@dataclass
class TaskParts:
    """What the loop needs from a task."""

    source: Any                     # indexable: i -> raw landmarks [T, S, 3]
    index: pd.DataFrame             # one row per sample: sequence_id, participant_id, fold (+ task columns)
    features: nn.Module
    model: nn.Module
    objective: Objective
    sample: Sample                  # (row, rng or None) -> (raw landmarks, target)
    data: dict = field(default_factory=dict)      # where the data came from (saved as data.json in the run)
    on_split: Callable[[np.ndarray], np.ndarray] | None = None   # training rows -> rows to sample (e.g. weights)


@dataclass(frozen=True)
class FamilyEntry:
    """Where a model family lives and the fixed overrides that make the variant."""

    module: str
    overrides: dict = field(default_factory=dict)


class FamilyRegistry:
    """The model families of one competition, picked by ``TrainConfig.model_name`` (empty: the default family).

    A family is a package that defines ``DESCRIPTION`` (one line for tables), ``PRESETS`` (``{profile: TrainConfig
    overrides}`` applied after the task's preset), ``build_modules(cfg, subset) -> (features, model)`` (the feature
    module, exported inside the TFLite graph, and the untrained model) and ``build_augment(cfg, subset)`` (its
    per-sample training augmentation of raw sequences). Names map to a package and fixed overrides (a variant such
    as I6's two sequence lengths is a name of its own).
    """

    def __init__(self, task: str, entries: dict[str, FamilyEntry], default: str):
        self.task, self.entries, self.default = task, dict(entries), default

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __iter__(self):
        return iter(self.entries)

    def resolve(self, name: str) -> str:
        """``name``, or the default family for an empty name."""
        return name or self.default

    def module(self, name: str) -> ModuleType:
        """The package of family ``name`` (ValueError naming the known families)."""
        name = self.resolve(name)
        if name not in self.entries:
            raise ValueError(f"unknown model_name {name!r}; known {self.task} families: {sorted(self.entries)}")
        return importlib.import_module(self.entries[name].module)

    def presets(self, name: str, profile: str | None) -> list[dict[str, Any]]:
        """The overrides family ``name`` adds to a config: its profile preset, then the variant's fixed overrides."""
        mod = self.module(name)
        out = []
        if profile:
            if profile not in mod.PRESETS:
                raise ConfigError(f"family {self.resolve(name)!r} has no preset {profile!r}; "
                                  f"known: {sorted(mod.PRESETS)}")
            out.append(mod.PRESETS[profile])
        out.append(self.entries[self.resolve(name)].overrides)
        return out

    def build_modules(self, cfg: Any, subset: np.ndarray) -> tuple[nn.Module, nn.Module]:
        """The feature module (eval mode) and the untrained model of a run config."""
        features, model = self.module(cfg.model_name).build_modules(cfg, np.asarray(subset))
        return features.eval(), model

    def build_augment(self, cfg: Any, subset: np.ndarray) -> Any:
        """The per-sample training augmentation of the run config's family."""
        return self.module(cfg.model_name).build_augment(cfg, np.asarray(subset))

    def is_reference(self, name: str) -> bool:
        """Whether family ``name`` is a yardstick (``REFERENCE = True``, the non-deep baseline): in every zoo table,
        never in an ensemble."""
        return bool(getattr(self.module(name), "REFERENCE", False))

    def description(self, name: str) -> str:
        """The family's one-line description (the name itself when it is not a family)."""
        return self.module(name).DESCRIPTION if name in self.entries else name


@dataclass
class IteratedGraph:
    """A grader graph converted as two graphs: ``start`` (grader input -> a flat vector ``[state_size +
    fixed_size]``: the state, then a part that stays fixed), then ``step`` ((state, fixed part) -> state) in a loop
    inside the TFLite graph, at most ``steps`` times and until the state's entry ``stop_index`` exceeds 0.5 (-1:
    never); the output rows are the first ``row_width`` entries of each step's state (autoregressive decoding without
    one huge unrolled export)."""

    start: nn.Module
    step: nn.Module
    steps: int
    row_width: int
    state_size: int
    fixed_size: int
    stop_index: int = -1


@dataclass
class TaskExport:
    """What conversion needs from a task: the grader-input module, its input, edge cases, validation data and how
    a build's outputs are compared with torch's."""

    model: nn.Module
    example: torch.Tensor
    input_shape: tuple
    degenerate: dict[str, np.ndarray]
    seqs: list[np.ndarray]
    oof: pd.DataFrame | None
    compare: Callable[[list[np.ndarray], list[np.ndarray], pd.DataFrame], dict]
    extra_files: dict[str, str] = field(default_factory=dict)   # written next to model.tflite (inference_args.json)
    sources: list[Path] = field(default_factory=list)           # the checkpoints the module was built from
    latency_budget_ms: float = 0.0       # the competition's mean time per sequence (0: no latency gate)
    iterated: IteratedGraph | None = None     # convert as a start graph and a repeated step graph (same outputs)


def degenerate_inputs(landmarks: np.ndarray | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Edge cases every build must answer with finite outputs: 1 and 2 frames, no hands, all NaN, 1,000 frames,
    as ``[T, P, 3]`` sequences of ``landmarks`` (default: all 543)."""
    landmarks = np.arange(C.ROWS_PER_FRAME) if landmarks is None else np.asarray(landmarks)
    n_landmarks = len(landmarks)
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.8, (40, n_landmarks, 3)).astype(np.float32)
    no_hands = base.copy()
    no_hands[:, np.isin(landmarks, C.HANDS)] = np.nan
    return {"1 frame": base[:1], "2 frames": base[:2], "all-NaN hands": no_hands,
            "all-NaN input": np.full((12, n_landmarks, 3), np.nan, np.float32),
            "1000 frames": rng.uniform(0.2, 0.8, (1000, n_landmarks, 3)).astype(np.float32)}


@dataclass(frozen=True)
class TaskPredict:
    """What ``aslkit predict`` needs from a task: the torch module of a run on the grader's input, the columns it
    reads, new input read exactly as the grader reads it, and the answer read off the outputs."""

    grader_module: Callable[[Path, str], nn.Module]      # (run folder, checkpoint) -> module on the grader's input
    input_columns: Callable[[nn.Module], list[str] | None]   # module -> its selected columns (None: all)
    read_inputs: Callable[[Path, list[str] | None, int | None], list[tuple[int | str, np.ndarray]]]  # (file,
    # selected columns, one sequence_id or None) -> [(id, grader input)]
    answer: Callable[[np.ndarray, int], dict]            # (outputs, top k) -> the answer (signs or phrase)
    answer_text: Callable[[dict], str]                   # the answer as one line
    landmarks: Callable[[Path, int | None], np.ndarray]  # (file, sequence_id) -> [T, 543, 3] (plots)
    held_out: Callable[[Path, int], pd.DataFrame]        # (run, k) -> file, sequence_id, truth of k held-out rows
    write_recording: Callable[[np.ndarray, Path, int], Path]   # ([T, 543, 3], file, sequence_id) -> the file in
    # the competition's layout (video landmarks)
    submission_files: tuple[str, ...] = ()               # what its submission.zip holds beside model.tflite


@dataclass(frozen=True)
class TaskPretrain:
    """A competition's self-supervised pretraining stage (``aslkit pretrain``)."""

    presets: dict[str, dict[str, Any]]            # TrainConfig overrides per profile on top of the training presets
    build_task: Callable[[Any, Any], TaskParts]   # (TrainConfig with stage=pretrain, prepared cache) -> loop parts
    encoder_state: Callable[[dict], dict]         # a pretraining checkpoint's weights -> the fine-tuned model's
    check_config: Callable[[Any], None]           # ConfigError naming a setting of a TrainConfig that cannot pretrain


@dataclass(frozen=True)
class TaskPlugin:
    """Everything the stages need from one competition (``aslkit.tasks.<task>.plugin.PLUGIN``)."""

    slug: str
    presets: dict[str, dict[str, Any]]            # task-level TrainConfig overrides per profile (the family's follow)
    families: FamilyRegistry
    default_subset: np.ndarray                    # the landmarks of the default cache (build without data)
    prepare_config: type                          # the preparation config (``aslkit prepare``)
    prepare: Callable[[Any], Path]                # prepare (or bring up to date) a cache; returns its folder
    open_cache: Callable[[str | Path], Any]       # a prepared cache folder as a ShardedCache
    prepare_overrides: Callable[[Any], dict]      # TrainConfig -> overrides of the default preparation config
    resolve_prepare: Callable[[Any], Any]         # a preparation config with its data and cache folders resolved
    cache_mismatch: Callable[[Any, Any], str]     # (TrainConfig, cache's config) -> what the cache lacks ("" if none)
    build_task: Callable[[Any, Any], TaskParts]   # (TrainConfig, prepared cache) -> what the loop needs
    score_key: str                                # the validation metric of the task
    task_export: Callable[[Path, str, int], TaskExport]   # (run, checkpoint, parity limit) -> conversion input
    score_run: Callable[[Path, Any], dict]        # grader clone of a run's submission on its held-out sequences
    score_table: Callable[[dict], pd.Series]      # headline figures of ``score_run``
    validate: Callable[[list, Any], dict]         # OOF report of run folders
    validation_plots: Callable[[list, dict], list]
    oof_summary: Callable[[Path], dict]           # run folder -> n, OOF metric and its spread over participants
    example_rows: Callable[[Any, int], pd.DataFrame]     # rows of a cache worth plotting, with a ``title``
    zoo_members: Callable[[str, list | None], list[str]]  # (profile, models) -> member names of an experiment
    tune_space: str                               # the default search space of ``aslkit tune``
    predict: TaskPredict                          # ``aslkit predict`` on new recordings
    make_ensemble: Callable[..., Path] | None = None   # (member runs, name, weights_from, weights) -> folder
    can_ensemble: Callable[[Path], bool] | None = None   # which runs can join an ensemble (None: every run)
    align: Callable[[Path, str], Path] | None = None   # (CTC run, checkpoint) -> its alignment of every sequence
    pretrain: TaskPretrain | None = None          # self-supervised pretraining of the model's encoder


def participant_spread(per_participant: pd.DataFrame, metric: str) -> dict[str, Any]:
    """The spread of column ``metric`` of a per-participant table (indexed by participant id) as the zoo table's
    columns: ``min participant <metric>``, ``worst participant`` (its id; ties: the smallest id) and
    ``max participant <metric>`` (NaN and no id without a defined value)."""
    values = per_participant[metric].dropna().sort_index(kind="mergesort")
    if values.empty:
        return {f"min participant {metric}": np.nan, "worst participant": None, f"max participant {metric}": np.nan}
    worst = values.idxmin()
    return {f"min participant {metric}": float(values[worst]),
            "worst participant": worst.item() if hasattr(worst, "item") else worst,
            f"max participant {metric}": float(values.max())}


def require_task(config_task: str, slug: str, what: str) -> None:
    """ValueError when a config meant for another competition reaches this one's ``what``."""
    if config_task != slug:
        raise ValueError(f"{what} supports task {slug!r} only, got {config_task!r}")
