"""The command line: help on every command, and ``synth`` writing a dataset."""
from __future__ import annotations

import subprocess
import sys

import pytest

from aslkit.cli import build_parser, main
from aslkit.synth.writer import synthetic_info

COMMANDS = ["synth", "data", "prepare", "train", "distill", "tune", "validate", "convert", "submit", "score"]


def test_help_of_module_and_every_command():
    out = subprocess.run([sys.executable, "-m", "aslkit", "--help"], capture_output=True, text=True, check=True)
    for cmd in COMMANDS:
        assert cmd in out.stdout
    for cmd in COMMANDS:
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args([cmd, "--help"])
        assert e.value.code == 0


def test_console_script_installed():
    exe = subprocess.run([sys.executable, "-c", "import shutil; print(shutil.which('aslkit') or '')"],
                         capture_output=True, text=True).stdout.strip()
    assert exe, "the aslkit console script is not on PATH"
    out = subprocess.run([exe, "synth", "--help"], capture_output=True, text=True, check=True)
    assert "--size" in out.stdout


def test_synth_command_writes_dataset(tmp_path, capsys):
    assert main(["synth", "--task", "asl-fingerspelling", "--out", str(tmp_path / "d"), "--size", "ci",
                 "seed=4", "workers=1"]) == 0
    info = synthetic_info(tmp_path / "d")
    assert info["seed"] == 4 and info["size"] == "ci" and info["task"] == "asl-fingerspelling"
    assert "wrote" in capsys.readouterr().out


def test_bad_override_is_rejected(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "colour=blue"]) == 1
    assert capsys.readouterr().err.startswith("aslkit synth: error: unknown config key 'colour' for SynthConfig")
    with pytest.raises(KeyError, match="unknown config key"):
        main(["--debug", "synth", "--out", str(tmp_path), "colour=blue"])


def test_prepare_command_for_fingerspelling(fs_synth, tmp_path, capsys):
    out = tmp_path / "fs_cache"
    assert main(["prepare", "--task", "asl-fingerspelling", "--data-dir", str(fs_synth), "--preset", "ci",
                 f"out_dir={out}", "workers=1"]) == 0
    from aslkit.tasks.fingerspelling.prepare import PreparedFS
    assert len(PreparedFS(out)) > 0
    again = tmp_path / "fs_cache_by_override"                     # task= picks the competition as --task does
    assert main(["prepare", "--data-dir", str(fs_synth), "--preset", "ci", "task=asl-fingerspelling",
                 f"out_dir={again}", "workers=1"]) == 0
    assert len(PreparedFS(again)) == len(PreparedFS(out))
    assert main(["prepare", "--task", "asl-signs", "task=asl-fingerspelling", f"out_dir={again}"]) == 1
    assert "--task asl-signs and task=asl-fingerspelling disagree" in capsys.readouterr().err
