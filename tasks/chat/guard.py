"""`RequestGuard`: the ASGI middleware that applies `tasks.chat.access` to every request, before any route.

In order, each refusal in OpenAI's error shape and before the body is read:

1. a `Host` the server does not answer to: 421 (`host_not_allowed`);
2. an `Origin` that is neither the server's own nor configured: 403 (`origin_not_allowed`);
   a configured origin's preflight (`OPTIONS` with `Access-Control-Request-Method`)
   is answered here with 204 and the CORS headers;
3. a POST whose `Content-Type` is not `application/json`: 415 (`unsupported_media_type`).
   Browsers send `text/plain` and form bodies cross-origin without a preflight; the
   API only ever takes JSON, so such a body never reaches a route.

Responses to a configured origin carry `Access-Control-Allow-Origin` (errors too,
so its page can show them).
"""

from __future__ import annotations

import logging
import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tasks.chat.access import AccessPolicy, OriginVerdict
from tasks.chat.validation import ApiError

log = logging.getLogger("llmforge.serve")

CORS_METHODS = "GET, POST"
PREFLIGHT_MAX_AGE_S = 600
# Header names a preflight may ask for (RFC 9110 tokens), comma-separated.
_HEADER_LIST = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")


class RequestGuard:
    """Refuses requests from hosts and origins `policy` does not allow, and POST bodies that are not JSON."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        scheme = scope.get("scheme", "http")
        server = scope.get("server")
        host = headers.get("host")
        if not self.policy.allows_host(host, scheme, server[1] if server else None):
            await _refuse(scope, receive, send, _host_refused(host))
            return
        assert host is not None  # allows_host refuses a missing Host
        origin = headers.get("origin")
        verdict = self.policy.judge_origin(origin, host, scheme)
        if verdict is OriginVerdict.REFUSED:
            await _refuse(scope, receive, send, _origin_refused(origin))
            return
        cors = {"Access-Control-Allow-Origin": origin} if verdict is OriginVerdict.ALLOWED and origin else {}
        if cors and scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await _preflight(headers, cors)(scope, receive, send)
            return
        if scope["method"] == "POST" and not is_json_content_type(headers.get("content-type")):
            await _refuse(scope, receive, send, _not_json(headers.get("content-type")), cors)
            return
        await self.app(scope, receive, _with_headers(send, cors) if cors else send)


def is_json_content_type(value: str | None) -> bool:
    """`application/json`, with no charset or UTF-8 (the only encoding JSON bodies may use)."""
    if value is None:
        return False
    media_type, *params = (part.strip().lower() for part in value.split(";"))
    if media_type != "application/json":
        return False
    charsets = [p.partition("=")[2].strip('"') for p in params if p.startswith("charset=")]
    return all(charset in ("utf-8", "utf8") for charset in charsets)


def _host_refused(host: str | None) -> ApiError:
    if not host:
        return ApiError(421, "the request has no Host header; this server answers only requests that name it",
                        code="host_not_allowed")  # fmt: skip
    return ApiError(
        421, f"this server does not answer to the host {host!r} (it answers to localhost, 127.0.0.1 and [::1] on "
        "its own port, and to names given with --allowed-host)", param="Host", code="host_not_allowed",
    )  # fmt: skip


def _origin_refused(origin: str | None) -> ApiError:
    return ApiError(
        403, f"cross-origin requests from {origin!r} are refused; to let that site use the API, start the server "
        "with --cors-origin <its origin>", param="Origin", code="origin_not_allowed",
    )  # fmt: skip


def _not_json(content_type: str | None) -> ApiError:
    sent = f"got {content_type!r}" if content_type else "the request has none"
    return ApiError(
        415, f"the request body must be JSON sent as Content-Type: application/json ({sent})",
        param="Content-Type", code="unsupported_media_type",
    )  # fmt: skip


async def _refuse(
    scope: Scope, receive: Receive, send: Send, error: ApiError, cors: dict[str, str] | None = None
) -> None:
    log.warning("refused %s %s: %s", scope["method"], scope["path"], error.message)
    response = error.response()
    if cors:
        response.headers.update(cors)
        response.headers.add_vary_header("Origin")
    await response(scope, receive, send)


def _preflight(headers: Headers, cors: dict[str, str]) -> Response:
    """The answer to a configured origin's preflight: what it may send, cached for a while."""
    allowed = {**cors, "Access-Control-Allow-Methods": CORS_METHODS, "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S)}
    requested = headers.get("access-control-request-headers", "").strip()
    # The origin is trusted by configuration: any well-formed header list it asks for (OpenAI's
    # SDKs send Authorization and their own x-stainless-* headers) is allowed.
    if requested and _HEADER_LIST.fullmatch(requested):
        allowed["Access-Control-Allow-Headers"] = requested
    response = Response(status_code=204, headers=allowed)
    response.headers.add_vary_header("Origin")
    return response


def _with_headers(send: Send, extra: dict[str, str]) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.update(extra)
            headers.add_vary_header("Origin")
        await send(message)

    return send_with_headers
