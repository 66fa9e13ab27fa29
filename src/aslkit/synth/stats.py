"""Synthetic recordings sampled in memory (no files), for statistics and quick experiments."""
from __future__ import annotations

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
