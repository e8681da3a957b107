"""What machine a benchmark ran on, for the reports in BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def _first_field(path: str, prefix: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _first_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()


def total_ram() -> str:
    total = _first_field("/proc/meminfo", "MemTotal")
    return f"{int(total.split()[0]) / 2**20:.1f} GiB" if total else "unknown"


def describe(rounds: int) -> str:
    """The line every benchmark report starts with."""
    return (f"machine: {os.cpu_count()} cores, {cpu_model()}, {total_ram()}, Python {sys.version.split()[0]}; "
            f"median of {rounds} rounds")
