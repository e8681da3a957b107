"""Switching the accelerator on and off by mode, and the status a process reports.

``configure(mode)`` is called before every extraction; when the mode is the one of the last
call it returns the recorded status at once (one comparison). Otherwise:

* "off": stock trafilatura (everything installed is removed); no warning.
* "auto": every guard is evaluated; when all hold, every part is installed; when one fails,
  nothing is, one warning per process names the guard, and stock trafilatura runs.
* "on": like "auto", but a failed guard raises ``AcceleratorGuardFailed`` (one line, naming it).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from tasks.data.accel import class_lookup, guards, pruning, stand_ins
from tasks.data.accel.fast_paths import FastXPath, build_fast_paths

Mode = Literal["auto", "on", "off"]
MODES: tuple[Mode, ...] = ("auto", "on", "off")

LOGGER = logging.getLogger("llmforge.accel")

FIX_HINT = (
    "re-verify the accelerator for this trafilatura/lxml (python -m tasks.data.accel lists the guards; "
    "the steps are in tasks/data/accel/__init__.py)"
)


@dataclass(frozen=True)
class AcceleratorStatus:
    """What one process runs: the mode asked for, whether the accelerator is in place, and
    when it is not in "auto" mode, the guard that failed and what it found."""

    mode: str
    active: bool
    failed_guard: str | None = None
    detail: str = ""
    trafilatura_version: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AcceleratorStatus:
        return cls(**{field.name: data[field.name] for field in fields(cls)})


class AcceleratorGuardFailed(RuntimeError):
    """Mode "on" and a guard failed: the run stops rather than extract at stock speed."""

    def __init__(self, guard: str, detail: str):
        self.guard = guard
        self.detail = detail
        super().__init__(
            f"data.extraction.accelerate is 'on' but the trafilatura accelerator's guard {guard!r} failed: {detail}; "
            f"{FIX_HINT}, or set data.extraction.accelerate to 'auto' (stock trafilatura with a warning) or 'off'"
        )


_lock = threading.Lock()
_status: AcceleratorStatus | None = None
_warned = False
_built: tuple[tuple[int, ...], dict[int, FastXPath]] | None = None


def status() -> AcceleratorStatus | None:
    """This process's status, None before the first configure()."""
    return _status


def installed() -> bool:
    return pruning.installed()


def configure(mode: Mode, *, warn: bool = True) -> AcceleratorStatus:
    """Put the accelerator in the state ``mode`` asks for and return the status; ``warn``:
    log the warning of a failed guard in "auto" mode here (see ``warn_inactive``)."""
    current = _status
    if current is not None and current.mode == mode:
        return current
    if mode not in MODES:
        raise ValueError(f"accelerate must be one of {', '.join(MODES)}, got {mode!r}")
    with _lock:
        return _configure(mode, warn)


def _configure(mode: Mode, warn: bool) -> AcceleratorStatus:
    global _status
    version = guards.trafilatura_version()
    if mode == "off":
        _uninstall()
        _status = AcceleratorStatus(mode, False, trafilatura_version=version)
        return _status
    if not installed():
        failure = guards.failed_guard()
        if failure is not None:
            if mode == "on":
                raise AcceleratorGuardFailed(failure.guard, failure.detail)
            _status = AcceleratorStatus(mode, False, failure.guard, failure.detail, version)
            if warn:
                warn_inactive(_status)
            return _status
        _install()
    _status = AcceleratorStatus(mode, True, trafilatura_version=version)
    return _status


def warn_inactive(status: AcceleratorStatus) -> None:
    """Log, once per process, that the accelerator is off because of a failed guard."""
    global _warned
    if status.active or status.failed_guard is None or _warned:
        return
    _warned = True
    LOGGER.warning(
        "trafilatura accelerator not used: guard %r failed: %s; extracting with stock trafilatura "
        "(same output, slower). To use it again, %s; to silence this, set data.extraction.accelerate to 'off'",
        status.failed_guard,
        status.detail,
        FIX_HINT,
    )


def _fast_paths() -> dict[int, FastXPath]:
    """The fast paths of the verified expressions, built once per process (they hold the
    memos of verdicts per attribute value, which stay useful across pages)."""
    global _built
    expressions = guards.verified_expressions()
    key = tuple(id(expression) for expression in expressions)
    if _built is None or _built[0] != key:
        _built = (key, build_fast_paths(expressions))
    return _built[1]


def _install() -> None:
    try:
        pruning.install(_fast_paths())
        class_lookup.install()
        stand_ins.install()
    except BaseException:
        _uninstall()
        raise


def _uninstall() -> None:
    stand_ins.uninstall()
    class_lookup.uninstall()
    pruning.uninstall()
