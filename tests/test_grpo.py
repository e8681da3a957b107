"""GRPO's policy-gradient step: group-relative advantages, token-level normalisation, direction of the update."""

from __future__ import annotations

import pytest
import torch

from model.gpt import GPT, GPTConfig
from model.grpo import group_advantages, make_rollout_batch, policy_gradient_loss


def test_advantages_are_relative_to_the_group() -> None:
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]), 4)
    assert torch.allclose(adv, torch.tensor([0.75, -0.25, -0.25, -0.25, 0.0, 0.0, 0.0, 0.0]))


def _model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=12, n_layer=1, n_head=1, n_embd=16, seq_len=8))


@pytest.mark.slow
def test_a_step_makes_rewarded_answers_likelier() -> None:
    model = _model()
    # One prompt [1, 2], two answers: "5 6" rewarded, "7 8" not.
    seqs = [[1, 2, 5, 6], [1, 2, 7, 8]]
    masks = [[0, 0, 1, 1], [0, 0, 1, 1]]
    batch = make_rollout_batch(seqs, masks, group_advantages(torch.tensor([1.0, 0.0]), 2))

    def logprob(seq: list[int]) -> float:
        with torch.no_grad():
            logits, _ = model(torch.tensor([seq[:-1]]))
            lp = torch.log_softmax(logits[0], -1)
            return float(sum(lp[t - 1, seq[t]] for t in (2, 3)))

    before = [logprob(s) for s in seqs]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(5):
        opt.zero_grad()
        policy_gradient_loss(model, batch).backward()
        opt.step()
    after = [logprob(s) for s in seqs]
    assert after[0] > before[0] and after[1] < before[1]


def test_prompt_and_injected_tokens_get_no_gradient_signal() -> None:
    model = _model()
    batch = make_rollout_batch([[1, 2, 3, 4]], [[0, 0, 0, 0]], torch.tensor([1.0]))
    loss = policy_gradient_loss(model, batch)
    assert loss.item() == 0.0


def test_split_batches_with_the_global_count_add_up_to_the_whole() -> None:
    model = _model()
    seqs = [[1, 2, 5, 6, 7], [1, 2, 7], [3, 4, 5, 5], [3, 4, 9, 9, 9]]
    masks = [[0, 0, 1, 1, 1], [0, 0, 1], [0, 0, 1, 1], [0, 0, 1, 1, 1]]
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 2)
    whole = policy_gradient_loss(model, make_rollout_batch(seqs, masks, adv))
    total = sum(sum(m) for m in masks)
    parts = sum(policy_gradient_loss(model, make_rollout_batch(seqs[i:i + 2], masks[i:i + 2], adv[i:i + 2]),
                                     total_policy_tokens=total) for i in (0, 2))
    assert torch.allclose(whole, parts, atol=1e-6)
