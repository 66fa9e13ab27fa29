"""F5-style CTC encoder: masking, rotary embeddings, LayerDrop, and that it can learn a toy alignment."""
from __future__ import annotations

import torch

from aslkit.constants import CTC_BLANK
from aslkit.tasks.fingerspelling.ctc_ops import ctc_loss, greedy_decode
from aslkit.tasks.fingerspelling.families.ctc.model import CTCConfig, CTCEncoder
from aslkit.tensor_ops import Rotary, apply_rotary

SMALL = CTCConfig(dim=32, layers=2, heads=2, dropout=0.0, layerdrop=0.0, max_len=64)


def test_shapes_and_padding_do_not_leak():
    torch.manual_seed(0)
    model = CTCEncoder(SMALL, in_features=10).eval()
    x = torch.randn(1, 12, 10)
    alone = model(x)
    assert alone.shape == (1, 12, CTC_BLANK + 1)
    padded = torch.cat([x, torch.randn(1, 5, 10)], dim=1)
    mask = torch.cat([torch.ones(1, 12), torch.zeros(1, 5)], dim=1)
    with torch.no_grad():
        out = model(padded, mask)[:, :12]
    torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-5)


def test_rotary_scores_depend_on_relative_position_only():
    rope = Rotary(8, 32)
    q, k = torch.randn(8), torch.randn(8)
    x = torch.zeros(1, 32, 1)
    cos, sin = rope(x)

    def score(m: int, n: int) -> torch.Tensor:
        qm = apply_rotary(q.view(1, 1, 1, 8), cos[m], sin[m])
        kn = apply_rotary(k.view(1, 1, 1, 8), cos[n], sin[n])
        return (qm * kn).sum()

    torch.testing.assert_close(score(3, 7), score(13, 17))
    assert not torch.allclose(score(3, 7), score(3, 9))
    assert rope(torch.zeros(1, 5, 1))[0].shape == (5, 8)


def test_layerdrop_only_in_training():
    cfg = CTCConfig(dim=32, layers=3, heads=2, dropout=0.0, layerdrop=1.0, max_len=32)
    model = CTCEncoder(cfg, in_features=6)
    x = torch.randn(2, 9, 6)
    model.train()
    skipped = model(x)
    model.eval()
    full = model(x)
    no_blocks = model.head(model.norm(model.proj(x) + torch.nn.functional.gelu(
        model.stem(model.proj(x).transpose(1, 2)).transpose(1, 2), approximate="tanh")))
    torch.testing.assert_close(skipped, no_blocks)
    assert not torch.allclose(full, skipped)


def test_learns_a_toy_alignment():
    torch.manual_seed(0)
    model = CTCEncoder(SMALL, in_features=4)
    targets = torch.tensor([[32, 33, 34], [35, 36, 0]])                     # "abc", "de" (padded)
    lengths = torch.tensor([3, 2])
    x = torch.zeros(2, 12, 4)
    x[0, 0:4, 0] = 1
    x[0, 4:8, 1] = 1
    x[0, 8:12, 2] = 1
    x[1, 0:6, 3] = 1
    x[1, 6:12, 0] = -1
    mask = torch.ones(2, 12)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = ctc_loss(model(x, mask), mask, targets, lengths)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first
    model.eval()
    assert greedy_decode(model(x, mask), mask) == [[32, 33, 34], [35, 36]]


def test_greedy_decode_collapses_and_drops_blanks():
    seq = [CTC_BLANK, 5, 5, CTC_BLANK, 5, 7, 7, CTC_BLANK]
    logits = torch.nn.functional.one_hot(torch.tensor([seq]), CTC_BLANK + 1).float()
    assert greedy_decode(logits) == [[5, 5, 7]]
    assert greedy_decode(logits, torch.tensor([[1, 1, 1, 0, 0, 0, 0, 0]])) == [[5]]
