"""Fixtures shared by the accelerator's tests (tests/test_accel*.py)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.data import accel
from tasks.data.accel import control

PAGE_STEP = 9  # every 9th shared page: about 80 pages, all sources and languages


def load_pages(shared_data: Path, step: int = PAGE_STEP) -> list[bytes]:
    paths = sorted(shared_data.glob("html/*/*/*.html.gz"))
    if not paths:
        pytest.fail(f"no shared HTML pages under {shared_data / 'html'}")
    return [gzip.decompress(path.read_bytes()) for path in paths[::step]]


@pytest.fixture(scope="module")
def pages(shared_data: Path) -> list[bytes]:
    return load_pages(shared_data)


def require_accelerator() -> accel.AcceleratorStatus:
    """Put the accelerator in place; fail (never skip) when a guard keeps it off: the
    identity tests would otherwise pass while comparing stock trafilatura with itself."""
    try:
        return accel.configure("on")
    except accel.AcceleratorGuardFailed as err:
        pytest.fail(
            f"the trafilatura accelerator is not active, guard {err.guard!r} failed: {err.detail}. "
            f"To fix: {control.FIX_HINT}; or pin the verified trafilatura version.",
            pytrace=False,
        )


@pytest.fixture()
def stock_after() -> Iterator[None]:
    """Leave the process with stock trafilatura and no warning given yet, whatever the test did."""
    yield
    accel.configure("off")
    control._warned = False


@pytest.fixture()
def accelerated(stock_after: None) -> accel.AcceleratorStatus:
    return require_accelerator()
