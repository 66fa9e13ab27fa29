"""Prints training throughput (samples/s) of a preset: the data pipeline (augment + features) alone, the model step
alone, and end to end through the loader, on the prepared cache of the preset's synthetic data (or --prepared)."""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from aslkit.config import make_config
from aslkit.train import EpochDataset, TrainConfig, build_signs, build_optimizer, make_loader, Dist


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--prepared", default="", help="prepared cache folder (default: the preset's)")
    ap.add_argument("--batches", type=int, default=20)
    args = ap.parse_args()
    cfg = make_config(TrainConfig, args.preset, {"prepared_dir": args.prepared})
    parts = build_signs(cfg)
    labels = parts.index["label"].to_numpy()
    idx = np.arange(len(parts.index))
    ds = EpochDataset(parts.source, idx, parts.transform, parts.features, labels, cfg.seed)
    bs = cfg.optim.batch_size
    n = args.batches * bs
    t0 = time.perf_counter()
    batch = [ds[i % len(ds)] for i in range(n)]
    data_sps = n / (time.perf_counter() - t0)
    feats = torch.stack([b[0] for b in batch[:bs]])
    y = torch.tensor([b[1] for b in batch[:bs]])
    model, opt = parts.model.train(), build_optimizer(parts.model, cfg.optim)
    t0 = time.perf_counter()
    for _ in range(args.batches):
        loss = torch.nn.functional.cross_entropy(model(feats), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model_sps = n / (time.perf_counter() - t0)
    loader = make_loader(ds, bs, True, Dist(), cfg.workers, cfg.seed)
    t0, seen = time.perf_counter(), 0
    for k, (f, lab, _) in enumerate(loader):
        loss = torch.nn.functional.cross_entropy(model(f), lab)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(lab)
        if k + 1 >= args.batches:
            break
    e2e = seen / (time.perf_counter() - t0)
    print(f"preset {args.preset}: batch {bs}, feature dim {parts.features.feature_dim}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {cfg.workers} loader worker(s)")
    print(f"data pipeline (augment + features): {data_sps:8.1f} samples/s")
    print(f"model step (forward + backward):    {model_sps:8.1f} samples/s")
    print(f"end to end (loader + step):         {e2e:8.1f} samples/s")


if __name__ == "__main__":
    main()
