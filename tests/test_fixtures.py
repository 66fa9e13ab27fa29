"""The vendored real samples are unmodified copies of the project's shared samples."""
from __future__ import annotations

import pytest
from conftest import FIXTURES, SHARED_SAMPLES

from aslkit.paths import real_islr_sample

COPIES = {
    "asl-signs/sign_to_prediction_index_map.json": "asl-signs/sign_to_prediction_index_map.json",
    "asl-fingerspelling/character_to_prediction_index.json": "asl-fingerspelling/character_to_prediction_index.json",
    "asl-fingerspelling/inference_args.json": "asl-fingerspelling/inference_args.json",
    "asl-fingerspelling/train.csv": "asl-fingerspelling/partial/train.csv",
    "asl-fingerspelling/supplemental_metadata.csv": "asl-fingerspelling/partial/supplemental_metadata.csv",
    "asl-fingerspelling/train_landmarks_5414471_excerpt.csv":
        "asl-fingerspelling/partial/train_landmarks_5414471_excerpt.csv",
}


@pytest.mark.parametrize("copy,original", sorted(COPIES.items()))
def test_vendored_sample_is_byte_identical(copy, original):
    assert (FIXTURES / copy).is_file()
    if not SHARED_SAMPLES.is_dir():
        pytest.skip("project shared samples not beside this checkout")
    assert (FIXTURES / copy).read_bytes() == (SHARED_SAMPLES / original).read_bytes()


def test_packaged_real_sequence_is_byte_identical():
    assert real_islr_sample().is_file()
    if not SHARED_SAMPLES.is_dir():
        pytest.skip("project shared samples not beside this checkout")
    original = SHARED_SAMPLES / "asl-signs" / "derived" / "2044_635217.reconstructed.parquet"
    assert real_islr_sample().read_bytes() == original.read_bytes()
