"""`llmforge serve`'s OpenAI-compatible API, tested with the official `openai` client against
a live uvicorn server on 127.0.0.1 (a free port, in a background thread).

Most tests use `FakeBackend` (deterministic echo replies) so they do not depend on a
trained model; one test streams from a real, tiny, untrained GPT checkpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import torch

from model.chat_format import ReplyDecoder
from tasks.chat.api import create_app
from tasks.chat.backend import FakeBackend
from tasks.chat.checkpoint_backend import CheckpointBackend
from tasks.chat.serve import BackgroundServer
from tasks.chat.validation import ServeLimits

MODEL = "llmforge-fake"
LIMITS = ServeLimits(max_body_bytes=32 * 1024, max_tokens=64, default_max_tokens=32)


def _client(server: BackgroundServer) -> openai.OpenAI:
    # No retries: a 429/5xx must surface as such, not be retried behind the test's back.
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=20)


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(FakeBackend(model_name=MODEL), LIMITS)) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: BackgroundServer) -> openai.OpenAI:
    return _client(server)


def test_models_list(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL


def test_non_streaming_reply_has_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "grüße 日本"},
        ],
        temperature=0.5,
    )
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Echo: grüße 日本"
    assert choice.finish_reason == "stop"
    assert reply.model == MODEL and reply.id.startswith("chatcmpl-")
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streaming_reply_arrives_in_chunks(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas, finishes, usage = [], [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                deltas.append(choice.delta.content)
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert "".join(deltas) == "Echo: stream me please"
    assert len(deltas) > 3  # token by token, not one blob
    assert finishes == ["stop"]
    assert usage is not None and usage.completion_tokens == len(deltas)


def test_max_tokens_cuts_with_finish_reason_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "a long message here"}], max_tokens=2
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 2


def test_sse_wire_format_ends_with_done(server: BackgroundServer) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"


def _error(exc: openai.APIStatusError) -> dict[str, object]:
    body = exc.body
    assert isinstance(body, dict) and set(body) >= {"message", "type", "param", "code"}, body
    return body


@pytest.mark.parametrize(
    ("overrides", "status", "param"),
    [
        ({"model": "gpt-nonexistent"}, 404, "model"),
        ({"temperature": 2.5}, 422, "temperature"),
        ({"n": 2}, 422, "n"),
        ({"max_tokens": LIMITS.max_tokens + 1}, 422, "max_tokens"),
        ({"messages": []}, 422, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, 422, "messages.0.role"),
        ({"messages": [{"role": "user"}]}, 422, "messages.0"),
        # Well-formed but unanswerable for this backend (no user turn): a 400 from `validate`.
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, 400, "messages"),
    ],
)
def test_bad_requests_get_openai_errors(
    client: openai.OpenAI, overrides: dict[str, object], status: int, param: str
) -> None:
    request: dict[str, object] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **overrides}
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**request)  # type: ignore[call-overload]
    assert caught.value.status_code == status
    error = _error(caught.value)
    assert error["param"] == param
    assert error["message"]


def test_oversized_body_is_413(client: openai.OpenAI) -> None:
    huge = "x" * (LIMITS.max_body_bytes + 1000)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": huge}])
    assert caught.value.status_code == 413
    assert _error(caught.value)["code"] == "request_too_large"


@pytest.mark.parametrize("payload", [b"{not json", b"\xff\xfe garbage", b""])
def test_malformed_json_is_400(server: BackgroundServer, payload: bytes) -> None:
    response = httpx.post(
        f"{server.url}/v1/chat/completions", content=payload, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_non_object_json_is_422(server: BackgroundServer) -> None:
    response = httpx.post(f"{server.url}/v1/chat/completions", json=[1, 2, 3])
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_path_is_404_json(server: BackgroundServer) -> None:
    response = httpx.get(f"{server.url}/v1/nothing-here")
    assert response.status_code == 404
    assert "error" in response.json()


def test_busy_model_does_not_block_other_clients() -> None:
    """While one slow generation holds the model: listing models and rejecting bad requests
    stay prompt, a request past the wait queue gets 429 at once, and a disconnected
    stream frees the model for the next request."""
    backend = FakeBackend(model_name=MODEL, delay_s=0.1, chars_per_token=1)
    limits = ServeLimits(max_body_bytes=4096, max_tokens=400, max_waiting=0)
    with BackgroundServer(create_app(backend, limits)) as live:
        client = _client(live)
        long_message = "z" * 200  # ~200 tokens at 0.1 s each: 20 s if nobody stops it
        slow = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": long_message}], max_tokens=400, stream=True
        )
        first = next(iter(slow))  # the role chunk: the model is now busy with this request
        assert first.choices[0].delta.role == "assistant"

        started = time.monotonic()
        assert [m.id for m in client.models.list().data] == [MODEL]
        with pytest.raises(openai.UnprocessableEntityError):
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], temperature=9)
        with pytest.raises(openai.APIStatusError) as too_big:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "y" * 5000}])
        assert too_big.value.status_code == 413
        bad_json = httpx.post(
            f"{live.url}/v1/chat/completions", content=b"{", headers={"content-type": "application/json"}, timeout=5
        )
        assert bad_json.status_code == 400
        with pytest.raises(openai.RateLimitError):  # max_waiting=0: no room to queue
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "me too"}])
        assert time.monotonic() - started < 2.0, "rejections waited for the running generation"

        # Abandon the slow stream: the server must stop generating it and serve the next one.
        slow.close()
        started = time.monotonic()
        deadline = started + 5
        while True:
            try:
                reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "next"}])
                break
            except openai.RateLimitError:  # the cancelled job may still be finishing its token
                assert time.monotonic() < deadline, "the abandoned generation kept the model"
                time.sleep(0.05)
        assert reply.choices[0].message.content == "Echo: next"
        assert time.monotonic() - started < 5.0
        assert len(backend.calls) == 2  # the 429'd and the invalid requests never reached the model


def test_requests_wait_their_turn() -> None:
    """Concurrent valid requests within the queue bound are all answered, one after another."""
    backend = FakeBackend(model_name=MODEL, delay_s=0.01)
    with BackgroundServer(create_app(backend, ServeLimits(max_waiting=4))) as live:
        client = _client(live)
        replies: dict[int, str | None] = {}

        def ask(i: int) -> None:
            out = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"n{i}"}])
            replies[i] = out.choices[0].message.content

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert replies == {i: f"Echo: n{i}" for i in range(4)}


# --- The real backend --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An untrained GPT and a small BPE tokenizer, saved the way the pipeline saves them."""
    from model.checkpoint import save_checkpoint
    from model.gpt import GPT, GPTConfig
    from model.tokenizer import train_bpe

    root = tmp_path_factory.mktemp("serve-ckpt")
    texts = ["the quick brown fox jumps over the lazy dog", "grüße aus köln", "日本語のテキスト"] * 20
    tokenizer = train_bpe(texts, vocab_size=320)
    tokenizer_path = root / "tokenizer.json"
    tokenizer.save(tokenizer_path)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=32, seq_len=64))
    save_checkpoint(root / "sft", model, {"step": 0})
    return root / "sft", tokenizer_path


def test_checkpoint_backend_streams_through_the_api(tiny_checkpoint: tuple[Path, Path]) -> None:
    checkpoint, tokenizer_path = tiny_checkpoint
    backend = CheckpointBackend(checkpoint, tokenizer_path, device="cpu")
    assert backend.model_name == "llmforge-sft"
    with BackgroundServer(create_app(backend, ServeLimits(max_tokens=16))) as live:
        client = _client(live)
        messages = [{"role": "user", "content": "the quick brown fox"}]
        chunks = client.chat.completions.create(
            model=backend.model_name, messages=messages, max_tokens=12, temperature=1.0, seed=7, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        deltas, finishes, usage = [], [], None
        for chunk in chunks:
            usage = chunk.usage or usage
            for choice in chunk.choices:
                deltas.append(choice.delta.content or "")
                finishes += [choice.finish_reason] if choice.finish_reason else []
        assert finishes and finishes[0] in ("stop", "length")
        assert usage is not None and 1 <= usage.completion_tokens <= 12 and usage.prompt_tokens > 5

        # Same seed, same reply: the non-streaming path decodes the same tokens.
        reply = client.chat.completions.create(
            model=backend.model_name, messages=messages, max_tokens=12, temperature=1.0, seed=7
        )
        assert reply.choices[0].message.content == "".join(deltas)
        assert reply.choices[0].finish_reason == finishes[0]
        assert "<|" not in "".join(deltas)  # control tokens never reach the client as text


def test_reply_decoder_never_splits_a_character(tiny_checkpoint: tuple[Path, Path]) -> None:
    from model.tokenizer import BpeTokenizer

    tokenizer = BpeTokenizer.from_file(tiny_checkpoint[1])
    single_byte = {tokenizer.token_bytes(i): i for i in range(tokenizer.vocab_size) if len(tokenizer.token_bytes(i)) == 1}
    text = "a日é!"
    decoder = ReplyDecoder(tokenizer)
    deltas = [decoder.feed(single_byte[bytes([b])]) for b in text.encode()]
    assert deltas == ["a", "", "", "日", "", "é", "!"]
    assert decoder.finish() == ""
    # A character cut off by the end of generation becomes one replacement character.
    decoder = ReplyDecoder(tokenizer)
    assert decoder.feed(single_byte[b"\xe6"]) == ""
    assert decoder.finish() == "\ufffd"
    # Turn markers are dropped; a calculator call is shown with its result.
    tid = tokenizer.token_id
    decoder = ReplyDecoder(tokenizer)
    ids = [tid("<|user_start|>"), tid("<|tool_call_start|>"), *tokenizer.encode("2+3"), tid("<|tool_call_end|>"),
           tid("<|tool_output_start|>"), *tokenizer.encode("5"), tid("<|tool_output_end|>")]  # fmt: skip
    assert "".join(decoder.feed(i) for i in ids) == "[calculator: 2+3 = 5]"
