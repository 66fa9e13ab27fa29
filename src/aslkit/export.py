"""``aslkit convert`` [notebook 04]: torch → ONNX → onnx2tf → TFLite conversion of a whole grader-input model,
and the gates every build must pass.

The exported module (from the run's task plug-in: ``TaskExport``) takes exactly what Kaggle's grader feeds
(``inputs``: float32 ``[T, 543, 3]`` with NaNs for asl-signs, the selected wide columns for fingerspelling) and
returns ``outputs``. Preprocessing is the same torch code as in training, carried through the export.
onnx2tf writes a SavedModel; it is re-wrapped with a ``serving_default`` signature named ``inputs -> outputs`` and
converted with TensorFlow's converter, builtin ops only (float32 and float16 builds). A task may hand over its model
as an ``IteratedGraph`` (autoregressive decoding): its start graph and its step graph go through ONNX and onnx2tf
separately, and the TFLite graph runs the start graph and then the step graph a fixed number of times.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from aslkit.data.cache import write_atomic
from aslkit.runs import file_digest, write_json_atomic
from aslkit.tasks.base import IteratedGraph, TaskExport
from aslkit.tasks.registry import plugin_of_run
from aslkit.tensor_ops import export_friendly
from aslkit.tflite import (
    INPUT_NAME,
    LATENCY_SAFETY,
    OUTPUT_NAME,
    SIGNATURE,
    GateError,
    latency_failure,
    native_stderr_to,
    op_names,
    tflite_runner,
)


def export_onnx(module: nn.Module, path: str | Path, example: torch.Tensor | tuple[torch.Tensor, ...],
                opset: int = 17, dynamic_frames: bool = True) -> Path:
    """Export ``module`` (one output; one input, or several given as a tuple: named ``inputs``, ``input_1``, ...)
    to ONNX, with a dynamic first axis (frames) of the first input unless ``dynamic_frames`` is False."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.backends.mha.set_fastpath_enabled(False)
    module = module.eval()
    examples = example if isinstance(example, tuple) else (example,)
    names = [INPUT_NAME] + [f"input_{i}" for i in range(1, len(examples))]
    with torch.no_grad(), export_friendly():
        torch.onnx.export(module, examples, str(path), dynamo=False, opset_version=opset,
                          input_names=names, output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "T"}} if dynamic_frames else None)
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


def _signature(saved_dir: str | Path):
    """onnx2tf's SavedModel (kept alive by the returned object) and its function ``tensors -> tensor`` (inputs in
    the order of the ONNX inputs: ``inputs``, ``input_1``, ...)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_dir))
    inner = loaded.signatures[SIGNATURE]
    keys = sorted(inner.structured_input_signature[1], key=lambda k: (k != INPUT_NAME, k))
    return loaded, lambda *xs: next(iter(inner(**dict(zip(keys, xs))).values()))


def _write_tflite(graph, keep: list, out_path: str | Path, float16: bool, input_shape: tuple) -> Path:
    """Save ``graph`` (tensor -> tensor, using the SavedModels in ``keep``) as ``serving_default(inputs) ->
    {outputs}`` and convert it with builtin ops only."""
    import tensorflow as tf

    class Wrapped(tf.Module):
        def __init__(self):
            super().__init__()
            self.parts = keep

        @tf.function(input_signature=[tf.TensorSpec(list(input_shape), tf.float32, name=INPUT_NAME)])
        def serve(self, inputs):
            return {OUTPUT_NAME: graph(inputs)}

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


def saved_model_to_tflite(saved_dir: str | Path, out_path: str | Path, float16: bool = False,
                          input_shape: tuple = (None, 543, 3)) -> Path:
    """Re-wrap onnx2tf's SavedModel as ``serving_default(inputs) -> {outputs}`` and convert it (builtin ops)."""
    loaded, graph = _signature(saved_dir)
    return _write_tflite(graph, [loaded], out_path, float16, input_shape)


def iterated_to_tflite(start_dir: str | Path, step_dir: str | Path, it: IteratedGraph, out_path: str | Path,
                       float16: bool = False, input_shape: tuple = (None, 390)) -> Path:
    """One TFLite graph of an ``IteratedGraph``'s two SavedModels: the start graph, then the step graph in a
    ``WHILE`` loop (at most ``it.steps`` times, until the state's ``it.stop_index`` entry exceeds 0.5; the fixed part
    of the start's output is a loop invariant); the output rows ``[n, row_width]`` are the start of each step's
    state."""
    import tensorflow as tf

    start, start_fn = _signature(start_dir)
    step, step_fn = _signature(step_dir)
    eye = tf.eye(it.steps)

    @tf.autograph.experimental.do_not_convert          # an explicit tf.while_loop: nothing to convert
    def graph(inputs):
        first = tf.ensure_shape(start_fn(inputs), [it.state_size + it.fixed_size])
        fixed = first[it.state_size:]

        def running(i, state, rows):
            stopped = state[it.stop_index] > 0.5 if it.stop_index >= 0 else tf.constant(False)
            return tf.logical_and(i < it.steps, tf.logical_not(stopped))

        def one_step(i, state, rows):
            state = tf.ensure_shape(step_fn(state, fixed), [it.state_size])
            return i + 1, state, rows + eye[i][:, None] * state[None, :it.row_width]

        start_rows = tf.zeros([it.steps, it.row_width])
        n, _, rows = tf.while_loop(running, one_step, (tf.constant(0), first[:it.state_size], start_rows))
        return rows[:n]

    return _write_tflite(graph, [start, step], out_path, float16, input_shape)


def tflite_builds(exp: TaskExport, out: Path) -> dict[str, Path]:
    """The float32 and float16 TFLite builds of ``exp`` in ``out`` (through ONNX and onnx2tf; an ``iterated``
    export converts its start and step graphs separately and runs the step in a loop inside the TFLite graph)."""
    names = {"float32": out / "model_float32.tflite", "float16": out / "model_float16.tflite"}
    if exp.iterated is None:
        saved = onnx_to_saved_model(export_onnx(exp.model, out / "model.onnx", exp.example), out / "saved_model")
        return {k: saved_model_to_tflite(saved, p, float16=k == "float16", input_shape=exp.input_shape)
                for k, p in names.items()}
    it = exp.iterated
    start = onnx_to_saved_model(export_onnx(it.start, out / "start.onnx", exp.example), out / "start_saved_model")
    state = (torch.zeros(it.state_size), torch.zeros(it.fixed_size))
    step = onnx_to_saved_model(export_onnx(it.step, out / "step.onnx", state, dynamic_frames=False),
                               out / "step_saved_model")
    return {k: iterated_to_tflite(start, step, it, p, float16=k == "float16", input_shape=exp.input_shape)
            for k, p in names.items()}


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
    latency_safety: float = LATENCY_SAFETY  # measured mean latency x this must fit the competition's budget


def torch_outputs(model: nn.Module, seqs: list[np.ndarray]) -> list[np.ndarray]:
    """Outputs of the torch grader model, one sequence at a time."""
    with torch.no_grad():
        return [model(torch.from_numpy(x)).numpy() for x in seqs]


def timed_outputs(runner, seqs: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """``runner``'s output for each sequence and the mean milliseconds per call."""
    outs, seconds = [], 0.0
    for x in seqs:
        t0 = time.perf_counter()
        outs.append(runner(x))
        seconds += time.perf_counter() - t0
    return outs, 1000 * seconds / max(1, len(seqs))


def check_build(path: Path, exp: TaskExport, ref: list[np.ndarray], cfg: ConvertConfig) -> dict:
    """Size, builtin-only ops, both runtimes, degenerate inputs, parity with torch and the mean latency (1 thread,
    on the validation sequences, else the edge cases) of one TFLite build."""
    ops = op_names(path)
    rep: dict = {"size_mb": path.stat().st_size / 2 ** 20, "ops": ops,
                 "non_builtin_ops": [o for o in ops if "FLEX" in o.upper() or "CUSTOM" in o.upper()]}
    litert, tflite = tflite_runner(path, "litert"), tflite_runner(path, "tflite")
    rep["degenerate_finite"] = {k: bool(np.isfinite(litert(x)).all() and np.isfinite(tflite(x)).all())
                                for k, x in exp.degenerate.items()}
    outs, rep["latency_ms_mean"] = timed_outputs(litert, exp.seqs or list(exp.degenerate.values()))
    rep["latency_budget_ms"] = exp.latency_budget_ms
    if exp.seqs:
        rep.update(exp.compare(outs, ref, exp.oof))
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
    slow = rep.get("latency_budget_ms") and latency_failure(rep["latency_ms_mean"], rep["latency_budget_ms"],
                                                            cfg.latency_safety)
    return fails + ([slow] if slow else [])


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
    (and the task's extra files, e.g. inference_args.json, next to model.tflite); the libraries' own messages go to
    ``export/convert.log``."""
    run = Path(cfg.run_dir)
    out = run / "export"
    exp = plugin_of_run(run).task_export(run, cfg.checkpoint, cfg.parity_limit)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.tflite").unlink(missing_ok=True)                 # never leave an earlier build to be submitted
    with native_stderr_to(out / "convert.log"):
        report = build_and_check(exp, out, cfg)
    for name in ("float32", "float16"):
        print(_summary_line(name, report[name]))
    if report["submitted"] is None:
        failed = {n: report[n]["failed"] for n in ("float32", "float16") if report[n]["failed"]}
        raise GateError(f"conversion gates failed for the submit build ({cfg.submit_build}): {failed} "
                        f"(report: {out / 'report.json'})")
    shutil.copyfile(out / f"model_{report['submitted']}.tflite", out / "model.tflite")
    print(f"model.tflite = the {report['submitted']} build")
    return report


def build_and_check(exp: TaskExport, out: Path, cfg: ConvertConfig) -> dict:
    """Both builds of ``exp`` in ``out`` (``model_float32.tflite``, ``model_float16.tflite``), their gates, and
    the report (also written as ``report.json``, with the task's extra files)."""
    builds = tflite_builds(exp, out)
    ref = torch_outputs(exp.model, exp.seqs)
    report = {name: check_build(path, exp, ref, cfg) for name, path in builds.items()}
    if "torch_accuracy" in report["float32"]:
        report["torch_accuracy"] = report["float32"]["torch_accuracy"]
    report["submitted"] = choose_build(report, cfg.submit_build)
    report["sources"] = {str(p.resolve()): file_digest(p) for p in exp.sources}
    for name, text in exp.extra_files.items():
        write_atomic(out / name, text.encode())
    write_json_atomic(out / "report.json", report)
    return report


def conversion_table(report: dict) -> pd.DataFrame:
    """The scalar results of each build of a ``convert`` report (size, agreement, scores or differences, gates)."""
    builds = [b for b in ("float32", "float16") if b in report]
    return pd.DataFrame({b: {k: v for k, v in report[b].items() if not isinstance(v, (list, dict))} | {
        "failed": "; ".join(report[b]["failed"]) or "-"} for b in builds})
