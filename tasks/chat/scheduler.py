"""The model runs in ONE worker thread, never on the event loop.

So a long generation does not delay `/v1/models`, the page, or the rejection of
bad requests. Requests waiting for the model form a bounded queue: past
`max_waiting` the scheduler refuses at once (`ServerBusy`, answered 429). A job
whose request gave up (timeout, disconnect) before it got the model is never
run, and a running one stops at its next token once cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tasks.chat.backend import ChatBackend

log = logging.getLogger("llmforge.serve")

# ("started",), ("delta", text), ("done", Generation), ("invalid", message) or ("failed", message).
Event = tuple[Any, ...]


class ServerBusy(Exception):
    """As many requests wait for the model as the server allows."""


@dataclass
class Job:
    """One request's generation: its arguments, and the queue its events go to on the request's event loop."""

    generation_args: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    # Set by the request side when nobody waits for the reply any more.
    cancelled: threading.Event = field(default_factory=threading.Event)

    def send(self, *event: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the loop is gone (server shutting down): nobody to tell
            pass


class ModelScheduler:
    """Runs generations one at a time in a worker thread; bounds how many may wait."""

    def __init__(self, backend: ChatBackend, max_waiting: int) -> None:
        self.backend = backend
        self.max_waiting = max_waiting
        # One worker thread is the model's only user; the lock makes that explicit and keeps
        # it true if anyone ever widens the pool.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmforge-generate")
        self._model_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._admitted = 0  # running + waiting
        self._closing = threading.Event()  # server shutting down: stop the running generation too

    def submit(self, generation_args: dict[str, Any]) -> Job:
        """Queue a generation (call on the event loop); raises ServerBusy when the queue is full."""
        with self._count_lock:
            if self._admitted >= 1 + self.max_waiting:
                raise ServerBusy()
            self._admitted += 1
        job = Job(generation_args, asyncio.get_running_loop())
        self._executor.submit(self._run, job)
        return job

    def _run(self, job: Job) -> None:
        try:
            if job.cancelled.is_set():  # gave up while waiting (timeout or disconnect)
                return
            with self._model_lock:
                self._generate(job)
        finally:
            with self._count_lock:
                self._admitted -= 1

    def _generate(self, job: Job) -> None:
        try:
            generation = self.backend.stream(**job.generation_args)
        except ValueError as exc:
            job.send("invalid", str(exc))
            return
        except Exception:
            log.exception("generation failed to start")
            job.send("failed", "the model failed to start this reply")
            return
        job.send("started")
        try:
            for delta in generation:
                if job.cancelled.is_set() or self._closing.is_set():
                    generation.close()
                    return
                if delta:  # empty deltas are only chances to notice a cancellation
                    job.send("delta", delta)
        except Exception:
            log.exception("generation failed")
            job.send("failed", "the model failed while generating this reply")
            return
        job.send("done", generation)

    def shutdown(self) -> None:
        # The worker thread is joined at interpreter exit: stop what it runs, drop the queue.
        self._closing.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
