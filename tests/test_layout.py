"""The package layout keeps its rules: stage modules -> task registry -> competition plug-ins -> shared libraries, no
import cycle, no task branch outside the registry, a family registry per competition, notebooks that call their
stage, experiment files."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aslkit import constants as C
from aslkit.cli import main
from aslkit.config import make_config, save_config, to_dict
from aslkit.runs import read_run_config
from aslkit.tasks.registry import TASKS, plugin
from aslkit.tasks.signs.prepare import PrepareConfig, prepare_signs
from aslkit.train import experiment_config, make_train_config, read_experiment

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "aslkit"
STAGES = ["cli", "prepare", "train", "evaluate", "export", "submit", "zoo", "tune", "distill", "predict"]
BIN = Path(sys.executable).parent


def _lint_imports(cwd: Path, src: Path) -> subprocess.CompletedProcess:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": str(src), "HOME": str(cwd)}
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=cwd, env=env, capture_output=True,
                          text=True)


def test_the_import_contract_holds():
    res = _lint_imports(ROOT, ROOT / "src")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


@pytest.mark.parametrize("importer, imported, contract", [
    ("runs", "import aslkit.train  # noqa: F401", "No import cycle"),             # a cycle runs <-> train
    ("tasks/signs/objective.py", "import aslkit.export  # noqa: F401", "Stage modules"),   # a plug-in imports a stage
])
def test_a_dependency_added_on_purpose_breaks_the_contract(tmp_path, importer, imported, contract):
    shutil.copytree(PACKAGE, tmp_path / "src" / "aslkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "aslkit" / (importer if importer.endswith(".py") else importer + ".py")
    target.write_text(target.read_text() + f"\n{imported}\n")
    res = _lint_imports(tmp_path, tmp_path / "src")
    assert res.returncode != 0
    broken = [line for line in res.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), res.stdout[-3000:]


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Lines of a module outside docstrings and comments."""
    src = path.read_text()
    drop = set()
    for m in re.finditer(r'"""(.|\n)*?"""', src):
        first = src.count("\n", 0, m.start())
        drop.update(range(first, first + m.group(0).count("\n") + 1))
    return [(i + 1, line.split("#")[0]) for i, line in enumerate(src.splitlines()) if i not in drop]


BRANCH = re.compile(r"\btask\s*[!=]=|[!=]=\s*C\.SLUG_|\bSLUG_\w+\s*[!=]=|[!=]=\s*[\"']asl-")


def test_no_task_branch_outside_the_tasks_package():
    branch = BRANCH
    hits = [f"{p.relative_to(PACKAGE)}:{n}: {line.strip()}" for p in PACKAGE.rglob("*.py")
            if "tasks" not in p.relative_to(PACKAGE).parts for n, line in _code_lines(p) if branch.search(line)]
    assert not hits, hits


def test_stage_modules_never_name_a_competition():
    names = re.compile(r"\bSLUG_SIGNS\b|\bSLUG_FS\b|aslkit\.tasks\.(signs|fingerspelling)\b")
    hits = [f"{stage}:{n}: {line.strip()}" for stage in STAGES
            for n, line in _code_lines(PACKAGE / f"{stage}.py") if names.search(line)]
    assert not hits, hits


def test_the_branch_finder_sees_branches_in_code_and_not_in_docstrings(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""Docs may say task == asl-signs."""\n'
                      'if cfg.task == C.SLUG_FS:  # a branch\n'
                      'ok = slug != "asl-signs"\n'
                      'x = 1  # task == y in a comment\n')
    assert [n for n, line in _code_lines(module) if BRANCH.search(line)] == [2, 3]


def test_every_competition_has_a_plugin_with_a_family_registry():
    assert set(TASKS) == set(C.SLUGS)
    for slug in C.SLUGS:
        p = plugin(slug)
        assert p.slug == slug and p.families.default in p.families
        for name in p.families:
            family = p.families.module(name)
            assert family.DESCRIPTION and {"ci", "quick", "full"} <= set(family.PRESETS)
            assert callable(family.build_modules) and callable(family.build_augment)
    with pytest.raises(ValueError, match="unknown task"):
        plugin("asl-alphabet")


def test_model_name_picks_a_family_for_either_task():
    assert make_train_config("ci", {"task": C.SLUG_FS}).model_name == "ctc"
    assert make_train_config("ci", {}).model_name == "transformer"
    assert make_train_config("ci", {"model_name": "conv1d"}).model.get("dim") == 32
    assert make_train_config("ci", {"task": C.SLUG_FS, "model_name": "f1"}).model.get("stem_channels") == 8
    with pytest.raises(ValueError, match="known asl-fingerspelling families: \\['ctc', 'f1'\\]"):
        make_train_config("ci", {"task": C.SLUG_FS, "model_name": "transformer"})


def test_notebooks_call_their_stage_module():
    stage_of = {"01": "prepare", "02": "train", "03": "evaluate", "04": "export", "05": "submit"}
    for nb in sorted((ROOT / "notebooks").glob("0[1-5]_*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        modules = set(re.findall(r"from (aslkit[\w.]*) import", code))
        assert f"aslkit.{stage_of[nb.name[:2]]}" in modules, (nb.name, modules)
        assert "aslkit.zoo" in modules and "aslkit.tasks" not in {m.rsplit(".", 1)[0] for m in modules}, modules
        assert "experiment(task, profile, run" in code, nb.name


def test_experiment_file_sets_nested_and_dotted_keys_over_its_preset(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"preset": "ci", "model_name": "conv1d", "optim": {"lr": 0.004},
                                    "recipe.ousm_k": 2, "model": {"blocks": 2}}))
    cfg = experiment_config(path, overrides=["seed=7"])
    preset = make_train_config("ci", {"model_name": "conv1d"})
    assert (cfg.optim.lr, cfg.recipe.ousm_k, cfg.seed, cfg.optim.epochs) == (0.004, 2, 7, preset.optim.epochs)
    assert cfg.model == {**preset.model, "blocks": 2}                   # merged into the family preset's model
    quick = make_train_config("quick", {"model_name": "conv1d"})
    assert experiment_config(path, preset="quick").optim.epochs == quick.optim.epochs != preset.optim.epochs


def test_a_saved_run_config_is_an_experiment_file(tmp_path):
    cfg = make_train_config("ci", {"task": C.SLUG_FS, "model.dim": 48, "fold": 2})
    save_config(cfg, tmp_path / "config.yaml")
    assert to_dict(experiment_config(tmp_path / "config.yaml")) == to_dict(cfg) == to_dict(read_run_config(tmp_path))


@pytest.mark.parametrize("text, match", [("- a\n- b\n", "is a mapping"), ("preset: huge\n", "not one of")])
def test_a_bad_experiment_file_is_named(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{path}.*{match}"):
        read_experiment(path)


def test_shipped_experiments_build():
    files = sorted((ROOT / "experiments").glob("*.yaml"))
    assert files
    for f in files:
        cfg = experiment_config(f)
        plugin(cfg.task).families.build_modules(cfg, plugin(cfg.task).default_subset)


def test_shipped_search_spaces_load():
    """Search spaces of ``aslkit tune --space`` live in experiments/spaces/ (not experiment files), validate, and
    fit the trial config of the command in their header (its key=value overrides: model_name, task, fold)."""
    from aslkit.config import parse_overrides
    from aslkit.tune import TuneConfig, check_space, load_space
    files = sorted((ROOT / "experiments" / "spaces").glob("*.yaml"))
    assert len(files) >= 5
    for f in files:
        header = " ".join(line for line in f.read_text().splitlines() if line.startswith("#"))
        overrides = parse_overrides(re.findall(r"\b(?:model_name|task|fold)=\S+", header))
        assert "fold" in overrides, f"{f.name}: its command names no fold"
        space = load_space(str(f))
        check_space(TuneConfig(preset="quick", space=space, overrides=overrides), space)


@pytest.fixture(scope="module")
def cache(islr_synth, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "islr"
    return prepare_signs(make_config(PrepareConfig, "ci", {"data_dir": str(islr_synth), "out_dir": str(out)}))


def test_cli_train_reads_an_experiment_file(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"preset": "ci", "optim": {"epochs": 1}, "model.layers": 1,
                                    "max_train_samples": 64, "prepared_dir": str(cache)}))
    assert main(["train", "--config", str(path), "run_name=from_file", "optim.batch_size=16"]) == 0
    cfg = read_run_config(tmp_path / "logs" / "from_file")
    assert (cfg.optim.epochs, cfg.model["layers"], cfg.optim.batch_size) == (1, 1, 16)


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")))
def test_every_benchmark_script_imports_the_layout(script):
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0 and "usage:" in res.stdout, res.stderr[-2000:]
