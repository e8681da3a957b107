"""SFT batches: targets only where the assistant speaks, padding ignored, ranks share one order."""

from __future__ import annotations

import pytest
import torch

from model.gpt import GPT, GPTConfig
from model.sft_batches import ConversationBatches, example_targets


def test_targets_follow_the_mask() -> None:
    ids = [0, 3, 4, 5, 6, 7]
    mask = [0, 0, 0, 1, 1, 0]
    x, y = example_targets(ids, mask)
    assert x == [0, 3, 4, 5, 6] and y == [-1, -1, 5, 6, -1]


def test_batches_pad_with_ignored_targets_and_split_over_ranks() -> None:
    examples = [([0] + [1 + i] * (2 + i % 5), [0] + [1] * (2 + i % 5)) for i in range(10)]
    one = ConversationBatches(examples, 2, 16, seed=1, grad_accum_steps=2)
    ranks = [ConversationBatches(examples, 2, 16, seed=1, rank=r, world_size=2) for r in range(2)]
    for _ in range(6):  # past an epoch
        a = [one.next() for _ in range(2)]
        b = [r.next() for r in ranks]
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    x, y = a[0]
    assert ((y == -1) | (y > 0)).all()
    state = one.state_dict()
    again = ConversationBatches(examples, 4, 16, seed=0)
    again.load_state_dict(state)
    assert torch.equal(again.next()[1][:2], one.next()[1])


def test_masked_positions_do_not_train() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, n_layer=1, n_head=1, n_embd=8, seq_len=8))
    batches = ConversationBatches([([0, 5, 6, 7], [0, 0, 0, 0])], 1, 8, seed=0)
    x, y = batches.next()
    _, loss = model(x, y)
    assert loss is not None and loss.item() == 0.0  # nothing to learn from a turn the assistant did not speak


def test_too_long_examples_are_refused() -> None:
    with pytest.raises(ValueError, match="exceed seq_len"):
        ConversationBatches([([0] * 20, [1] * 20)], 1, 8, seed=0)
