"""A local HTTP file server for tests: Range requests, HEAD, and a scripted plan of faults per path.

    with serve(root, faults={"crawl-data/x.warc.gz": ["503", "drop_after:5000", "short:20000", "ok"]}) as server:
        ...  # fetch from server.base_url, then assert on server.requests

Each request to a path takes the next entry of that path's plan (then "ok" once the plan is used up):

- ``ok``: answer normally (206 for a satisfiable Range, 416 for one past the end, else 200);
- ``NNN`` or ``NNN:retry-after=S``: answer with that status (and a Retry-After header) and a short body;
- ``drop_after:N``: send the headers of the normal answer, N body bytes, then reset the connection (RST);
- ``short:N``: the same, but close the connection cleanly (FIN): a silent short read for the client;
- ``stall:N``: send N body bytes, then keep the connection open and silent until the server stops;
- ``ignore_range``: answer 200 with the whole file even if a Range was asked for.

``serve(..., ranges=False)`` makes every request behave like ``ignore_range`` (a server without Range support).
Only 127.0.0.1 is bound; every connection is closed after one answer, and stopping never waits on a stalled client.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_FAULT = re.compile(r"^(?:(ok|ignore_range)|(\d{3})(?::retry-after=(\d+))?|(drop_after|short|stall):(\d+))$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_STALL_LIMIT_SECONDS = 30.0  # a stalled handler gives up by itself even if nobody stops the server
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


@dataclass(frozen=True)
class Fault:
    kind: str  # ok, ignore_range, status, drop_after, short, stall
    number: int = 0  # the status, or the byte count after which the fault strikes
    retry_after: int | None = None

    @classmethod
    def parse(cls, token: str) -> Fault:
        match = _FAULT.match(token)
        if not match:
            raise ValueError(f"unknown fault {token!r}")
        plain, status, retry_after, cut, count = match.groups()
        if plain:
            return cls(plain)
        if status:
            return cls("status", int(status), int(retry_after) if retry_after else None)
        return cls(cut, int(count))


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # relative to the served root, no leading slash, unquoted
    range: str | None  # the Range header as the client sent it
    fault: str  # the plan entry this request got
    status: int  # the status line the server sent


class Server:
    """The state shared by the handler threads: the files, the fault plans and the request log."""

    def __init__(self, root: Path, faults: dict[str, list[str]] | None, ranges: bool) -> None:
        self.root = Path(root).resolve()
        self.ranges = ranges
        self.stopping = threading.Event()
        # Parsed up front, so that a typo in a plan fails the test at once instead of acting as "ok".
        self._plans = {
            path.lstrip("/"): [(token, Fault.parse(token)) for token in plan] for path, plan in (faults or {}).items()
        }
        self._lock = threading.Lock()
        self._log: list[LoggedRequest] = []
        self.httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.app = self

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def gets(self, path: str | None = None) -> list[LoggedRequest]:
        return [r for r in self.requests if r.method == "GET" and (path is None or r.path == path.lstrip("/"))]

    def next_fault(self, path: str) -> tuple[str, Fault]:
        with self._lock:
            plan = self._plans.get(path)
            if plan:
                return plan.pop(0)
        return "ok", Fault("ok")

    def record(self, request: LoggedRequest) -> None:
        with self._lock:
            self._log.append(request)

    def resolve(self, path: str) -> Path | None:
        candidate = (self.root / path).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler stuck on a client must never keep the test process alive
    app: Server

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up mid-answer is the point of these tests, not an error worth printing


def _select_range(header: str | None, size: int) -> tuple[int, int, int]:
    """(status, start, end exclusive) for a Range header, as RFC 9110 allows a single-range server to answer."""
    match = _RANGE.match(header.strip()) if header else None
    if not match or not (match.group(1) or match.group(2)):
        return 200, 0, size  # no Range, or one we do not support (e.g. several ranges): the whole file
    first, last = match.groups()
    if first:
        start, end = int(first), min(int(last) + 1, size) if last else size
        if last and int(last) < start:
            return 200, 0, size  # syntactically invalid: ignored
    else:
        start, end = max(0, size - int(last)), size
    if start >= size or end <= start:
        return 416, 0, 0
    return 206, start, end


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        app = self.server.app
        self.close_connection = True
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        token, fault = app.next_fault(path)
        asked = self.headers.get("Range")
        file = app.resolve(path)
        if fault.kind == "status" or file is None:
            status = fault.number if fault.kind == "status" else 404
            app.record(LoggedRequest(self.command, path, asked, token, status))
            return self._send_status(status, fault.retry_after, send_body)
        data = file.read_bytes()
        honour = app.ranges and fault.kind != "ignore_range"
        status, start, end = _select_range(asked if honour else None, len(data))
        app.record(LoggedRequest(self.command, path, asked, token, status))
        self._send_headers(status, start, end, len(data))
        if send_body and status != 416:
            self._send_body(data[start:end], fault)

    def _send_status(self, status: int, retry_after: int | None, send_body: bool) -> None:
        body = f"status {status}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.send_header("Connection", "close")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _send_headers(self, status: int, start: int, end: int, size: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if self.server.app.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        if status == 416:
            self.send_header("Content-Range", f"bytes */{size}")
        self.send_header("Content-Length", str(end - start))
        self.send_header("Connection", "close")
        self.end_headers()

    def _send_body(self, body: bytes, fault: Fault) -> None:
        cut = fault.kind in ("drop_after", "short", "stall")
        try:
            self.wfile.write(body[: fault.number] if cut else body)
        except _CLIENT_GONE:
            return
        if fault.kind == "drop_after":
            # Linger 0 turns the close into a RST: the client sees a reset, not a clean end of stream.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        elif fault.kind == "stall":
            self.server.app.stopping.wait(_STALL_LIMIT_SECONDS)


@contextmanager
def serve(root: Path, faults: dict[str, list[str]] | None = None, *, ranges: bool = True) -> Iterator[Server]:
    """Serve `root` on 127.0.0.1 (a free port) for the duration of the block."""
    server = Server(root, faults, ranges)
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()  # releases stalled handlers
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(timeout=5)
