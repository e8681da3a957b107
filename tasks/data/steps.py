"""The data path as a list of steps, and the one runner that drives them (datatrove-style).

A step is a name and ``run(batch) -> verdicts``: one ``Verdict`` per document of the
batch, in order. A verdict keeps the document or gives a removal reason, and may carry
a rewritten text and per-document fields (the language and its score). Steps read
documents and answer; the runner alone changes them, counts and times every step in a
``FilterBook``, and hands each document back as an ``Outcome``: kept by every step,
removed by one (its name and reason), or failed in one.

Batching: a step declares its batch size. Consecutive steps with the same size run as
one group, batch after batch; a document goes on to the next group as soon as its
group is done with it. The data stage runs URL check and extraction per record as it
is read (one raw page held at a time; setting a document's text releases its page)
and the text steps on batches of extracted texts.

Fault isolation: an exception raised by a step is a fault of one document, never of
its batch or shard. When a step raises on a batch, the runner runs it again on each
document of the batch alone; a document it still raises on comes out as a failure
(reason ``STEP_ERROR``, detail "<step>: <ExceptionType>: <message>") and the others go
on. Exceptions a step lists as ``fatal`` (the step cannot work at all, e.g. its worker
process does not start) stop the run instead.
"""

from __future__ import annotations

import gc
import logging
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tasks.data.filters.text_view import TextView, make_view

log = logging.getLogger(__name__)

STEP_ERROR = "step_error"
MAX_ERROR_DETAIL = 400  # characters; an exception message can be a whole document


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one step decided about one document."""

    reason: str | None = None  # None keeps the document
    # The rewritten text; a TextView hands its computed tokens on to the next steps.
    text: str | TextView | None = None
    # Fields stored on the document whether it is kept or not (language, language_score).
    fields: Mapping[str, Any] | None = None


KEEP = Verdict()


class Document:
    """One document on its way through the steps: the row it becomes, and its raw page."""

    __slots__ = ("position", "row", "html", "_view")

    def __init__(self, position: int, row: dict[str, Any], html: str | None = None):
        self.position = position  # order in the input, so outputs can be put back in record order
        self.row = row  # the output row: "text" and any fields the steps set
        self.html = html  # released as soon as the document has a text
        self._view: TextView | None = None

    @property
    def text(self) -> str:
        return self.row["text"]

    @property
    def view(self) -> TextView:
        """The text, tokenised once for every step that reads it."""
        if self._view is None:
            self._view = make_view(self.row["text"])
        return self._view

    def apply(self, verdict: Verdict) -> None:
        if verdict.fields:
            self.row.update(verdict.fields)
        rewritten = verdict.text
        if rewritten is None:
            return
        self.html = None
        if isinstance(rewritten, TextView):
            self.row["text"], self._view = rewritten.text, rewritten
        else:
            self.row["text"], self._view = rewritten, None


StepFunction = Callable[[Sequence[Document]], Sequence[Verdict]]


@dataclass(frozen=True)
class Step:
    name: str
    run: StepFunction
    batch_size: int = 1
    # Exceptions that mean the step cannot run at all: they end the run, not one document.
    fatal: tuple[type[BaseException], ...] = ()


@dataclass(frozen=True)
class Outcome:
    document: Document
    step: str | None  # the step that removed the document or failed on it; None: kept by all
    reason: str | None  # the removal reason, or STEP_ERROR
    detail: str = ""  # for a failure: "<step>: <ExceptionType>: <message>"

    @property
    def kept(self) -> bool:
        return self.step is None

    @property
    def text(self) -> str:
        """The text as the last step that ran left it."""
        return self.document.text

    @property
    def failed(self) -> bool:
        return self.reason == STEP_ERROR


@dataclass
class FilterBook:
    """Per step: documents kept, removed (by reason) and failed, and seconds spent."""

    kept: Counter = field(default_factory=Counter)
    removed: Counter = field(default_factory=Counter)
    reasons: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    errors: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)

    def drop(self, name: str, reason: str) -> None:
        self.removed[name] += 1
        self.reasons[name][reason] += 1

    def timed(self, name: str, started: float) -> None:
        self.seconds[name] += time.perf_counter() - started

    def as_dict(self) -> dict[str, Any]:
        return {
            "kept": dict(self.kept),
            "removed": dict(self.removed),
            "reasons": {k: dict(v) for k, v in self.reasons.items()},
            "errors": dict(self.errors),
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
        }


def error_detail(step: str, error: BaseException) -> str:
    """"<step>: <ExceptionType>: <message>" on one line, at most MAX_ERROR_DETAIL characters."""
    message = re.sub(r"\s+", " ", str(error)).strip()
    detail = f"{step}: {type(error).__name__}: {message}" if message else f"{step}: {type(error).__name__}"
    return detail if len(detail) <= MAX_ERROR_DETAIL else detail[: MAX_ERROR_DETAIL - 1] + "…"


def run_steps(documents: Iterable[Document], steps: Sequence[Step], book: FilterBook | None = None) -> Iterator[Outcome]:
    """Every document through the steps in order; yields each document's outcome when it is known.

    Kept documents come out in input order; removals and failures come out when they
    happen (a document removed per record may overtake one waiting in a batch), so a
    caller that needs input order sorts them by ``document.position``. Documents are
    read from ``documents`` one at a time, as the first group needs them.
    """
    runner = _Runner(steps, book if book is not None else FilterBook())
    with fewer_collections():
        for document in documents:
            yield from runner.push(0, [document])
        yield from runner.flush()


def run_text(steps: Sequence[Step], text: str) -> Outcome:
    """One text through the steps: which step removed it (if any), why, and its final text."""
    [outcome] = run_steps([Document(0, {"text": text})], steps)
    return outcome


class _Runner:
    def __init__(self, steps: Sequence[Step], book: FilterBook):
        self.book = book
        self.groups: list[list[Step]] = []
        for step in steps:
            if step.batch_size < 1:
                raise ValueError(f"step {step.name!r}: batch size must be at least 1, got {step.batch_size}")
            if self.groups and self.groups[-1][0].batch_size == step.batch_size:
                self.groups[-1].append(step)
            else:
                self.groups.append([step])
        self.waiting: list[list[Document]] = [[] for _ in self.groups]
        self.failing_steps: set[str] = set()

    def push(self, group: int, documents: list[Document]) -> Iterator[Outcome]:
        """Queue documents for a group; run it on every full batch."""
        if group == len(self.groups):
            yield from (Outcome(document, None, None) for document in documents)
            return
        queue = self.waiting[group]
        queue.extend(documents)
        size = self.groups[group][0].batch_size
        while len(queue) >= size:
            batch = queue[:size]
            del queue[:size]
            survivors = yield from self._run_group(group, batch)
            yield from self.push(group + 1, survivors)

    def flush(self) -> Iterator[Outcome]:
        """Run every group on what is left in its queue, first to last."""
        for group in range(len(self.groups)):
            batch, self.waiting[group] = self.waiting[group], []
            if batch:
                survivors = yield from self._run_group(group, batch)
                yield from self.push(group + 1, survivors)

    def _run_group(self, group: int, batch: list[Document]) -> Iterator[Outcome]:
        """Each step of the group on the documents the previous one kept; returns the survivors."""
        for step in self.groups[group]:
            if not batch:
                break
            survivors: list[Document] = []
            for document, verdict in zip(batch, self._verdicts(step, batch)):
                if isinstance(verdict, _Failure):
                    self.book.errors[step.name] += 1
                    yield Outcome(document, step.name, STEP_ERROR, verdict.detail)
                    continue
                document.apply(verdict)
                if verdict.reason:
                    self.book.drop(step.name, verdict.reason)
                    yield Outcome(document, step.name, verdict.reason)
                else:
                    self.book.kept[step.name] += 1
                    survivors.append(document)
            batch = survivors
        return batch

    def _verdicts(self, step: Step, batch: list[Document]) -> Sequence[Verdict | _Failure]:
        started = time.perf_counter()
        try:
            verdicts = step.run(batch)
        except step.fatal:
            raise
        except Exception as error:
            if len(batch) == 1:
                return [self._failure(step, error)]
            # Find the culprit: each document alone.
            return [self._one(step, document) for document in batch]
        finally:
            self.book.timed(step.name, started)
        if len(verdicts) != len(batch):
            raise RuntimeError(f"step {step.name!r} gave {len(verdicts)} verdicts for {len(batch)} documents")
        return verdicts

    def _one(self, step: Step, document: Document) -> Verdict | _Failure:
        try:
            [verdict] = step.run([document])
        except step.fatal:
            raise
        except Exception as error:
            return self._failure(step, error)
        return verdict

    def _failure(self, step: Step, error: Exception) -> _Failure:
        failure = _Failure(error_detail(step.name, error))
        if step.name not in self.failing_steps:
            self.failing_steps.add(step.name)
            log.warning("%s (its document is recorded as %s; later failures of this step are counted only)",
                        failure.detail, STEP_ERROR)
        return failure


@dataclass(frozen=True, slots=True)
class _Failure:
    detail: str


_gc_lock = threading.Lock()
_gc_state: dict[str, Any] = {"users": 0, "threshold": None}


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run with the objects that exist now (the loaded lists and models, the tokenizer's
    memo, ...) out of the garbage collector's sight, and with fewer collections: a shard
    makes few reference cycles, and the collector re-scanning those objects ~300 times
    per 1,000 pages cost ~0.25 CPU s. The settings are process-wide: runs in threads
    share them, and the last one to finish puts the previous ones back."""
    with _gc_lock:
        if _gc_state["users"] == 0:
            threshold = _gc_state["threshold"] = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(threshold[0], 10_000), *threshold[1:])
        _gc_state["users"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state["users"] -= 1
            if _gc_state["users"] == 0:
                gc.set_threshold(*_gc_state["threshold"])
                gc.unfreeze()
