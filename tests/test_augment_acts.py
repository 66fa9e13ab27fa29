"""Every augmentation of every training pipeline changes what the model sees: each transform of each family's
pipeline (the ``full`` preset, the published settings), applied on its own to a synthetic recording, moves the
family's features (the module that is exported) by more than float noise. A transform that the feature module
undoes (a whole-frame flip before features that mirror every frame to the dominant hand) fails here."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from aslkit import constants as C
from aslkit.data.fs import read_fs_landmarks
from aslkit.data.islr import read_landmarks
from aslkit.tasks.registry import plugin
from aslkit.train import make_train_config
from aslkit.transforms import Compose, OneOf, Transform

SIGNS_FAMILIES = [name for name in plugin(C.SLUG_SIGNS).families]
FS_FAMILIES = [name for name in plugin(C.SLUG_FS).families]
MIN_CHANGE = 1e-3      # largest feature change any transform must reach on some of the draws (features are O(1))


def leaves(t: Transform) -> list[Transform]:
    """The single transforms of a pipeline (members of ``Compose`` and ``OneOf`` in order)."""
    if isinstance(t, (Compose, OneOf)):
        return [leaf for member in t.transforms for leaf in leaves(member)]
    return [t]


@pytest.fixture(scope="module")
def signs_recordings(islr_synth) -> list[np.ndarray]:
    """Two recordings of the same sign by one signer (the second is the partner of the mixing transforms), with
    both hands and the face visible in some frames."""
    train = pd.read_csv(islr_synth / "train.csv")
    subset = C.CACHE_SUBSETS["islr"]
    for _, group in train.groupby(["participant_id", "sign"]):
        seqs = [read_landmarks(islr_synth / path, subset) for path in group["path"][:2]]
        if len(seqs) == 2 and all(len(s) >= 8 and not np.isnan(s).all(axis=(1, 2)).any() for s in seqs):
            return seqs
    raise AssertionError("no two usable recordings of one sign in the synthetic data")


@pytest.fixture(scope="module")
def fs_sequences(fs_synth) -> list[np.ndarray]:
    """Two phrases of the synthetic fingerspelling data in FS_130 order."""
    meta = pd.read_csv(fs_synth / "train.csv")
    path = fs_synth / meta["path"].iloc[0]
    ids = meta.loc[meta["path"] == meta["path"].iloc[0], "sequence_id"].tolist()
    seqs, _ = read_fs_landmarks(path, C.fs_columns(C.FS_130), ids[:2])
    return [seqs[i] for i in ids[:2]]


def feature_changes(task: str, family: str, seqs: list[np.ndarray], subset: np.ndarray, seeds: int = 6
                    ) -> dict[str, float]:
    """For each transform of the family's ``full`` pipeline: the largest absolute feature change it causes over
    ``seeds`` draws, applied alone (always on) to ``seqs[0]``."""
    cfg = make_train_config("full", {"task": task, "model_name": family})
    families = plugin(task).families
    features, _ = families.build_modules(cfg, subset)
    pipeline = families.build_augment(cfg, subset)

    def feats(x: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return features(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))

    base, changes = feats(seqs[0]), {}
    for k, t in enumerate(leaves(pipeline)):
        largest = 0.0
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            out = t.apply(seqs[0], rng, lambda _: seqs[1]) if t.needs_partner else t.apply(seqs[0], rng)
            moved = feats(out)
            largest = max(largest, float((moved - base).abs().max()) if moved.shape == base.shape else np.inf)
        changes[f"{k}:{t!r}"] = largest
    return changes


@pytest.mark.parametrize("family", SIGNS_FAMILIES)
def test_every_signs_augmentation_changes_the_features(family, signs_recordings):
    changes = feature_changes(C.SLUG_SIGNS, family, signs_recordings, C.CACHE_SUBSETS["islr"])
    idle = {name: v for name, v in changes.items() if v < MIN_CHANGE}
    assert changes or plugin(C.SLUG_SIGNS).families.is_reference(family), f"{family}: no augmentation"
    assert not idle, f"{family}: transforms that do not reach the features: {idle}"


@pytest.mark.parametrize("family", FS_FAMILIES)
def test_every_fingerspelling_augmentation_changes_the_features(family, fs_sequences):
    changes = feature_changes(C.SLUG_FS, family, fs_sequences, C.FS_130)
    idle = {name: v for name, v in changes.items() if v < MIN_CHANGE}
    assert changes and not idle, f"{family}: transforms that do not reach the features: {idle}"


def test_a_whole_frame_flip_is_undone_by_the_dominant_hand_features(signs_recordings, fs_sequences):
    """Why the transformer and the CTC pipelines mirror the lips and not the frame: their features map a flipped
    recording to (nearly) the same features, so this test's check would call a whole-frame flip idle."""
    from aslkit.transforms import HorizontalFlip, SubsetLayout
    for task, family, seq, subset in ((C.SLUG_SIGNS, "transformer", signs_recordings[0], C.CACHE_SUBSETS["islr"]),
                                      (C.SLUG_FS, "", fs_sequences[0], C.FS_130)):
        cfg = make_train_config("full", {"task": task, **({"model_name": family} if family else {})})
        features, _ = plugin(task).families.build_modules(cfg, subset)
        flipped = HorizontalFlip(1.0, SubsetLayout.of(subset)).apply(seq, np.random.default_rng(0))
        with torch.no_grad():
            diff = (features(torch.from_numpy(flipped)) - features(torch.from_numpy(seq))).abs().max()
        assert diff < 1e-4, (task, float(diff))
