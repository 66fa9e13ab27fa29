"""Cross-validation folds of a prepared cache: participant (group) folds, a seeded random split, and F5's single
random 5 % hold-out."""
from __future__ import annotations

import math

import numpy as np


def group_folds(groups: np.ndarray, n_folds: int) -> np.ndarray:
    """GroupKFold: each group (participant) goes whole to one fold; largest groups first, each to the fold with the
    fewest rows so far (ties: lowest fold, then lowest group id), so folds are balanced in rows."""
    ids, counts = np.unique(np.asarray(groups), return_counts=True)
    if len(ids) < n_folds:
        raise ValueError(f"cannot make {n_folds} group folds from {len(ids)} participant(s): {ids.tolist()}")
    totals = np.zeros(n_folds, dtype=np.int64)
    fold_of = {}
    for k in np.lexsort((ids, -counts)):
        f = int(np.argmin(totals))
        fold_of[ids[k]] = f
        totals[f] += counts[k]
    return np.array([fold_of[g] for g in groups], dtype=np.int64)


def random_folds(n: int, n_folds: int, seed: int) -> np.ndarray:
    """A seeded random split of ``n`` rows into ``n_folds`` folds whose sizes differ by at most one."""
    if n < n_folds:
        raise ValueError(f"cannot make {n_folds} folds from {n} sequence(s)")
    folds = np.empty(n, dtype=np.int64)
    folds[np.random.default_rng(seed).permutation(n)] = np.arange(n) % n_folds
    return folds


VALID_FRACTION = 0.05


def random5_folds(n: int, seed: int, fraction: float = VALID_FRACTION) -> np.ndarray:
    """Fold 0 for a seeded random ``fraction`` of ``n`` rows (at least one), -1 for all others."""
    if n < 2:
        raise ValueError(f"cannot hold out a validation split from {n} sequence(s)")
    folds = np.full(n, -1, dtype=np.int64)
    k = max(1, math.ceil(fraction * n))
    folds[np.random.default_rng(seed).permutation(n)[:k]] = 0
    return folds
