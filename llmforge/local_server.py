"""The persistent local Prefect server every command records its runs on.

A temporary server per command loses each run's history, logs and artifacts at exit and
costs ~15 CPU-seconds to start. Instead, the first command starts one Prefect server in
the background, out of the terminal's process group, and every later command (and
`llmforge dashboard`) reuses it. Its state lives under the llmforge home
(``$LLMFORGE_HOME``, default ``~/.llmforge``):

    server/prefect.db     the run history (Prefect's SQLite database)
    server/server.json    pid, API URL and start time of the running server
    server/server.log     its output
    server/start.lock     held while a command starts it, so two commands start one server

`PREFECT_API_URL` still wins (a team server, Prefect Cloud); `--ephemeral` (or
``LLMFORGE_EPHEMERAL=1``) keeps the old temporary server, as tests do.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from llmforge import atomic

HOME_ENV = "LLMFORGE_HOME"
EPHEMERAL_ENV = "LLMFORGE_EPHEMERAL"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200  # Prefect's own default: the UI is where a Prefect user looks first
START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 20.0
_LOG_TAIL_LINES = 15


class ServerError(RuntimeError):
    """The local server could not be started or stopped; the message says why and where its log is."""


def llmforge_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".llmforge").expanduser()


def ephemeral_requested() -> bool:
    return os.environ.get(EPHEMERAL_ENV, "").lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class ServerPaths:
    directory: Path

    @property
    def database(self) -> Path:
        return self.directory / "prefect.db"

    @property
    def record(self) -> Path:
        return self.directory / "server.json"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    @property
    def start_lock(self) -> Path:
        return self.directory / "start.lock"


def server_paths(home: Path | None = None) -> ServerPaths:
    return ServerPaths((home or llmforge_home()) / "server")


@dataclass(frozen=True)
class ServerRecord:
    pid: int
    host: str
    port: int
    started_at: str

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def server_is_up(api_url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_prefect_server(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"prefect" in command and b"server" in command


def read_record(paths: ServerPaths) -> ServerRecord | None:
    """The recorded server, if the record is readable (whether it still runs is `running_server`'s question)."""
    try:
        data = json.loads(paths.record.read_text(encoding="utf-8"))
        return ServerRecord(pid=int(data["pid"]), host=str(data["host"]), port=int(data["port"]),
                            started_at=str(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_server(paths: ServerPaths) -> ServerRecord | None:
    """The recorded server when its process is alive and its API answers."""
    record = read_record(paths)
    if record is None or not _pid_alive(record.pid) or not server_is_up(record.api_url):
        return None
    return record


@contextmanager
def _start_lock(paths: ServerPaths) -> Iterator[None]:
    paths.directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.start_lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a second command waits here while the first starts the server
        yield
    finally:
        os.close(fd)


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _pick_port(host: str, wanted: int | None) -> int:
    """The wanted port, else 4200 when free, else any free port (another program may hold 4200)."""
    if wanted is not None:
        return wanted
    if _port_is_free(host, DEFAULT_PORT):
        return DEFAULT_PORT
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def server_environment(paths: ServerPaths, host: str, port: int) -> dict[str, str]:
    """The server's own environment: its Prefect home (and so its database) under the llmforge home,
    and its address, which its UI would otherwise take to be Prefect's default (4200) whatever --port says."""
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env.update(
        PREFECT_HOME=str(paths.directory), PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_API_HOST=host, PREFECT_SERVER_API_PORT=str(port),
        PREFECT_UI_API_URL=f"http://{host}:{port}/api",
    )
    return env


def _log_tail(paths: ServerPaths) -> str:
    try:
        lines = paths.log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def start_server(paths: ServerPaths, host: str = DEFAULT_HOST, port: int | None = None,
                 timeout: float = START_TIMEOUT_SECONDS) -> ServerRecord:
    """Start the server in the background and wait for its API; the caller holds the start lock."""
    chosen = _pick_port(host, port)
    if not _port_is_free(host, chosen):
        raise ServerError(f"cannot start the Prefect server on {host}:{chosen}: the port is in use")
    with paths.log.open("ab") as log:
        log.write(f"--- starting on {host}:{chosen} at {datetime.now(timezone.utc).isoformat()}\n".encode())
        log.flush()
        # A session of its own: Ctrl-C on the command that started it must not stop it.
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(chosen)],
            env=server_environment(paths, host, chosen), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=paths.directory,
        )
    record = ServerRecord(pid=process.pid, host=host, port=chosen,
                          started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    atomic.write_json(paths.record, asdict(record))
    deadline = time.monotonic() + timeout
    while not server_is_up(record.api_url, timeout=2.0):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                _terminate(process.pid)
            paths.record.unlink(missing_ok=True)
            why = f"exited with code {process.returncode}" if process.returncode is not None else "did not answer"
            raise ServerError(f"the Prefect server {why} (log {paths.log}):\n{_log_tail(paths)}")
        time.sleep(0.5)
    return record


def ensure_server(home: Path | None = None, host: str = DEFAULT_HOST, port: int | None = None) -> tuple[ServerRecord, bool]:
    """The running local server, started first if it is not running; (record, whether it was started now)."""
    paths = server_paths(home)
    record = running_server(paths)
    if record is not None:
        return record, False
    with _start_lock(paths):
        record = running_server(paths)  # another command may have started it while this one waited
        if record is not None:
            return record, False
        return start_server(paths, host, port), True


def _terminate(pid: int) -> None:
    """SIGTERM to the server's process group, SIGKILL after STOP_TIMEOUT_SECONDS."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)  # when this process started it
            if waited == pid:
                return
        except ChildProcessError:
            if not _pid_alive(pid):
                return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop_server(home: Path | None = None) -> ServerRecord | None:
    """Stop the recorded server; returns what was stopped (None: nothing was running)."""
    paths = server_paths(home)
    with _start_lock(paths):
        record = read_record(paths)
        if record is None:
            return None
        # A pid from the record may have been reused since: only a process that is this server is stopped.
        alive = _pid_alive(record.pid) and (server_is_up(record.api_url) or _is_prefect_server(record.pid))
        if alive:
            _terminate(record.pid)
        paths.record.unlink(missing_ok=True)
        return record if alive else None


def server_status(home: Path | None = None) -> dict[str, object]:
    """What `llmforge server status` shows: whether it runs, where, and where its history and log are."""
    paths = server_paths(home)
    record = running_server(paths)
    status: dict[str, object] = {"state": "running" if record else "stopped"}
    if record is not None:
        status.update(ui=record.ui_url, api=record.api_url, pid=record.pid, started_at=record.started_at)
    status.update(
        database=str(paths.database),
        database_mb=round(paths.database.stat().st_size / 1e6, 1) if paths.database.is_file() else 0.0,
        log=str(paths.log),
    )
    return status
