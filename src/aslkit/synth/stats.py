"""Synthetic recordings sampled in memory (no files), for statistics and quick experiments."""
from __future__ import annotations

import warnings

import numpy as np

from aslkit import constants as C
from aslkit.synth.body import render, sample_signer
from aslkit.synth.signs import lexicon, perform_sign
from aslkit.synth.spelling import perform_phrase, random_phrase


def sample_islr(n_signers: int, per_signer: int, seed: int = 0) -> tuple[list[np.ndarray], list[str], list[int]]:
    """Synthetic asl-signs recordings without writing files: (sequences, glosses, signer index)."""
    lex = lexicon()
    glosses = list(lex)
    seqs, labels, who = [], [], []
    for p in range(n_signers):
        rng = np.random.default_rng([seed, 1, p])
        signer = sample_signer(rng, p, C.SLUG_SIGNS)
        for _ in range(per_signer):
            g = glosses[int(rng.integers(0, len(glosses)))]
            seqs.append(render(signer, perform_sign(lex[g], signer, rng), rng))
            labels.append(g)
            who.append(p)
    return seqs, labels, who


def sample_fs(n_signers: int, per_signer: int, seed: int = 0, corrupt_rate: float = 0.07
              ) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Synthetic fingerspelling recordings without files: (sequences, phrases, dominant hand of each signer)."""
    seqs, phrases, dominant = [], [], []
    for p in range(n_signers):
        rng = np.random.default_rng([seed, 2, p])
        signer = sample_signer(rng, p, C.SLUG_FS)
        for k in range(per_signer):
            phrase = random_phrase(rng, supplemental=k % 4 == 3)
            seqs.append(render(signer, perform_phrase(phrase, signer, rng, rng.random() < corrupt_rate), rng))
            phrases.append(phrase)
            dominant.append(signer.dominant)
    return seqs, phrases, dominant


def _baseline_features(x: np.ndarray, n_frames: int = 8) -> np.ndarray:
    """Crude per-recording features: the dominant hand (mirrored to the right) and lips relative to the nose,
    scaled by the face spread, at ``n_frames`` evenly spaced frames, NaN -> 0."""
    if np.isnan(x[:, C.LEFT_HAND[0], 0]).sum() < np.isnan(x[:, C.RIGHT_HAND[0], 0]).sum():
        x = x[:, C.flip_permutation()].copy()
        x[..., 0] = 1 - x[..., 0]
    pts = x[:, np.concatenate([C.RIGHT_HAND, C.LIPS]), :2]
    with warnings.catch_warnings():                      # a recording may have no face at all
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = np.nanmean(x[:, [1], :2], axis=(0, 1))
        f = (pts - ref) / (np.nanstd(x[:, C.FACE, :2]) + 1e-6)
    idx = np.linspace(0, len(f) - 1, n_frames).round().astype(int)
    return np.nan_to_num(f[idx], nan=0.0).reshape(-1)


def baseline_accuracy(n_signs: int = 50, n_signers: int = 10, per_sign: int = 3, test_signers: int = 2,
                      seed: int = 9) -> dict[str, float]:
    """Learnability check: a ridge classifier on crude features, trained on some signers and scored on new ones.

    Far above chance means the signs are learnable; well below 100 % means they are not trivial.
    """
    lex = lexicon()
    glosses = list(lex)[:: max(1, len(lex) // n_signs)][:n_signs]
    X, Y, P = [], [], []
    for p in range(n_signers):
        rng = np.random.default_rng([seed, p])
        signer = sample_signer(rng, p, C.SLUG_SIGNS)
        for label, g in enumerate(glosses):
            for _ in range(per_sign):
                X.append(_baseline_features(render(signer, perform_sign(lex[g], signer, rng), rng)))
                Y.append(label)
                P.append(p)
    X, Y, P = np.array(X), np.array(Y), np.array(P)
    train = P < n_signers - test_signers
    mu, sd = X[train].mean(0), X[train].std(0) + 1e-6
    Xs = (X - mu) / sd
    A = Xs[train]
    W = np.linalg.solve(A.T @ A + 30 * np.eye(A.shape[1]), A.T @ np.eye(len(glosses))[Y[train]])
    acc = lambda m: float(((Xs[m] @ W).argmax(1) == Y[m]).mean())  # noqa: E731
    return {"signs": len(glosses), "chance": 1 / len(glosses), "train_accuracy": acc(train),
            "heldout_signer_accuracy": acc(~train)}
