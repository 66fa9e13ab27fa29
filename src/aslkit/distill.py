"""``aslkit distill``: I2-T's three-stage knowledge-distillation chain, every stage an ordinary run folder.

Stage 1 trains from the labels; every later stage distils the one before (``recipe.teacher``, linked as
``<stage>/teacher``) and, when it has fewer layers, starts from that teacher's first layers (``recipe.init_from``).
Re-running continues: finished stages are kept, unfinished ones resumed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from aslkit.config import parse_overrides
from aslkit.runs import checkpoint_path, is_finished, link_teacher
from aslkit.train import make_train_config, train


def distill_chain(run: str | Path, preset: str | None = None, overrides: Any = None,
                  layers: tuple[int, ...] = (4, 4, 3), layers_key: str = "model.layers") -> list[Path]:
    """Train the stages of I2-T's distillation into ``<run>/stage<k>``: stage 1 from the labels; every later stage
    distils the one before (``recipe.teacher``, linked as ``teacher``) and, when it has fewer layers, starts from
    that teacher's first layers (``recipe.init_from``). Finished stages are kept, unfinished ones resumed."""
    run = Path(run).resolve()
    base, stages = parse_overrides(overrides), []
    for k, n in enumerate(layers, 1):
        out = run / f"stage{k}"
        ov = {**base, layers_key: n, "run_name": str(out)}
        if stages:
            ov["recipe.teacher"] = str(stages[-1])
            if n < layers[k - 2]:
                ov["recipe.init_from"] = str(stages[-1])
        cfg = make_train_config(preset, ov)
        if not is_finished(out, cfg.optim.epochs):
            train(resume=out) if checkpoint_path(out, "last").is_file() else train(cfg, overwrite=True)
        if stages:
            link_teacher(out, f"../{stages[-1].name}")
        stages.append(out)
    return stages
