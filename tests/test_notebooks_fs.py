"""The numbered notebooks run for asl-fingerspelling too (nbval runs them with their default task, asl-signs):
papermill executes 01-05 with ``task="asl-fingerspelling"`` and the ci profile, as ``./run_all.sh`` does."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import papermill as pm
import pytest

from aslkit import constants as C

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def executed(tmp_path_factory, fs_synth):
    root = tmp_path_factory.mktemp("nb_fs_root")
    mp = pytest.MonkeyPatch()
    mp.setenv("ASLKIT_ROOT", str(root))
    mp.setenv("ASLKIT_PROFILE", "ci")
    run = root / "logs" / "fs_run"
    out = root / "executed"
    out.mkdir()
    for nb in sorted(NOTEBOOKS.glob("0[1-5]_*.ipynb")):
        pm.execute_notebook(str(nb), str(out / nb.name), kernel_name="python3", progress_bar=False,
                            cwd=str(NOTEBOOKS), parameters={"profile": "ci", "task": C.SLUG_FS,
                                                            "data_dir": str(fs_synth), "run": str(run)})
    yield run, out
    mp.undo()


def test_every_stage_wrote_its_artifacts(executed):
    run, out = executed
    assert len(list(out.glob("*.ipynb"))) == 5
    for name in ("config.yaml", "metrics.csv", "oof.csv", "data.json", "validation/summary.json",
                 "export/model.tflite", "export/inference_args.json", "export/report.json", "score.json"):
        assert (run / name).is_file(), name
    with zipfile.ZipFile(run / "submission.zip") as z:
        assert sorted(z.namelist()) == ["inference_args.json", "model.tflite"]
    score = json.loads((run / "score.json").read_text())
    assert score["n"] > 0 and "projected_hours" in score
    pretrained = run.parent / "fs_run_pretrain"                             # 02's data2vec section: 5 epochs
    assert (pretrained / "checkpoints" / "encoder.pt").is_file() and len((pretrained / "metrics.csv").read_text()
                                                                        .splitlines()) == 1 + 5


def test_executed_notebooks_hold_no_errors(executed):
    _, out = executed
    for nb in out.glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        errors = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, nb.name
