"""Prints training throughput (samples/s) of a preset for either competition, each stage measured on the same
samples in one run: the loader's work (the augmentation of raw landmarks), the features of whole batches
(``objective.featurize``: groups of similar length, on the training device) next to the same features computed one
sample at a time (the old loader path), the model step alone on ready batches (forward + backward + optimiser), and
end to end (``train.train_epoch`` over a loader of those samples, with the preset's workers, threads and
``features_on``). Every stage runs ``--rounds`` times, interleaved, and the median is printed (shared machines are
noisy). The last lines are end to end / model step, the share of the model's speed that training keeps, and end to
end / (features + model step), the training step of the design where the features are part of it. On the prepared
cache of the preset's synthetic data (or --prepared)."""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from aslkit import constants as C
from aslkit import tensor_ops
from aslkit.tasks.registry import build_task
from aslkit.train import (
    BatchCollate,
    Dist,
    EpochDataset,
    MixedPrecision,
    build_optimizer,
    build_scheduler,
    features_in_loader,
    loader_workers,
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


def _ready(obj, raw: list, device: torch.device) -> list:
    """Collated batches as the model step takes them: features and targets on ``device``."""
    return [(obj.featurize(to_device(x, device)), to_device(t, device)) for x, t, _ in raw]


def _round(parts, cfg, ds, device: torch.device, model, opt, scaler) -> dict[str, float]:
    """One measurement of every stage (samples/s)."""
    bs, obj, n, rates = cfg.optim.batch_size, parts.objective, len(ds), {}
    items, rates["augment"] = _timed(lambda: [ds[(i, 0)] for i in range(n)], n)
    raw = [obj.collate(items[k:k + bs]) for k in range(0, n - bs + 1, bs)]
    ready, rates["batch"] = _timed(lambda: _ready(obj, raw, device), len(raw) * bs)
    features = parts.features.to(device)
    with torch.no_grad():
        _, rates["single"] = _timed(lambda: [features(x.to(device)) for x, _, _ in items], n)
    _, rates["model"] = _timed(lambda: _model_steps(parts, model, opt, scaler, ready, cfg.seed), len(ready) * bs)
    d = Dist(device=device)
    in_loader = features_in_loader(cfg)
    features.to(torch.device("cpu") if in_loader else device)
    loader = make_loader(ds, bs, True, d, cfg.workers, cfg.seed, BatchCollate(obj, in_loader))
    scheduler = build_scheduler(opt, cfg.optim, len(loader))
    _, rates["e2e"] = _timed(lambda: train_epoch(model, loader, opt, scheduler, None, parts, cfg.optim, d, scaler, 0,
                                                 cfg.seed), len(loader) * bs)
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", choices=C.SLUGS, default=C.SLUG_SIGNS)
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--prepared", default="", help="prepared cache folder (default: the preset's)")
    ap.add_argument("--batches", type=int, default=30, help="batches per round")
    ap.add_argument("--rounds", type=int, default=3, help="measurements of every stage (the median is printed)")
    ap.add_argument("--model-name", default=None, help="family (default: the task's default)")
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default: the preset's; -1: by device)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--features-on", default=None, help="auto | loader | device (default: the preset's)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (0: default; -1: cores beyond workers)")
    ap.add_argument("--call-frames", type=int, default=None,
                    help="grouping cost of the batch features on this device (default: tensor_ops.CHUNK_CALL_FRAMES)")
    args = ap.parse_args()
    if args.call_frames is not None:
        tensor_ops.CHUNK_CALL_FRAMES[torch.device(args.device).type] = args.call_frames
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
    n = min(args.batches * cfg.optim.batch_size, len(rows))
    ds = EpochDataset(parts.sample, np.random.default_rng(cfg.seed).choice(rows, n, replace=False), cfg.seed, True)
    model = parts.model.to(device).train()
    opt = build_optimizer(model, cfg.optim)
    scaler = MixedPrecision(cfg.optim.amp, device)
    warm = [parts.objective.collate([ds[(i, 0)] for i in range(min(n, cfg.optim.batch_size))])]
    _model_steps(parts, model, opt, scaler, _ready(parts.objective, warm, device), cfg.seed)     # warm-up
    rounds = [_round(parts, cfg, ds, device, model, opt, scaler) for _ in range(args.rounds)]
    rate = {k: float(np.median([r[k] for r in rounds])) for k in rounds[0]}
    d = Dist(device=device)
    print(f"{args.task} ({cfg.model_name or 'default family'}), preset {args.preset}: batch {cfg.optim.batch_size}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"{loader_workers(cfg.workers, d)} loader worker(s), {torch.get_num_threads()} torch threads, device "
          f"{device}, end-to-end batch features in the {'loader' if features_in_loader(cfg) else 'training step'} "
          f"(grouping cost {tensor_ops.CHUNK_CALL_FRAMES.get(device.type)} frames); "
          f"median of {args.rounds} rounds of {n} samples")
    print(f"loader work (augmentation, raw landmarks):   {rate['augment']:8.1f} samples/s")
    print(f"features, whole batches (length groups):     {rate['batch']:8.1f} samples/s")
    print(f"features, one sample at a time (old path):   {rate['single']:8.1f} samples/s")
    print(f"model step (forward + backward + optimiser): {rate['model']:8.1f} samples/s")
    print(f"end to end (train_epoch over a loader):      {rate['e2e']:8.1f} samples/s")
    print(f"end to end / model step:                     {rate['e2e'] / rate['model']:8.2f}")
    step = 1 / (1 / rate["batch"] + 1 / rate["model"])
    print(f"end to end / (features + model step):        {rate['e2e'] / step:8.2f}")


if __name__ == "__main__":
    main()
