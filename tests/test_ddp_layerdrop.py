"""DDP with the CTC model's LayerDrop: blocks a rank skips take no part in its graph, so the model asks the training
loop for ``find_unused_parameters``; the ranks may skip different blocks and still get the same (right) gradients."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from aslkit.config import make_config
from aslkit.tasks.fingerspelling.families.ctc.model import CTCConfig, CTCEncoder
from aslkit.tasks.fingerspelling.prepare import PrepareFSConfig, prepare_fingerspelling

CFG = CTCConfig(dim=16, layers=3, heads=2, dropout=0.0, layerdrop=0.5, max_len=32)
IN, T = 8, 12
# per step, each rank's torch seed before its forward (its LayerDrop draws): blocks used {0} / {0, 2}, {1} / {0},
# none / all
SEEDS = ((1, 5), (0, 9), (3, 6))


def _model() -> CTCEncoder:
    torch.manual_seed(0)
    return CTCEncoder(CFG, IN)


def _batch(step: int, rank: int) -> torch.Tensor:
    return torch.randn(2, T, IN, generator=torch.Generator().manual_seed(100 * step + rank))


def _loss(model: nn.Module, step: int, rank: int) -> torch.Tensor:
    torch.manual_seed(SEEDS[step][rank])
    return model(_batch(step, rank)).square().mean()


def _grads(model: nn.Module) -> dict[str, torch.Tensor | None]:
    return {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()}


def _rank(rank: int, store: str, out: str) -> None:
    """Two DDP steps on rank ``rank`` of 2 (gloo); saves each step's gradients."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    model = _model().train()
    net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=model.ddp_find_unused_parameters)
    steps = []
    for step in range(len(SEEDS)):
        model.zero_grad(set_to_none=True)
        _loss(net, step, rank).backward()
        steps.append(_grads(model))
    torch.save(steps, Path(out) / f"grads{rank}.pt")
    dist.destroy_process_group()


def _used_blocks(model: CTCEncoder, step: int, rank: int) -> set[int]:
    used: set[int] = set()
    hooks = [b.register_forward_hook(lambda *_, i=i: used.add(i)) for i, b in enumerate(model.blocks)]
    _loss(model, step, rank)
    for h in hooks:
        h.remove()
    return used


def test_model_asks_for_unused_parameter_detection_only_when_it_needs_it():
    assert _model().ddp_find_unused_parameters
    assert not CTCEncoder(CTCConfig(dim=16, layers=1, heads=2, layerdrop=0.0), IN).ddp_find_unused_parameters
    assert CTCEncoder(CTCConfig(dim=16, layers=1, heads=2, layerdrop=0.0, distill_head=True),
                      IN).ddp_find_unused_parameters


def test_ranks_skipping_different_blocks_get_the_mean_gradient(tmp_path):
    """Each step: the DDP gradient is the mean of the ranks' own gradients (zero where a rank skipped the block);
    a block no rank used keeps no gradient, as in one process. Without unused parameter detection the second step
    fails ("Expected to have finished reduction in the prior iteration")."""
    model = _model().train()
    used = [[_used_blocks(model, step, r) for r in (0, 1)] for step in range(len(SEEDS))]
    assert all(u0 != u1 for u0, u1 in used)                                      # the ranks differ every step
    assert any(u0 | u1 != set(range(CFG.layers)) for u0, u1 in used)            # some block no rank used
    assert any(not u0 for u0, _ in used)                                         # and a rank that used none
    mp.spawn(_rank, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    got = [torch.load(tmp_path / f"grads{r}.pt") for r in (0, 1)]
    for step in range(len(SEEDS)):
        own = []
        for r in (0, 1):
            model.zero_grad(set_to_none=True)
            _loss(model, step, r).backward()
            own.append(_grads(model))
        for name in own[0]:
            mine = [g[name] for g in own if g[name] is not None]
            if not mine:
                assert got[0][step][name] is None and got[1][step][name] is None, name
                continue
            want = sum(mine) / 2                                                 # a rank that skipped adds zero
            torch.testing.assert_close(got[0][step][name], want, msg=name)
            assert torch.equal(got[0][step][name], got[1][step][name]), name


@pytest.fixture(scope="module")
def fs_cache(fs_synth, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "fs"
    return prepare_fingerspelling(make_config(PrepareFSConfig, "ci", {"data_dir": str(fs_synth),
                                                                      "out_dir": str(out)}))


def test_torchrun_two_cpu_ranks_with_layerdrop(fs_cache, tmp_path):
    """The generic loop on two CPU ranks with LayerDrop 0.5 (two blocks, several steps: blocks are skipped): the run
    finishes and the ranks' weights agree."""
    torchrun = Path(sys.executable).parent / "torchrun"
    args = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "aslkit", "train", "--preset", "ci",
            "task=asl-fingerspelling", f"prepared_dir={fs_cache}", "model.layers=2", "model.layerdrop=0.5",
            "optim.epochs=6", "run_name=ddp_layerdrop"]
    env = {**os.environ, "ASLKIT_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    run = tmp_path / "logs" / "ddp_layerdrop"
    ranks = [pd.read_json(run / f"rank{r}.json", typ="series").to_dict() for r in (0, 1)]
    assert ranks[0]["param_sum"] == ranks[1]["param_sum"]
    assert len(pd.read_csv(run / "metrics.csv")) == 6
