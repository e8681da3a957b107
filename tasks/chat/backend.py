"""What the chat server needs from a model (`ChatBackend`), the reply it streams (`Generation`),
and `FakeBackend`, deterministic text for tests of the API and the page.

Our own model is `tasks.chat.checkpoint_backend.CheckpointBackend`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

FinishReason = Literal["stop", "length"]


class Generation:
    """One reply in progress: iterate it for text deltas; after that, read its outcome.

    `finish_reason` ("stop": end of turn, "length": `max_tokens` reached) and the token
    counts are final once the iterator is exhausted. A backend wraps its own generator
    of deltas and fills these fields as it goes. A delta may be "" (a token that shows
    no text yet): the server skips it, but it is a point where an abandoned reply stops.
    """

    def __init__(self, deltas: Iterator[str] | None = None, prompt_tokens: int = 0) -> None:
        self._deltas: Iterator[str] = deltas if deltas is not None else iter(())
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.finish_reason: FinishReason | None = None

    def attach(self, deltas: Iterator[str]) -> None:
        # Backends build the generator after the Generation so the generator can update it.
        self._deltas = deltas

    def __iter__(self) -> Generation:
        return self

    def __next__(self) -> str:
        return next(self._deltas)

    def close(self) -> None:
        """Stop early (client gone): lets the backend's generator run its cleanup."""
        close = getattr(self._deltas, "close", None)
        if close is not None:
            close()


class ChatBackend(Protocol):
    """What the server needs from a model."""

    model_name: str

    def validate(self, messages: list[dict[str, Any]]) -> None:
        """Raise ValueError (shown to the client as a 400) for a conversation this model cannot take.

        Called on the event loop, so it must be cheap (no tokenizing, no model).
        """
        ...

    def stream(
        self,
        messages: list[dict[str, Any]],
        temperature: float,
        max_tokens: int,
        top_p: float | None,
        seed: int | None,
    ) -> Generation:
        """Start a reply; iterate the result for text deltas. ValueError = the request is invalid."""
        ...


@dataclass
class FakeBackend:
    """Deterministic replies for tests: "Echo: <last user message>", a few characters per token.

    `delay_s` is slept before each token, to make streaming observable and to keep
    the model busy while a test sends other requests. Every call is recorded in
    `calls` (messages and sampling parameters) so tests can check what the page sent.
    """

    model_name: str = "llmforge-fake"
    delay_s: float = 0.0
    chars_per_token: int = 3
    calls: list[dict[str, Any]] = field(default_factory=list)

    def validate(self, messages: list[dict[str, Any]]) -> None:
        if not any(m.get("role") == "user" for m in messages):
            raise ValueError("the conversation needs at least one user message")

    def reply_text(self, messages: list[dict[str, Any]]) -> str:
        last_user = next(m for m in reversed(messages) if m.get("role") == "user")
        return f"Echo: {last_user.get('content') or ''}"

    def stream(
        self,
        messages: list[dict[str, Any]],
        temperature: float,
        max_tokens: int,
        top_p: float | None,
        seed: int | None,
    ) -> Generation:
        self.validate(messages)
        self.calls.append(
            {"messages": messages, "temperature": temperature, "max_tokens": max_tokens, "top_p": top_p, "seed": seed}
        )
        text = self.reply_text(messages)
        pieces = [text[i : i + self.chars_per_token] for i in range(0, len(text), self.chars_per_token)]
        generation = Generation(prompt_tokens=sum(len(str(m.get("content") or "")) for m in messages))
        generation.attach(self._deltas(generation, pieces, max_tokens))
        return generation

    def _deltas(self, generation: Generation, pieces: list[str], max_tokens: int) -> Iterator[str]:
        for n, piece in enumerate(pieces):
            if n >= max_tokens:
                generation.finish_reason = "length"
                return
            if self.delay_s:
                time.sleep(self.delay_s)
            generation.completion_tokens += 1
            yield piece
        generation.finish_reason = "stop"
