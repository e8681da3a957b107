"""The chat server's app: the page and an OpenAI-compatible chat API around one `ChatBackend`.

Endpoints
---------
* `GET /`: the chat page (`tasks.chat.page`).
* `GET /v1/models`, `GET /v1/models/{id}`: the one model this server holds.
* `POST /v1/chat/completions`: OpenAI's request and response shapes, with and
  without `stream` (Server-Sent Events ending with `data: [DONE]`).

Before any route, `tasks.chat.guard` refuses requests to hosts and from origins the
server does not answer (`tasks.chat.access`: DNS rebinding, other web sites) and POST
bodies that are not JSON. A request is checked (`tasks.chat.validation`) before it is
queued for the model (`tasks.chat.scheduler`); it waits for the model before any
response is committed, so every failure up to then still gets its proper status code.
A client that disconnects stops its generation at the next token, so an abandoned
reply frees the model. Errors, unknown paths and unexpected failures included, use
OpenAI's JSON error shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tasks.chat import page
from tasks.chat.access import AccessPolicy
from tasks.chat.backend import ChatBackend, Generation
from tasks.chat.guard import RequestGuard
from tasks.chat.scheduler import Job, ModelScheduler, ServerBusy
from tasks.chat.validation import ApiError, ServeLimits, parse_chat_request, read_body


@dataclass(frozen=True)
class ChatServer:
    """What the routes share, kept in `app.state.chat`."""

    backend: ChatBackend
    limits: ServeLimits
    scheduler: ModelScheduler
    created: int  # the model card's creation time: when the server started

    def model_card(self) -> dict[str, Any]:
        return {"id": self.backend.model_name, "object": "model", "created": self.created, "owned_by": "llmforge"}


def create_app(
    backend: ChatBackend, limits: ServeLimits | None = None, access: AccessPolicy | None = None
) -> FastAPI:
    """The chat page and the OpenAI-compatible API around `backend`.

    `access` says which hosts and origins are answered; the default is a server bound
    to 127.0.0.1 with nothing else allowed (see `AccessPolicy.build`).
    """
    limits = limits or ServeLimits()
    # No /docs or /openapi.json: the API is OpenAI's, documented there, and the page is at /.
    app = FastAPI(title="llmforge chat", docs_url=None, redoc_url=None, openapi_url=None, lifespan=_lifespan)
    app.state.chat = ChatServer(backend, limits, ModelScheduler(backend, limits.max_waiting), int(time.time()))
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(RequestGuard, policy=access or AccessPolicy.build())
    app.include_router(page.router)
    app.include_router(router)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.chat.scheduler.shutdown()  # drop queued jobs; a running one ends with its client


async def _api_error(request: Request, exc: ApiError) -> Response:
    return exc.response()


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    # Unknown paths and wrong methods, in the same shape as every other error.
    code = "not_found" if exc.status_code == 404 else None
    return ApiError(exc.status_code, str(exc.detail), param=None, code=code).response()


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # A bug, never the client's input: Starlette re-raises after this answer, so the server
    # logs the traceback; the client gets the usual shape without internals.
    return ApiError(500, "internal server error", type_="server_error").response()


def _server(request: Request) -> ChatServer:
    server: ChatServer = request.app.state.chat
    return server


router = APIRouter()


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": [_server(request).model_card()]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    server = _server(request)
    if model_id != server.backend.model_name:
        raise ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
    return server.model_card()


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    server = _server(request)
    call = parse_chat_request(await read_body(request, server.limits.max_body_bytes), server.backend, server.limits)
    try:
        job = server.scheduler.submit(call.generation_args())
    except ServerBusy:
        raise ApiError(
            429, "the server is busy with other requests; try again shortly", type_="rate_limit_error",
            code="server_busy",
        ) from None  # fmt: skip
    await _wait_for_model(job, server.limits.queue_timeout_s)
    completion_id = f"chatcmpl-{secrets.token_hex(12)}"
    model = server.backend.model_name
    if call.stream:
        return StreamingResponse(
            _stream_events(job, completion_id, model, call.include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return await _complete(request, job, completion_id, model)


async def _wait_for_model(job: Job, timeout_s: float) -> None:
    """Until the job has the model and its reply started; a rejection or a timeout becomes its ApiError."""
    try:
        first = await asyncio.wait_for(job.events.get(), timeout=timeout_s)
    except asyncio.TimeoutError:
        job.cancelled.set()
        raise ApiError(503, "timed out waiting for the model; try again", type_="server_error", code="timeout") from None
    except BaseException:
        job.cancelled.set()  # request cancelled while waiting: do not run it later
        raise
    if first[0] == "invalid":
        raise ApiError(400, first[1], param="messages")
    if first[0] == "failed":
        raise ApiError(500, first[1], type_="server_error")


def _usage(generation: Generation) -> dict[str, int]:
    return {
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "total_tokens": generation.prompt_tokens + generation.completion_tokens,
    }


async def _complete(request: Request, job: Job, completion_id: str, model: str) -> JSONResponse:
    parts: list[str] = []
    try:
        while True:
            try:
                event = await asyncio.wait_for(job.events.get(), timeout=1.0)
            except asyncio.TimeoutError:
                # Nobody to answer: free the model rather than finish a reply no one reads.
                if await request.is_disconnected():
                    job.cancelled.set()
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
        job.cancelled.set()
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


def _sse(payload: Mapping[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


@dataclass(frozen=True)
class _Chunks:
    """The `chat.completion.chunk` events of one streamed reply."""

    completion_id: str
    model: str
    created: int

    def choice(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return self.event(choices=[choice])

    def event(self, **fields: Any) -> bytes:
        return _sse({"id": self.completion_id, "object": "chat.completion.chunk", "created": self.created,
                     "model": self.model, **fields})


async def _stream_events(job: Job, completion_id: str, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    chunks = _Chunks(completion_id, model, int(time.time()))
    try:
        yield chunks.choice({"role": "assistant", "content": ""})
        while True:
            event = await job.events.get()
            if event[0] == "delta":
                yield chunks.choice({"content": event[1]})
            elif event[0] == "failed":
                # Headers are sent already: report in-band, as OpenAI does, then end the stream.
                yield _sse({"error": {"message": event[1], "type": "server_error", "param": None, "code": None}})
                break
            elif event[0] == "done":
                generation: Generation = event[1]
                yield chunks.choice({}, generation.finish_reason or "stop")
                if include_usage:
                    yield chunks.event(choices=[], usage=_usage(generation))
                break
        yield _sse("[DONE]")
    finally:
        # Runs on normal end and when the client disconnects (the generator is closed/cancelled).
        job.cancelled.set()
