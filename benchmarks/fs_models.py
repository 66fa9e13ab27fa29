"""The asl-fingerspelling model table: converted runs (the F5 CTC encoder, the F1 model, a one-file ensemble) side by
side: training minutes and epochs, held-out score of torch and of the grader clone on the submitted build, TFLite
latency per phrase at T = 160 (median / p95, 1 thread, measured here in the same process for every row, so the
ratio to the first row is fair; on held-out phrases resampled to 160 frames, since an attention decoder stops at its
end token, and on a random input) and size; then, with --full, untrained models of the ``full`` preset converted here
(the graph of an untrained model is the graph of a trained one) with their latency, size and the time projected for
the hidden test set against the 5-hour limit.

    .venv/bin/python benchmarks/fs_models.py --runs logs/<ctc run> logs/<f1 run> logs/<ensemble> --full
    .venv/bin/python benchmarks/fs_models.py --full f1x2      # the full-size two-seed F1 ensemble alone
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from fs_speed import call_times_ms, latency_ms  # noqa: E402  (same folder: run as a script)

from aslkit import constants as C
from aslkit.export import tflite_builds
from aslkit.runs import ensemble_record, is_ensemble
from aslkit.submit import score_run
from aslkit.tasks.base import TaskExport
from aslkit.tasks.fingerspelling.export import fs_grader_graph, fs_validation_sequences
from aslkit.tasks.fingerspelling.grade import LATENCY_BUDGET_MS
from aslkit.tasks.registry import build_modules
from aslkit.tflite import tflite_runner
from aslkit.train import make_train_config

TEST_PHRASES = 5 * 3600 * 1000 / LATENCY_BUDGET_MS      # the phrase count whose 5-hour limit is the kit's budget


def training(run: Path) -> tuple[float, int]:
    """Training minutes and epochs of a run (summed over an ensemble's members)."""
    runs = [Path(m) for m in ensemble_record(run)["members"]] if is_ensemble(run) else [run]
    frames = [pd.read_csv(r / "metrics.csv") for r in runs]
    return sum(f["seconds"].sum() for f in frames) / 60, sum(len(f) for f in frames)


def run_row(run: Path) -> dict:
    """One converted run: training, scores (torch and grader clone, submitted build), size."""
    report = json.loads((run / "export" / "report.json").read_text())
    build = report["submitted"]
    tflite = run / "export" / f"model_{build}.tflite"
    graded = score_run(run)
    minutes, epochs = training(run)
    return {"model": run.name, "train min": minutes, "epochs": epochs, "torch score": report[build]["torch_score"],
            "grader clone": graded["score"], "build": build, "size MB": tflite.stat().st_size / 2 ** 20,
            "tflite": tflite}


def held_out_at(run: Path, frames: int, limit: int) -> list[np.ndarray]:
    """Grader inputs of a run's first ``limit`` held-out phrases, each resampled to ``frames`` frames (frames
    repeated or skipped evenly): real phrases, so that an autoregressive decoder writes phrases of real lengths."""
    seqs, _ = fs_validation_sequences(run, limit)
    return [s[(np.arange(frames) * len(s)) // frames] for s in seqs]


def interleaved_latency(paths: list[Path], inputs: list[np.ndarray], rounds: int, calls: int) -> pd.DataFrame:
    """Latency at T = 160 of every TFLite file in ``rounds`` interleaved rounds (a noisy neighbour slows every model
    of a round alike): on the held-out phrases ``inputs`` (median and p95 over all calls, the median over the rounds
    of the ratio of round medians to the first file, and its range), and on one random input (``latency_ms``: noise
    rarely spells a phrase that ends, so an attention decoder runs all its steps: its worst case)."""
    runners = [tflite_runner(p) for p in paths]
    for r in runners:
        call_times_ms(r, inputs[:3])
    held = np.array([[call_times_ms(r, inputs) for r in runners] for _ in range(rounds)])       # [rounds, files, n]
    rand = np.array([[latency_ms(p, 160, calls)[0] for p in paths] for _ in range(rounds)])  # [rounds, files]
    ratio = np.median(held, 2) / np.median(held[:, :1], 2)
    rand_ratio = rand / rand[:, :1]
    return pd.DataFrame({"T=160 held-out median ms": np.median(held, (0, 2)),
                         "T=160 held-out p95 ms": np.percentile(held, 95, axis=(0, 2)),
                         "x first": np.median(ratio, 0),
                         "x first, min-max over rounds": [f"{lo:.2f}-{hi:.2f}" for lo, hi in
                                                          zip(ratio.min(0), ratio.max(0))],
                         "T=160 random median ms": np.median(rand, 0), "random x first": np.median(rand_ratio, 0)})


def untrained_builds(model_name: str, members: int, out: Path) -> dict[str, Path]:
    """TFLite builds of ``members`` untrained models of the ``full`` preset of ``model_name`` in one graph."""
    cfg = make_train_config("full", {"task": C.SLUG_FS, "model_name": model_name})
    modules = [build_modules(cfg, C.FS_130) for _ in range(members)]
    graph = fs_grader_graph(cfg, modules[0][0], [m.eval() for _, m in modules], "a", 3)
    exp = TaskExport(graph, torch.rand(23, 390), (None, 390), {}, [], None, lambda *a: {},
                     iterated=graph.iterated())
    return tflite_builds(exp, out)


FULL_MODELS = {"ctc": ("ctc full", "ctc", 1), "f1": ("f1 full", "f1", 1), "f1x2": ("f1 x2 full", "f1", 2)}


def full_rows(calls: int, names: list[str]) -> list[dict]:
    """Latency, size and projected hours of the named full-size models (``FULL_MODELS``: the CTC encoder, the F1
    model, the two-seed one-file F1 ensemble), each row printed as it is measured."""
    rows = []
    for name, model_name, members in (FULL_MODELS[n] for n in names):
        with tempfile.TemporaryDirectory() as tmp:
            for build, path in untrained_builds(model_name, members, Path(tmp)).items():
                cells = {t: latency_ms(path, t, calls) for t in (160, 400)}
                mean_ms = float(np.mean([cells[160][0], cells[400][0]]))
                rows.append({"model": name, "build": build, "T=160 median ms": cells[160][0],
                             "T=160 p95 ms": cells[160][1], "T=400 median ms": cells[400][0],
                             "size MB": path.stat().st_size / 2 ** 20,
                             "projected hours": mean_ms * TEST_PHRASES / 3.6e6})
                print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="*", default=[], help="converted fingerspelling run or ensemble folders")
    ap.add_argument("--full", nargs="*", choices=list(FULL_MODELS), default=None,
                    help="also convert and time these untrained full-size models (bare --full: ctc f1; f1x2, the "
                    "two-seed ensemble, takes onnx2tf a long time for its 28-block start graph)")
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds of the --runs rows")
    ap.add_argument("--phrases", type=int, default=40, help="held-out phrases of the first run timed per round")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.runs:
        rows = pd.DataFrame([run_row(Path(r)) for r in args.runs])
        inputs = held_out_at(Path(args.runs[0]), 160, args.phrases)
        lat = interleaved_latency(list(rows.pop("tflite")), inputs, args.rounds, args.calls)
        print(pd.concat([rows, lat], axis=1).set_index("model").round(4).to_string())
    if args.full is not None:
        print(f"\nfull size (untrained; projected hours = mean of the T=160 and T=400 medians x {TEST_PHRASES:,.0f} "
              f"phrases, the count whose 5 h budget is {LATENCY_BUDGET_MS:.0f} ms per phrase)")
        print(pd.DataFrame(full_rows(args.calls, args.full or ["ctc", "f1"])).set_index("model").round(3).to_string())


if __name__ == "__main__":
    main()
