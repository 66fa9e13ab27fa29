"""Fingerspelling metric, validation tables and report, and the constant-prediction baseline."""
from __future__ import annotations

import json
import re

import Levenshtein
import pandas as pd
import pytest

from aslkit.tasks.fingerspelling.evaluate import (
    constant_baseline,
    fallback_phrase,
    fs_report_tables,
    fs_score,
    load_fs_oof,
    phrase_type,
    validate_fs,
)


def test_fs_score_hand_computed():
    assert fs_score(["abc", "de"], ["abc", "de"]) == 1.0
    assert fs_score(["kitten", "ab"], ["sitting", "a"]) == (8 - 4) / 8          # 3 + 1 edits over 8 chars
    assert fs_score(["ab"], [""]) == 0.0
    assert fs_score(["ab"], ["xyzw"]) == (2 - 4) / 2                             # negative: 4 edits over 2 chars


def test_fs_score_errors():
    with pytest.raises(ValueError, match="no characters"):
        fs_score(["", ""], ["a", "b"])
    with pytest.raises(ValueError, match="2 labels but 1"):
        fs_score(["a", "b"], ["a"])


@pytest.mark.parametrize("phrase,kind", [("+1-555-0100", "phone"), ("5550100", "phone"), ("www.abc.com", "url"),
                                         ("abc.com/x", "url"), ("wwwabc", "url"), ("12 main street", "address/name"),
                                         ("a.b c", "address/name"), ("john smith", "address/name")])
def test_phrase_type(phrase, kind):
    assert phrase_type(phrase) == kind


def _oof() -> pd.DataFrame:
    return pd.DataFrame({
        "sequence_id": [1, 2, 3, 4, 5, 6],
        "participant_id": [7, 7, 7, 8, 8, 8],
        "fold": [0, 0, 0, 1, 1, 1],
        "phrase": ["kitten", "+1-555", "www.ab.com", "12 main st", "nan", "abc"],
        "pred": ["sitting", "+1-555", "www.ab.co", "12 man st", "", "axc"],
        "length": [30, 60, 120, 250, 500, 10],
    })


def test_tables():
    oof = _oof()
    t = fs_report_tables(oof)
    dist = [Levenshtein.distance(a, b) for a, b in zip(oof["phrase"], oof["pred"])]
    assert dist == [3, 0, 1, 1, 3, 1]
    chars = oof["phrase"].str.len()
    assert t["overall"].loc["all", "score"] == pytest.approx(fs_score(oof["phrase"], oof["pred"]))
    assert t["overall"].loc["all", "chars"] == chars.sum() and t["overall"].loc["all", "distance"] == sum(dist)
    for pid in (7, 8):
        m = oof["participant_id"] == pid
        expected = (chars[m].sum() - sum(d for d, k in zip(dist, m) if k)) / chars[m].sum()
        assert t["per_participant"].loc[pid, "score"] == pytest.approx(expected)
    assert list(t["per_participant"]["score"]) == sorted(t["per_participant"]["score"])
    types = t["per_phrase_type"]
    assert types.loc["phone", "score"] == 1.0 and types.loc["url", "n"] == 1 and types.loc["address/name", "n"] == 4
    assert t["per_length_bin"]["n"].sum() == 6 and t["per_length_bin"].loc["400+", "n"] == 1
    assert t["per_frames_per_char"]["n"].sum() == 6
    subs = t["substitutions"]
    row = subs[(subs["label"] == "b") & (subs["pred"] == "x")]
    assert row["count"].tolist() == [1]
    assert subs[(subs["label"] == "k") & (subs["pred"] == "s")]["count"].tolist() == [1]
    errs = t["char_errors"].set_index("char")
    assert errs.loc["m", "deleted"] == 1 and errs.loc["g", "inserted"] == 1       # "www.ab.com" keeps its "m"
    ex = t["examples"]
    assert len(ex) == 6 and ex["sequence_id"].is_unique and ex.iloc[0]["phrase"] == "nan"


def test_fallback_phrase_beats_inputs():
    phrases = ["hello world", "hello word", "help world", "yellow world", "hello", "world", "12 main st",
               "www.abc.com", "hello world", "+1-555-0100"]
    best = fallback_phrase(phrases)
    assert isinstance(best, str) and best

    def total(c):
        return sum(Levenshtein.distance(c, p) for p in phrases)

    for c in [*phrases, "", "a", "hello wor", "hel wor", "o"]:
        assert total(best) <= total(c), c
    assert constant_baseline(phrases, best) == pytest.approx(fs_score(phrases, [best] * len(phrases)))
    assert constant_baseline(phrases, best) >= constant_baseline(phrases, "hello world")


def test_fallback_phrase_never_empty_and_subsampled():
    assert fallback_phrase(["a", "b", "c", "a"]) != ""
    many = [f"{i} main street" for i in range(100)]
    assert fallback_phrase(many, max_phrases=20, max_set=10) == fallback_phrase(many, max_phrases=20, max_set=10)


def test_validate_fs_writes_report(tmp_path):
    oof = _oof()
    runs = [tmp_path / "fold0", tmp_path / "fold1"]
    for run, fold in zip(runs, (0, 1)):
        run.mkdir()
        oof[oof["fold"] == fold].to_csv(run / "oof.csv", index=False)
    loaded = load_fs_oof(runs)
    assert loaded["phrase"].tolist() == oof["phrase"].tolist() and loaded["pred"].tolist() == oof["pred"].tolist()
    res = validate_fs(runs)
    out = runs[0] / "validation"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["score"] == pytest.approx(fs_score(oof["phrase"], oof["pred"])) == res["summary"]["score"]
    assert summary["n"] == 6 and summary["participants"] == 2 and summary["distance"] == 9
    for name in ("overall", "per_participant", "per_phrase_type", "per_length_bin", "per_frames_per_char",
                 "substitutions", "char_errors", "examples"):
        assert (out / f"{name}.csv").is_file(), name
    assert (out / "per_participant.png").stat().st_size > 0 and (out / "per_group.png").is_file()
    validate_fs(runs[:1], out_dir=tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "summary.json").is_file()


def test_missing_oof_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nothing"))):
        load_fs_oof([tmp_path / "nothing"])
