"""What every stage flow shares: the process pool and artifact helpers."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner

from tasks.progress import progress_bar


def process_pool(max_workers: int | None) -> ProcessPoolTaskRunner:
    """CPU-bound stage work runs in processes: the extraction and filters are pure Python."""
    return ProcessPoolTaskRunner(max_workers=max_workers or max(1, os.cpu_count() or 1))


def shard_runner(kind: str, max_workers: int | None, dask_address: str | None) -> TaskRunner:
    """The task runner for per-shard work: local processes, or a Dask cluster for scale-out."""
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": max_workers or os.cpu_count() or 1, "threads_per_worker": 1})
    return process_pool(max_workers)


def artifact_key(workdir: str, name: str) -> str:
    """Keys group an artifact's history on the dashboard; one series per work directory and artifact."""
    slug = re.sub(r"[^a-z0-9]+", "-", os.path.basename(os.path.abspath(workdir)).lower()).strip("-") or "run"
    return f"{slug}-{name}"[:100]


@contextmanager
def step_progress(workdir: str, stage: str, description: str, total: int) -> Iterator[Callable[..., None]]:
    """A training stage's progress on the dashboard (artifact "<stage>-progress") and on the
    terminal; yields ``advance(steps_done, **fields shown beside the bar)``."""
    progress_id = create_progress_artifact(progress=0.0, key=artifact_key(workdir, f"{stage}-progress"),
                                           description=description)
    bar = progress_bar(total)

    def advance(done: int, **fields: Any) -> None:
        update_progress_artifact(progress_id, progress=100.0 * done / total)
        bar.advance_to(done, **fields)

    try:
        yield advance
    finally:
        bar.close()
