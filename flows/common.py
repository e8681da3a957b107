"""What every stage flow shares: the process pool and artifact helpers."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import re
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.states import Completed, State
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from llmforge.notify import WEBHOOK_ENV, failure_payload, post_json, run_page
from tasks.progress import Progress
from tasks.report_card import headline_message

log = logging.getLogger(__name__)


def notify_failure(flow: Any, flow_run: Any, state: State) -> None:
    """on_failure / on_crashed hook of every stage flow: POST to LLMFORGE_FAILURE_WEBHOOK (llmforge.notify).
    Only the outermost run notifies: a stage failing inside the pipeline fails the pipeline too."""
    url = os.environ.get(WEBHOOK_ENV)
    if not url or flow_run.parent_task_run_id is not None:
        return
    payload = failure_payload(
        flow.name, str(flow_run.id), flow_run.name, state.name or state.type.value, state.message,
        (flow_run.parameters or {}).get("workdir"), run_page(os.environ.get("PREFECT_API_URL"), str(flow_run.id)),
    )
    try:
        post_json(url, payload)
    except OSError as err:  # the run's own failure is what matters; this one is only reported
        log.warning("could not send the failure notification to %s: %s", url, err)


FAILURE_HOOKS: dict[str, Any] = {"on_failure": [notify_failure], "on_crashed": [notify_failure]}


UPDATE_EVENT = "llmforge.{stage}.updated"  # prefect.yaml's triggers listen for these
WORKDIR_RESOURCE = "llmforge.workdir."


def announce_update(stage: str, workdir: str, outcome: dict[str, Any]) -> None:
    """Tell the server a stage wrote new outputs, so triggers in prefect.yaml can start what follows
    (tokenize after data). Only a deployment's run says so (the nightly schedule, the UI): a run
    started by hand is followed by hand, and inside the pipeline the next stage runs anyway."""
    from prefect.context import FlowRunContext
    from prefect.events import emit_event

    context = FlowRunContext.get()
    if outcome.get("status") != "ran" or context is None:
        return
    run = context.flow_run
    if run.deployment_id is None or run.parent_task_run_id is not None:
        return
    path = os.path.abspath(workdir)
    emit_event(
        event=UPDATE_EVENT.format(stage=stage),
        resource={"prefect.resource.id": WORKDIR_RESOURCE + path, "prefect.resource.name": path},
        payload={"metrics": {k: v for k, v in (outcome.get("metrics") or {}).items() if not isinstance(v, dict)}},
    )


def reports_outcome(stage_flow: Callable[..., dict[str, Any]]) -> Callable[..., State]:
    """Apply under @flow: the run ends Completed with the stage's headline as its state message (on the
    run's page in the UI, and in `llmforge runs`) and, when it wrote new outputs, announces them
    (`announce_update`); whoever calls the flow still gets the outcome dict."""
    signature = inspect.signature(stage_flow)

    @functools.wraps(stage_flow)
    def run(*args: Any, **kwargs: Any) -> State:
        outcome = stage_flow(*args, **kwargs)
        if "stage" in outcome:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            announce_update(outcome["stage"], bound.arguments["workdir"], outcome)
        return Completed(data=outcome, message=headline_message(outcome))

    # Prefect validates parameters against the signature; its annotations are resolved here,
    # as the names they refer to live in the flow's module, not this one.
    hints = typing.get_type_hints(stage_flow)
    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()],
    )
    run.__annotations__ = hints
    return run


ACCELERATOR_LIMIT = "llmforge-accelerator"  # a Prefect global concurrency limit, one slot by default


def _ensure_limit(name: str, default_limit: int) -> None:
    """Create the limit with its default when the server has none; an existing one keeps the size it was given."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=default_limit))
            except ObjectAlreadyExists:
                pass  # another run created it meanwhile


@contextmanager
def accelerator_slot(stage: str) -> Iterator[None]:
    """Hold one slot of the server's `llmforge-accelerator` limit while a training stage trains, so two
    training stages started at once (a schedule, a trigger, a person) take the machine in turn. The limit
    has one slot unless changed (`prefect gcl update llmforge-accelerator --limit N`, or the UI)."""
    from prefect.concurrency.sync import concurrency

    _ensure_limit(ACCELERATOR_LIMIT, default_limit=1)
    log.info("%s: waiting for a slot of the %r concurrency limit", stage, ACCELERATOR_LIMIT)
    # A long training outlives lease renewals that fail for a moment: such a failure must not stop it.
    with concurrency(ACCELERATOR_LIMIT, occupy=1, strict=True, raise_on_lease_renewal_failure=False):
        yield


def pool_size(max_workers: int | None, tasks: int) -> int:
    """Workers for `tasks` tasks: at most max_workers (default: one per core), and no more than
    there are tasks, since each worker costs ~2 CPU-seconds of imports before its first task."""
    return max(1, min(max_workers or os.cpu_count() or 1, tasks))


def process_pool(max_workers: int | None, tasks: int) -> TaskRunner:
    """CPU-bound stage work runs in processes: the extraction and filters are pure Python.
    Work for one worker (a single task, or max_workers 1) runs in this process instead, one task
    at a time: a worker process would only add its start-up cost."""
    workers = pool_size(max_workers, tasks)
    if workers <= 1:
        return ThreadPoolTaskRunner(max_workers=1)
    return ProcessPoolTaskRunner(max_workers=workers)


def _in_this_process(runner: TaskRunner) -> bool:
    """Whether `process_pool` chose to run the tasks one at a time in this process."""
    return isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 1


def map_tasks(task: Any, subflow: Any, runner: TaskRunner, items: list[Any], *args: Any) -> list[Any]:
    """`task(item, *args)` for each item: called here one at a time when `runner` runs in this process
    (a subflow run would cost ~1 s of wall time for nothing), else as `subflow(items, *args)` on `runner`."""
    if _in_this_process(runner):
        return [task(item, *args) for item in items]
    return subflow.with_options(task_runner=runner)(items, *args)


def describe_runner(runner: TaskRunner) -> dict[str, Any]:
    """How a stage's tasks ran, for its manifest's `execution`."""
    workers = getattr(runner, "max_workers", None) or getattr(runner, "_max_workers", None)
    return {"task_runner": type(runner).__name__, **({"workers": workers} if isinstance(workers, int) else {})}


def shard_runner(kind: str, max_workers: int | None, dask_address: str | None, tasks: int) -> TaskRunner:
    """The task runner for per-shard work: local processes, or a Dask cluster for scale-out."""
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": pool_size(max_workers, tasks), "threads_per_worker": 1})
    return process_pool(max_workers, tasks)


def artifact_key(workdir: str, name: str) -> str:
    """Keys group an artifact's history on the dashboard; one series per work directory and artifact."""
    slug = re.sub(r"[^a-z0-9]+", "-", os.path.basename(os.path.abspath(workdir)).lower()).strip("-") or "run"
    return f"{slug}-{name}"[:100]


@contextmanager
def stage_progress(workdir: str, stage: str, description: str) -> Iterator[Progress]:
    """A training stage's progress: log lines with an ETA at least every ~10 s (a bar on a terminal),
    and the dashboard's progress artifact "<stage>-progress" for the phase under way."""
    from prefect import get_run_logger

    progress_id = create_progress_artifact(progress=0.0, key=artifact_key(workdir, f"{stage}-progress"),
                                           description=description)
    progress = Progress(stage, get_run_logger().info,
                        on_fraction=lambda share: update_progress_artifact(progress_id, progress=100.0 * share))
    try:
        yield progress
    except BaseException:
        progress.finish(ok=False)
        raise
    progress.finish()
