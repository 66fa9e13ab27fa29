"""Validation tables on a hand-made OOF set."""
from __future__ import annotations

import numpy as np
import pandas as pd

from aslkit import constants as C
from aslkit.evaluate import validate
from aslkit.tasks.signs.evaluate import oof_summary, per_participant_accuracy, report_tables, topk_hits


def _oof():
    labels = np.array([0, 0, 1, 1, 2, 2])
    preds = np.array([0, 1, 1, 0, 1, 1])
    oof = pd.DataFrame({"sequence_id": range(6), "participant_id": [7, 7, 7, 8, 8, 8], "label": labels,
                        "fold": [0, 0, 0, 1, 1, 1], "pred": preds})
    logits = np.full((6, 250), -5.0)
    logits[np.arange(6), preds] = 5.0
    logits[np.arange(6), labels] = np.where(preds == labels, 5.0, 1.0)     # the label is second best when wrong
    return oof, logits


def test_tables():
    oof, logits = _oof()
    t = report_tables(oof, logits, list(C.signs()))
    assert t["per_fold"].loc["all", "accuracy"] == 2 / 6 and t["per_fold"].loc[0, "accuracy"] == 2 / 3
    assert t["per_fold"].loc["all", "top5"] == 1.0
    assert t["per_participant"].loc[7, "accuracy"] == 2 / 3 and t["per_participant"].loc[8, "accuracy"] == 0.0
    conf = t["confusions"]
    assert (conf.iloc[0]["label"], conf.iloc[0]["pred"], conf.iloc[0]["count"]) == (2, 1, 2)
    assert conf.iloc[0]["sign"] == C.signs()[2] and conf.iloc[0]["predicted"] == C.signs()[1]
    assert topk_hits(logits, oof["label"].to_numpy(), 1).mean() == 2 / 6


def test_per_participant_accuracy_is_the_reports_table_and_the_zoo_row(tmp_path):
    oof, logits = _oof()
    table = report_tables(oof, logits, list(C.signs()))["per_participant"]
    top5 = topk_hits(logits, oof["label"].to_numpy(), 5)
    pd.testing.assert_frame_equal(per_participant_accuracy(oof, top5), table)
    pd.testing.assert_frame_equal(per_participant_accuracy(oof), table[["n", "accuracy"]])
    assert list(table.index) == [8, 7]                                     # worst first
    oof.to_csv(tmp_path / "oof.csv", index=False)
    assert oof_summary(tmp_path) == {"n": 6, "OOF accuracy": 2 / 6, "min participant accuracy": 0.0,
                                     "worst participant": 8, "max participant accuracy": 2 / 3}


def test_validate_writes_report(tmp_path):
    oof, logits = _oof()
    oof.to_csv(tmp_path / "oof.csv", index=False)
    np.save(tmp_path / "oof_logits.npy", logits)
    res = validate([tmp_path])
    assert res["summary"]["accuracy"] == 2 / 6
    for name in ("summary.json", "per_sign.csv", "confusions.csv", "per_sign.png", "top_confusions.png"):
        assert (tmp_path / "validation" / name).is_file()
