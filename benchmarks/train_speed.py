"""Prints training throughput (samples/s) of a preset for either competition: the data pipeline (augment +
features) alone, the model step alone, and end to end through the loader, on the prepared cache of the preset's
synthetic data (or --prepared)."""
from __future__ import annotations

import argparse
import time

import numpy as np

from aslkit import constants as C
from aslkit.tasks.registry import build_task
from aslkit.train import Dist, EpochDataset, build_optimizer, make_loader, make_train_config, open_prepared


def _step(parts, model, opt, batch) -> int:
    """One optimiser step on a collated batch; returns its size."""
    inputs, targets, idx = batch
    loss = parts.objective.loss(parts.objective.forward(model, inputs), targets, inputs)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return len(idx)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", choices=C.SLUGS, default=C.SLUG_SIGNS)
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--prepared", default="", help="prepared cache folder (default: the preset's)")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--model-name", default=None,
                    help="asl-signs family (aslkit.tasks.signs.families; default transformer)")
    args = ap.parse_args()
    cfg = make_train_config(args.preset, {"task": args.task, "prepared_dir": args.prepared,
                                          **({"model_name": args.model_name} if args.model_name else {})})
    parts = build_task(cfg, open_prepared(cfg))
    rows = np.arange(len(parts.index))
    if parts.on_split is not None:
        rows = parts.on_split(rows)
    ds = EpochDataset(parts.sample, rows, parts.features, cfg.seed, augment=True)
    bs, collate = cfg.optim.batch_size, parts.objective.collate
    n = args.batches * bs
    t0 = time.perf_counter()
    items = [ds[i % len(ds)] for i in range(n)]
    data_sps = n / (time.perf_counter() - t0)
    model, opt = parts.model.train(), build_optimizer(parts.model, cfg.optim)
    batches = [collate(items[k * bs:(k + 1) * bs]) for k in range(args.batches)]
    t0 = time.perf_counter()
    seen = sum(_step(parts, model, opt, b) for b in batches)
    model_sps = seen / (time.perf_counter() - t0)
    loader = make_loader(ds, bs, True, Dist(), cfg.workers, cfg.seed, collate)
    t0, seen = time.perf_counter(), 0
    for k, batch in enumerate(loader):
        seen += _step(parts, model, opt, batch)
        if k + 1 >= args.batches:
            break
    e2e = seen / (time.perf_counter() - t0)
    print(f"{args.task}, preset {args.preset}: batch {bs}, features per sample {tuple(items[0][0].shape)}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {cfg.workers} loader worker(s)")
    print(f"data pipeline (augment + features): {data_sps:8.1f} samples/s")
    print(f"model step (forward + backward):    {model_sps:8.1f} samples/s")
    print(f"end to end (loader + step):         {e2e:8.1f} samples/s")


if __name__ == "__main__":
    main()
