"""`llmforge serve`: a local web chat page and an OpenAI-compatible chat API.

Endpoints
---------
* `GET /`: the chat page (plain HTML/CSS/JS from `tasks/chat/web/`, no build step, no CDN).
* `GET /v1/models`, `GET /v1/models/{id}`: the one model this server holds.
* `POST /v1/chat/completions`: OpenAI's request and response shapes, with and
  without `stream` (Server-Sent Events ending with `data: [DONE]`).

Robustness
----------
Every request is bounded before it can reach the model: the body by bytes (413),
the JSON by syntax (400) and schema (422), the model name (404), the number of
generated tokens (`ServeLimits.max_tokens`). Errors use OpenAI's JSON shape
`{"error": {"message", "type", "param", "code"}}` so OpenAI clients raise their
usual exceptions.

The model runs in ONE worker thread, never on the event loop, so a long
generation does not delay `/v1/models`, the page, or the rejection of bad
requests. Requests waiting for the model form a bounded queue: past
`max_waiting` the server answers 429 at once, and a request that does not get
the model within `queue_timeout_s` gets 503. A client that disconnects stops
its generation at the next token, so an abandoned stream frees the model.

Backends
--------
`ChatBackend` is what the server needs from a model; `CheckpointBackend` is our
GPT checkpoint + BPE tokenizer on the KV-cached engine (`model/engine.py`);
`FakeBackend` produces deterministic text for tests of the API and the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("llmforge.serve")

WEB_DIR = Path(__file__).resolve().parent / "web"
# The page's files, by URL name; anything else under /static is a 404 (no directory listing,
# no path traversal to worry about).
STATIC_FILES: dict[str, str] = {"chat.js": "text/javascript", "chat.css": "text/css"}

FinishReason = Literal["stop", "length"]


# --- Backends ----------------------------------------------------------------------------------


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

        def deltas() -> Iterator[str]:
            for n, piece in enumerate(pieces):
                if n >= max_tokens:
                    generation.finish_reason = "length"
                    return
                if self.delay_s:
                    time.sleep(self.delay_s)
                generation.completion_tokens += 1
                yield piece
            generation.finish_reason = "stop"

        generation.attach(deltas())
        return generation


def render_chat_prompt(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    """Prompt ids in the project's chat format, ending with `<|assistant_start|>`.

    `model.chat_format` is the full format (system turns, tool calls); the older
    `tasks.chat.session.render_prompt` (plain system/user/assistant strings) is the fallback
    for checkouts that predate it.
    """
    try:
        from model.chat_format import render_prompt
    except ImportError:
        from tasks.chat.session import render_prompt as legacy_render_prompt

        history = [(str(m["role"]), str(m.get("content") or "")) for m in messages]
        return legacy_render_prompt(tokenizer, history)
    return render_prompt(tokenizer, messages)


def _check_messages(messages: list[dict[str, Any]]) -> None:
    try:
        from model.chat_format import normalize_messages
    except ImportError:
        for i, m in enumerate(messages):
            if m.get("role") not in ("system", "user", "assistant"):
                raise ValueError(f"message {i}: role {m.get('role')!r} is not supported by this model") from None
        return
    normalize_messages(messages)


class CheckpointBackend:
    """Our GPT checkpoint and BPE tokenizer, sampling on the KV-cached engine.

    Everything model-specific lives here (rendering, sampling, stopping, decoding),
    so a change of engine API touches this class only. Not thread-safe by itself:
    the server runs one generation at a time.
    """

    def __init__(
        self,
        checkpoint_dir: str | Path,
        tokenizer_path: str | Path,
        device: str | None = None,
        top_k: int | None = 50,
        model_name: str | None = None,
    ) -> None:
        import torch

        from model.checkpoint import load_checkpoint
        from model.tokenizer import BpeTokenizer

        checkpoint_dir = Path(checkpoint_dir)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model, _ = load_checkpoint(checkpoint_dir, device=self.device)
        self.model.eval()
        self.tokenizer = BpeTokenizer.from_file(tokenizer_path)
        if self.tokenizer.vocab_size > self.model.config.vocab_size:
            raise ValueError(
                f"tokenizer {tokenizer_path} has {self.tokenizer.vocab_size} tokens but the model only "
                f"{self.model.config.vocab_size}: they do not belong together"
            )
        self.top_k = top_k
        # The checkpoint's stage (base/sft/rl) names the model, so clients see which one answers.
        self.model_name = model_name or f"llmforge-{checkpoint_dir.resolve().name}"
        self._stop_ids = frozenset({self.tokenizer.token_id("<|assistant_end|>"), self.tokenizer.bos_id})

    def validate(self, messages: list[dict[str, Any]]) -> None:
        _check_messages(messages)

    def _tool(self) -> Any:
        """The calculator hook when the chat format provides it (the model may call it mid-reply)."""
        try:
            from model.chat_format import tool_feedback
            from model.engine import ToolUse
        except ImportError:
            return None
        tok = self.tokenizer
        return ToolUse(
            tok.token_id("<|tool_call_start|>"),
            tok.token_id("<|tool_call_end|>"),
            lambda call: tool_feedback(tok, call.body),
        )

    def stream(
        self,
        messages: list[dict[str, Any]],
        temperature: float,
        max_tokens: int,
        top_p: float | None,
        seed: int | None,
    ) -> Generation:
        import torch

        from model.engine import GenerationParams, stream_batch

        prompt = render_chat_prompt(self.tokenizer, messages)  # ValueError -> 400
        params = GenerationParams(
            max_new_tokens=max_tokens, temperature=temperature, top_k=self.top_k, top_p=top_p,
            stop_ids=self._stop_ids,
            # A conversation longer than the context keeps its most recent tokens instead of failing.
            overflow="slide",
        )  # fmt: skip
        # Any integer seed works (torch takes 64-bit seeds only); none = a fresh random one.
        generator = torch.Generator().manual_seed(seed % (1 << 63) if seed is not None else secrets.randbits(63))
        events = stream_batch(self.model, [prompt], params, 1, generator, self._tool())
        generation = Generation(prompt_tokens=len(prompt))
        from model.chat_format import ReplyDecoder

        decoder = ReplyDecoder(self.tokenizer)

        def deltas() -> Iterator[str]:
            finish: str | None = None
            try:
                for event in events:
                    generation.completion_tokens += 1
                    finish = event.finish or finish
                    if event.token in self._stop_ids:
                        continue
                    # Yield every token, even without text, so a cancelled reply stops promptly.
                    yield decoder.feed(event.token)
            finally:
                events.close()  # frees the KV cache now when the client left mid-reply
            tail = decoder.finish()
            if tail:
                yield tail
            # "context" cannot happen with overflow="slide"; if it did, the reply was cut short.
            generation.finish_reason = "stop" if finish == "stop" else "length"

        generation.attach(deltas())
        return generation


# --- Request schema ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 256 * 1024  # a request body over this is refused with 413
    max_messages: int = 512
    max_tokens: int = 1024  # the largest `max_tokens` a request may ask for
    default_max_tokens: int = 512  # when a request does not say
    default_temperature: float = 1.0  # OpenAI's default
    max_waiting: int = 8  # requests queued behind the running one before 429
    queue_timeout_s: float = 120.0  # 503 when the model is not free by then


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "tool"]
    # OpenAI clients may send content as a list of text parts; only text is understood here.
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _content_present(self) -> ChatMessage:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs 'content'")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only assistant messages may have 'tool_calls'")
        return self

    def as_dict(self) -> dict[str, Any]:
        content = self.content
        if isinstance(content, list):
            content = "".join(part.text for part in content)
        out: dict[str, Any] = {"role": self.role, "content": content}
        if self.tool_calls is not None:
            out["tool_calls"] = self.tool_calls
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    # Unknown fields (user, presence_penalty, logit_bias, ...) are ignored as they have no
    # effect here, rather than breaking clients that always send them.
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    stop: str | list[str] | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int | None) -> int | None:
        if n is not None and n != 1:
            raise ValueError("only n=1 is supported")
        return n

    @field_validator("stop")
    @classmethod
    def _no_stop(cls, stop: str | list[str] | None) -> None:
        # Refused loudly rather than ignored: a client relying on it would get wrong output.
        if stop:
            raise ValueError("stop sequences are not supported (replies end at the end of the turn)")
        return None


class ApiError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(
        self, status: int, message: str, type_: str = "invalid_request_error",
        param: str | None = None, code: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


def _validation_error(exc: ValidationError) -> ApiError:
    first = exc.errors()[0]
    param = ".".join(str(p) for p in first.get("loc", ())) or None
    # Pydantic's message, without its "Value error, " prefix for our own validators.
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    details = f"{param}: {message}" if param else message
    if len(exc.errors()) > 1:
        details += f" (and {len(exc.errors()) - 1} more problem(s))"
    return ApiError(422, details, param=param, code="invalid_value")


# --- Scheduling --------------------------------------------------------------------------------


class _Busy(Exception):
    pass


class ModelScheduler:
    """Runs generations one at a time in a worker thread; bounds how many may wait.

    Events of a job go to the request's asyncio queue: ("started",), ("delta", text),
    ("done", Generation), ("invalid", message), ("failed", message).
    """

    def __init__(self, backend: ChatBackend, max_waiting: int) -> None:
        self.backend = backend
        self.max_waiting = max_waiting
        # One worker thread is the model's only user; the lock makes that explicit and keeps
        # it true if anyone ever widens the pool.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmforge-generate")
        self._model_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._admitted = 0  # running + waiting
        self._closing = threading.Event()  # server shutting down: stop the running generation too

    def submit(
        self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[tuple[Any, ...]],
        cancelled: threading.Event, kwargs: dict[str, Any],
    ) -> None:  # fmt: skip
        with self._count_lock:
            if self._admitted >= 1 + self.max_waiting:
                raise _Busy()
            self._admitted += 1

        def send(*event: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:  # the loop is gone (server shutting down): nobody to tell
                pass

        def job() -> None:
            try:
                if cancelled.is_set():  # gave up while waiting (timeout or disconnect)
                    return
                with self._model_lock:
                    self._generate(send, cancelled, kwargs)
            finally:
                with self._count_lock:
                    self._admitted -= 1

        self._executor.submit(job)

    def _generate(self, send: Callable[..., None], cancelled: threading.Event, kwargs: dict[str, Any]) -> None:
        try:
            generation = self.backend.stream(**kwargs)
        except ValueError as exc:
            send("invalid", str(exc))
            return
        except Exception:
            log.exception("generation failed to start")
            send("failed", "the model failed to start this reply")
            return
        send("started")
        try:
            for delta in generation:
                if cancelled.is_set() or self._closing.is_set():
                    generation.close()
                    return
                if delta:  # empty deltas are only chances to notice a cancellation
                    send("delta", delta)
        except Exception:
            log.exception("generation failed")
            send("failed", "the model failed while generating this reply")
            return
        send("done", generation)

    def shutdown(self) -> None:
        # The worker thread is joined at interpreter exit: stop what it runs, drop the queue.
        self._closing.set()
        self._executor.shutdown(wait=False, cancel_futures=True)


# --- App ---------------------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 past `limit` bytes.

    An oversized body is still drained (discarded, up to a hard cap) before answering:
    closing on a client that is still sending makes it see a reset instead of the 413.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > 16 * limit:
        raise ApiError(413, f"request body is {declared} bytes; the limit is {limit}", code="request_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > 16 * limit:
            break
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise ApiError(413, f"request body is over the limit of {limit} bytes", code="request_too_large")
    return b"".join(chunks)


def _sse(payload: Mapping[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def create_app(backend: ChatBackend, limits: ServeLimits | None = None) -> FastAPI:
    """The chat page and the OpenAI-compatible API around `backend`."""
    limits = limits or ServeLimits()
    scheduler = ModelScheduler(backend, limits.max_waiting)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        scheduler.shutdown()  # drop queued jobs; a running one ends with its client

    # No /docs or /openapi.json: the API is OpenAI's, documented there, and the page is at /.
    app = FastAPI(title="llmforge chat", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.scheduler = scheduler
    app.state.limits = limits
    created = int(time.time())

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown paths and wrong methods, in the same shape as every other error.
        code = "not_found" if exc.status_code == 404 else None
        return ApiError(exc.status_code, str(exc.detail), param=None, code=code).response()

    page_headers = {
        # Everything the page needs comes from this server; the policy makes that a guarantee.
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'",
        "Cache-Control": "no-cache",
    }

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers=page_headers)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        if name not in STATIC_FILES:
            raise ApiError(404, f"no static file {name!r}", code="not_found")
        return FileResponse(WEB_DIR / name, media_type=STATIC_FILES[name], headers=page_headers)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)  # browsers ask; a 404 would only clutter the console

    def model_card() -> dict[str, Any]:
        return {"id": backend.model_name, "object": "model", "created": created, "owned_by": "llmforge"}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> dict[str, Any]:
        if model_id != backend.model_name:
            raise ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
        return model_card()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await _read_body(request, limits.max_body_bytes)
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
        try:
            req = ChatCompletionRequest.model_validate(data)
        except ValidationError as exc:
            raise _validation_error(exc) from None
        if req.model != backend.model_name:
            raise ApiError(
                404, f"The model '{req.model}' does not exist (this server has '{backend.model_name}')",
                param="model", code="model_not_found",
            )  # fmt: skip
        if len(req.messages) > limits.max_messages:
            raise ApiError(
                422, f"at most {limits.max_messages} messages per request", param="messages", code="invalid_value"
            )
        # An unspecified length gets the default, never more than the limit.
        max_tokens = req.max_completion_tokens or req.max_tokens or min(limits.default_max_tokens, limits.max_tokens)
        if max_tokens > limits.max_tokens:
            param = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
            raise ApiError(
                422, f"{param} is {max_tokens}; the limit is {limits.max_tokens}", param=param, code="invalid_value"
            )
        messages = [m.as_dict() for m in req.messages]
        try:
            backend.validate(messages)
        except ValueError as exc:
            raise ApiError(400, str(exc), param="messages") from None

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        cancelled = threading.Event()
        kwargs = {
            "messages": messages,
            "temperature": req.temperature if req.temperature is not None else limits.default_temperature,
            "max_tokens": max_tokens, "top_p": req.top_p, "seed": req.seed,
        }  # fmt: skip
        try:
            scheduler.submit(loop, queue, cancelled, kwargs)
        except _Busy:
            raise ApiError(
                429, "the server is busy with other requests; try again shortly", type_="rate_limit_error",
                code="server_busy",
            ) from None  # fmt: skip

        try:
            # Wait for the model (or a rejection) before any response is committed, so every
            # failure up to here still gets its proper status code.
            first = await asyncio.wait_for(queue.get(), timeout=limits.queue_timeout_s)
        except asyncio.TimeoutError:
            cancelled.set()
            raise ApiError(503, "timed out waiting for the model; try again", type_="server_error", code="timeout") from None
        except BaseException:
            cancelled.set()  # request cancelled while waiting: do not run it later
            raise
        if first[0] == "invalid":
            raise ApiError(400, first[1], param="messages")
        if first[0] == "failed":
            raise ApiError(500, first[1], type_="server_error")

        completion_id = f"chatcmpl-{secrets.token_hex(12)}"
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(
                _stream_events(queue, cancelled, completion_id, backend.model_name, include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await _complete(request, queue, cancelled, completion_id, backend.model_name)

    return app


def _usage(generation: Generation) -> dict[str, int]:
    return {
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "total_tokens": generation.prompt_tokens + generation.completion_tokens,
    }


async def _complete(
    request: Request, queue: asyncio.Queue[tuple[Any, ...]], cancelled: threading.Event, completion_id: str, model: str
) -> JSONResponse:
    parts: list[str] = []
    try:
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=1.0)
            except asyncio.TimeoutError:
                # Nobody to answer: free the model rather than finish a reply no one reads.
                if await request.is_disconnected():
                    cancelled.set()
                    return JSONResponse({}, status_code=499)
                continue
            if event[0] == "delta":
                parts.append(event[1])
            elif event[0] == "failed":
                raise ApiError(500, event[1], type_="server_error")
            elif event[0] == "done":
                generation: Generation = event[1]
                break
    except BaseException:
        cancelled.set()
        raise
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "".join(parts)},
            "finish_reason": generation.finish_reason or "stop",
            "logprobs": None,
        }],
        "usage": _usage(generation),
    }  # fmt: skip
    return JSONResponse(body)


async def _stream_events(
    queue: asyncio.Queue[tuple[Any, ...]], cancelled: threading.Event, completion_id: str, model: str,
    include_usage: bool,
) -> AsyncIterator[bytes]:  # fmt: skip
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _sse({
            "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [choice], **extra,
        })  # fmt: skip

    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            event = await queue.get()
            if event[0] == "delta":
                yield chunk({"content": event[1]})
            elif event[0] == "failed":
                # Headers are sent already: report in-band, as OpenAI does, then end the stream.
                yield _sse({"error": {"message": event[1], "type": "server_error", "param": None, "code": None}})
                break
            elif event[0] == "done":
                generation: Generation = event[1]
                yield chunk({}, generation.finish_reason or "stop")
                if include_usage:
                    yield _sse({
                        "id": completion_id, "object": "chat.completion.chunk", "created": created,
                        "model": model, "choices": [], "usage": _usage(generation),
                    })  # fmt: skip
                break
        yield _sse("[DONE]")
    finally:
        # Runs on normal end and when the client disconnects (the generator is closed/cancelled).
        cancelled.set()


# --- Running -----------------------------------------------------------------------------------


def run_server(
    backend: ChatBackend, host: str = "127.0.0.1", port: int = 8000, limits: ServeLimits | None = None
) -> None:
    """Serve until interrupted. The default host keeps the chat on this machine only."""
    import uvicorn

    app = create_app(backend, limits)
    print(f"llmforge chat: http://{host}:{port}/  (model {backend.model_name}; API at /v1)")
    # A bounded graceful shutdown: Ctrl+C must not wait forever on an open stream.
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)


class BackgroundServer:
    """A live uvicorn server in a thread on a free port (tests, notebooks): `with BackgroundServer(app) as s:`."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1") -> None:
        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))  # port 0: the OS picks a free one, with no race
        self.host, self.port = self._sock.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the uvicorn server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


__all__: Sequence[str] = (
    "BackgroundServer", "ChatBackend", "CheckpointBackend", "FakeBackend", "Generation",
    "ServeLimits", "create_app", "render_chat_prompt", "run_server",
)  # fmt: skip
