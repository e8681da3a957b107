"""Intra-op threads that follow what the machine has free.

PyTorch's CPU kernels split each operation over its OpenMP threads, which meet at a
barrier at the end of it. When other busy processes share the cores, one of those
threads is often descheduled and the others wait for it at every barrier: on a 2-core
machine, pretraining with 2 threads fell from ~10,000 to ~770 tokens/s beside another
2-thread process, far below the half of the machine it could have had.

``ThreadGovernor`` looks every two seconds at how much CPU time other processes used
since its last look (the busy time of this process's cores from ``/proc/stat`` minus its
own) and, when two looks in a row agree, sets ``torch.set_num_threads`` to the cores they
leave, at least one; when they are gone, it goes back up. Every change is kept with the reason, for the run's
manifest. Where ``/proc/stat`` does not exist it does nothing and says so once.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

CHECK_EVERY_S = 2.0
# A change needs the same answer at this many looks in a row: a brief burst changes nothing.
CONFIRMATIONS = 2
MAX_RECORDED_CHANGES = 50  # the manifest keeps the first ones and counts the rest
# Other processes' use below this share of a core leaves every core to us: a server's
# heartbeat or a shell should not cost a thread.
NEGLIGIBLE_CORES = 0.25


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def busy_cpu_seconds(cpus: set[int] | None = None) -> float | None:
    """CPU seconds used since boot on `cpus` (default: the ones this process may run on; every
    process's time counts); None without /proc/stat. Cores outside the process's CPU set (a
    container's, a taskset's) are left out: their load takes nothing from us."""
    if cpus is None:
        try:
            cpus = os.sched_getaffinity(0)
        except AttributeError:
            cpus = None
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            lines = [line.split() for line in fh if line.startswith("cpu")]
    except OSError:
        return None
    if not lines:
        return None
    if cpus is None:
        rows = [lines[0][1:]]
    else:
        rows = [fields[1:] for fields in lines[1:] if fields[0][3:].isdigit() and int(fields[0][3:]) in cpus]
    busy = 0
    for row in rows:
        # user nice system idle iowait irq softirq steal ...: all but idle and iowait are busy.
        values = [int(v) for v in row[:8]]
        busy += sum(values) - values[3] - values[4]
    return busy / os.sysconf("SC_CLK_TCK")


def threads_for(others_cores: float, cores: int, max_threads: int) -> int:
    """Threads to run with when other processes keep `others_cores` cores busy."""
    taken = math.ceil(max(0.0, others_cores - NEGLIGIBLE_CORES))
    return max(1, min(max_threads, cores - taken))


@dataclass(frozen=True)
class ThreadChange:
    seconds: float  # since the governor started
    step: int
    threads_from: int
    threads_to: int
    others_cores: float  # cores other processes kept busy over the last interval

    def describe(self) -> str:
        cause = (f"other processes used {self.others_cores:.1f} of the cores"
                 if self.threads_to < self.threads_from else "the other processes are done")
        return f"threads {self.threads_from} -> {self.threads_to} at step {self.step}: {cause}"


@dataclass
class ThreadGovernor:
    """Sets torch's intra-op threads to the cores other processes leave; see the module docstring."""

    max_threads: int = field(default_factory=torch.get_num_threads)
    cores: int = field(default_factory=usable_cores)
    interval_s: float = CHECK_EVERY_S
    report: Callable[[str], None] | None = None
    machine_seconds: Callable[[], float | None] = busy_cpu_seconds
    own_seconds: Callable[[], float] = time.process_time
    clock: Callable[[], float] = time.monotonic
    set_threads: Callable[[int], None] = torch.set_num_threads
    changes: list[ThreadChange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started = self.last_at = self.clock()
        self.last_machine = self.machine_seconds()
        self.last_own = self.own_seconds()
        self.threads = self.max_threads
        self.pending: int | None = None  # the thread count the last looks asked for, not yet confirmed
        self.seen = 0
        self.change_count = 0
        self.available = self.last_machine is not None
        if not self.available and self.report is not None:
            self.report(f"threads stay at {self.max_threads}: no /proc/stat to see other processes' CPU use")

    def after_step(self, step: int) -> ThreadChange | None:
        """Look at the machine when an interval has passed; change the threads if it says so."""
        if not self.available:
            return None
        now = self.clock()
        elapsed = now - self.last_at
        if elapsed < self.interval_s:
            return None
        machine, own = self.machine_seconds(), self.own_seconds()
        if machine is None:
            return None
        others = max(0.0, (machine - self.last_machine) - (own - self.last_own)) / elapsed
        self.last_at, self.last_machine, self.last_own = now, machine, own
        wanted = threads_for(others, self.cores, self.max_threads)
        if wanted == self.threads:
            self.pending, self.seen = None, 0
            return None
        self.seen = self.seen + 1 if self.pending == wanted else 1
        self.pending = wanted
        if self.seen < CONFIRMATIONS:
            return None
        change = ThreadChange(round(now - self.started, 1), step, self.threads, wanted, round(others, 2))
        self.set_threads(wanted)
        self.threads, self.pending, self.seen = wanted, None, 0
        self.change_count += 1
        if len(self.changes) < MAX_RECORDED_CHANGES:
            self.changes.append(change)
        if self.report is not None and self.change_count <= MAX_RECORDED_CHANGES:
            self.report(change.describe())
        return change

    def restore(self) -> None:
        """Back to the thread count the run started with (for whatever runs next in this process)."""
        if self.threads != self.max_threads:
            self.set_threads(self.max_threads)
            self.threads = self.max_threads

    def summary(self) -> dict[str, Any]:
        """For the manifest: what the governor saw and did."""
        return {
            "adaptive": self.available,
            "max_threads": self.max_threads,
            "cores": self.cores,
            "changes": [asdict(change) for change in self.changes],
            **({"more_changes": self.change_count - len(self.changes)} if self.change_count > len(self.changes) else {}),
        }


def governor_for(
    device: str | torch.device, enabled: bool, report: Callable[[str], None] | None = None
) -> ThreadGovernor | None:
    """A governor for a training run on this device, or None where threads are not ours to adapt:
    on an accelerator, in a multi-process run (its ranks share the cores on purpose), or when
    `enabled` is off."""
    from model import distributed

    if not enabled or torch.device(device).type != "cpu" or distributed.current().enabled:
        return None
    return ThreadGovernor(report=report)
