"""Shared fixtures: the real Kaggle samples and small synthetic datasets of both competitions."""
from __future__ import annotations

from pathlib import Path

import pytest

from aslkit import constants as C
from aslkit.synth.writer import generate

FIXTURES = Path(__file__).parent / "fixtures" / "kaggle_samples"
SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "kaggle_samples"


@pytest.fixture(scope="session")
def samples() -> Path:
    """Folder of real competition files (copied unmodified from the project's shared samples)."""
    return FIXTURES


@pytest.fixture(scope="session")
def islr_synth(tmp_path_factory) -> Path:
    """A ci-size synthetic asl-signs dataset (seed 0)."""
    return generate(C.SLUG_SIGNS, tmp_path_factory.mktemp("synth") / C.SLUG_SIGNS, size="ci", seed=0, workers=2)


@pytest.fixture(scope="session")
def fs_synth(tmp_path_factory) -> Path:
    """A ci-size synthetic asl-fingerspelling dataset (seed 0)."""
    return generate(C.SLUG_FS, tmp_path_factory.mktemp("synth") / C.SLUG_FS, size="ci", seed=0, workers=2)
