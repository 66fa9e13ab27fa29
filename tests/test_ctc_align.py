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


# ------------------------------------------------------------------------------------------------------------------
# CutMix at aligned character boundaries
# ------------------------------------------------------------------------------------------------------------------
def aligned_sequence(phrase: str, seq: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``[T, 2, 3]`` sequence whose frames say where they come from: ``1000 * seq + k + 1`` on the frames of
    character k (1-3 frames each), ``1000 * seq`` on the 0-2 frames between, and the spans of its characters."""
    rng = np.random.default_rng(seed)
    values, spans = [], []
    for k in range(len(phrase)):
        values += [1000 * seq] * int(rng.integers(0, 3))
        spans.append([len(values), len(values) + int(rng.integers(1, 4)) - 1])
        values += [1000 * seq + k + 1] * (spans[-1][1] - spans[-1][0] + 1)
    values += [1000 * seq] * int(rng.integers(0, 3))
    x = np.repeat(np.asarray(values, np.float32)[:, None, None], 2, axis=1).repeat(3, axis=2)
    return x, np.asarray(spans, np.int64)


def test_aligned_cutmix_cuts_between_characters_and_the_phrase_follows_the_frames():
    from aslkit.tasks.fingerspelling.align import aligned_cutmix
    phrases = {1: "hello world", 2: "abc"}
    seen = set()
    for seed in range(40):
        (x1, s1), (x2, s2) = aligned_sequence(phrases[1], 1, seed), aligned_sequence(phrases[2], 2, seed + 100)
        x, phrase = aligned_cutmix(x1, phrases[1], s1, x2, phrases[2], s2, np.random.default_rng(seed))
        marks = x[:, 0, 0].astype(int)
        chars = [phrases[m // 1000][m % 1000 - 1] for i, m in enumerate(marks)
                 if m % 1000 and (i == 0 or marks[i - 1] != m)]
        assert "".join(chars) == phrase                                     # every character whole, none cut
        first = marks[0] // 1000
        seen.add(first)
        n_first = int((marks // 1000 == first).sum())
        assert (marks[:n_first] // 1000 == first).all()                     # a suffix of one, a prefix of the other
    assert seen == {1, 2}


def test_aligned_cutmix_without_alignments_is_outer_cutmix():
    from aslkit.tasks.fingerspelling.align import aligned_cutmix
    from aslkit.tasks.fingerspelling.augment import outer_cutmix
    (x1, s1), (x2, _) = aligned_sequence("abcd", 1, 0), aligned_sequence("xyz", 2, 1)
    x, p = aligned_cutmix(x1, "abcd", s1, x2, "xyz", None, np.random.default_rng(3))
    y, q = outer_cutmix(x1, "abcd", x2, "xyz", np.random.default_rng(3))
    np.testing.assert_array_equal(x, y)
    assert p == q
