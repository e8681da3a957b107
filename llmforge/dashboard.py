"""`llmforge dashboard`: the Prefect UI over the local run history, the project's deployments, and a worker.

The UI is the persistent local server's (`llmforge.local_server`, started here if it is not
running), so it shows every run the CLI has recorded. The worker is what runs deployments:
the schedules in prefect.yaml and stages triggered from the UI need this command running.

Ctrl-C stops the worker with one line; the server keeps running with the history
(`llmforge server stop` stops it). The worker runs in a process group of its own, so the
terminal's SIGINT reaches only this process (interrupted by the terminal, it used to print
its own asyncio tracebacks); it is then stopped with SIGTERM, and its output stops being
shown once the stop has begun.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, NoReturn

from llmforge.local_server import DEFAULT_HOST, ensure_server, server_is_up, server_paths

WORK_POOL = "llmforge-process"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_SECONDS = 20.0


class DashboardError(RuntimeError):
    """The server, a set-up step or the worker failed; the message says which (their output is above it)."""


def _prefect(*args: str) -> list[str]:
    return [sys.executable, "-m", "prefect", *args]


class _Children:
    """The dashboard's subprocesses (set-up commands, the worker): output passed through while running,
    muted while stopping."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.running: list[subprocess.Popen] = []
        self.muted = threading.Event()

    def start(self, command: Sequence[str], cwd: Path | None = None) -> subprocess.Popen:
        process = subprocess.Popen(command, env=self.env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   process_group=0)
        threading.Thread(target=self._pass_through, args=(process.stdout,), daemon=True).start()
        self.running.append(process)
        return process

    def run(self, command: Sequence[str], what: str, cwd: Path | None = None) -> None:
        code = self.start(command, cwd).wait()
        if code != 0:
            raise DashboardError(f"{what} failed (exit code {code}); its output is above")

    def _pass_through(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            if not self.muted.is_set():
                sys.stdout.buffer.write(line)
                sys.stdout.flush()

    def stop(self) -> None:
        self.muted.set()
        alive = [p for p in self.running if p.poll() is None]
        for process in alive:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for process in alive:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def _child_env(api: str) -> dict[str, str]:
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    if sys.stdout.isatty():
        env.setdefault("FORCE_COLOR", "1")  # their output goes through a pipe, but ends on this terminal
    return env


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through serve_dashboard's `finally`, which stops the children


def serve_dashboard(host: str = DEFAULT_HOST, port: int | None = None) -> NoReturn:
    """Run until Ctrl-C (KeyboardInterrupt, raised after the worker has stopped) or until the worker or server fails."""
    record, started = ensure_server(host=host, port=port)
    if started:
        print(f"started the local Prefect server (run history in {server_paths().directory})", flush=True)
    elif port is not None and record.port != port:
        print(f"using the local Prefect server already running at {record.ui_url}", flush=True)
    api = record.api_url
    children = _Children(_child_env(api))
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        children.run(_prefect("work-pool", "create", WORK_POOL, "--type", "process", "--overwrite"),
                     f"creating the work pool {WORK_POOL}")
        children.run(_prefect("--no-prompt", "deploy", "--all"), "deploying prefect.yaml", cwd=PROJECT_ROOT)
        worker = children.start(_prefect("worker", "start", "--pool", WORK_POOL), cwd=PROJECT_ROOT)
        print(f"\nDashboard: {record.ui_url}  (every CLI run is recorded here; Ctrl-C stops the worker, "
              "`llmforge server stop` the server)\n", flush=True)
        while True:
            if worker.poll() is not None:
                raise DashboardError(f"the Prefect worker stopped (exit code {worker.returncode}); its output is above")
            if not server_is_up(api, timeout=5.0):
                raise DashboardError(f"the Prefect server at {record.ui_url} stopped answering (log {server_paths().log})")
            time.sleep(1.0)
    finally:
        children.stop()
        signal.signal(signal.SIGTERM, previous)
