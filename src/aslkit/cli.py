"""The kit's command line: ``python -m aslkit <command>`` (also installed as ``aslkit``).

Every command takes ``--preset`` and trailing ``key=value`` overrides of its typed config; ``--help`` on each.
The kit's own errors (bad data, config or run folder, a failed gate) print one line and exit 1; ``--debug`` (or
``ASLKIT_DEBUG=1``) shows the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from aslkit import constants as C
from aslkit.config import PROFILES, SYNTH_SIZES, DataConfig, SynthConfig, make_config, parse_overrides, to_dict
from aslkit.tasks.registry import DEFAULT_TASK
from aslkit.tflite import GateError
from aslkit.video import MissingExtra

if TYPE_CHECKING:
    from aslkit.tune import TuneConfig

# What the kit raises for a user's input (data, config, run folder, gates), each with a message naming the file,
# row or setting; anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError, GateError,
               MissingExtra)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=PROFILES, default=None, help="named preset (profile) of the config")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. seed=3")


def _cmd_synth(args: argparse.Namespace) -> int:
    from aslkit.paths import synthetic_dir
    from aslkit.synth import generate
    flags = {k: v for k, v in (("task", args.task), ("out", args.out), ("size", args.size), ("seed", args.seed),
                               ("workers", args.workers)) if v is not None}
    if args.overwrite:
        flags["overwrite"] = True
    cfg = make_config(SynthConfig, args.preset, {**flags, **parse_overrides(args.overrides)})
    out = cfg.out or str(synthetic_dir(cfg.task, cfg.size))
    print(f"synth: {to_dict(cfg)}", flush=True)
    path = generate(cfg.task, out, size=cfg.size, seed=cfg.seed, workers=cfg.workers or None, overwrite=cfg.overwrite)
    from aslkit.synth import synthetic_info
    info = synthetic_info(path)
    print(f"wrote {info['sequences']} sequences of {cfg.task} ({cfg.size}) to {path} in {info['seconds']} s")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from aslkit.paths import resolve_data_dir
    flags = {k: v for k, v in (("task", args.task), ("data_dir", args.data_dir)) if v is not None}
    cfg = make_config(DataConfig, args.preset, {**flags, **parse_overrides(args.overrides)})
    resolve_data_dir(cfg.task, cfg.data_dir or None, synth_size=cfg.synth_size, seed=cfg.seed)
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from aslkit.prepare import prepare
    overrides = parse_overrides(args.overrides)
    given = overrides.pop("task", None)
    if args.task and given and given != args.task:
        raise ValueError(f"--task {args.task} and task={given} disagree: give one of them")
    flags = {k: v for k, v in (("data_dir", args.data_dir),) if v is not None}
    prepare(args.task or given or DEFAULT_TASK, args.preset, {**flags, **overrides})
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from aslkit.train import experiment_config, make_train_config, train
    if args.resume:
        if args.overrides or args.preset or args.config or args.overwrite:
            raise SystemExit("error: --resume continues a run with its saved config; no preset/config/overrides")
        train(resume=args.resume)
        return 0
    if args.config:
        train(experiment_config(args.config, args.preset, args.overrides), overwrite=args.overwrite)
        return 0
    train(make_train_config(args.preset, args.overrides), overwrite=args.overwrite)
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from aslkit.pretrain import make_pretrain_config, pretrain
    if args.resume:
        if args.overrides or args.preset or args.overwrite:
            raise SystemExit("error: --resume continues a run with its saved config; no preset/overrides")
        pretrain(resume=args.resume)
        return 0
    pretrain(make_pretrain_config(args.preset, args.overrides), overwrite=args.overwrite)
    return 0


def _cmd_distill(args: argparse.Namespace) -> int:
    from aslkit.distill import distill_chain
    from aslkit.paths import logs_root
    run = Path(args.run) if Path(args.run).is_absolute() else logs_root() / args.run
    layers = tuple(int(n) for n in args.layers.split(","))
    stages = distill_chain(run, args.preset, args.overrides, layers, args.layers_key)
    print("stages: " + ", ".join(str(s) for s in stages))
    return 0


def tune_config(args: argparse.Namespace) -> TuneConfig:
    """The ``TuneConfig`` of ``aslkit tune``'s arguments (unset flags keep the config's defaults)."""
    from aslkit.tune import TuneConfig
    flags = {k: v for k, v in (("study_dir", args.study), ("n_trials", args.trials), ("seed", args.seed),
                               ("sampler", args.sampler), ("preset", args.preset), ("pruner", args.pruner),
                               ("prune_warmup", args.prune_after)) if v is not None}
    space = {"space_name": args.space} if args.space else {}
    return TuneConfig(**flags, **space, overrides=parse_overrides(args.overrides))


def _cmd_tune(args: argparse.Namespace) -> int:
    from aslkit.tune import best_record, run_study
    study = run_study(tune_config(args))
    best = best_record(study)
    if best:
        print(f"best trial {best['number']}: value {best['value']:.4f} {best['params']} ({best['run']})")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from aslkit.evaluate import validate
    validate(args.runs, args.out)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from aslkit.export import ConvertConfig, convert
    runs = [a for a in args.items if "=" not in a or Path(a).is_dir()]
    overrides = parse_overrides([a for a in args.items if a not in runs])
    if not runs:
        raise SystemExit("error: name at least one run folder")
    if len(runs) > 1:
        from aslkit.tasks.registry import plugin_of_run
        make_ensemble = plugin_of_run(runs[0]).make_ensemble
        if make_ensemble is None:
            raise SystemExit(f"error: {runs[0]}: runs of this task cannot be ensembled into one file")
        weights = [float(w) for w in args.weights.split(",")] if args.weights else []
        runs = [str(make_ensemble(runs, args.name or "", args.weights_from or [], weights))]
    convert(make_config(ConvertConfig, None, {"run_dir": runs[0], **overrides}))
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from aslkit.submit import submit
    submit(args.run, args.out)
    return 0


def _cmd_align(args: argparse.Namespace) -> int:
    from aslkit.tasks.registry import plugin_of_run
    align = plugin_of_run(args.run).align
    if align is None:
        raise ValueError(f"{args.run}: runs of this task have no CTC alignment")
    align(Path(args.run), args.checkpoint)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import json

    from aslkit.predict import predict, result_line
    results = predict(args.model, args.inputs, tflite=args.tflite, checkpoint=args.checkpoint,
                      sequence_id=args.sequence_id, top_k=args.top_k)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print(f"model: {results[0]['model']}" if results else "no recordings")
        for r in results:
            print(result_line(r))
    return 0


def _cmd_landmarks(args: argparse.Namespace) -> int:
    from aslkit.predict import video_landmarks
    if (args.video is None) == (args.camera is None):
        raise ValueError("give a video file or --camera N (one of them)")
    path = video_landmarks(args.video, args.task, args.out, args.sequence_id, args.camera, args.max_frames,
                           args.model_complexity)
    print(f"landmarks: {path} ({args.task} layout)")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from aslkit.submit import score_run
    score_run(args.run, args.submission)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per stage."""
    parser = argparse.ArgumentParser(prog="aslkit", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also ASLKIT_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = sub.add_parser("synth", help="write a synthetic dataset in the exact Kaggle layout",
                       description="Generate realistic synthetic landmark data in the Kaggle download layout.")
    p.add_argument("--task", choices=C.SLUGS, default=None, help="competition (default asl-signs)")
    p.add_argument("--out", default=None, help="output folder (default input/synthetic/<task>, <task>-<size> "
                                                          "for sizes other than quick)")
    p.add_argument("--size", choices=list(SYNTH_SIZES), default=None,
                   help="ci (seconds), quick (< 1 min), full (real scale), scale (benchmarks/scale_run.py)")
    p.add_argument("--seed", type=int, default=None, help="random seed (same seed, same files)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier synthetic dataset in --out")
    _add_common(p)
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("data", help="show which data directory a task uses (generates synthetic data if needed)",
                       description="Resolve the data directory: explicit → input/<slug> → /kaggle/input/<slug> → "
                                   "input/synthetic/<slug>.")
    p.add_argument("--task", choices=C.SLUGS, default=None)
    p.add_argument("--data-dir", default=None, help="explicit data directory")
    _add_common(p)
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("prepare", help="read every sequence once into a compact, resumable cache",
                       description="Prepare the cache of a task under input/prepared/ (parallel, resumable, "
                                   "idempotent) with participant folds.")
    p.add_argument("--task", choices=C.SLUGS, default=None, help=f"competition (or task=...; default {DEFAULT_TASK})")
    p.add_argument("--data-dir", default=None, help="explicit data directory")
    _add_common(p)
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("train", help="train a model into logs/<run>/ (or --resume a run)",
                       description="Train with the kit's loop; e.g. aslkit train --preset quick fold=1 "
                                   "model.layers=3, or task=asl-fingerspelling for the CTC model (its own "
                                   "presets). Under torchrun it trains with DDP.")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue logs/<run> from its last checkpoint")
    p.add_argument("--config", default=None, metavar="FILE.yaml",
                   help="an experiment file: TrainConfig keys (nested or dotted) and an optional preset, e.g. "
                        "experiments/<name>.yaml; --preset and key=value given here win")
    p.add_argument("--overwrite", action="store_true", help="start again in a run folder that is not empty (its "
                                                             "checkpoints, OOF files and exports are deleted)")
    _add_common(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("pretrain", help="self-supervised pretraining of the fingerspelling encoder (data2vec 2.0) "
                                        "into logs/<run>/",
                       description="F5's data2vec 2.0 on every sequence of the cache (labels unused; validation "
                                   "participants left out) in the training loop, then <run>/checkpoints/encoder.pt; "
                                   "fine-tune with aslkit train task=asl-fingerspelling recipe.init_from=logs/<run>. "
                                   "e.g. aslkit pretrain --preset quick run_name=d2v pretrain.copies=8")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue logs/<run> from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start again in a run folder that is not empty")
    _add_common(p)
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("distill", help="I2-T's knowledge-distillation chain: every stage a run folder that distils "
                                       "the one before",
                       description="Stage 1 trains from the labels; each later stage adds a KD loss from the stage "
                                   "before (recipe.teacher; linked as <stage>/teacher) and, when smaller, starts from "
                                   "its first layers (recipe.init_from). Re-running continues unfinished stages. "
                                   "e.g. aslkit distill --preset quick --run kd_quick recipe.kd_weight=1.0")
    p.add_argument("--run", default="distill", help="folder of the stages (under logs/ unless absolute)")
    p.add_argument("--layers", default="4,4,3", help="layers of each stage (default 4,4,3 as I2-T)")
    p.add_argument("--layers-key", default="model.layers", help="config key of the layer count")
    _add_common(p)
    p.set_defaults(func=_cmd_distill)

    p = sub.add_parser("tune", help="Optuna hyper-parameter search: every trial a run folder, the study resumable",
                       description="Search a space of TrainConfig keys (a name: signs, signs_weighted, fs; or a "
                                   "YAML file {key: {type: float|int|categorical, ...}}) with Optuna. Trial n trains "
                                   "<study>/trial_<n>/; the study is <study>/study.db; trials.csv, best.json and "
                                   "plots/tune_summary.png are rewritten after every trial. --trials is the total: "
                                   "running the same --study again runs only the missing trials. Trailing "
                                   "key=value are base TrainConfig overrides of every trial (a searched key given "
                                   "there is fixed), e.g. aslkit tune --preset quick --trials 20 optim.epochs=16.")
    p.add_argument("--study", default=None, metavar="DIR", help="study folder (under logs/ unless absolute; "
                                                                "default logs/tune_<space>)")
    p.add_argument("--space", default=None, metavar="NAME|FILE", help="search space (default signs, or fs for "
                                                                      "task=asl-fingerspelling)")
    p.add_argument("--trials", type=int, default=None, help="total finished trials wanted (default 20)")
    p.add_argument("--sampler", choices=("tpe", "random"), default=None, help="Optuna sampler (default tpe)")
    p.add_argument("--seed", type=int, default=None, help="sampler seed (default 0)")
    p.add_argument("--pruner", choices=("none", "median"), default=None,
                   help="stop trials below the median of earlier trials at the same epoch, after 2 trials and "
                        "--prune-after epochs (default none)")
    p.add_argument("--prune-after", type=int, default=None, metavar="EPOCHS",
                   help="epochs a trial runs before the pruner may stop it (default 5; give it at least the "
                        "learning-rate warmup of the longest trial, since trials are compared epoch by epoch: a CTC "
                        "model sits on its all-blank plateau for its first 10-20 epochs, so about a quarter of its "
                        "epochs; frames25 with up to 60 epochs, 15)")
    _add_common(p)
    p.set_defaults(func=_cmd_tune)

    p = sub.add_parser("validate", help="OOF report of one or more runs (per fold, participant, sign; confusions)",
                       description="Write validation tables and plots to <first run>/validation/.")
    p.add_argument("runs", nargs="+", help="run folders (e.g. one per fold)")
    p.add_argument("--out", default=None, help="output folder (default <first run>/validation)")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("convert", help="export a run (or an ensemble of runs) to float32/float16 TFLite and check "
                                       "every gate",
                       description="torch -> ONNX -> onnx2tf -> TFLite (serving_default: inputs -> outputs); "
                                   "gates: size, builtin ops, degenerate inputs, parity with torch. Several runs make "
                                   "one ensemble file in logs/<name>/ (asl-signs: weighted sum of logits, weights "
                                   "fitted on OOF predictions; fingerspelling model_name=f1 runs, e.g. two seeds: "
                                   "decoder logits averaged at every step); options go before the run folders, e.g. "
                                   "aslkit convert --name ens logs/a logs/b.")
    p.add_argument("items", nargs="+", metavar="RUN_DIR | key=value",
                   help="run folder(s), then overrides, e.g. submit_build=float32 parity_limit=200")
    p.add_argument("--name", default=None, help="ensemble folder name under logs/ (several runs)")
    p.add_argument("--weights-from", nargs="+", default=None, metavar="RUN_DIR",
                   help="fold runs whose OOF logits fit the ensemble weights (one per member, same order), e.g. "
                        "when the members were trained on all data")
    p.add_argument("--weights", default=None, help="explicit comma-separated weights (no fitting)")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("submit", help="write submission.zip (model.tflite) for a converted run",
                       description="Zip <run>/export/model.tflite as submission.zip (also to /kaggle/working).")
    p.add_argument("run", help="run folder")
    p.add_argument("--out", default=None, help="zip path (default <run>/submission.zip)")
    p.set_defaults(func=_cmd_submit)

    p = sub.add_parser("align", help="CTC forced alignment of every sequence of a fingerspelling run's cache",
                       description="Align every sequence of the run's prepared cache to its phrase with the run's "
                                   "trained CTC model (Viterbi over the CTC lattice) into <run>/alignment.parquet: "
                                   "first and last frame of every character. augment.cutmix_alignment=<run> then "
                                   "cuts CutMix between characters (F5).")
    p.add_argument("run", help="fingerspelling run folder")
    p.add_argument("--checkpoint", default="best", help="checkpoint (default best)")
    p.set_defaults(func=_cmd_align)

    p = sub.add_parser("predict", help="a trained model on new recordings: the top-k signs, or the phrase",
                       description="Run a run folder's model (torch; --tflite: its exported TFLite) or a "
                                   "submission.zip on landmark files read as Kaggle's grader reads them: an asl-signs "
                                   "long-format parquet (one recording), a fingerspelling wide parquet (every "
                                   "sequence, or --sequence-id) or a .npy [T, 543, 3].")
    p.add_argument("model", help="run folder or submission.zip")
    p.add_argument("inputs", nargs="+", help="landmark files (.parquet or .npy)")
    p.add_argument("--tflite", action="store_true", help="a run folder's exported TFLite model instead of torch")
    p.add_argument("--checkpoint", default="best", help="the run's checkpoint for torch (default best)")
    p.add_argument("--sequence-id", type=int, default=None, help="one sequence of a fingerspelling file")
    p.add_argument("--top-k", type=int, default=5, help="signs to show (asl-signs, default 5)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("landmarks", help="video -> MediaPipe Holistic landmarks in a competition's layout",
                       description="Run MediaPipe Holistic (the solution that made the competition data) over every "
                                   "frame of a video file (or a camera) and write the landmarks in the exact Kaggle "
                                   "layout of --task, NaN where a part is not detected; aslkit predict and every "
                                   "other stage read the file like competition data. Needs the video extra (pip "
                                   "install -e .[video]).")
    p.add_argument("video", nargs="?", default=None, help="video file (OpenCV reads it)")
    p.add_argument("--camera", type=int, default=None, help="camera index instead of a file (untested here)")
    p.add_argument("--task", choices=C.SLUGS, default=DEFAULT_TASK, help="layout of the output file")
    p.add_argument("--out", required=True, help="output .parquet")
    p.add_argument("--sequence-id", type=int, default=0, help="sequence_id of a fingerspelling file (default 0)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (default all)")
    p.add_argument("--model-complexity", type=int, choices=(0, 1, 2), default=1, help="Holistic pose model size")
    p.set_defaults(func=_cmd_landmarks)

    p = sub.add_parser("score", help="local clone of Kaggle's grader on the run's held-out participants",
                       description="Grade submission.zip like Kaggle (parquet loader, signature runner, argmax, "
                                   "1 thread): accuracy, latency mean/p95, size, next to the torch OOF accuracy.")
    p.add_argument("run", help="run folder")
    p.add_argument("--submission", default=None, help="zip or .tflite (default <run>/submission.zip)")
    p.set_defaults(func=_cmd_score)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``aslkit`` and ``python -m aslkit``: 0 on success, 1 with one line on stderr for the kit's
    own errors (``USER_ERRORS``)."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except USER_ERRORS as e:
        if args.debug or os.environ.get("ASLKIT_DEBUG", "") not in ("", "0"):
            raise
        print(f"aslkit {args.command}: error: {e}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
