"""Inference engine: KV-cached sampling, batched and streamed, with a tool-call hook.

One loop (`stream_batch`) serves every caller:

* a batch of prompts of different lengths is prefilled in one ragged call (each
  row appends its own number of tokens, so no left/right padding leaks into the
  history: padding is computed but never stored nor attended to), then all
  unfinished rows decode one token per step together;
* `num_samples=K` prefills each prompt once and copies its cache K times before
  decoding, which is what RL needs (many answers per prompt);
* each row stops on its own (a stop id, `max_new_tokens`, or the context rule
  below); finished rows leave the batch so the others do not pay for them;
* when a row samples the tool-call end token, `ToolUse.handler` may return tokens
  (e.g. `<|tool_output_start|> ... <|tool_output_end|>`) that are force-fed into
  that row (one ragged call: other rows decode one token meanwhile) before it
  samples again. They are part of the output, flagged `forced`, and do not count
  against `max_new_tokens`;
* events are yielded as tokens are produced, so a terminal or server can stream.

Context overflow (the model cannot see more than `config.seq_len` tokens; the
cache stores absolute rotary positions, so it cannot simply drop its oldest entry):

* `overflow="stop"` (the default): nothing is ever dropped. A row whose next step
  would need more than `seq_len` tokens of context ends with finish reason
  "context" (after the token that filled it has been emitted); a prompt longer
  than `seq_len` yields no tokens and the reason "context".
* `overflow="slide"`: a prompt longer than `seq_len` keeps its last `seq_len`
  tokens; when a row is full, its last `slide_keep` tokens (default 3/4 of the
  context) are prefilled again into a fresh cache row at positions 0.. and
  decoding continues, so the model always sees between `slide_keep` and
  `seq_len` of the most recent tokens, and re-prefill costs are amortised over
  `seq_len - slide_keep` tokens. `slide_keep=seq_len` gives exactly the
  uncached sliding window (every token sees the last `seq_len` tokens) at the
  uncached cost once the context is full.

Sampling order: temperature, then top-k, then top-p (nucleus) on what is left;
temperature 0 is greedy (argmax, no randomness consumed).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from model.gpt import GPT, KVCache, autocast_context

FinishReason = Literal["stop", "length", "context"]
OverflowPolicy = Literal["stop", "slide"]


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    stop_ids: Collection[int] = frozenset()
    overflow: OverflowPolicy = "stop"
    slide_keep: int | None = None  # tokens kept when sliding; None = 3/4 of the context

    def __post_init__(self) -> None:
        if self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] or None, got {self.top_p}")
        if self.overflow not in ("stop", "slide"):
            raise ValueError(f"overflow must be 'stop' or 'slide', got {self.overflow!r}")
        if self.slide_keep is not None and self.slide_keep < 1:
            raise ValueError(f"slide_keep must be >= 1 or None, got {self.slide_keep}")
        # Normalise once so membership tests in the loop are cheap and hashable.
        object.__setattr__(self, "stop_ids", frozenset(int(i) for i in self.stop_ids))


@dataclass(frozen=True)
class ToolCall:
    """What a tool handler is told: which row, and the call's tokens."""

    row: int  # row of the batch (prompt_index * num_samples + sample_index)
    body: list[int]  # tokens after the last call-start token, up to (not including) the end token
    sequence: list[int]  # the row's whole sequence so far (prompt + output, end token included)


@dataclass(frozen=True)
class ToolUse:
    """Tool calling: on `call_end_id`, `handler(call)` returns tokens to force-feed (may be empty).

    In the chat format (`model/tokenizer.py: SPECIAL_TOKENS`) the ids are those of
    `<|tool_call_start|>` and `<|tool_call_end|>`, and the handler decodes `call.body`,
    runs the tool and returns `<|tool_output_start|>`, the encoded result,
    `<|tool_output_end|>`; the model then goes on with its turn. The handler runs
    between decode steps of the whole batch, so a slow tool holds up every row.
    """

    call_start_id: int
    call_end_id: int
    handler: Callable[[ToolCall], Sequence[int]]


@dataclass(frozen=True)
class TokenEvent:
    row: int
    token: int
    forced: bool  # injected by the tool handler, not sampled
    finish: FinishReason | None  # set on the row's last event


@dataclass
class Completion:
    tokens: list[int] = field(default_factory=list)  # sampled and forced, in order
    forced: list[bool] = field(default_factory=list)  # per token: injected (e.g. tool output, no loss in RL)
    finish_reason: FinishReason | None = None


def sample_tokens(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token id per row of `logits` [B, V] -> [B] (long).

    Filters shrink the problem before any per-token work: with top-k only the k
    best logits are kept (softmax, top-p and the draw run on k values, not V);
    top-p alone first looks for its nucleus among the few hundred best tokens and
    sorts the whole vocabulary only when those do not hold `top_p` of the mass.
    """
    if temperature == 0:
        return torch.argmax(logits, dim=-1)
    logits = logits.float() / temperature
    vocab = logits.shape[-1]
    nucleus = top_p is not None and top_p < 1
    candidates: torch.Tensor | None = None  # token ids of the columns of `probs`, best first
    if top_k is not None and top_k < vocab:
        best, candidates = torch.topk(logits, top_k, dim=-1)
        probs = torch.softmax(best, dim=-1)  # the distribution renormalised over the top k
    elif nucleus:
        assert top_p is not None
        best, candidates = _nucleus_candidates(logits, top_p)
        probs = torch.exp(best - torch.logsumexp(logits, dim=-1, keepdim=True))  # full-vocabulary probabilities
    else:
        probs = torch.softmax(logits, dim=-1)
    if nucleus:
        # Candidates are sorted best first. Drop one when the more likely ones before it
        # already reach top_p; the most likely has nothing before it, so it always stays.
        mass_before = torch.cumsum(probs, dim=-1) - probs
        probs = probs.masked_fill(mass_before >= top_p, 0.0)
    picked = _draw(probs, generator)
    return picked if candidates is None else candidates.gather(-1, picked[:, None])[:, 0]


def _nucleus_candidates(logits: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The best logits (sorted) and their ids: enough of them to hold the top-p nucleus of every row."""
    vocab = logits.shape[-1]
    if vocab > 256:
        best, ids = torch.topk(logits, 256, dim=-1)
        # If the 256 best hold top_p of the mass, every token after them is outside the
        # nucleus: the usual case for a trained model, whose distributions are peaked.
        if bool((torch.exp(best - torch.logsumexp(logits, dim=-1, keepdim=True)).sum(-1) >= top_p).all()):
            return best, ids
    return torch.sort(logits, dim=-1, descending=True)


def _draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Column index per row, drawn in proportion to `probs` (rows need not sum to 1).

    Inverse CDF with one uniform number per row: much cheaper on CPU than
    `torch.multinomial` over a large vocabulary, and as reproducible with a generator.
    """
    # float32: its rounding over a 10^5-token vocabulary moves boundaries by ~1e-6 of the mass,
    # far below anything sampling could notice, at a tenth of float64's cost.
    cdf = probs.cumsum(dim=-1)
    u = torch.rand(probs.shape[0], 1, generator=generator,
                   device=generator.device if generator is not None else probs.device)  # fmt: skip
    picked = torch.searchsorted(cdf, u.to(probs.device) * cdf[:, -1:], right=True).clamp_(max=probs.shape[-1] - 1)
    # `right=True` never lands on a zero-probability column except through rounding at the very
    # top; fall back to the most likely one there rather than emit a filtered-out token.
    ok = probs.gather(-1, picked) > 0
    return torch.where(ok, picked, probs.argmax(dim=-1, keepdim=True))[:, 0]


@dataclass
class _Row:
    result: Completion
    index: int  # row number in the caller's terms (stable while the batch shrinks)
    sequence: list[int]  # prompt (after cropping) + output
    pending: list[int]  # tail of `sequence` not yet in the cache
    n_sampled: int = 0


def _cache_dtype(model: GPT, device: torch.device) -> torch.dtype:
    # Under CUDA autocast keys/values come out of the bf16 matmuls; store them as such.
    return torch.bfloat16 if device.type == "cuda" else next(model.parameters()).dtype


def _feed(model: GPT, cache: KVCache, chunks: list[list[int]], device: torch.device) -> torch.Tensor:
    """Append each row's chunk to the cache; next-token logits [B, V] of every row."""
    width = max(len(c) for c in chunks)
    idx = torch.tensor([c + [0] * (width - len(c)) for c in chunks], dtype=torch.long, device=device)
    counts = None if all(len(c) == width for c in chunks) else [len(c) for c in chunks]
    # Autocast (and no_grad, inside forward_cached) only around the model call: the caller's
    # loop yields between calls, and grad/autocast modes are global state the consumer of
    # the stream must get back untouched while it holds control.
    with autocast_context(device):
        return model.forward_cached(idx, cache, n_tokens=counts, last_only=True)


def stream_batch(
    model: GPT,
    prompts: Sequence[Sequence[int]],
    params: GenerationParams,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
    tool: ToolUse | None = None,
    results: list[Completion] | None = None,
) -> Iterator[TokenEvent]:
    """Yield tokens of every row as they are produced (rows interleaved, one step at a time).

    Row `p * num_samples + s` is sample `s` of prompt `p`. Rows that produce no
    token (max_new_tokens=0, or a prompt over the context under overflow="stop")
    yield nothing. Pass `results` (an empty list) to also get a `Completion` per
    row, finish reasons included, filled in as the iterator advances.
    """
    # Check arguments now, not at the first `next()` of a lazy generator.
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt must hold at least one token (e.g. BOS)")
    return _run(model, prompts, params, num_samples, generator, tool, results)


def _run(
    model: GPT,
    prompts: Sequence[Sequence[int]],
    params: GenerationParams,
    num_samples: int,
    generator: torch.Generator | None,
    tool: ToolUse | None,
    results: list[Completion] | None,
) -> Iterator[TokenEvent]:
    seq_len = model.config.seq_len
    keep = min(seq_len, params.slide_keep or max(1, 3 * seq_len // 4))
    completions = [Completion() for _ in range(len(prompts) * num_samples)]
    if results is not None:
        results[:] = completions
    live = _admit_prompts(prompts, params, num_samples, completions, seq_len)
    if not live:
        return
    device = next(model.parameters()).device
    cache, logits, live = _prefill(model, live, params, num_samples, completions, device)
    while True:
        next_ids = sample_tokens(logits, params.temperature, params.top_k, params.top_p, generator).tolist()
        still: list[int] = []
        for b, (row, token) in enumerate(zip(live, next_ids)):
            yield from _advance(row, int(token), cache.lengths[b], params, tool, seq_len)
            if row.result.finish_reason is None:
                still.append(b)
        if not still:
            return
        if len(still) < len(live):
            cache.select_rows(still)
            live = [live[b] for b in still]
        for b, row in enumerate(live):
            if cache.lengths[b] + len(row.pending) > seq_len:  # only reachable with overflow="slide"
                cache.reset_row(b)
                row.pending = row.sequence[-keep:]
        logits = _feed_pending(model, cache, live, device)


def _admit_prompts(
    prompts: Sequence[Sequence[int]], params: GenerationParams, num_samples: int, completions: list[Completion],
    seq_len: int,
) -> list[_Row]:
    """One row per prompt that will produce tokens; the others get their finish reason at once."""
    live: list[_Row] = []
    for p, prompt in enumerate(prompts):
        ids = [int(i) for i in prompt]
        if len(ids) > seq_len:
            if params.overflow == "stop":
                for s in range(num_samples):
                    completions[p * num_samples + s].finish_reason = "context"
                continue
            ids = ids[-seq_len:]
        if params.max_new_tokens == 0:
            for s in range(num_samples):
                completions[p * num_samples + s].finish_reason = "length"
            continue
        live.append(_Row(completions[p * num_samples], p, ids, list(ids)))
    return live


def _prefill(
    model: GPT, live: list[_Row], params: GenerationParams, num_samples: int, completions: list[Completion],
    device: torch.device,
) -> tuple[KVCache, torch.Tensor, list[_Row]]:
    """A cache holding every prompt, the next-token logits, and the decoding rows (one per sample)."""
    longest = max(len(r.sequence) for r in live)
    cache = KVCache(
        model.config, len(live), capacity=longest + params.max_new_tokens, device=device,
        dtype=_cache_dtype(model, device),
    )  # fmt: skip
    logits = _feed_pending(model, cache, live, device)
    if num_samples == 1:
        return cache, logits, live
    # Prefill once per prompt, then each copy of the cache row decodes its own sample.
    cache.repeat_rows(num_samples)
    samples = [
        _Row(completions[r.index * num_samples + s], r.index * num_samples + s, list(r.sequence), [])
        for r in live
        for s in range(num_samples)
    ]
    return cache, logits.repeat_interleave(num_samples, dim=0), samples


def _feed_pending(model: GPT, cache: KVCache, live: list[_Row], device: torch.device) -> torch.Tensor:
    """Append every row's pending tokens to the cache (which then holds them); next-token logits [B, V]."""
    logits = _feed(model, cache, [r.pending for r in live], device)
    for r in live:
        r.pending = []
    return logits


def _advance(
    row: _Row, token: int, cached: int, params: GenerationParams, tool: ToolUse | None, seq_len: int
) -> list[TokenEvent]:
    """Record a sampled token (and any tool output it triggers); decide whether the row is done."""
    out = row.result
    added = [(token, False)]
    row.n_sampled += 1
    finish: FinishReason | None = None
    if token in params.stop_ids:
        finish = "stop"
    elif row.n_sampled >= params.max_new_tokens:
        finish = "length"
    elif tool is not None and token == tool.call_end_id:
        sequence = row.sequence + [token]
        start = max((i for i, t in enumerate(sequence) if t == tool.call_start_id), default=-1)
        # No call-start anywhere: the whole output so far is the call.
        body = sequence[start + 1 : -1] if start >= 0 else list(out.tokens)
        injected = [int(t) for t in tool.handler(ToolCall(row.index, body, sequence))]
        added += [(t, True) for t in injected]
    for t, forced in added:
        out.tokens.append(t)
        out.forced.append(forced)
        row.sequence.append(t)
        row.pending.append(t)
    if finish is None and params.overflow == "stop" and cached + len(row.pending) > seq_len:
        finish = "context"
    out.finish_reason = finish
    return [
        TokenEvent(row.index, t, forced, finish if i == len(added) - 1 else None)
        for i, (t, forced) in enumerate(added)
    ]


def generate_batch(
    model: GPT,
    prompts: Sequence[Sequence[int]],
    params: GenerationParams,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
    tool: ToolUse | None = None,
) -> list[Completion]:
    """All completions at once; row `p * num_samples + s` is sample `s` of prompt `p`."""
    results: list[Completion] = []
    for _ in stream_batch(model, prompts, params, num_samples, generator, tool, results):
        pass
    return results


def sample_many(
    model: GPT,
    prompt_ids: Sequence[int],
    num_samples: int,
    params: GenerationParams,
    generator: torch.Generator | None = None,
    tool: ToolUse | None = None,
) -> list[Completion]:
    """`num_samples` independent completions of one prompt (prefilled once)."""
    return generate_batch(model, [prompt_ids], params, num_samples, generator, tool)


def stream(
    model: GPT,
    prompt_ids: Sequence[int],
    params: GenerationParams,
    generator: torch.Generator | None = None,
    tool: ToolUse | None = None,
) -> Iterator[int]:
    """Token ids of one completion as they are produced (tool output included)."""
    for event in stream_batch(model, [prompt_ids], params, 1, generator, tool):
        yield event.token
