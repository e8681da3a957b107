"""One run per stage and work directory: the lock, its message, its release on a kill, and the
leftovers of interrupted runs that the next run removes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llmforge.config import DataConfig, TokenizeConfig
from llmforge.manifest import StageRun
from llmforge.workdir_lock import StageBusy, StageLock

REPO = Path(__file__).resolve().parent.parent

HOLD = """
import sys, time
from llmforge.config import TokenizeConfig
from llmforge.manifest import StageRun
from llmforge.workdir_lock import StageBusy
try:
    run = StageRun("tokenize", sys.argv[1], TokenizeConfig())
except StageBusy as err:
    print("busy:", err, flush=True)
    sys.exit(3)
print("locked", flush=True)
if sys.argv[2] == "hold":
    time.sleep(600)
run.release()
"""


def _python(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", HOLD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def test_a_second_run_of_a_stage_on_one_workdir_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    run = StageRun("tokenize", tmp_path / "work", TokenizeConfig())
    try:
        other = _python(str(tmp_path / "work"), "release")
        out, err = other.communicate(timeout=120)
        assert other.returncode == 3, err
        [line] = out.splitlines()
        assert line.startswith("busy: the tokenize stage is already running on work directory ")
        assert f"pid {os.getpid()} on {socket.gethostname()}, started " in line
        assert "wait for it to finish, or use another --workdir" in line

        elsewhere = _python(str(tmp_path / "other-work"), "release")
        out, err = elsewhere.communicate(timeout=120)
        assert elsewhere.returncode == 0 and out == "locked\n", err
    finally:
        run.release()
    again = _python(str(tmp_path / "work"), "release")
    assert again.communicate(timeout=120)[0] == "locked\n"


def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path) -> None:
    holder = _python(str(tmp_path), "hold")
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(StageBusy, match=f"pid {holder.pid} on "):
            StageRun("tokenize", tmp_path, TokenizeConfig())
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=60)
    StageRun("tokenize", tmp_path, TokenizeConfig()).release()


def _error_in_another_thread(start_run) -> BaseException | None:
    raised: list[BaseException] = []

    def run() -> None:
        try:
            start_run().release()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            raised.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return raised[0] if raised else None


def test_another_thread_is_refused_and_the_same_thread_takes_over_a_run_that_raised(tmp_path: Path) -> None:
    leaked = StageRun("tokenize", tmp_path, TokenizeConfig())  # as if the flow raised before finishing
    refused = _error_in_another_thread(lambda: StageRun("tokenize", tmp_path, TokenizeConfig()))
    assert isinstance(refused, StageBusy) and "already running" in str(refused)

    with StageRun("tokenize", tmp_path, TokenizeConfig()) as again:  # the same thread: the earlier run is over
        assert again.lock.held and not leaked.lock.held
    assert not again.lock.held
    StageRun("data", tmp_path, DataConfig()).release()  # another stage's lock is another lock


def test_a_lock_held_by_a_thread_that_ended_is_taken_over(tmp_path: Path) -> None:
    def leak() -> None:
        StageLock.acquire(tmp_path, "tokenize")

    thread = threading.Thread(target=leak)
    thread.start()
    thread.join()
    StageLock.acquire(tmp_path, "tokenize").release()


def test_leftovers_of_interrupted_runs_are_removed_at_the_next_start_of_their_stage(tmp_path: Path) -> None:
    data = tmp_path / "data"
    leftovers = [
        data / ".documents.new-k2j3h4k5" / "part-00000.parquet",
        data / ".removed.old-4242" / "part-00000.parquet",
        data / ".errors.new-abc_1234" / "part-00001.parquet",
        data / ".stats.json.q8w7e6r5.tmp",
        data / ".manifest.json.a1b2c3d4.tmp",
        data / "documents" / ".part-00003.parquet.z9y8x7w6.tmp",
    ]
    kept = [
        data / "documents" / "part-00000.parquet",
        data / "notes.txt",
        data / ".documents-notes",
        tmp_path / "tokens" / ".train.new-k2j3h4k5" / "part-00000.bin",  # the tokenize stage's, not data's
    ]
    for path in leftovers + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")

    StageRun("data", tmp_path, DataConfig()).release()
    assert [p for p in leftovers if p.exists()] == []
    assert not (data / ".documents.new-k2j3h4k5").exists() and not (data / ".removed.old-4242").exists()
    assert [p for p in kept if not p.exists()] == []

    StageRun("tokenize", tmp_path, TokenizeConfig()).release()
    assert not (tmp_path / "tokens" / ".train.new-k2j3h4k5").exists()


def test_a_refused_run_removes_nothing(tmp_path: Path) -> None:
    """Leftover-looking folders of a live run are its work in progress."""
    run = StageRun("data", tmp_path, DataConfig())
    try:
        staging = tmp_path / "data" / ".documents.new-live1234"
        staging.mkdir(parents=True)
        refused = _error_in_another_thread(lambda: StageRun("data", tmp_path, DataConfig()))
        assert isinstance(refused, StageBusy)
        assert staging.is_dir()
    finally:
        run.release()
