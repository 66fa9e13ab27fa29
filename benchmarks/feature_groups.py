"""Prints the cost of the batch features (``tensor_ops.batch_features``) per sample for several grouping costs
``call_frames`` (the padded frames one more call over a length group is worth; ``tensor_ops.CHUNK_CALL_FRAMES``
holds the one each device type uses), for every asl-signs family and the fingerspelling CTC model, on augmented
training batches of the quick preset's cache. Each setting runs ``--rounds`` times, interleaved, and the median is
printed with the mean number of groups per batch; the cheapest setting of each family is marked. The last column is
the floor of any grouping: one call over a batch of as many sequences of one length (the batches' median length;
no padding, one call)."""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from aslkit import constants as C
from aslkit.tasks.registry import build_task
from aslkit.tensor_ops import batch_features, length_chunks
from aslkit.train import EpochDataset, make_train_config, open_prepared

FAMILIES = [(C.SLUG_SIGNS, "transformer"), (C.SLUG_SIGNS, "cnn"), (C.SLUG_SIGNS, "frames25"),
            (C.SLUG_SIGNS, "conv1d"), (C.SLUG_FS, "ctc")]


def training_batches(task: str, family: str, preset: str, n_batches: int) -> tuple[list, torch.nn.Module]:
    """Packed frames and lengths of collated batches of augmented training samples, and the feature module."""
    cfg = make_train_config(preset, {"task": task, "model_name": family})
    parts = build_task(cfg, open_prepared(cfg))
    rows = np.arange(len(parts.index))
    rows = parts.on_split(rows) if parts.on_split is not None else rows
    bs = cfg.optim.batch_size
    n = min(n_batches * bs, len(rows) // bs * bs)
    ds = EpochDataset(parts.sample, np.random.default_rng(cfg.seed).choice(rows, n, replace=False), cfg.seed, True)
    items = [ds[(i, 0)] for i in range(n)]
    raw = [parts.objective.collate(items[k:k + bs])[0] for k in range(0, n, bs)]
    return [(r[0], r[1]) for r in raw], parts.features                 # fingerspelling adds the hand frames


def ms_per_sample(features: torch.nn.Module, batches: list, call_frames: int) -> float:
    """Milliseconds of batch features per sample over ``batches``."""
    t0 = time.perf_counter()
    for frames, lengths in batches:
        batch_features(features, frames, lengths, call_frames)
    return (time.perf_counter() - t0) * 1e3 / sum(len(lengths) for _, lengths in batches)


def equal_length_batch(batches: list) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch as large as the first of ``batches`` whose sequences all have the median length of all of them:
    one training sequence at least that long, cut to it and repeated."""
    size = len(batches[0][1])
    length = int(torch.cat([lengths for _, lengths in batches]).median())
    seqs = (seq for frames, lengths in batches for seq in torch.split(frames, lengths.tolist()))
    donor = next(seq for seq in seqs if len(seq) >= length)
    return donor[:length].repeat(size, 1, 1), torch.full((size,), length, dtype=torch.long)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--batches", type=int, default=12, help="training batches per family")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--call-frames", default="48,150,300,600,1200,2400")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the quick preset's on 2 cores)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    settings = [int(v) for v in args.call_frames.split(",")]
    print(f"batch features, ms per sample (median of {args.rounds}), {torch.get_num_threads()} torch threads; "
          f"in brackets: groups per batch")
    for task, family in FAMILIES:
        batches, features = training_batches(task, family, args.preset, args.batches)
        times, equal, floor = {cf: [] for cf in settings}, [equal_length_batch(batches)], []
        for _ in range(args.rounds):
            for cf in settings:
                times[cf].append(ms_per_sample(features, batches, cf))
            floor.append(ms_per_sample(features, equal, 1 << 30))
        median = {cf: float(np.median(t)) for cf, t in times.items()}
        best = min(median, key=median.get)
        cells = [f"{cf}: {median[cf]:.3f}{'*' if cf == best else ' '}"
                 f"({np.mean([len(length_chunks(lengths.tolist(), cf)) for _, lengths in batches]):.1f})"
                 for cf in settings]
        print(f"{family:12s} " + "  ".join(cells) + f"  floor (length {int(equal[0][1][0])}): {np.median(floor):.3f}")


if __name__ == "__main__":
    main()
