"""KV cache and generation engine: the cache reproduces the full forward, and every sampling
mode (greedy, top-k, top-p, batches, many samples, streaming, tool calls, context overflow)
gives what the uncached definition says it should."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from model.engine import (
    Completion,
    GenerationParams,
    ToolCall,
    ToolUse,
    generate_batch,
    sample_many,
    sample_tokens,
    stream,
    stream_batch,
)
from model.generate import generate
from model.gpt import GPT, GPTConfig, KVCache

VOCAB = 512
SEQ_LEN = 32


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # These models are tiny: splitting each op over threads costs more than it saves, and on
    # a loaded machine threads waiting for each other made single ops ~1000x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=VOCAB, n_layer=2, n_head=4, n_embd=64, seq_len=SEQ_LEN)).eval()


def _tokens(b: int, t: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (b, t), generator=torch.Generator().manual_seed(seed))


def _greedy_uncached(model: GPT, prompt: list[int], n: int) -> list[int]:
    """The definition: re-run the whole (last seq_len tokens of the) context for every token."""
    ids = list(prompt)
    for _ in range(n):
        with torch.no_grad():
            logits, _ = model(torch.tensor([ids[-SEQ_LEN:]]))
        ids.append(int(logits[0, -1].argmax()))
    return ids[len(prompt) :]


# ---------------------------------------------------------------- the cache


def test_prefill_then_decode_steps_match_the_full_forward(model: GPT) -> None:
    idx = _tokens(3, 24)
    with torch.no_grad():
        full, _ = model(idx)
    # Small initial capacity: the cache must grow on the way without losing anything.
    cache = KVCache(model.config, batch_size=3, capacity=4)
    parts = [model.forward_cached(idx[:, :10], cache)]
    parts += [model.forward_cached(idx[:, t : t + 1], cache) for t in range(10, 18)]
    parts.append(model.forward_cached(idx[:, 18:], cache))  # a prefill appended to a non-empty cache
    assert cache.lengths == [24, 24, 24]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=0)


def test_ragged_rows_match_each_row_alone(model: GPT) -> None:
    idx = _tokens(3, 30, seed=2)
    with torch.no_grad():
        full, _ = model(idx)
    cache = KVCache(model.config, batch_size=3)
    lengths = [5, 11, 2]
    padded = torch.zeros(3, 11, dtype=torch.long)
    for b, n in enumerate(lengths):
        padded[b, :n] = idx[b, :n]
    last = model.forward_cached(padded, cache, n_tokens=lengths, last_only=True)
    for b, n in enumerate(lengths):
        torch.testing.assert_close(last[b], full[b, n - 1], atol=1e-5, rtol=0)
    # Decode one token per row at different positions, then append different counts (one row none).
    step = model.forward_cached(torch.stack([idx[b, n] for b, n in enumerate(lengths)])[:, None], cache)
    for b, n in enumerate(lengths):
        torch.testing.assert_close(step[b, 0], full[b, n], atol=1e-5, rtol=0)
    starts, counts = list(cache.lengths), [4, 0, 7]
    chunk = torch.zeros(3, 7, dtype=torch.long)
    for b, (s, n) in enumerate(zip(starts, counts)):
        chunk[b, :n] = idx[b, s : s + n]
    out = model.forward_cached(chunk, cache, n_tokens=counts)
    for b, (s, n) in enumerate(zip(starts, counts)):
        torch.testing.assert_close(out[b, :n], full[b, s : s + n], atol=1e-5, rtol=0)
    assert cache.lengths == [s + n for s, n in zip(starts, counts)]


def test_cache_refuses_to_go_past_the_context(model: GPT) -> None:
    cache = KVCache(model.config, batch_size=1)
    model.forward_cached(_tokens(1, SEQ_LEN), cache)
    with pytest.raises(ValueError, match="limit"):
        model.forward_cached(_tokens(1, 1), cache)


# ---------------------------------------------------------------- greedy and overflow


def test_cached_greedy_is_identical_to_uncached(model: GPT) -> None:
    prompt = _tokens(1, 6)[0].tolist()
    assert generate(model, prompt, 20, temperature=0.0) == _greedy_uncached(model, prompt, 20)


def test_slide_with_full_window_reproduces_the_uncached_sliding_window(model: GPT) -> None:
    prompt = _tokens(1, 40, seed=3)[0].tolist()  # longer than the context from the start
    expected = _greedy_uncached(model, prompt, 12)
    assert generate(model, prompt, 12, temperature=0.0, slide_keep=SEQ_LEN) == expected
    # The default (keep 3/4) agrees until the first slide and keeps going after it.
    slid = generate(model, prompt, 12, temperature=0.0)
    assert slid[0] == expected[0] and len(slid) == 12
    # In a batch, rows reach the end of the context at different steps and slide on their own.
    prompts = [prompt[-n:] for n in (30, 25, 32)]
    params = GenerationParams(max_new_tokens=9, temperature=0.0, overflow="slide", slide_keep=SEQ_LEN)
    assert [c.tokens for c in generate_batch(model, prompts, params)] == [
        _greedy_uncached(model, p, 9) for p in prompts
    ]


def test_overflow_stop_ends_with_reason_context(model: GPT) -> None:
    prompt = _tokens(1, SEQ_LEN - 3, seed=4)[0].tolist()
    params = GenerationParams(max_new_tokens=10, temperature=0.0, overflow="stop")
    (done,) = generate_batch(model, [prompt], params)
    # 3 more tokens fill the context; the 4th is predicted from a full context, then it stops.
    assert done.tokens == _greedy_uncached(model, prompt, 4)
    assert done.finish_reason == "context"
    (too_long,) = generate_batch(model, [_tokens(1, SEQ_LEN + 1)[0].tolist()], params)
    assert too_long.tokens == [] and too_long.finish_reason == "context"


# ---------------------------------------------------------------- sampling rules


def test_top_k_and_top_p_restrict_the_support() -> None:
    probs = torch.tensor([0.05, 0.5, 0.0, 0.3, 0.15])
    logits = probs.clamp_min(1e-9).log().expand(4000, -1)
    g = torch.Generator().manual_seed(0)

    def support(**kw: float | int) -> set[int]:
        return set(sample_tokens(logits, 1.0, generator=g, **kw).tolist())  # type: ignore[arg-type]

    assert support(top_k=2) == {1, 3}
    assert support(top_p=0.8) == {1, 3}  # 0.5 + 0.3 reaches 0.8: nothing after is needed
    assert support(top_p=0.81) == {1, 3, 4}
    assert support(top_p=0.01) == {1}  # the most likely token always stays
    assert support(top_k=3, top_p=0.6) == {1, 3}  # top-p over what top-k left
    assert support() == {0, 1, 3, 4}
    assert sample_tokens(logits[:2], 0.0).tolist() == [1, 1]


@pytest.mark.parametrize("scale", [3.0, 0.5])  # nucleus of 45 tokens (in the 256 tried first), of 786
def test_top_p_nucleus_over_a_large_vocabulary(scale: float) -> None:
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(3)) * scale
    probs, order = torch.sort(torch.softmax(logits, -1), descending=True)
    nucleus = set(order[(probs.cumsum(0) - probs) < 0.9].tolist())
    drawn = set(sample_tokens(logits.expand(5000, -1), 1.0, top_p=0.9, generator=torch.Generator()).tolist())
    assert drawn <= nucleus
    assert len(drawn) >= 0.8 * len(nucleus)


def test_seeded_sampling_is_deterministic(model: GPT) -> None:
    params = GenerationParams(max_new_tokens=10, temperature=1.0, top_k=50, top_p=0.9)

    def run(seed: int) -> list[list[int]]:
        done = sample_many(model, [0, 7], 4, params, generator=torch.Generator().manual_seed(seed))
        return [c.tokens for c in done]

    first = run(1)
    assert first == run(1)
    assert first != run(2)
    assert len({tuple(t) for t in first}) > 1  # the 4 samples are not copies of each other


# ---------------------------------------------------------------- batches


def test_batch_rows_equal_each_prompt_alone(model: GPT) -> None:
    prompts = [_tokens(1, n, seed=10 + n)[0].tolist() for n in (3, 9, 1, 6)]
    params = GenerationParams(max_new_tokens=8, temperature=0.0)
    batch = generate_batch(model, prompts, params)
    for prompt, done in zip(prompts, batch):
        assert done.tokens == _greedy_uncached(model, prompt, 8)
        assert done.finish_reason == "length"


def test_many_samples_share_one_prefill_and_match_greedy(model: GPT) -> None:
    prompt = [0, 4, 2]
    done = sample_many(model, prompt, 5, GenerationParams(max_new_tokens=7, temperature=0.0))
    assert [c.tokens for c in done] == [_greedy_uncached(model, prompt, 7)] * 5


def test_rows_stop_on_their_own(model: GPT) -> None:
    prompts = [[0, 1], [0, 9, 9]]
    free = [_greedy_uncached(model, p, 10) for p in prompts]
    stop = free[0][3]
    params = GenerationParams(max_new_tokens=10, temperature=0.0, stop_ids={stop})
    first, second = generate_batch(model, prompts, params)
    assert first.tokens == free[0][: free[0].index(stop) + 1] and first.finish_reason == "stop"
    cut = free[1].index(stop) + 1 if stop in free[1] else 10
    assert second.tokens == free[1][:cut]


# ---------------------------------------------------------------- streaming and tools


def test_streaming_yields_the_same_tokens(model: GPT) -> None:
    params = GenerationParams(max_new_tokens=12, temperature=0.8, top_k=40)
    (done,) = generate_batch(model, [[0, 3]], params, generator=torch.Generator().manual_seed(5))
    streamed = stream(model, [0, 3], params, generator=torch.Generator().manual_seed(5))
    assert next(streamed) == done.tokens[0]  # produced one at a time
    assert torch.is_grad_enabled()  # the engine's no_grad does not leak to the consumer between tokens
    assert [done.tokens[0], *streamed] == done.tokens
    events = list(stream_batch(model, [[0, 3], [1]], params, num_samples=2, generator=torch.Generator()))
    assert {e.row for e in events} == {0, 1, 2, 3}
    assert sum(e.finish is not None for e in events) == 4


def test_tool_hook_force_feeds_tokens(model: GPT) -> None:
    prompts = [[0, 1], [0, 9, 9]]
    free = _greedy_uncached(model, prompts[0], 10)
    end_id, start_id = free[2], prompts[0][1]  # pretend the third greedy token closes a tool call
    output = [300, 301, 302]
    calls: list[ToolCall] = []

    def handler(call: ToolCall) -> list[int]:
        calls.append(call)
        return output if call.row == 0 else []

    tool = ToolUse(call_start_id=start_id, call_end_id=end_id, handler=handler)
    params = GenerationParams(max_new_tokens=8, temperature=0.0)
    done, other = generate_batch(model, prompts, params, tool=tool)
    head = free[: free.index(end_id) + 1]
    assert done.tokens[: len(head) + 3] == head + output
    assert done.forced == [False] * len(head) + [True] * 3 + [False] * (len(done.tokens) - len(head) - 3)
    # After the injection the row continues as if the injected tokens had been in its prompt.
    rest = _greedy_uncached(model, prompts[0] + head + output, 8 - len(head))
    assert done.tokens[len(head) + 3 :] == rest
    assert calls[0].row == 0 and calls[0].body == head[:-1] and calls[0].sequence == prompts[0] + head
    # The other row (tool calls answered with nothing) is unaffected by row 0's injection.
    assert other.tokens == _greedy_uncached(model, prompts[1], 8)
    assert [t for t, f in zip(done.tokens, done.forced) if not f] == done.tokens[: len(head)] + rest


def test_bad_arguments_are_rejected(model: GPT) -> None:
    with pytest.raises(ValueError):
        GenerationParams(max_new_tokens=1, top_p=0.0)
    with pytest.raises(ValueError):
        GenerationParams(max_new_tokens=1, overflow="wrap")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        stream_batch(model, [[0], []], GenerationParams(max_new_tokens=1))
    assert generate_batch(model, [[0]], GenerationParams(max_new_tokens=0)) == [
        Completion(tokens=[], forced=[], finish_reason="length")
    ]
