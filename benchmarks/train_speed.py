"""Prints training throughput (samples/s) of a preset for either competition, each stage measured on the same
samples in one run: the loader's work (the augmentation of raw landmarks), the features of whole batches on the
training device (``objective.to``) next to the same features computed one sample at a time (the old loader path),
the model step alone on ready batches (forward + backward + optimiser), and end to end (``train.train_epoch`` over a
loader of those samples). The last line is end to end / model step: the share of the model's speed that training
keeps. On the prepared cache of the preset's synthetic data (or --prepared)."""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from aslkit import constants as C
from aslkit.tasks.registry import build_task
from aslkit.train import (
    BatchCollate,
    Dist,
    EpochDataset,
    MixedPrecision,
    build_optimizer,
    build_scheduler,
    features_in_loader,
    make_loader,
    make_train_config,
    open_prepared,
    to_device,
    train_epoch,
    training_threads,
)


def _timed(fn, n: int) -> tuple[object, float]:
    """``fn()`` and ``n`` divided by the seconds it took."""
    t0 = time.perf_counter()
    out = fn()
    return out, n / (time.perf_counter() - t0)


def _model_steps(parts, model, opt, scaler: MixedPrecision, ready: list, seed: int) -> int:
    """One training step (the objective's ``train_step``: mixup and all, mixed precision on CUDA) per ready batch;
    samples seen."""
    seen = 0
    for k, (inputs, targets) in enumerate(ready):
        with scaler.autocast(next(model.parameters()).device.type):
            _, loss = parts.objective.train_step(model, inputs, targets, np.random.default_rng([seed, k]))
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        scaler.step(opt)
        scaler.update()
        seen += len(targets) if torch.is_tensor(targets) else len(targets[1])
    if next(model.parameters()).is_cuda:
        torch.cuda.synchronize()
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", choices=C.SLUGS, default=C.SLUG_SIGNS)
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--prepared", default="", help="prepared cache folder (default: the preset's)")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--model-name", default=None, help="family (default: the task's default)")
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default: the preset's; -1: per core)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--features-on", default=None, help="auto | loader | device (default: the preset's)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (0: default; -1: cores beyond workers)")
    args = ap.parse_args()
    cfg = make_train_config(args.preset, {"task": args.task, "prepared_dir": args.prepared,
                                          **({"model_name": args.model_name} if args.model_name else {}),
                                          **({"workers": args.workers} if args.workers is not None else {}),
                                          **({"features_on": args.features_on} if args.features_on else {}),
                                          **({"threads": args.threads} if args.threads is not None else {})})
    device = torch.device(args.device)
    if training_threads(cfg, Dist(device=device)) > 0:
        torch.set_num_threads(training_threads(cfg, Dist(device=device)))
    parts = build_task(cfg, open_prepared(cfg))
    rows = np.arange(len(parts.index))
    rows = parts.on_split(rows) if parts.on_split is not None else rows
    bs, obj = cfg.optim.batch_size, parts.objective
    n = min(args.batches * bs, len(rows))
    ds = EpochDataset(parts.sample, np.random.default_rng(cfg.seed).choice(rows, n, replace=False), cfg.seed, True)
    features = parts.features.to(device)
    items, augment_sps = _timed(lambda: [ds[(i, 0)] for i in range(n)], n)
    raw = [obj.collate(items[k:k + bs]) for k in range(0, n - bs + 1, bs)]
    ready, batch_sps = _timed(lambda: [(obj.featurize(to_device(x, device)), to_device(t, device))
                                       for x, t, _ in raw], len(raw) * bs)
    with torch.no_grad():
        _, single_sps = _timed(lambda: [features(x.to(device)) for x, _, _ in items], n)
    model = parts.model.to(device).train()
    opt = build_optimizer(model, cfg.optim)
    scaler = MixedPrecision(cfg.optim.amp, device)
    _model_steps(parts, model, opt, scaler, ready[:1], cfg.seed)                      # warm-up
    seen, model_sps = _timed(lambda: _model_steps(parts, model, opt, scaler, ready, cfg.seed), len(ready) * bs)
    d = Dist(device=device)
    in_loader = features_in_loader(cfg, device)
    features.to(torch.device("cpu") if in_loader else device)
    loader = make_loader(ds, bs, True, d, cfg.workers, cfg.seed, BatchCollate(obj, in_loader))
    scheduler = build_scheduler(opt, cfg.optim, len(loader))
    _, e2e_sps = _timed(lambda: train_epoch(model, loader, opt, scheduler, None, parts, cfg.optim, d, scaler, 0,
                                            cfg.seed), len(loader) * bs)
    print(f"{args.task} ({cfg.model_name or 'default family'}), preset {args.preset}: batch {bs}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {cfg.workers} loader worker(s) "
          f"setting, {torch.get_num_threads()} torch threads, device {device}, end-to-end batch features in the "
          f"{'loader' if in_loader else 'training process'}")
    print(f"loader work (augmentation, raw landmarks):   {augment_sps:8.1f} samples/s")
    print(f"features, whole batches on the device:       {batch_sps:8.1f} samples/s")
    print(f"features, one sample at a time (old path):   {single_sps:8.1f} samples/s")
    print(f"model step (forward + backward + optimiser): {model_sps:8.1f} samples/s")
    print(f"end to end (train_epoch over a loader):      {e2e_sps:8.1f} samples/s")
    print(f"end to end / model step:                     {e2e_sps / model_sps:8.2f}")


if __name__ == "__main__":
    main()
