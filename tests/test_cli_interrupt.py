"""Ctrl-C as a terminal sends it (SIGINT to the whole foreground process group): one line, exit code 130,
and no process of the command left running. Each test is bounded and kills what it started."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cli_process import free_port
from conftest import require_module
from llmforge.local_server import read_record, server_is_up, server_paths, stop_server

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 300.0  # a Prefect server on a busy 2-core machine
STOP_TIMEOUT = 60.0


class Terminal:
    """An `llmforge` command in a session of its own, its stdout and stderr read line by line as they come."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        merged = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
                  **(env or {})}
        # As in a terminal, SIGINT starts with its default action, even when these tests run in a
        # background job (which ignores it, and the child would inherit that).
        self.process = subprocess.Popen([sys.executable, "-m", "llmforge.cli", *args], cwd=REPO_ROOT, env=merged,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        start_new_session=True,
                                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self._readers = [threading.Thread(target=self._read, args=(stream, kept), daemon=True)
                         for stream, kept in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, kept: list[str]) -> None:
        for line in stream:
            kept.append(line.rstrip("\n"))
            self._lines.put(line)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.stdout + self.stderr):
                return
            if self.process.poll() is not None:
                pytest.fail(f"exited with {self.process.returncode} before {text!r}:\n" + "\n".join(self.stderr[-20:]))
            try:
                self._lines.get(timeout=1.0)
            except queue.Empty:
                pass
        pytest.fail(f"no {text!r} within {timeout:.0f} s:\n" + "\n".join(self.stderr[-20:]))

    def ctrl_c(self) -> int:
        """SIGINT to the terminal's process group; returns how many stderr lines came before it."""
        before = len(self.stderr)
        os.killpg(self.process.pid, signal.SIGINT)
        return before

    def finish(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@contextmanager
def terminal(*args: str, env: dict[str, str] | None = None) -> Iterator[Terminal]:
    term = Terminal(*args, env=env)
    try:
        yield term
    finally:
        term.kill()


def descendants(pid: int) -> list:
    psutil = require_module("psutil")
    return psutil.Process(pid).children(recursive=True)


def assert_all_gone(processes: list, timeout: float = 10.0) -> None:
    psutil = require_module("psutil")
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    assert not alive, f"still running: {[p.cmdline() for p in alive]}"


@pytest.mark.slow
def test_ctrl_c_during_a_data_run_stops_it_with_one_line(tmp_path: Path) -> None:
    # INFO logs only to see when the shard tasks have started; what matters is what comes after Ctrl-C.
    with terminal("data", "--workdir", str(tmp_path / "w"), env={"PREFECT_LOGGING_LEVEL": "INFO"}) as term:
        term.wait_for("data: building version 1", START_TIMEOUT)
        started = at_work(term.process.pid, START_TIMEOUT)  # extracting pages now
        before = term.ctrl_c()
        assert term.finish(STOP_TIMEOUT) == 130
        assert term.stderr[before:] == ["llmforge: interrupted"]
        assert not any("Traceback" in line for line in term.stderr + term.stdout)
        assert_all_gone(started)


def at_work(pid: int, timeout: float) -> list:
    """The command's processes once its extraction child is among them: the stage is reading pages
    (in a pool worker, or in the stage process itself when there is a single shard, as for the sample)."""
    deadline = time.monotonic() + timeout
    while True:
        started = descendants(pid)
        if any("LLMFORGE_EXTRACTOR_SYS_PATH" in " ".join(p.cmdline()) for p in started):
            time.sleep(1.0)  # let it take a few pages
            return descendants(pid)
        if time.monotonic() > deadline:
            pytest.fail(f"no extraction child within {timeout:.0f} s: {[p.cmdline() for p in started]}")
        time.sleep(0.5)



@pytest.mark.slow
def test_ctrl_c_stops_the_dashboard_s_worker_and_the_server_keeps_the_history(tmp_path: Path) -> None:
    port = free_port()
    home = tmp_path / "home"
    env = {"PREFECT_HOME": str(tmp_path / "prefect"), "LLMFORGE_HOME": str(home)}
    try:
        with terminal("dashboard", "--port", str(port), env=env) as term:
            term.wait_for(f"Dashboard: http://127.0.0.1:{port}", START_TIMEOUT)
            server = read_record(server_paths(home))
            assert server is not None and server.port == port
            started = [p for p in descendants(term.process.pid) if p.pid != server.pid]
            assert started  # the worker (and what it started)
            before = term.ctrl_c()
            assert term.finish(STOP_TIMEOUT) == 130
            assert term.stderr[before:] == ["llmforge: interrupted"]
            assert not any("Traceback" in line for line in term.stderr + term.stdout)
            assert_all_gone(started)
            assert server_is_up(server.api_url)  # out of the terminal's reach, with the run history
    finally:
        stop_server(home)
    assert not server_is_up(f"http://127.0.0.1:{port}/api")
