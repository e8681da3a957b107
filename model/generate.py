"""Autoregressive sampling from a GPT.

Every step re-runs the model on the (cropped) context. That is quadratic in the
output length but has no cache to get wrong; a KV cache can replace the body
later without changing the signature.
"""

from __future__ import annotations

from collections.abc import Collection

import torch

from model.gpt import GPT, autocast_context


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> int:
    """Pick one token id from a 1-D logits vector; temperature 0 means argmax."""
    if temperature == 0:
        return int(torch.argmax(logits).item())
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.numel():
        kth_best = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if generator is not None and generator.device != probs.device:
        # torch.multinomial needs the generator on the tensor's device.
        probs = probs.to(generator.device)
    return int(torch.multinomial(probs, num_samples=1, generator=generator).item())


@torch.no_grad()
def generate(
    model: GPT,
    prompt_ids: list[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    stop_ids: Collection[int] = (),
    generator: torch.Generator | None = None,
) -> list[int]:
    """Return only the newly generated ids; a stop id ends generation and is included."""
    if not prompt_ids:
        raise ValueError("prompt_ids must hold at least one token (e.g. BOS)")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    device = next(model.parameters()).device
    context_len = model.config.seq_len
    stop = frozenset(int(i) for i in stop_ids)
    ids = [int(i) for i in prompt_ids]
    new_ids: list[int] = []
    for _ in range(max_new_tokens):
        idx = torch.tensor([ids[-context_len:]], dtype=torch.long, device=device)
        with autocast_context(device):
            logits, _ = model(idx)
        next_id = sample_next(logits[0, -1], temperature, top_k, generator)
        ids.append(next_id)
        new_ids.append(next_id)
        if next_id in stop:
            break
    return new_ids
