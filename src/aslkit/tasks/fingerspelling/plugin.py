"""The asl-fingerspelling plug-in: what the stages need from this competition, in one ``TaskPlugin``."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from aslkit import constants as C
from aslkit.tasks.base import TaskPlugin, TaskPredict, TaskPretrain
from aslkit.tasks.fingerspelling import align, ensemble, evaluate, export, grade, objective, predict, pretrain
from aslkit.tasks.fingerspelling.families import FAMILIES
from aslkit.tasks.fingerspelling.prepare import (
    FS_LANDMARKS,
    PreparedFS,
    PrepareFSConfig,
    prepare_fingerspelling,
    resolve_fs_config,
)

_OPTIM = {"optim.optimizer": "adamw", "optim.schedule": "warmup_cosine", "optim.label_smoothing": 0.0}
# Task-level TrainConfig overrides per profile; the family's own preset (``families/<family>``) is applied after.
PRESETS: dict[str, dict[str, Any]] = {
    "ci": {"synth_size": "ci", **_OPTIM, "optim.epochs": 3, "optim.batch_size": 16, "optim.lr": 3e-3},
    # quick: lr from an Optuna search on fold 0 (experiments/spaces/tune_fs_ctc_quick.yaml), confirmed on fold 1
    # (README, "Presets chosen by a search"; before: 60 epochs, lr 3e-3); 160 epochs (the search's 80 doubled) from
    # its learning curve, confirmed on fold 1 (logs/confirm_fs_ctc_x2/: fold 0 0.600 -> 0.616, fold 1 0.675 -> 0.695)
    "quick": {"synth_size": "quick", **_OPTIM, "optim.epochs": 160, "optim.batch_size": 16, "optim.lr": 2e-3,
              "workers": -1, "threads": -1},
    "full": {"synth_size": "full", **_OPTIM, "optim.epochs": 200, "optim.batch_size": 64, "optim.ema_decay": 0.999,
             "supplemental_weight": 0.5, "workers": -1, "threads": -1},
}


def zoo_members(profile: str, models: list[str] | None = None) -> list[str]:
    """Model names of an experiment: the named families, or ``[""]`` (the experiment folder itself is the run of
    the default family)."""
    return list(models) if models else [""]


def trains_supplemental(cfg: Any) -> bool:
    """Whether a run config samples supplemental sequences."""
    return cfg.supplemental_weight > 0 or bool(cfg.supplemental_per_phrase)


def prepare_overrides(cfg: Any) -> dict:
    """The preparation overrides of a run config that names no prepared cache: its data folder, synthetic size and
    whether supplemental sequences are trained on."""
    return {"data_dir": cfg.data_dir, "synth_size": cfg.synth_size, "include_supplemental": trains_supplemental(cfg)}


def cache_mismatch(cfg: Any, prepared_cfg: Any) -> str:
    """What a fingerspelling cache lacks for a run: its supplemental sequences, when the run samples them."""
    if trains_supplemental(cfg) and not prepared_cfg.include_supplemental:
        return (f"prepared without supplemental sequences (include_supplemental=false), but the run asks "
                f"supplemental_weight={cfg.supplemental_weight} / supplemental_per_phrase="
                f"{cfg.supplemental_per_phrase}")
    return ""


def example_rows(prepared: Any, k: int = 4) -> pd.DataFrame:
    """The first ``k`` phrases longer than 20 frames, each with a ``title``."""
    index = prepared.index
    return index[index["length"] > 20].head(k).assign(title=lambda d: d["phrase"])


PLUGIN = TaskPlugin(
    slug=C.SLUG_FS, presets=PRESETS, families=FAMILIES,
    default_subset=np.asarray(FS_LANDMARKS[PrepareFSConfig.landmarks]),
    prepare_config=PrepareFSConfig, prepare=prepare_fingerspelling, open_cache=PreparedFS,
    prepare_overrides=prepare_overrides, resolve_prepare=resolve_fs_config, cache_mismatch=cache_mismatch,
    build_task=objective.build_task, score_key=objective.CTCObjective.score_key,
    task_export=export.task_export, score_run=grade.score_run, score_table=grade.score_table,
    validate=evaluate.validate_fs, validation_plots=evaluate.validation_plots, oof_summary=evaluate.oof_summary,
    example_rows=example_rows, zoo_members=zoo_members, tune_space="fs",
    predict=TaskPredict(predict.grader_module, predict.input_columns, predict.read_inputs, predict.answer,
                        predict.answer_text, predict.landmarks, predict.held_out, predict.write_recording,
                        submission_files=("inference_args.json",)),
    align=align.align_run, make_ensemble=ensemble.make_fs_ensemble,
    can_ensemble=ensemble.is_seq2seq_run,
    pretrain=TaskPretrain(pretrain.PRESETS, pretrain.build_pretrain_task, pretrain.encoder_state,
                          pretrain.check_config))
