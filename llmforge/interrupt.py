"""Ctrl-C on a stage run: one line, exit code 130, and no process left behind.

A terminal sends Ctrl-C's SIGINT to every process of its foreground process group. A stage
run has many: the process pool's workers, the temporary Prefect server, torchrun and its
ranks. Each of them, interrupted on its own, prints a traceback and the pool can hang.
So the command the person typed only supervises: it runs the stage in a child process
that leads a process group of its own, out of the terminal's reach. On Ctrl-C the
supervisor prints one line and interrupts the child alone, which stops its pool workers,
lets Prefect record the run as crashed and exits; whatever is still running after a grace
period is killed with its whole group.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

# Set in the child's environment: "you are the supervised stage process, do the work".
WORKER_ENV = "LLMFORGE_SUPERVISED_RUN"
# Seconds the child gets to record the interrupted run and stop before its group is killed.
STOP_GRACE_SECONDS = 15.0


def is_supervised_child() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already


def run_supervised(argv: Sequence[str]) -> int:
    """Run `llmforge ARGV` in a child process group and return its exit code.

    Ctrl-C raises KeyboardInterrupt here once the child has stopped (at most
    STOP_GRACE_SECONDS later; a second Ctrl-C kills it at once). SIGTERM and SIGHUP
    are passed on to the whole group, so killing the command stops the run too.
    """
    env = {**os.environ, WORKER_ENV: "1"}
    child = subprocess.Popen([sys.executable, "-m", "llmforge.cli", *argv], env=env, process_group=0)

    def pass_on(signum: int, frame: FrameType | None) -> None:
        _signal_group(child.pid, signum)

    previous = {signum: signal.signal(signum, pass_on) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return child.wait()
    except KeyboardInterrupt:
        _stop(child)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stop(child: subprocess.Popen) -> None:
    def kill_now(signum: int, frame: FrameType | None) -> None:
        _signal_group(child.pid, signal.SIGKILL)

    previous = signal.signal(signal.SIGINT, kill_now)
    try:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        # Whatever the child left behind (pool workers, a torchrun rank) goes with its group.
        _signal_group(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_quietly_on_interrupt(verbose: bool) -> None:
    """In the supervised child: on SIGINT, go quiet, stop the pool workers and unwind.

    The supervisor has already told the person; what follows (Prefect recording the
    crashed run, the pool shutting down) stays off the console unless `verbose`.
    The pool's workers are killed outright: shard results are written atomically,
    and a pool waiting for them to finish would delay the stop by a whole shard.
    """

    if not verbose:
        _start_resource_tracker_quietly()

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # once is enough; unwinding must not be interrupted again
        if not verbose:
            from llmforge.prefect_env import silence_console

            silence_console()
            sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (lives until exit)
        for worker in multiprocessing.active_children():
            worker.kill()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)


def _start_resource_tracker_quietly() -> None:
    """Start multiprocessing's resource tracker now, with its stderr on /dev/null.

    The tracker outlives the process pools and, when workers were killed mid-task, warns
    at exit about the semaphores it then cleans up, after the interrupt line. It starts
    once per process and inherits stderr when it starts, so it is started here, before
    any pool, and its stderr stays quiet (it still does the cleaning up).
    """
    from multiprocessing import resource_tracker

    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        resource_tracker.ensure_running()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
