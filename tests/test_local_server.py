"""The persistent local Prefect server: started by the first command, reused by the next, its
history kept under LLMFORGE_HOME, and `llmforge server status|start|stop` to manage it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from cli_process import cli_environment, free_port, run_cli

from llmforge import local_server
from llmforge.local_server import ServerPaths, ServerRecord, read_record, running_server, server_paths



def test_the_home_defaults_to_dot_llmforge_and_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    monkeypatch.delenv("LLMFORGE_HOME", raising=False)
    assert local_server.llmforge_home() == Path.home() / ".llmforge"
    monkeypatch.setenv("LLMFORGE_HOME", str(tmp_path))
    assert server_paths().database == tmp_path / "server" / "prefect.db"


def test_a_busy_default_port_gives_another_free_port(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        monkeypatch.setattr(local_server, "DEFAULT_PORT", holder.getsockname()[1])
        port = local_server._pick_port("127.0.0.1", None)
        assert port != holder.getsockname()[1] and local_server._port_is_free("127.0.0.1", port)
    assert local_server._pick_port("127.0.0.1", 5123) == 5123  # an asked-for port is taken as asked


def test_a_damaged_or_stale_record_is_no_running_server(tmp_path: Path) -> None:
    paths = ServerPaths(tmp_path)
    assert read_record(paths) is None and running_server(paths) is None
    paths.record.write_text("{not json", encoding="utf-8")
    assert read_record(paths) is None
    # A process that has ended: its pid is recorded, but nothing answers there.
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    record = ServerRecord(pid=int(ended.stdout), host="127.0.0.1", port=free_port(), started_at="then")
    paths.record.write_text(json.dumps(record.__dict__), encoding="utf-8")
    assert read_record(paths) == record and running_server(paths) is None


def test_stop_clears_a_stale_record_without_signalling_anyone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = server_paths(tmp_path)
    paths.directory.mkdir(parents=True)
    # This test's own pid: alive, but not a Prefect server, so it must not be signalled.
    record = ServerRecord(pid=os.getpid(), host="127.0.0.1", port=free_port(), started_at="then")
    paths.record.write_text(json.dumps(record.__dict__), encoding="utf-8")
    signalled: list[int] = []
    monkeypatch.setattr(local_server.os, "killpg", lambda pid, sig: signalled.append(pid))
    assert local_server.stop_server(tmp_path) is None
    assert signalled == [] and not paths.record.exists()


def test_ephemeral_is_asked_for_by_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMFORGE_EPHEMERAL", "0")
    assert not local_server.ephemeral_requested()
    monkeypatch.setenv("LLMFORGE_EPHEMERAL", "1")
    assert local_server.ephemeral_requested()


def _flow_runs(api_url: str) -> list[dict]:
    request = urllib.request.Request(f"{api_url}/flow_runs/filter", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_commands_share_one_persistent_server_that_keeps_their_history(shared_data: Path, tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    env = cli_environment(tmp_path / "prefect-home", tmp_path / "cache")
    env.pop("LLMFORGE_EPHEMERAL")
    env["LLMFORGE_HOME"] = str(home)
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(shared_data / "warc" / "jwarc-commoncrawl.org-single-response.warc.gz", source)
    try:
        started = run_cli(["server", "start", "--port", str(port), "--json"], env, timeout=300)
        assert started.returncode == 0, started.describe()
        status = json.loads(started.stdout)
        assert status["state"] == "running" and status["api"] == f"http://127.0.0.1:{port}/api"
        assert status["database"] == str(home / "server" / "prefect.db")

        runs = [run_cli(["data", "--source", str(source), "--workdir", str(tmp_path / w), "--json"], env)
                for w in ("first", "second")]
        for run in runs:
            assert run.returncode == 0, run.describe()
            assert "started the local Prefect server" not in run.stderr  # both reused the running one
        again = json.loads(run_cli(["server", "status", "--json"], env).stdout)
        assert again["pid"] == status["pid"]
        data_runs = [r for r in _flow_runs(status["api"]) if r["state_type"] == "COMPLETED"]
        assert len(data_runs) >= 2  # each command's flow run is in the history (its sub-flow runs too)
        listed = run_cli(["runs", "--workdir", str(tmp_path / "first"), "--json"], env)
        [row] = json.loads(listed.stdout)["runs"]  # the other command's run is another work directory's
        assert row["stage"] == "data" and row["state"] == "Completed"
        assert row["headline"] == "ran: 1 documents kept of 1 responses (0 removed, 0 unreadable)"
        assert row["url"].startswith(f"http://127.0.0.1:{port}/runs/flow-run/")

        stopped = run_cli(["server", "stop"], env)
        assert stopped.returncode == 0 and f"pid {status['pid']}" in stopped.stdout
        assert json.loads(run_cli(["server", "status", "--json"], env).stdout)["state"] == "stopped"
        assert not local_server._pid_alive(status["pid"]) or not local_server.server_is_up(status["api"])

        # The next command starts it again, over the same database: the history is still there.
        third = run_cli(["data", "--source", str(source), "--workdir", str(tmp_path / "third"), "--json"], env)
        assert third.returncode == 0, third.describe()
        assert "started the local Prefect server" in third.stderr
        restarted = json.loads(run_cli(["server", "status", "--json"], env).stdout)
        assert len([r for r in _flow_runs(restarted["api"]) if r["state_type"] == "COMPLETED"]) > len(data_runs)
    finally:
        run_cli(["server", "stop"], env)
