"""One writer per stage and work directory: an OS file lock held for the stage's lifetime.

A stage run takes ``<workdir>/.locks/<stage>.lock`` with ``flock`` and writes its pid,
host and start time into it, so a second run of the same stage on the same work
directory fails at once with a message naming the holder. The kernel drops the lock
when the holder's process ends, however it ends (a kill included), so there is never
a stale lock to clean up; the file itself stays (removing it could let two runs lock
two different files of one name).

Within one process a stage is run again after an earlier run of it raised without
releasing its lock (``llmforge run``, tests): a lock held by this same thread, or by a
thread that has ended, is taken over. Another live thread's lock is busy, as another
process's is.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import ClassVar

LOCKS_DIR = ".locks"


class StageBusy(RuntimeError):
    """Another run holds the stage's lock on this work directory; the message names it."""


class StageLock:
    """The held lock of one stage on one work directory; `release` it when the stage ends."""

    _held: ClassVar[dict[str, StageLock]] = {}  # by lock file, the locks this process holds
    _registry: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path, key: str, fd: int):
        self.path = path
        self._key = key
        self._fd: int | None = fd
        self._thread = threading.current_thread()

    @classmethod
    def acquire(cls, workdir: Path, stage: str) -> StageLock:
        path = Path(workdir) / LOCKS_DIR / f"{stage}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        key = str(path.resolve())
        with cls._registry:
            earlier = cls._held.get(key)
            if earlier is not None:
                if earlier._thread is not threading.current_thread() and earlier._thread.is_alive():
                    raise StageBusy(_busy_message(stage, workdir, path))
                earlier.release()  # an earlier run of the stage here raised before it released its lock
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StageBusy(_busy_message(stage, workdir, path)) from None
            _write_holder(fd, stage)
            lock = cls._held[key] = cls(path, key, fd)
            return lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Unlock and close; safe to call more than once."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._held.get(self._key) is self:
            del self._held[self._key]
        # LOCK_UN before close: the lock belongs to the open file, which a forked child may share.
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write_holder(fd: int, stage: str) -> None:
    holder = {
        "stage": stage,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    data = (json.dumps(holder) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {holder['pid']} on {holder['host']}, started {holder['started_at']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its name yet"  # it took the lock an instant ago


def _busy_message(stage: str, workdir: Path, path: Path) -> str:
    return (
        f"the {stage} stage is already running on work directory {workdir} ({_holder(path)}; lock {path}): "
        "wait for it to finish, or use another --workdir"
    )
