"""The training loop: run folder, schedule, exact resume after SIGKILL, and DDP with two CPU ranks."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from aslkit.config import make_config
from aslkit.runs import load_checkpoint, run_dir_for
from aslkit.tasks.signs.prepare import PrepareConfig, prepare_signs
from aslkit.train import flat_cosine, make_train_config, train

TINY = ["optim.epochs=4", "optim.batch_size=16", "max_train_samples=64", "model.hidden=32", "model.layers=2",
        "model.heads=2", "model.intermediate=64", "features.max_len=16", "seed=3"]


@pytest.fixture(scope="module")
def cache(islr_synth, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "islr"
    return prepare_signs(make_config(PrepareConfig, "ci", {"data_dir": str(islr_synth), "out_dir": str(out)}))


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "ASLKIT_ROOT": str(root), "OMP_NUM_THREADS": "1"}


def test_flat_then_cosine():
    f = flat_cosine(100, 0.6)
    assert f(0) == f(59) == 1.0
    assert 0.99 < f(61) < 1.0 and abs(f(80) - 0.5) < 1e-9 and f(100) == 0.0


def test_run_folder_contents(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    cfg = make_train_config("ci", TINY + [f"prepared_dir={cache}", "run_name=r", "optim.epochs=2"])
    run = train(cfg)
    assert run == tmp_path / "logs" / "r"
    m = pd.read_csv(run / "metrics.csv")
    assert list(m["epoch"]) == [1, 2] and {"train_loss", "val_acc", "val_top5", "lr"} <= set(m.columns)
    oof = pd.read_csv(run / "oof.csv")
    logits = np.load(run / "oof_logits.npy")
    assert len(oof) == len(logits) > 0 and logits.shape[1] == 250 and (oof["fold"] == 0).all()
    assert (oof["pred"] == logits.argmax(1)).all()
    for name in ("last.pt", "best.pt"):
        ck = load_checkpoint(run / "checkpoints" / name)                 # weights_only=True
        assert any(isinstance(v, torch.Tensor) for v in ck["model"].values())
    assert (run / "config.yaml").is_file() and (run / "plots" / "learning_curves.png").is_file()
    elsewhere = tmp_path / "runs" / "absolute"
    assert run_dir_for(make_train_config("ci", [f"run_name={elsewhere}"])) == elsewhere


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "aslkit", "train", *args]


def test_resume_after_sigkill_equals_uninterrupted(cache, tmp_path):
    common = TINY + [f"prepared_dir={cache}", "optim.epochs=5"]
    subprocess.run(_cmd("--preset", "ci", *common, "run_name=straight"), env=_env(tmp_path), check=True,
                   capture_output=True)
    proc = subprocess.Popen(_cmd("--preset", "ci", *common, "run_name=killed"), env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "logs" / "killed" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(pd.read_csv(tmp_path / "logs" / "killed" / "metrics.csv"))
    assert done < 5
    subprocess.run(_cmd("--resume", str(tmp_path / "logs" / "killed")), env=_env(tmp_path), check=True,
                   capture_output=True)
    a = pd.read_csv(tmp_path / "logs" / "straight" / "metrics.csv").drop(columns="seconds")
    b = pd.read_csv(tmp_path / "logs" / "killed" / "metrics.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(a, b)
    wa = load_checkpoint(tmp_path / "logs" / "straight" / "checkpoints" / "last.pt")["model"]
    wb = load_checkpoint(tmp_path / "logs" / "killed" / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_batch_features_anywhere_and_loader_workers_train_the_same_weights(cache, tmp_path):
    """Features in the loader's collate or on the training device, in the main process or in a loader worker (which
    learns each epoch from the sampler): the same draws, the same weights."""
    weights = []
    for where, workers in (("loader", 0), ("device", 0), ("loader", 1)):
        name = tmp_path / f"{where}{workers}"
        run = train(make_train_config("ci", TINY + [f"prepared_dir={cache}", "optim.epochs=2", f"features_on={where}",
                                                    f"workers={workers}", f"run_name={name}"]))
        weights.append(load_checkpoint(run / "checkpoints" / "last.pt")["model"])
    assert all(torch.equal(weights[0][k], w[k]) for w in weights[1:] for k in weights[0])


def test_training_threads_leave_the_loader_workers_their_cores(monkeypatch):
    from aslkit.train import Dist, loader_workers, torch_threads, training_threads
    monkeypatch.setattr("aslkit.train.cpu_count", lambda: 8)
    cpu = Dist()
    assert training_threads(make_train_config("ci", {"threads": -1, "workers": 3}), cpu) == 5
    assert training_threads(make_train_config("ci", {"threads": -1, "workers": -1}), cpu) == 6     # 2 workers
    assert loader_workers(-1, cpu) == 2 and loader_workers(-1, Dist(device=torch.device("cuda"))) == 7
    monkeypatch.setattr("aslkit.train.cpu_count", lambda: 2)
    assert loader_workers(-1, cpu) == 0 and training_threads(make_train_config("quick"), cpu) == 2
    monkeypatch.setattr("aslkit.train.cpu_count", lambda: 8)
    assert training_threads(make_train_config("ci", {"threads": -1, "workers": 1}), Dist(0, 2)) == 3
    assert training_threads(make_train_config("ci", {"threads": 0}), cpu) == 0                     # torch's default
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_on_epoch_sees_each_row_and_can_stop_the_run_resumably(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ASLKIT_ROOT", str(tmp_path))
    cfg = make_train_config("ci", [*TINY, f"prepared_dir={cache}", "run_name=stopped"])
    seen = []

    def stop_after_two(row: dict) -> None:
        seen.append(row)
        if row["epoch"] == 2:
            raise KeyboardInterrupt("enough")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_epoch=stop_after_two)
    run = tmp_path / "logs" / "stopped"
    assert [r["epoch"] for r in seen] == [1, 2] and "val_acc" in seen[0]
    assert len(pd.read_csv(run / "metrics.csv")) == 2
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 2
    train(resume=run)
    assert len(pd.read_csv(run / "metrics.csv")) == 4


def _torchrun_two_ranks(cache: Path, tmp_path: Path, name: str, *extra: str, data: str = "prepared_dir"
                        ) -> tuple[Path, list[dict]]:
    """A 2-epoch ci run on two CPU ranks (``data``: the setting ``cache`` is given as); its folder and each rank's
    weight checksums."""
    torchrun = Path(sys.executable).parent / "torchrun"
    args = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "aslkit", "train", "--preset", "ci",
            *TINY, f"{data}={cache}", "optim.epochs=2", f"run_name={name}", *extra]
    res = subprocess.run(args, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    run = tmp_path / "logs" / name
    return run, [pd.read_json(run / f"rank{r}.json", typ="series").to_dict() for r in (0, 1)]


def test_ddp_two_cpu_ranks_agree(cache, tmp_path):
    run, ranks = _torchrun_two_ranks(cache, tmp_path, "ddp")
    assert ranks[0]["param_sum"] == ranks[1]["param_sum"]
    assert "student_param_sum" not in ranks[0]
    assert len(pd.read_csv(run / "metrics.csv")) == 2


def test_ddp_on_a_fresh_machine_prepares_the_cache_once(islr_synth, tmp_path):
    """No cache yet: the two ranks do not race on its shards (one prepares under the cache's lock, the other waits
    and finds it up to date)."""
    run, ranks = _torchrun_two_ranks(islr_synth, tmp_path, "ddp_fresh", data="data_dir")
    assert ranks[0]["param_sum"] == ranks[1]["param_sum"]
    cache = Path(pd.read_json(run / "data.json", typ="series")["prepared_dir"])
    assert cache.is_relative_to(tmp_path) and (cache / "prepared.json").is_file()
    assert not list((cache / "shards").glob(".*"))                     # no temporary file left by a race


def test_ddp_mean_teacher_with_student_and_soup(cache, tmp_path):
    """The I6 recipe under DDP: teacher and student weights agree across ranks, the student logs every epoch."""
    run, ranks = _torchrun_two_ranks(cache, tmp_path, "ddp_i6", "recipe.mean_teacher=true", "optim.ema_decay=0.97",
                                     "recipe.ousm_k=2", "recipe.soup_last=2", "recipe.student={hidden: 16}")
    assert ranks[0]["param_sum"] == ranks[1]["param_sum"]
    assert ranks[0]["student_param_sum"] == ranks[1]["student_param_sum"]
    assert ranks[0]["student_param_sum"] != ranks[0]["param_sum"]
    assert len(pd.read_csv(run / "student" / "metrics.csv")) == 2
    assert (run / "soup.json").is_file() and (run / "checkpoints" / "soup.pt").is_file()
