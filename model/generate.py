"""Autoregressive sampling from a GPT: the simple one-sequence entry point.

`generate` keeps its original signature and meaning (new ids only, a stop id
ends generation and is included, a context longer than the model's is cut to
its most recent tokens) but now runs on the KV-cached engine in
`model/engine.py`, which also offers top-p, batches, many samples per prompt,
streaming and tool calls.
"""

from __future__ import annotations

from collections.abc import Collection

import torch

from model.engine import GenerationParams, sample_tokens, stream
from model.gpt import GPT


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    top_p: float | None = None,
) -> int:
    """Pick one token id from a 1-D logits vector; temperature 0 means argmax."""
    return int(sample_tokens(logits[None], temperature, top_k, top_p, generator)[0].item())


@torch.no_grad()
def generate(
    model: GPT,
    prompt_ids: list[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    stop_ids: Collection[int] = (),
    generator: torch.Generator | None = None,
    top_p: float | None = None,
    slide_keep: int | None = None,
) -> list[int]:
    """Return only the newly generated ids; a stop id ends generation and is included.

    Generation never stops for lack of context: it slides (see `model/engine.py`;
    `slide_keep=model.config.seq_len` reproduces the uncached sliding window exactly).
    """
    if not prompt_ids:
        raise ValueError("prompt_ids must hold at least one token (e.g. BOS)")
    params = GenerationParams(
        max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
        stop_ids=stop_ids, overflow="slide", slide_keep=slide_keep,
    )  # fmt: skip
    return list(stream(model, prompt_ids, params, generator=generator))
