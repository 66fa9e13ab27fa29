"""CTC forced alignment (Viterbi over the CTC lattice): known boundaries on a toy model, the best path against brute
force, and the frames a target needs."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from aslkit.tasks.fingerspelling.ctc_ops import character_spans, ctc_forced_align

BLANK = 4


def emissions(path: list[int], n_classes: int = 5, peak: float = 0.9) -> np.ndarray:
    """Log probabilities ``[T, C]`` of a toy model that puts ``peak`` on ``path[t]`` at frame t, the rest evenly."""
    probs = np.full((len(path), n_classes), (1 - peak) / (n_classes - 1))
    probs[np.arange(len(path)), path] = peak
    return np.log(probs)


def collapse(path: tuple[int, ...]) -> list[int]:
    """CTC collapse: repeats merged, blanks dropped."""
    return [c for i, c in enumerate(path) if c != BLANK and (i == 0 or c != path[i - 1])]


def test_known_emissions_give_the_known_boundaries():
    b = BLANK
    path = [b, 3, 3, b, 3, 1, 1, b, 0, b]                                   # "3 3 1 0": a repeat needs its blank
    states, score = ctc_forced_align(emissions(path), [3, 3, 1, 0], blank=BLANK)
    assert len(states) == len(path) and np.all(np.diff(states) >= 0)         # one state per frame, never backwards
    np.testing.assert_array_equal(character_spans(states, 4), [[1, 2], [4, 4], [5, 6], [8, 8]])
    assert score == pytest.approx(len(path) * np.log(0.9))


def test_viterbi_score_is_the_best_path_by_brute_force():
    rng = np.random.default_rng(0)
    for target in ([1, 2], [2, 2], [0], [3, 1, 3]):
        log_probs = np.log(rng.dirichlet(np.ones(5), size=6))
        best = max(sum(log_probs[t, c] for t, c in enumerate(path))
                   for path in itertools.product(range(5), repeat=6) if collapse(path) == target)
        states, score = ctc_forced_align(log_probs, target, blank=BLANK)
        assert score == pytest.approx(best)
        labels = np.where(states % 2 == 1, np.asarray(target + [BLANK])[states // 2], BLANK)
        assert collapse(tuple(labels)) == target
        assert sum(log_probs[t, c] for t, c in enumerate(labels)) == pytest.approx(score)


def test_too_few_frames_and_the_empty_target():
    with pytest.raises(ValueError, match="2 frames cannot hold a CTC path of 2 characters \\(3 needed\\)"):
        ctc_forced_align(np.zeros((2, 5)), [2, 2], blank=BLANK)
    states, _ = ctc_forced_align(np.zeros((3, 5)), [2, 2], blank=BLANK)     # 2, blank, 2: just enough
    assert states.tolist() == [1, 2, 3]
    states, _ = ctc_forced_align(emissions([BLANK, BLANK]), [], blank=BLANK)
    assert states.tolist() == [0, 0]
    states, _ = ctc_forced_align(emissions([1, 1]), [1, 1][:1], blank=BLANK)
    assert character_spans(states, 1).tolist() == [[0, 1]]
