"""Run the `llmforge` CLI the way a user does, in a subprocess, and measure its peak memory.

The peak is the largest resident set of the CLI's process tree: `os.wait4` returns the
child's resource usage including every descendant it waited for (its process-pool
workers and their extraction children), and for `ru_maxrss` that is the largest peak
among them. Unlike `getrusage(RUSAGE_CHILDREN)`, it covers this one run only, not
every child the test process has waited for so far.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class CliRun:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    peak_rss_bytes: int
    seconds: float

    def error_lines(self) -> list[str]:
        """The CLI's own error messages on stderr (Prefect's log lines are not)."""
        return [line for line in self.stderr.splitlines() if line.startswith("llmforge ")]

    def describe(self) -> str:
        tail = "\n".join(self.stderr.splitlines()[-15:])
        return f"`llmforge {' '.join(self.args)}` exited {self.returncode}; stderr ends:\n{tail}"


def cli_environment(prefect_home: Path, cache_dir: Path) -> dict[str, str]:
    """The environment of a CLI run: private Prefect home and cache, this checkout first on the path."""
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    python_path = [str(REPO_ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    env.update(
        PYTHONPATH=os.pathsep.join(python_path),
        PREFECT_HOME=str(prefect_home),
        LLMFORGE_CACHE_DIR=str(cache_dir),
        # A temporary Prefect server per run, never a server a developer happens to have running.
        LLMFORGE_EPHEMERAL="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    return env


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(pid: int, timeout: float) -> tuple[int, int]:
    """(exit status as `subprocess` reports it, peak RSS in bytes) of the child `pid`."""
    deadline = time.monotonic() + timeout
    while True:
        waited, status, usage = os.wait4(pid, os.WNOHANG)
        if waited == pid:
            return os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024  # Linux reports kilobytes
        if time.monotonic() > deadline:
            _stop(pid)
            raise TimeoutError(f"the CLI ran over {timeout:.0f} s and was stopped")
        time.sleep(0.2)


def _stop(pid: int) -> None:
    """SIGTERM first: the CLI passes it on to the process group its stage runs in; then
    SIGKILL to the session it leads, for whatever is still there."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def run_cli(args: list[str], env: dict[str, str], timeout: float = 900) -> CliRun:
    """`python -m llmforge.cli ARGS` from the checkout's root; its output is kept in files, not pipes,
    so that waiting on the process cannot block on a full pipe."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmforge.cli", *args], stdout=out, stderr=err, env=env, cwd=REPO_ROOT,
            start_new_session=True,
        )
        returncode, peak = _wait(process.pid, timeout)
        process.returncode = returncode  # reaped here: Popen must not wait for it again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
    return CliRun(args, returncode, stdout, stderr, peak, time.perf_counter() - started)
