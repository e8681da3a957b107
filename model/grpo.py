"""The policy-gradient step of GRPO-style reinforcement learning on verifiable rewards.

For each prompt the policy samples K answers; each answer earns a reward (1 when
its final answer is right). The advantage of an answer is its reward minus the
mean reward of its group, so answers better than their siblings are pushed up
and worse ones down, and a group where all K agree teaches nothing. There is no
learned value function and, by default, no KL penalty to a reference model.

Training is on-policy with one update per batch of samples, so the importance
ratio of PPO/GRPO's clipped objective is exactly 1 and the objective reduces to
the REINFORCE form ``-A * log p(token)``. The sum runs over every token the
policy generated (tool outputs the engine injected are masked out) and is
divided by the number of such tokens in the whole batch ("token-level"
normalisation): long answers are not down-weighted per token, as they are when
each answer's loss is first averaged over its own length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.gpt import GPT, autocast_context


def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """reward - mean(reward of its group); rewards are laid out group by group."""
    if rewards.dim() != 1 or rewards.numel() % group_size != 0:
        raise ValueError(f"{rewards.numel()} rewards do not form groups of {group_size}")
    grouped = rewards.float().view(-1, group_size)
    return (grouped - grouped.mean(dim=1, keepdim=True)).view(-1)


@dataclass
class RolloutBatch:
    """Sampled sequences (prompt + answer), right-padded, with the tokens the policy chose marked.

    ``policy_mask[i, t]`` is 1 when token t of row i was sampled by the policy
    (not prompt, not an injected tool output, not padding).
    """

    tokens: torch.Tensor  # [N, T] long
    policy_mask: torch.Tensor  # [N, T] 0/1
    advantages: torch.Tensor  # [N] float


def make_rollout_batch(
    sequences: Sequence[Sequence[int]], policy_masks: Sequence[Sequence[int]], advantages: torch.Tensor, pad_id: int = 0
) -> RolloutBatch:
    if not (len(sequences) == len(policy_masks) == advantages.numel()):
        raise ValueError("sequences, masks and advantages must have one entry per sample")
    width = max(len(s) for s in sequences)
    tokens = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, (seq, m) in enumerate(zip(sequences, policy_masks, strict=True)):
        if len(seq) != len(m):
            raise ValueError(f"sample {i}: {len(seq)} tokens but {len(m)} mask entries")
        tokens[i, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
        mask[i, : len(m)] = torch.tensor(list(m), dtype=torch.long)
    return RolloutBatch(tokens, mask, advantages.float())


def policy_gradient_loss(model: GPT, batch: RolloutBatch, total_policy_tokens: int | None = None) -> torch.Tensor:
    """-sum(A * log p(sampled token)) / number of policy tokens.

    ``total_policy_tokens`` lets a caller that splits one batch into micro-batches
    normalise every part by the whole batch's count, so accumulated gradients
    equal those of the batch processed at once.
    """
    device = next(model.parameters()).device
    tokens, mask = batch.tokens.to(device), batch.policy_mask.to(device)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    chosen = mask[:, 1:].float()
    with autocast_context(device):
        logits, _ = model(inputs)
    logp = -F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
    logp = logp.view_as(chosen)
    denominator = float(total_policy_tokens) if total_policy_tokens else chosen.sum().clamp(min=1.0)
    weighted = logp * chosen * batch.advantages.to(device)[:, None]
    return -weighted.sum() / denominator
