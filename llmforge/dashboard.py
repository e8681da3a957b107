"""`llmforge dashboard`: a real Prefect server with the UI, the project's deployments, and a worker.

The temporary server Prefect starts on demand has no UI and runs no schedules,
so watching runs, reading artifacts, triggering stages and honouring the
schedules in prefect.yaml need this long-running trio.

Ctrl-C stops the dashboard with one line. The server and the worker run in process
groups of their own, so the terminal's SIGINT reaches only this process (each of them,
interrupted by the terminal, used to print its own asyncio tracebacks); they are then
stopped with SIGTERM, and their output stops being shown once the stop has begun.
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

from llmforge.prefect_env import server_is_up

WORK_POOL = "llmforge-process"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_SECONDS = 20.0


class DashboardError(RuntimeError):
    """The server, a set-up step or the worker failed; the message says which (their output is above it)."""


def _prefect(*args: str) -> list[str]:
    return [sys.executable, "-m", "prefect", *args]


class _Children:
    """The dashboard's subprocesses: output passed through while running, muted while stopping."""

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
        for process in reversed(alive):  # the worker before the server it reports to
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


def serve_dashboard(host: str, port: int, startup_timeout: float = 120.0) -> NoReturn:
    """Run until Ctrl-C (KeyboardInterrupt, raised after everything has stopped) or until a child fails."""
    api = f"http://{host}:{port}/api"
    children = _Children(_child_env(api))
    services: dict[str, subprocess.Popen] = {}
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if server_is_up(api):
            print(f"using the Prefect server already running at {api}", flush=True)
        else:
            services["server"] = children.start(_prefect("server", "start", "--host", host, "--port", str(port)))
            deadline = time.monotonic() + startup_timeout
            while not server_is_up(api):
                if services["server"].poll() is not None or time.monotonic() > deadline:
                    raise DashboardError(f"the Prefect server did not start on {host}:{port}; its output is above")
                time.sleep(1.0)
        children.run(_prefect("work-pool", "create", WORK_POOL, "--type", "process", "--overwrite"),
                     f"creating the work pool {WORK_POOL}")
        children.run(_prefect("--no-prompt", "deploy", "--all"), "deploying prefect.yaml", cwd=PROJECT_ROOT)
        services["worker"] = children.start(_prefect("worker", "start", "--pool", WORK_POOL), cwd=PROJECT_ROOT)
        print(f"\nDashboard: http://{host}:{port}  (CLI runs in another terminal show up here; Ctrl-C stops it)\n",
              flush=True)
        while True:
            for name, process in services.items():
                if process.poll() is not None:
                    raise DashboardError(f"the Prefect {name} stopped (exit code {process.returncode}); its output is above")
            time.sleep(1.0)
    finally:
        children.stop()
        signal.signal(signal.SIGTERM, previous)
