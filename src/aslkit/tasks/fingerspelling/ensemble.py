"""One-file ensembles of attention-decoder fingerspelling runs (F1's submission: two seeds), ``aslkit convert RUN
RUN``: one graph that runs every member's encoder once and, at every decoding step, averages the members' decoder
logits before the greedy choice (``decoder_graph``).

The ensemble folder (``logs/<name>/``) holds ``ensemble.json`` (task, members, families, checkpoint), the first
member's ``data.json`` and an ``oof.csv`` of the members' common validation sequences whose ``pred`` is the
ensemble's own torch decoding, so ``convert``, ``submit`` and ``score`` treat it like a run. The members must be
seq2seq runs (``model_name=f1``) of the same prepared data and fold, with the same features and phrase length;
their logits are averaged with equal weights (F1's)."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from aslkit import constants as C
from aslkit.paths import logs_root
from aslkit.runs import (
    ENSEMBLE_FILE,
    is_run_folder,
    read_data_record,
    read_run_config,
    run_task,
    write_csv_atomic,
    write_data_record,
    write_json_atomic,
)
from aslkit.tasks.fingerspelling.evaluate import fs_score, read_fs_oof
from aslkit.tasks.fingerspelling.export import fs_validation_sequences, grader_decode, load_fs_grader_model
from aslkit.tasks.fingerspelling.families import attention_decoder


def is_seq2seq_run(run: Path) -> bool:
    """Whether a fingerspelling run folder trained an attention-decoder family (the ones an ensemble can hold)."""
    return attention_decoder(read_run_config(run).model_name)


def check_members(runs: list[Path]) -> None:
    """ValueError naming the run that cannot join the ensemble (not a seq2seq fingerspelling run, other data, fold,
    features or phrase length than the first)."""
    if len(runs) < 2:
        raise ValueError(f"an ensemble needs at least two runs, got {[str(r) for r in runs]}")
    first = None
    for run in runs:
        if not is_run_folder(run) or run_task(run) != C.SLUG_FS:
            raise ValueError(f"{run}: not an asl-fingerspelling run folder")
        cfg = read_run_config(run)
        if not attention_decoder(cfg.model_name):
            raise ValueError(f"{run}: model_name={cfg.model_name} has no attention decoder (fingerspelling ensembles "
                             f"average decoder logits: model_name=f1)")
        key = (read_data_record(run).get("cache_fingerprint"), cfg.fold, cfg.features,
               cfg.model.get("max_phrase"))
        first = first or (run, key)
        if key != first[1]:
            raise ValueError(f"{run}: other prepared data, fold, features or model.max_phrase than {first[0]}")


def make_fs_ensemble(runs: list, name: str | Path = "", weights_from: list | None = None,
                     weights: list[float] | None = None, checkpoint: str = "best") -> Path:
    """The one-file ensemble folder of seq2seq fingerspelling runs (equal weights; ``weights_from`` and ``weights``
    are asl-signs options and refused); ``name`` under logs/ or absolute (default from the members)."""
    if weights_from or weights:
        raise ValueError("fingerspelling ensembles average their members' decoder logits with equal weights "
                         "(no --weights / --weights-from)")
    runs = [Path(r) for r in runs]
    check_members(runs)
    families = [read_run_config(r).model_name for r in runs]
    rec = {"task": C.SLUG_FS, "members": [str(r.resolve()) for r in runs], "families": families,
           "checkpoint": checkpoint, "weights": [1.0 / len(runs)] * len(runs)}
    name = str(name) or f"ensemble_{families[0]}x{len(runs)}" + time.strftime("_%Y%m%d_%H%M%S")
    out = Path(name) if Path(name).is_absolute() else logs_root() / name
    out.mkdir(parents=True, exist_ok=True)
    write_data_record(out, read_data_record(runs[0]))
    write_json_atomic(out / ENSEMBLE_FILE, rec)
    if (runs[0] / "oof.csv").is_file():
        rec |= ensemble_oof(runs[0], out)
        write_json_atomic(out / ENSEMBLE_FILE, rec)
    print(f"ensemble {out}: {' + '.join(families)}"
          + (f"; OOF score {rec['oof_score']:.4f}" if "oof_score" in rec else ""))
    return out


def ensemble_oof(first_member: Path, out: Path) -> dict:
    """Write the ensemble's ``oof.csv`` (the first member's validation rows, ``pred`` = the ensemble's torch greedy
    phrase of the grader input) and return its score."""
    model = load_fs_grader_model(out)
    seqs, _ = fs_validation_sequences(first_member)
    with torch.no_grad():
        preds = [grader_decode(model(torch.from_numpy(x)).numpy()) for x in seqs]
    member = read_fs_oof(first_member / "oof.csv")
    write_csv_atomic(member.assign(pred=preds), out / "oof.csv", index=False)
    return {"oof_score": fs_score(list(member["phrase"]), preds), "n_oof": int(len(member)),
            "first_member_oof_score": fs_score(list(member["phrase"]), list(member["pred"]))}
