"""torch → ONNX → onnx2tf → TFLite conversion of a whole grader-input model, and the runners to check it.

The exported module takes exactly what Kaggle's grader feeds (``inputs``: float32 ``[T, 543, 3]`` with NaNs for
asl-signs) and returns ``outputs``. Preprocessing is the same torch code as in training, carried through the export.
onnx2tf writes a SavedModel; it is re-wrapped with a ``serving_default`` signature named ``inputs -> outputs`` and
converted with TensorFlow's converter, builtin ops only (float32 and float16 builds).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

INPUT_NAME = "inputs"
OUTPUT_NAME = "outputs"
SIGNATURE = "serving_default"


def export_onnx(module: nn.Module, path: str | Path, example: torch.Tensor, opset: int = 17) -> Path:
    """Export ``module`` (one sequence in, one output) to ONNX with a dynamic first axis (frames)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from aslkit.models.transformer import export_friendly
    torch.backends.mha.set_fastpath_enabled(False)
    module = module.eval()
    with torch.no_grad(), export_friendly():
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "T"}})
    return path


def _venv_env() -> dict[str, str]:
    """Environment whose PATH starts with this interpreter's bin (onnx2tf shells out to ``onnxsim``)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def onnx_to_saved_model(onnx_path: str | Path, out_dir: str | Path) -> Path:
    """Run onnx2tf (input layout kept as is) and return the SavedModel folder; RuntimeError with its log on failure.

    onnx2tf's strict mode stays on: without it (``-dsm``) it converted these graphs with wrong layouts.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    exe = Path(sys.executable).parent / "onnx2tf"
    cmd = [str(exe) if exe.exists() else "onnx2tf", "-i", str(onnx_path), "-o", str(out_dir), "-osd",
           "-kat", INPUT_NAME, "-n"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_venv_env())
    log = out_dir.parent / f"{out_dir.name}.onnx2tf.log"
    log.write_text(res.stdout + "\n" + res.stderr)
    if res.returncode != 0 or not (out_dir / "saved_model.pb").is_file():
        tail = "\n".join((res.stdout + res.stderr).splitlines()[-25:])
        raise RuntimeError(f"onnx2tf failed on {onnx_path} (log: {log}):\n{tail}")
    return out_dir


def saved_model_to_tflite(saved_dir: str | Path, out_path: str | Path, float16: bool = False,
                          input_shape: tuple = (None, 543, 3)) -> Path:
    """Re-wrap onnx2tf's SavedModel as ``serving_default(inputs) -> {outputs}`` and convert it (builtin ops)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_dir))
    inner = loaded.signatures[SIGNATURE]
    in_key = next(iter(inner.structured_input_signature[1]))

    class Wrapped(tf.Module):
        def __init__(self):
            super().__init__()
            self.loaded = loaded

        @tf.function(input_signature=[tf.TensorSpec(list(input_shape), tf.float32, name=INPUT_NAME)])
        def serve(self, inputs):
            out = inner(**{in_key: inputs})
            return {OUTPUT_NAME: next(iter(out.values()))}

    wrapped = Wrapped()
    tmp = Path(str(out_path) + ".saved_model")
    if tmp.exists():
        shutil.rmtree(tmp)
    tf.saved_model.save(wrapped, str(tmp), signatures={SIGNATURE: wrapped.serve})
    conv = tf.lite.TFLiteConverter.from_saved_model(str(tmp), signature_keys=[SIGNATURE])
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if float16:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    out_path = Path(out_path)
    out_path.write_bytes(conv.convert())
    shutil.rmtree(tmp)
    return out_path


def tflite_runner(path: str | Path, runtime: str = "litert", num_threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """``f(x) -> outputs`` through the ``serving_default`` signature, with ``ai_edge_litert`` or ``tf.lite``."""
    if runtime == "litert":
        from ai_edge_litert.interpreter import Interpreter
    elif runtime == "tflite":
        import tensorflow as tf
        Interpreter = tf.lite.Interpreter  # noqa: N806
    else:
        raise ValueError(f"runtime must be 'litert' or 'tflite', got {runtime!r}")
    interp = Interpreter(model_path=str(path), num_threads=num_threads)
    sigs = interp.get_signature_list()
    if SIGNATURE not in sigs:
        raise ValueError(f"{path}: required signature {SIGNATURE!r} not found (has {sorted(sigs)})")
    runner = interp.get_signature_runner(SIGNATURE)
    return lambda x: runner(**{INPUT_NAME: np.asarray(x, dtype=np.float32)})[OUTPUT_NAME]


def op_names(path: str | Path) -> list[str]:
    """Names of the operators in a TFLite file (e.g. to check that no Flex/custom op is used)."""
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=str(path))
    return sorted({d["op_name"] for d in interp._get_ops_details()})


def degenerate_inputs(landmarks: np.ndarray | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Edge cases every build must answer with finite outputs: 1 and 2 frames, no hands, all NaN, 1,000 frames,
    as ``[T, P, 3]`` sequences of ``landmarks`` (default: all 543)."""
    from aslkit import constants as C
    landmarks = np.arange(C.ROWS_PER_FRAME) if landmarks is None else np.asarray(landmarks)
    n_landmarks = len(landmarks)
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.8, (40, n_landmarks, 3)).astype(np.float32)
    no_hands = base.copy()
    no_hands[:, np.isin(landmarks, C.HANDS)] = np.nan
    return {"1 frame": base[:1], "2 frames": base[:2], "all-NaN hands": no_hands,
            "all-NaN input": np.full((12, n_landmarks, 3), np.nan, np.float32),
            "1000 frames": rng.uniform(0.2, 0.8, (1000, n_landmarks, 3)).astype(np.float32)}


# ------------------------------------------------------------------------------------------------------------------
# A trained run as one grader-input module, and ``aslkit convert`` with its gates
# ------------------------------------------------------------------------------------------------------------------
class GraderModel(nn.Module):
    """Raw grader input ``[T, 543, 3]`` (NaNs) -> ``[num_classes]`` logits: landmark subset, features, model."""

    def __init__(self, subset: np.ndarray, features: nn.Module, model: nn.Module):
        super().__init__()
        self.register_buffer("subset", torch.as_tensor(np.asarray(subset), dtype=torch.long), persistent=False)
        self.features, self.model = features, model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[:, self.subset]
        return self.model(self.features(x).unsqueeze(0))[0]


def load_grader_model(run: str | Path, checkpoint: str = "best") -> GraderModel:
    """The trained model of a run folder (its config, data.json and checkpoint) as a ``GraderModel``."""
    import json

    from aslkit.config import load_config
    from aslkit.train import TrainConfig, load_checkpoint, signs_modules
    run = Path(run)
    cfg = load_config(TrainConfig, run / "config.yaml")
    subset = np.array(json.loads((run / "data.json").read_text())["subset"])
    features, model = signs_modules(cfg, subset)
    model.load_state_dict(load_checkpoint(run / "checkpoints" / f"{checkpoint}.pt")["model"])
    return GraderModel(subset, features, model).eval()


def validation_sequences(run: str | Path, limit: int = 0) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Raw grader inputs of a run's validation sequences, read from the original parquet files as Kaggle does."""
    import json

    from aslkit.data.cache import PreparedSigns
    from aslkit.data.islr import load_relevant_data_subset
    run = Path(run)
    data = json.loads((run / "data.json").read_text())
    oof = pd.read_csv(run / "oof.csv")
    if limit:
        oof = oof.iloc[:limit]
    index = PreparedSigns(data["prepared_dir"]).index.set_index("sequence_id")
    paths = [Path(data["data_dir"]) / index.loc[s, "path"] for s in oof["sequence_id"]]
    return [load_relevant_data_subset(p) for p in paths], oof.reset_index(drop=True)


@dataclass
class ConvertConfig:
    """``aslkit convert``: which run, which checkpoint, and the gates every build must pass."""

    run_dir: str = ""
    checkpoint: str = "best"
    submit_build: str = "auto"       # the build copied to model.tflite: auto (float16 if it passes every gate,
                                     # else float32), float16 or float32
    max_size_mb: float = 40.0
    min_agreement: float = 0.999     # asl-signs: share of validation argmaxes equal to torch's
    min_phrase_agreement: float = 0.995  # asl-fingerspelling: share of decoded phrases equal to torch's
    max_score_diff: float = 0.002    # asl-fingerspelling: |TFLite score - torch score| on the validation set
    parity_limit: int = 0            # 0: the whole validation fold


class GateError(RuntimeError):
    """A conversion gate failed (the report names which)."""


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


def compare_logits(outs: list[np.ndarray], ref: list[np.ndarray], oof: pd.DataFrame) -> dict:
    """asl-signs parity: argmax agreement and absolute logit differences (and the torch accuracy)."""
    out, r = np.stack(outs), np.stack(ref)
    diff = np.abs(out - r)
    rep = {"agreement": float((out.argmax(1) == r.argmax(1)).mean()), "max_abs_diff": float(diff.max()),
           "mean_abs_diff": float(diff.mean()), "n_parity": len(outs)}
    if "label" in oof:
        rep["torch_accuracy"] = float((r.argmax(1) == oof["label"].to_numpy()[:len(r)]).mean())
    return rep


def compare_phrases(outs: list[np.ndarray], ref: list[np.ndarray], oof: pd.DataFrame) -> dict:
    """asl-fingerspelling parity: decoded phrases (the grader's decoding) equal to torch's, and the two scores."""
    from aslkit.export_fs import grader_decode, phrase_parity
    return phrase_parity([grader_decode(o) for o in outs], [grader_decode(o) for o in ref],
                         list(oof["phrase"].iloc[:len(outs)]))


def task_export(run: Path, cfg: ConvertConfig) -> TaskExport:
    """The ``TaskExport`` of a run folder, by the task of its config."""
    from aslkit import constants as C
    from aslkit.evaluate import run_task
    task = run_task(run)
    has_oof = (run / "oof.csv").is_file()
    if task == C.SLUG_FS:
        from aslkit.export_fs import (degenerate_fs_inputs, fs_validation_sequences, inference_args,
                                      load_fs_grader_model)
        model = load_fs_grader_model(run, cfg.checkpoint)
        n = model.n_landmarks
        seqs, oof = fs_validation_sequences(run, cfg.parity_limit) if has_oof else ([], None)
        return TaskExport(model, torch.rand(23, 3 * n), (None, 3 * n), degenerate_fs_inputs(model.features.landmarks), seqs, oof,
                          compare_phrases, {"inference_args.json": inference_args(model.features.landmarks)})
    from aslkit.ensemble import is_ensemble, load_ensemble_model
    model = load_ensemble_model(run) if is_ensemble(run) else load_grader_model(run, cfg.checkpoint)
    seqs, oof = validation_sequences(run, cfg.parity_limit) if has_oof else ([], None)
    return TaskExport(model, torch.rand(23, 543, 3), (None, 543, 3), degenerate_inputs(), seqs, oof, compare_logits)


def torch_outputs(model: nn.Module, seqs: list[np.ndarray]) -> list[np.ndarray]:
    """Outputs of the torch grader model, one sequence at a time."""
    with torch.no_grad():
        return [model(torch.from_numpy(x)).numpy() for x in seqs]


def check_build(path: Path, exp: TaskExport, ref: list[np.ndarray], cfg: ConvertConfig) -> dict:
    """Size, builtin-only ops, both runtimes, degenerate inputs and parity with torch for one TFLite build."""
    ops = op_names(path)
    rep: dict = {"size_mb": path.stat().st_size / 2 ** 20, "ops": ops,
                 "non_builtin_ops": [o for o in ops if "FLEX" in o.upper() or "CUSTOM" in o.upper()]}
    litert, tflite = tflite_runner(path, "litert"), tflite_runner(path, "tflite")
    rep["degenerate_finite"] = {k: bool(np.isfinite(litert(x)).all() and np.isfinite(tflite(x)).all())
                                for k, x in exp.degenerate.items()}
    if exp.seqs:
        rep.update(exp.compare([litert(x) for x in exp.seqs], ref, exp.oof))
        k = min(50, len(exp.seqs))
        rep["tflite_runtime_agreement"] = exp.compare([tflite(x) for x in exp.seqs[:k]], ref[:k], exp.oof)["agreement"]
    rep["failed"] = gate_failures(rep, cfg)
    return rep


def gate_failures(rep: dict, cfg: ConvertConfig) -> list[str]:
    """Names of the gates a build report fails."""
    fails = []
    if rep["size_mb"] >= cfg.max_size_mb:
        fails.append(f"size {rep['size_mb']:.1f} MB >= {cfg.max_size_mb} MB")
    if rep["non_builtin_ops"]:
        fails.append(f"non-builtin ops {rep['non_builtin_ops']}")
    fails += [f"non-finite output for {k}" for k, ok in rep["degenerate_finite"].items() if not ok]
    phrases = "score_diff" in rep
    need = cfg.min_phrase_agreement if phrases else cfg.min_agreement
    if "agreement" in rep and rep["agreement"] < need:
        fails.append(f"{'phrase' if phrases else 'argmax'} agreement {rep['agreement']:.4f} < {need}")
    if phrases and rep["score_diff"] > cfg.max_score_diff:
        fails.append(f"score difference {rep['score_diff']:.4f} > {cfg.max_score_diff}")
    return fails


def choose_build(report: dict, submit_build: str) -> str | None:
    """The build to submit: ``submit_build`` when it passes every gate; for ``auto`` the smaller float16 build when
    it passes, else float32; None when the chosen (or every) build fails a gate."""
    if submit_build not in ("auto", "float16", "float32"):
        raise ValueError(f"submit_build must be auto, float16 or float32, got {submit_build!r}")
    order = ["float16", "float32"] if submit_build == "auto" else [submit_build]
    return next((b for b in order if b in report and not report[b]["failed"]), None)


def _summary_line(name: str, r: dict) -> str:
    """One printed line per build."""
    nan = float("nan")
    extra = (f", score {r.get('score', nan):.4f} (torch {r.get('torch_score', nan):.4f})" if "score" in r else
             f", max|diff| {r.get('max_abs_diff', nan):.2e}, mean|diff| {r.get('mean_abs_diff', nan):.2e}")
    return (f"{name}: {r['size_mb']:.2f} MB, agreement {r.get('agreement', nan):.4f}{extra}"
            f"{'' if not r['failed'] else ', FAILED: ' + '; '.join(r['failed'])}")


def convert(cfg: ConvertConfig) -> dict:
    """Export a run to float32 and float16 TFLite under ``<run>/export/``, check every gate, write report.json
    (and the task's extra files, e.g. inference_args.json, next to model.tflite)."""
    import json
    run = Path(cfg.run_dir)
    out = run / "export"
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.tflite").unlink(missing_ok=True)                 # never leave an earlier build to be submitted
    exp = task_export(run, cfg)
    onnx_path = export_onnx(exp.model, out / "model.onnx", exp.example)
    saved = onnx_to_saved_model(onnx_path, out / "saved_model")
    builds = {"float32": saved_model_to_tflite(saved, out / "model_float32.tflite", input_shape=exp.input_shape),
              "float16": saved_model_to_tflite(saved, out / "model_float16.tflite", float16=True,
                                               input_shape=exp.input_shape)}
    ref = torch_outputs(exp.model, exp.seqs)
    report = {name: check_build(path, exp, ref, cfg) for name, path in builds.items()}
    if "torch_accuracy" in report["float32"]:
        report["torch_accuracy"] = report["float32"]["torch_accuracy"]
    report["submitted"] = choose_build(report, cfg.submit_build)
    for name, text in exp.extra_files.items():
        (out / name).write_text(text)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    for name in builds:
        print(_summary_line(name, report[name]))
    if report["submitted"] is None:
        failed = {n: report[n]["failed"] for n in builds if report[n]["failed"]}
        raise GateError(f"conversion gates failed for the submit build ({cfg.submit_build}): {failed} "
                        f"(report: {out / 'report.json'})")
    shutil.copyfile(builds[report["submitted"]], out / "model.tflite")
    print(f"model.tflite = the {report['submitted']} build")
    return report


def conversion_table(report: dict) -> pd.DataFrame:
    """The scalar results of each build of a ``convert`` report (size, agreement, scores or differences, gates)."""
    builds = [b for b in ("float32", "float16") if b in report]
    return pd.DataFrame({b: {k: v for k, v in report[b].items() if not isinstance(v, (list, dict))} | {
        "failed": "; ".join(report[b]["failed"]) or "-"} for b in builds})
