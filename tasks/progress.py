"""Progress of a stage's long steps, for the person waiting on it.

On a terminal: a bar (with its own rate and ETA) on stderr. Elsewhere (CI, pipes, a
Prefect worker, the dashboard's logs): a log line at least every ``every_s`` seconds of
wall time while a step advances, and one when it ends, each with the share done and
an ETA, so a run is never silent for long. A step is one phase of a stage ("training",
"evaluating before"): ``start`` names it and its size, ``advance`` moves it (cheap to
call every step or item: it only writes when a line is due).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

EVERY_S = 10.0


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _value(value: Any) -> str:
    """A rate as 10,522; a loss as 0.4148."""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _fields(fields: dict[str, Any]) -> str:
    return "".join(f", {k} {_value(v)}" for k, v in fields.items())


class Progress:
    """One stage's progress; see the module docstring."""

    def __init__(
        self,
        stage: str,
        log: Callable[[str], None],
        every_s: float = EVERY_S,
        terminal: bool | None = None,
        on_fraction: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stage, self.log, self.every_s, self.clock = stage, log, every_s, clock
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.on_fraction = on_fraction  # e.g. the dashboard's progress artifact, updated when a line is due
        self.phase, self.total, self.unit, self.budget_s = "", 1, "step", None
        self.done, self.initial, self.fields = 0, 0, {}
        self.started = self.last_line = clock()
        self._bar: tqdm | None = None

    def start(self, phase: str, total: int, unit: str = "step", budget_s: float | None = None, initial: int = 0) -> None:
        """A new phase of `total` units, `initial` of them done before (a resumed run); `budget_s`: it
        ends by the clock at the latest (a time budget: the time it has left)."""
        self.finish()
        self.phase, self.total, self.unit, self.budget_s = phase, max(1, total), unit, budget_s
        self.done = self.initial = initial
        self.fields = {}
        self.started = self.last_line = self.clock()
        if self.terminal:
            self._bar = tqdm(total=self.total, initial=initial, unit=unit, desc=f"{self.stage}: {phase}",
                             file=sys.stderr, dynamic_ncols=True, leave=False)
        else:
            self.log(f"{self.stage}: {phase}: {self.total:,} {unit}s" if budget_s is None else
                     f"{self.stage}: {phase}: {format_duration(budget_s)} budget (at most {self.total:,} {unit}s)")

    def fraction(self) -> float:
        share = self.done / self.total
        if self.budget_s:
            share = max(share, (self.clock() - self.started) / self.budget_s)
        return min(1.0, share)

    def eta_s(self) -> float | None:
        """From this phase's own pace (units done before it started do not count), or its budget's clock."""
        elapsed = self.clock() - self.started
        by_steps = None
        if self.done > self.initial:
            by_steps = elapsed * (self.total - self.done) / (self.done - self.initial)
        if self.budget_s:
            by_clock = max(0.0, self.budget_s - elapsed)
            return by_clock if by_steps is None else min(by_steps, by_clock)
        return by_steps

    def advance(self, done: int, **fields: Any) -> None:
        """`done` units of the phase are finished; `fields` (a loss, a rate) are shown beside it."""
        self.done = done
        self.fields.update(fields)
        if self._bar is not None:
            self._bar.update(max(0, done - self._bar.n))
            if fields:
                self._bar.set_postfix({k: _value(v) for k, v in self.fields.items()})
        now = self.clock()
        if now - self.last_line < self.every_s:
            return
        self.last_line = now
        if self.on_fraction is not None:
            self.on_fraction(self.fraction())
        if self._bar is None:
            self.log(self.line())

    def line(self) -> str:
        eta = self.eta_s()
        return (f"{self.stage}: {self.phase}: {self.done:,}/{self.total:,} {self.unit}s ({100 * self.fraction():.0f}%)"
                f"{_fields(self.fields)}, {format_duration(self.clock() - self.started)} so far"
                f"{'' if eta is None else f', ETA {format_duration(eta)}'}")

    def finish(self, ok: bool = True) -> None:
        """The phase is over: close the bar, or write its last line. `ok=False`: it ended with an error,
        so it is not reported as done."""
        if not self.phase:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        took = format_duration(self.clock() - self.started)
        if ok:
            if not self.terminal:  # a terminal's bar said it already
                self.log(f"{self.stage}: {self.phase}: done, {self.done:,} {self.unit}s in {took}")
            if self.on_fraction is not None:
                self.on_fraction(1.0)
        else:
            self.log(f"{self.stage}: {self.phase}: stopped by an error at {self.done:,}/{self.total:,} {self.unit}s "
                     f"after {took}")
        self.phase = ""


def phase(
    progress: Progress | None, name: str, total: int, unit: str = "step", budget_s: float | None = None,
    initial: int = 0,
) -> Callable[[int], None] | None:
    """Start a phase and return its `advance(done)`; None without a Progress (plain function calls, tests)."""
    if progress is None:
        return None
    progress.start(name, total, unit, budget_s, initial)
    return progress.advance
