"""`llmforge serve` against hostile request bodies: each is answered with a 4xx in OpenAI's error
shape, never a 500, and never reaches the model.

Against a live uvicorn server (`BackgroundServer`), so the bytes go through the same HTTP
stack as a real client's. Ends with a seeded fuzz of request bodies.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tasks.chat.api import create_app
from tasks.chat.backend import FakeBackend
from tasks.chat.json_body import MAX_INT_DIGITS
from tasks.chat.serve import BackgroundServer
from tasks.chat.validation import ServeLimits

MODEL = "llmforge-fake"
JSON = {"content-type": "application/json"}
VALID: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
# Defaults, as `llmforge serve` runs: 256 KiB bodies, so the deep and long bodies below are
# refused for what they contain, not for their size.
LIMITS = ServeLimits()


@pytest.fixture()
def backend() -> FakeBackend:
    return FakeBackend(model_name=MODEL)


@pytest.fixture()
def live(backend: FakeBackend) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(backend, LIMITS)) as server:
        yield server


def _post(server: BackgroundServer, body: bytes | str, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return httpx.post(f"{server.url}/v1/chat/completions", content=content, headers=headers or JSON, timeout=30)


def _with_raw(field: str, literal: str) -> str:
    """The valid request with `field` set to `literal`, written into the JSON text as is."""
    return json.dumps(VALID)[:-1] + f', "{field}": {literal}}}'


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["message"] and "\n" not in error["message"]
    return error


def test_5000_digit_seed_is_400(live: BackgroundServer, backend: FakeBackend) -> None:
    # Python refuses to convert an integer of more than 4300 digits (a ValueError, not a
    # JSONDecodeError); this was a 500.
    response = _post(live, _with_raw("seed", "9" * 5000))
    error = _error(response, 400)
    assert error["code"] == "invalid_json" and error["type"] == "invalid_request_error"
    assert "5000 digits" in error["message"]
    assert backend.calls == []


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,  # was a RecursionError: a 500
        _with_raw("tool_choice", "[" * 100_000 + "]" * 100_000),  # deep inside an ignored field
        _with_raw("metadata", '{"a":' * 30_000 + "1" + "}" * 30_000),
        "[" * 100_000,  # never closed
    ],
    ids=["array", "in-a-field", "objects", "unclosed"],
)
def test_100000_nested_brackets_are_400(live: BackgroundServer, backend: FakeBackend, body: str) -> None:
    error = _error(_post(live, body), 400)
    assert error["code"] == "invalid_json"
    assert f"more than {LIMITS.max_json_depth} levels deep" in error["message"]
    assert backend.calls == []


def test_brackets_inside_strings_do_not_count_as_nesting(live: BackgroundServer, backend: FakeBackend) -> None:
    text = "[{" * 1000 + '\\"' + "]}" * 10
    response = _post(live, json.dumps({**VALID, "messages": [{"role": "user", "content": text}]}))
    assert response.status_code == 200, response.text[:300]
    assert backend.calls[-1]["messages"][0]["content"] == text


@pytest.mark.parametrize(
    ("literal", "fragment"),
    [
        ("NaN", "NaN is not a JSON number"),
        ("Infinity", "Infinity is not a JSON number"),
        ("-Infinity", "-Infinity is not a JSON number"),
        ("1e999", "out of range"),
        ("-1e400", "out of range"),
        ("0." + "1" * 500, "characters"),
        ("-" + "9" * (MAX_INT_DIGITS + 1), f"{MAX_INT_DIGITS + 1} digits"),
    ],
)
def test_numbers_json_cannot_hold_are_400(
    live: BackgroundServer, backend: FakeBackend, literal: str, fragment: str
) -> None:
    for field in ("temperature", "seed"):
        error = _error(_post(live, _with_raw(field, literal)), 400)
        assert error["code"] == "invalid_json" and fragment in error["message"], error
    assert backend.calls == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", 2**64),  # fits in 20 digits, not in 64 bits
        ("seed", -(2**63) - 1),
        ("seed", "12"),
        ("seed", 1.5),
        ("seed", 1.0),
        ("seed", True),
        ("temperature", "0.7"),
        ("temperature", True),
        ("temperature", -0.1),
        ("temperature", 1e300),
        ("top_p", 0),
        ("top_p", 1.5),
        ("top_p", [0.5]),
        ("max_tokens", 0),
        ("max_tokens", -5),
        ("max_tokens", 2.0),
        ("max_tokens", "10"),
        ("max_tokens", 10**19),
        ("max_completion_tokens", {"n": 1}),
        ("n", 1.0),
        ("stream", "yes"),
        ("stream", 1),
        ("stream_options", {"include_usage": "true"}),
        ("messages", "hi"),
        ("messages", [["user", "hi"]]),
        ("model", 7),
    ],
)
def test_wrong_types_and_ranges_are_422(
    live: BackgroundServer, backend: FakeBackend, field: str, value: object
) -> None:
    error = _error(_post(live, json.dumps({**VALID, field: value})), 422)
    assert error["code"] == "invalid_value"
    assert str(error["param"]).split(".")[0] == field
    assert backend.calls == []


def test_seed_range_edges_are_accepted(live: BackgroundServer, backend: FakeBackend) -> None:
    for seed in (2**63 - 1, -(2**63), 0):
        assert _post(live, json.dumps({**VALID, "seed": seed})).status_code == 200
    assert [call["seed"] for call in backend.calls] == [2**63 - 1, -(2**63), 0]


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({**VALID, "messages": [{"role": "user", "content": "\ud800"}]}),  # was a 500 on the reply
        json.dumps({**VALID, "model": "x\udfff"}),  # was a 500 on the 404's message
        json.dumps({**VALID, "\udc00": 1}),
    ],
    ids=["content", "model", "key"],
)
def test_unpaired_surrogates_are_400(live: BackgroundServer, backend: FakeBackend, body: str) -> None:
    error = _error(_post(live, body), 400)
    assert "unpaired surrogate" in error["message"]
    assert backend.calls == []


def test_paired_surrogate_escapes_are_text(live: BackgroundServer, backend: FakeBackend) -> None:
    body = json.dumps({**VALID, "messages": [{"role": "user", "content": "\U0001f600"}]})  # "\ud83d\ude00"
    response = _post(live, body)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Echo: \U0001f600"


def test_an_unexpected_failure_is_a_500_in_openai_shape() -> None:
    """Not input's fault, but still the API's shape, without internals."""

    class BrokenBackend(FakeBackend):
        def validate(self, messages: list[dict[str, Any]]) -> None:
            raise RuntimeError("a bug with a secret path /srv/x")

    with BackgroundServer(create_app(BrokenBackend(model_name=MODEL))) as server:
        error = _error(_post(server, json.dumps(VALID)), 500)
    assert error["type"] == "server_error" and "/srv/x" not in error["message"]


# --- Fuzz --------------------------------------------------------------------------------------

FUZZ_CASES = 400
FIELDS = ("model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "stream",
          "stream_options", "seed", "stop", "tool_choice")  # fmt: skip
ODD_VALUES: tuple[object, ...] = (
    None, True, False, 0, -1, 1, 2, 1.5, -0.0, 1e308, 2**63, -(2**63) - 1, 10**20 - 1, "", "x", "9" * 40,
    "\u0000", [], {}, [1, "a"], {"a": {"b": []}}, [{"role": "user"}], [{"role": "user", "content": 5}],
    [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image"}]}], "y" * 3000,
)  # fmt: skip
TOKENS = ('{', '}', '[', ']', ':', ',', '"', '"a"', '"model"', '"messages"', '"seed"', '0', '-', '1e', '.5',
          'null', 'true', 'tru', '\\', '\\u', '"\\ud800"', '"\\u00"', '\x00', '\xff', ' ', '\n', '9' * 50)  # fmt: skip


def _random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(0, 80))


def _token_soup(rng: random.Random) -> bytes:
    return "".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 40))).encode("utf-8", "surrogatepass")


def _mutated_valid(rng: random.Random) -> bytes:
    text = bytearray(json.dumps({**VALID, "temperature": 0.5, "seed": 3, "stream": rng.random() < 0.3}).encode())
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(text))
        edit = rng.randrange(3)
        if edit == 0:
            del text[at : at + rng.randint(1, 8)]
        elif edit == 1:
            text[at:at] = rng.choice(TOKENS).encode("utf-8", "surrogatepass")
        else:
            text[at] = rng.randrange(256)
    return bytes(text)


def _wrong_type(rng: random.Random) -> bytes:
    request: dict[str, Any] = {**VALID, "messages": [{"role": "user", "content": "hi"}]}
    if rng.random() < 0.3:
        request["messages"][0][rng.choice(("role", "content", "name", "tool_calls", "tool_call_id"))] = rng.choice(
            ODD_VALUES
        )
    else:
        request[rng.choice(FIELDS)] = rng.choice(ODD_VALUES)
    return json.dumps(request).encode()


def _huge_number(rng: random.Random) -> bytes:
    digits = rng.randint(MAX_INT_DIGITS, 6000)
    literal = rng.choice(["9" * digits, "-" + "1" * digits, f"1e{rng.randint(300, 99999)}", "NaN", "-Infinity",
                          "0." + "3" * digits, "1" * digits + ".0", f"{2**64}", f"-{2**63 + 1}"])  # fmt: skip
    return _with_raw(rng.choice(FIELDS), literal).encode()


def _deep_nesting(rng: random.Random) -> bytes:
    depth = rng.choice([LIMITS.max_json_depth - 3, LIMITS.max_json_depth + 1, 1000, rng.randint(1, 100_000)])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    inner = opener * depth + "0" + closer * depth * (rng.random() < 0.8)
    return (inner if rng.random() < 0.3 else _with_raw(rng.choice(FIELDS), inner)).encode()


def _odd_string(rng: random.Random) -> bytes:
    content = rng.choice(['"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"a\x01b"', '"\\x41"', '"\\ud83d\\ude00"',
                          '"' + "\\" * rng.randint(1, 9) + '"', '"\u2028"'])  # fmt: skip
    return f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": {content}}}]}}'.encode()


MAKERS: tuple[Callable[[random.Random], bytes], ...] = (
    _random_bytes, _token_soup, _mutated_valid, _wrong_type, _huge_number, _deep_nesting, _odd_string,
)  # fmt: skip
CONTENT_TYPES = ("application/json",) * 8 + ("application/json; charset=utf-8", "text/plain")


def test_fuzzed_bodies_never_get_a_500(live: BackgroundServer, backend: FakeBackend) -> None:
    rng = random.Random(20240917)
    answered_200 = 0
    # A fresh connection per request: a reused one waits out delayed ACKs (~40 ms a request).
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=live.url, timeout=30, limits=no_reuse) as client:
        for case in range(FUZZ_CASES):
            body = rng.choice(MAKERS)(rng)
            content_type = rng.choice(CONTENT_TYPES)
            response = client.post("/v1/chat/completions", content=body, headers={"content-type": content_type})
            shown = f"case {case} ({content_type}): {body[:200]!r}... -> {response.status_code} {response.text[:200]}"
            assert response.status_code in (200, 400, 404, 413, 415, 422), shown
            if response.status_code == 200:
                answered_200 += 1
            else:
                assert set(response.json()["error"]) == {"message", "type", "param", "code"}, shown
        # Only the requests answered 200 reached the model; the server still answers.
        assert len(backend.calls) == answered_200
        reply = client.post("/v1/chat/completions", json={**VALID, "messages": [{"role": "user", "content": "ok?"}]})
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "Echo: ok?"
