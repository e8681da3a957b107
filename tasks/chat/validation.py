"""Every chat request is bounded and checked before it can reach the model.

The body by bytes (413), the JSON by syntax, nesting depth and number sizes
(400, `tasks.chat.json_body`), by schema (422: types are strict, numbers within
their ranges), the model name (404), the number of messages and of generated
tokens (`ServeLimits`), and the conversation by the backend (400). Errors use
OpenAI's JSON shape `{"error": {"message", "type", "param", "code"}}` so OpenAI
clients raise their usual exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks.chat.backend import ChatBackend
from tasks.chat.json_body import MalformedBody, load_json

# A seed is any signed 64-bit integer (the checkpoint backend folds it into torch's seed range).
SEED_RANGE = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 256 * 1024  # a request body over this is refused with 413
    max_json_depth: int = 32  # arrays/objects nested deeper are refused with 400 (a request needs ~6)
    max_messages: int = 512
    max_tokens: int = 1024  # the largest `max_tokens` a request may ask for
    default_max_tokens: int = 512  # when a request does not say
    default_temperature: float = 1.0  # OpenAI's default
    max_waiting: int = 8  # requests queued behind the running one before 429
    queue_timeout_s: float = 120.0  # 503 when the model is not free by then


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


def _shown(value: str, limit: int = 80) -> str:
    """A client's string quoted in an error message, cut short: the message stays one readable line."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


# --- Request schema ----------------------------------------------------------------------------


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
    include_usage: bool = Field(default=False, strict=True)


class ChatCompletionRequest(BaseModel):
    # Unknown fields (user, presence_penalty, logit_bias, ...) are ignored as they have no
    # effect here, rather than breaking clients that always send them.
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    # Strict: numbers must be JSON numbers (not "0.7", not true), integers must be integers.
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, strict=True)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, strict=True)
    max_tokens: int | None = Field(default=None, ge=1, strict=True)
    max_completion_tokens: int | None = Field(default=None, ge=1, strict=True)
    n: int | None = Field(default=None, strict=True)
    stream: bool | None = Field(default=False, strict=True)
    stream_options: StreamOptions | None = None
    seed: int | None = Field(default=None, ge=SEED_RANGE[0], le=SEED_RANGE[1], strict=True)
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


# --- Checking a request ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatCall:
    """A checked request: what to generate, and how to answer."""

    messages: list[dict[str, Any]]
    temperature: float
    max_tokens: int
    top_p: float | None
    seed: int | None
    stream: bool
    include_usage: bool

    def generation_args(self) -> dict[str, Any]:
        """The keyword arguments of `ChatBackend.stream`."""
        return {"messages": self.messages, "temperature": self.temperature, "max_tokens": self.max_tokens,
                "top_p": self.top_p, "seed": self.seed}


async def read_body(request: Request, limit: int) -> bytes:
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


def parse_chat_request(body: bytes, backend: ChatBackend, limits: ServeLimits) -> ChatCall:
    """The request in `body`, checked against the schema, the model's name, the limits and the backend."""
    try:
        data = load_json(body, limits.max_json_depth)
    except MalformedBody as exc:
        raise ApiError(400, str(exc), code="invalid_json") from None
    try:
        req = ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
    if req.model != backend.model_name:
        raise ApiError(
            404, f"The model {_shown(req.model)} does not exist (this server has '{backend.model_name}')",
            param="model", code="model_not_found",
        )  # fmt: skip
    if len(req.messages) > limits.max_messages:
        raise ApiError(
            422, f"at most {limits.max_messages} messages per request", param="messages", code="invalid_value"
        )
    messages = [m.as_dict() for m in req.messages]
    call = ChatCall(
        messages=messages,
        temperature=req.temperature if req.temperature is not None else limits.default_temperature,
        max_tokens=_max_tokens(req, limits), top_p=req.top_p, seed=req.seed, stream=bool(req.stream),
        include_usage=bool(req.stream_options and req.stream_options.include_usage),
    )  # fmt: skip
    try:
        backend.validate(messages)
    except ValueError as exc:
        raise ApiError(400, str(exc), param="messages") from None
    return call


def _max_tokens(req: ChatCompletionRequest, limits: ServeLimits) -> int:
    """The request's length limit; an unspecified length gets the default, never more than the limit."""
    max_tokens = req.max_completion_tokens or req.max_tokens or min(limits.default_max_tokens, limits.max_tokens)
    if max_tokens > limits.max_tokens:
        param = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
        raise ApiError(
            422, f"{param} is {max_tokens}; the limit is {limits.max_tokens}", param=param, code="invalid_value"
        )
    return max_tokens


def validation_error(exc: ValidationError) -> ApiError:
    first = exc.errors()[0]
    param = ".".join(str(p) for p in first.get("loc", ())) or None
    # Pydantic's message, without its "Value error, " prefix for our own validators.
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    details = f"{param}: {message}" if param else message
    if len(exc.errors()) > 1:
        details += f" (and {len(exc.errors()) - 1} more problem(s))"
    return ApiError(422, details, param=param, code="invalid_value")
