"""`llmforge serve`: the chat app (`tasks.chat.api`) on uvicorn, in the foreground or in a background thread."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from tasks.chat.access import WILDCARD_ADDRESSES, AccessPolicy
from tasks.chat.api import create_app
from tasks.chat.backend import ChatBackend
from tasks.chat.validation import ServeLimits


def run_server(
    backend: ChatBackend,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServeLimits | None = None,
    access: AccessPolicy | None = None,
) -> None:
    """Serve until interrupted. The default host keeps the chat on this machine only.

    `access` (default: `AccessPolicy.build(host)`) must be built for the same `host`.
    """
    access = access or AccessPolicy.build(host)
    app = create_app(backend, limits, access)
    print(f"llmforge chat: http://{host}:{port}/  (model {backend.model_name}; API at /v1)")
    if host.strip().lower() in WILDCARD_ADDRESSES and not access.allowed_hosts:
        print(
            f"listening on all addresses, but only requests to localhost, 127.0.0.1 or [::1] (port {port}) are "
            "answered: add --allowed-host <name> for each name other machines use to reach this one"
        )
    # A bounded graceful shutdown: Ctrl+C must not wait forever on an open stream.
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)


class BackgroundServer:
    """A live uvicorn server in a thread on a free port (tests, notebooks): `with BackgroundServer(app) as s:`."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1") -> None:
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
