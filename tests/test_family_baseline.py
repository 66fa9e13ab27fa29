"""The non-deep reference (``model_name=baseline``): summary features, the closed-form fit in the one training
loop, its run folder, the settings it refuses, and its TFLite graph."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from aslkit import constants as C
from aslkit.config import ConfigError, make_config
from aslkit.tasks.signs.families import FAMILIES
from aslkit.tasks.signs.families.baseline.features import PARTS, SummaryConfig, SummaryFeatures
from aslkit.tasks.signs.families.baseline.model import ABSENT_LOGIT, LogisticConfig, SummaryLogistic
from aslkit.tensor_ops import batch_features, pack_landmarks
from aslkit.train import make_train_config, train
from aslkit.transforms import SubsetLayout

SUBSET = C.CACHE_SUBSETS["islr"]
LAYOUT = SubsetLayout.of(SUBSET)


def recording(T: int = 20, seed: int = 0, left_handed: bool = False) -> np.ndarray:
    """A random ``[T, S, 3]`` recording with one hand signing (the other missing) and the face visible."""
    x = np.random.default_rng(seed).uniform(0.3, 0.7, (T, len(SUBSET), 3)).astype(np.float32)
    x[:, LAYOUT.right_hand if left_handed else LAYOUT.left_hand] = np.nan
    return x


def mirrored(x: np.ndarray) -> np.ndarray:
    out = x[:, LAYOUT.flip].copy()
    out[..., 0] = 1 - out[..., 0]
    return out


def test_feature_layout_and_a_left_handed_recording_reads_as_its_mirror():
    f = SummaryFeatures(SummaryConfig(bins=4), SUBSET)
    x = recording(left_handed=True)
    out = f(torch.from_numpy(x))
    assert out.shape == (f.feature_dim,) == (4 * (2 * sum(PARTS.values()) + 2) + 1,) and torch.isfinite(out).all()
    torch.testing.assert_close(f(torch.from_numpy(mirrored(x))), out, atol=1e-5, rtol=1e-5)


def test_bins_hold_the_mean_and_std_of_their_frames():
    """Two bins of a 6-frame recording: frames 0-2 and 3-5; a hand-shape value that is constant per bin has that
    mean and std 0; the hand seen in half the frames of bin 2 gives a presence share of 0.5."""
    f = SummaryFeatures(SummaryConfig(bins=2), SUBSET)
    x = recording(T=6)
    wrist, tip = LAYOUT.right_hand[0], LAYOUT.right_hand[8]
    x[:, LAYOUT.right_hand] = x[:1, LAYOUT.right_hand]               # the same hand in every frame ...
    x[:, wrist, :2], x[:, tip, :2] = 0.5, 0.5
    x[:3, tip, 0], x[3:, tip, 0] = 0.6, 0.7                           # ... but the index tip further out in bin 2
    x[4:, LAYOUT.right_hand] = np.nan                                 # hand gone in frames 4, 5
    out = f(torch.from_numpy(x)).numpy()
    width = sum(PARTS.values())
    mean, std = out[:2 * width].reshape(2, width), out[2 * width:4 * width].reshape(2, width)
    share = out[4 * width:4 * width + 4].reshape(2, 2)
    np.testing.assert_allclose(std[0, :3 * 21], 0, atol=1e-5)                        # bin 1: one shape
    assert mean[0, 3 * 8] != pytest.approx(mean[1, 3 * 8], abs=1e-3)                # tip x differs by bin
    np.testing.assert_allclose(share[:, 0], [1.0, 1 / 3], atol=1e-6)                 # hand in 3/3, 1/3 frames
    np.testing.assert_allclose(share[:, 1], [1.0, 1.0], atol=1e-6)                   # lips always seen
    assert out[-1] == pytest.approx(np.log1p(6))


def test_padded_batches_equal_one_recording_at_a_time():
    f = SummaryFeatures(subset=SUBSET)
    seqs = [torch.from_numpy(recording(T, seed=T, left_handed=T % 2 == 0)) for T in (1, 3, 9, 40)]
    frames, lengths = pack_landmarks(seqs)
    batch = batch_features(f, frames, lengths, call_frames=10 ** 9)                    # one padded call
    for i, s in enumerate(seqs):
        torch.testing.assert_close(batch[i], f(s), atol=1e-5, rtol=1e-4)


def test_fit_learns_separable_classes_and_absent_classes_are_never_predicted():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 12)) * 3
    y = torch.as_tensor(np.repeat([0, 2, 3, 7, 9], 30))
    x = torch.as_tensor(centres[np.searchsorted([0, 2, 3, 7, 9], y.numpy())] + rng.normal(size=(150, 12)),
                        dtype=torch.float32)
    model = SummaryLogistic(LogisticConfig(c=1.0, num_classes=10), 12)
    stats = model.fit(x, y)
    assert stats["train_acc"] > 0.95 and stats["train_loss"] < 0.3
    with torch.no_grad():
        logits = model(x)
    assert (logits.argmax(1) == y).float().mean() > 0.95
    assert torch.all(model.head.bias[[1, 4, 5, 6, 8]] == ABSENT_LOGIT)
    assert not torch.allclose(model.mean, torch.zeros(12)) and not torch.allclose(model.scale, torch.ones(12))


@pytest.fixture(scope="module")
def prepared(islr_synth, tmp_path_factory):
    from aslkit.tasks.signs.prepare import PrepareConfig, prepare_signs
    root = tmp_path_factory.mktemp("baseline_root")
    mp = pytest.MonkeyPatch()
    mp.setenv("ASLKIT_ROOT", str(root))
    cache = prepare_signs(make_config(PrepareConfig, "ci", {"data_dir": str(islr_synth),
                                                            "out_dir": str(root / "prepared")}))
    yield root, cache
    mp.undo()


def test_training_fits_in_one_pass_and_writes_an_ordinary_run(prepared):
    root, cache = prepared
    run = train(make_train_config("ci", {"model_name": "baseline", "prepared_dir": str(cache),
                                         "run_name": str(root / "base")}))
    metrics = pd.read_csv(run / "metrics.csv")
    oof = pd.read_csv(run / "oof.csv")
    assert len(metrics) == 1 and metrics["train_acc"].iloc[0] > metrics["val_acc"].iloc[0] > 1 / 25
    assert (run / "checkpoints" / "best.pt").is_file() and len(oof) > 0
    assert (oof["pred"] == oof["label"]).mean() == pytest.approx(metrics["val_acc"].iloc[0])
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert state["head.weight"].abs().sum() > 0 and not torch.allclose(state["scale"], torch.ones_like(state["scale"]))


@pytest.mark.parametrize("setting", ["optim.ema_decay=0.9", "loss.mixup_p=0.5", "recipe.ousm_k=2"])
def test_gradient_step_settings_are_refused(prepared, setting):
    root, cache = prepared
    cfg = make_train_config("ci", ["model_name=baseline", f"prepared_dir={cache}", setting,
                                   f"run_name={root / ('refused_' + setting.split('=')[0])}"])
    with pytest.raises(ConfigError, match=setting.split("=")[0]):
        train(cfg)


def test_reference_is_left_out_of_ensembles():
    assert FAMILIES.is_reference("baseline") and not FAMILIES.is_reference("transformer")


def test_tflite_matches_torch(prepared, grader_tflite):
    from aslkit.data.cache import expand_to_full
    from aslkit.tasks.base import degenerate_inputs
    from aslkit.tasks.signs.graph import GraderModel
    from aslkit.tasks.signs.prepare import PreparedSigns
    torch.manual_seed(0)
    feats, model = FAMILIES.build_modules(make_train_config("ci", {"model_name": "baseline"}), SUBSET)
    with torch.no_grad():
        model.mean.normal_()
        model.scale.uniform_(0.5, 2.0)
    grader = GraderModel(SUBSET, feats, model.eval()).eval()
    cache = PreparedSigns(prepared[1])
    seqs = {f"seq {i}": expand_to_full(np.asarray(cache[i], np.float32), cache.subset) for i in range(0, 60, 4)}
    seqs.update(degenerate_inputs())
    seqs["long"] = expand_to_full(recording(333, seed=3), SUBSET)
    for name, p in grader_tflite(grader, seqs).items():
        assert p.max_diff < (1e-4 if name == "float32" else 2e-2) * max(p.scale, 1.0), (name, p.max_diff, p.scale)
