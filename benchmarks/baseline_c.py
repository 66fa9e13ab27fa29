"""The non-deep reference's regularisation, chosen on one fold and confirmed on another: held-out accuracy of
``model_name=baseline`` (summary features into scikit-learn's logistic regression) for several ``C`` on the quick
synthetic asl-signs data, validated on the participants of fold 0 (the choice) and of fold 1 (the check). The
features are computed once (the family's feature module, no augmentation, as its training does); each fit is the
family's own ``SummaryLogistic.fit``."""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from aslkit.tasks.registry import build_task
from aslkit.tasks.signs.families.baseline.model import LogisticConfig, SummaryLogistic
from aslkit.tensor_ops import batch_features, pack_landmarks
from aslkit.train import make_train_config, open_prepared


def all_features(parts, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Summary features ``[N, F]`` and labels ``[N]`` of every recording of the cache."""
    feats, labels = [], []
    for start in range(0, len(parts.index), chunk):
        samples = [parts.sample(i, None) for i in range(start, min(start + chunk, len(parts.index)))]
        frames, lengths = pack_landmarks([torch.as_tensor(np.asarray(x)) for x, _ in samples])
        feats.append(batch_features(parts.features, frames, lengths))
        labels += [int(y) for _, y in samples]
    return torch.cat(feats), torch.as_tensor(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--c", default="0.01,0.05,0.2", help="comma-separated values of C")
    ap.add_argument("--folds", default="0,1", help="validation folds (the first one picks C)")
    args = ap.parse_args()
    cfg = make_train_config(args.preset, {"model_name": "baseline"})
    parts = build_task(cfg, open_prepared(cfg))
    x, y = all_features(parts)
    folds = parts.index["fold"].to_numpy()
    print(f"{len(y)} recordings, {x.shape[1]} features; held-out accuracy by C (rows) and validation fold (columns)")
    print("C       " + "".join(f"fold {f:<5}" for f in args.folds.split(",")) + "seconds per fit")
    for c in [float(v) for v in args.c.split(",")]:
        row, seconds = [], []
        for fold in [int(f) for f in args.folds.split(",")]:
            train = torch.as_tensor(folds != fold)
            model = SummaryLogistic(LogisticConfig(c=c), x.shape[1])
            t0 = time.perf_counter()
            model.fit(x[train], y[train])
            seconds.append(time.perf_counter() - t0)
            with torch.no_grad():
                row.append(float((model(x[~train]).argmax(1) == y[~train]).float().mean()))
        print(f"{c:<8g}" + "".join(f"{a:<10.3f}" for a in row) + f"{np.mean(seconds):.0f}")


if __name__ == "__main__":
    main()
