"""The data stage as a Prefect flow: new WARC files in, a new dataset version (documents and a funnel) out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.states import State

from flows.common import FAILURE_HOOKS, artifact_key, describe_runner, map_tasks, reports_outcome, shard_runner
from llmforge import atomic
from llmforge.config import DataConfig
from llmforge.manifest import IncompleteStage, StageRun
from tasks.data import report as data_report
from tasks.data import stage as data_stage
from tasks.data import versions
from tasks.data.dedup_index import PriorIndex, index_path
from tasks.data.duplicates import Duplicates, find_duplicates
from tasks.data.shard_failure import incomplete_message, record_failed_shard
from tasks.data.shards import Shard, distinct_files, file_digests, plan_shards
from tasks.data.sources import resolve_source, source_names, worth_retrying
from tasks.data.stats import build_stats, run_counts_and_metrics
from tasks.data.versions import Ingestion


@task(name="read-extract-filter", cache_policy=NO_CACHE)
def process_shard_task(shard: Shard, config: DataConfig, data_dir: str, code_digest: str) -> dict[str, Any]:
    return data_stage.run_shard(shard, config, data_dir, code_digest)


@task(name="deduplicate", cache_policy=NO_CACHE)
def find_duplicates_task(
    data_dir: str, shard_keys: list[str], config: DataConfig, prior: PriorIndex | None, index_out: str
) -> Duplicates:
    return find_duplicates(data_dir, shard_keys, config, prior, index_out)


@task(name="write-documents", cache_policy=NO_CACHE)
def finalize_shard_task(
    data_dir: str, shard_key: str, duplicates: Duplicates, config: DataConfig, out_dirs: dict[str, str]
) -> dict[str, int]:
    return data_stage.finalize_shard(data_dir, shard_key, duplicates, config, out_dirs)


def _shard_result(future: PrefectFuture, shard: Shard, data_dir: str, config: DataConfig) -> dict[str, Any]:
    try:
        return future.result()
    except Exception as err:  # noqa: BLE001 - the task itself died (e.g. its worker process): this shard failed
        return record_failed_shard(shard, err, data_dir, config.reader, config.text_column)


@flow(name="data-shards")
def process_shards_flow(
    shards: list[Shard], config: DataConfig, data_dir: str, code_digest: str
) -> list[dict[str, Any]]:
    futures = [process_shard_task.submit(shard, config, data_dir, code_digest) for shard in shards]
    return [_shard_result(future, shard, data_dir, config) for future, shard in zip(futures, shards)]


def _server_failed(task: Any, task_run: Any, state: State) -> bool:
    try:
        state.result()
    except Exception as err:  # noqa: BLE001 - the failure to classify
        return worth_retrying(err)
    return False


@task(name="resolve-source", cache_policy=NO_CACHE, retry_condition_fn=_server_failed)
def resolve_source_task(config: DataConfig, workdir: Path, skip: set[str]) -> list[Path]:
    """The input files: local ones, the sample, or a crawl's next files (`skip`: those ingested) downloaded into the cache."""
    return resolve_source(config, workdir, skip)


def plan(stage: StageRun, config: DataConfig, workdir: Path) -> tuple[Ingestion, list[Shard], dict[str, str], dict]:
    """What this run reads (`tasks.data.versions`), its shards, {file: file kept} for the files whose
    content an earlier file of this run has, and {name: {sha256, size}} of the files to read."""
    rebuild_because = "--rebuild (or --force)" if stage.force else None if config.incremental else "data.incremental is off"
    recipe_changes = [r for r in stage.freshness.reasons if r.startswith(("config", "code", "library", "asset"))]
    reasons, records = versions.rebuild_reasons(workdir, versions.recipe_digest(stage.inputs), rebuild_because,
                                                (stage.previous or {}).get("outputs"), recipe_changes)
    crawl = config.source.startswith("cc:")
    skip = versions.ingested_names(records) if crawl and not reasons else set()  # a crawl advances a budget a run
    files = resolve_source_task.with_options(
        retries=config.cc_run_retries, retry_delay_seconds=config.cc_run_retry_delay_seconds,
    )(config, workdir, skip)
    digests = file_digests(files)
    names = source_names(config, workdir, files)
    ingestion = versions.plan_ingestion(files, names, digests, reasons, records, complete_listing=not crawl)
    distinct, copies = distinct_files(ingestion.files, digests)
    shards = plan_shards(distinct, config.records_per_shard, digests, config.max_records_per_file, names,
                         config.reader, ingestion.version)
    inputs = versions.file_inputs(distinct, names, digests)
    return ingestion, shards, {names[copy]: names[kept] for copy, kept in copies.items()}, inputs


def _publish_artifacts(workdir: str, data_dir: Path, stats: dict[str, Any], records: list[dict[str, Any]]) -> None:
    version = records[-1]["version"]
    create_table_artifact(
        key=artifact_key(workdir, "data-funnel"), table=data_report.funnel_rows(stats), description=data_report.funnel_title(stats)
    )
    create_table_artifact(
        key=artifact_key(workdir, "data-per-file"), table=data_report.per_file_rows(stats),
        description="kept + removed + errors = response records, per input file",
    )
    create_markdown_artifact(key=artifact_key(workdir, "data-removed-examples"),
                             markdown=data_report.removed_examples(data_dir, version))
    create_table_artifact(key=artifact_key(workdir, "data-versions"), table=[versions.summary_row(r) for r in records],
                          description=f"the dataset's versions; version {version} was added by this run")


@flow(name="data", log_prints=True, **FAILURE_HOOKS)
@reports_outcome
def data_flow(workdir: str = "runs/default", config: DataConfig = DataConfig(), force: bool = False) -> dict[str, Any]:
    """Read the WARC files no dataset version has ingested → extract → filter → deduplicate against every
    version → anonymise → a new dataset version. `force`: rebuild the dataset from every file."""
    with StageRun("data", workdir, config, force) as stage:
        if stage.up_to_date:
            return stage.skipped()
        return _run(stage, workdir, config)


def _run(stage: StageRun, workdir: str, config: DataConfig) -> dict[str, Any]:
    data_dir = Path(workdir) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    atomic.remove_paths(atomic.leftovers_within(data_dir / "_work"))  # an interrupted run's, under the lock
    code_digest = stage.inputs["code"]["source_sha256"]

    with stage.time("plan"):
        ingestion, shards, duplicate_files, inputs = plan(stage, config, Path(workdir))
    for note in ingestion.notes():
        print(note)
    if ingestion.mode == "none":
        return stage.finish(**versions.dataset_totals(ingestion.earlier), new_outputs=False)
    keys = [shard.key for shard in shards]
    data_stage.prune_staging(data_dir, keys)
    with stage.time("read_extract_filter"):
        runner = shard_runner(config.task_runner, config.max_workers, config.dask_address, len(shards))
        summaries = map_tasks(process_shard_task, process_shards_flow, runner, shards, config, str(data_dir), code_digest)
    out_dirs = data_stage.fresh_output_dirs(data_dir, versions.VERSIONED_DIRS)
    with stage.time("dedup"):
        prior = _earlier_versions_index(ingestion, config, data_dir)
        index_out = Path(out_dirs["dedup_index"]) / index_path(data_dir, ingestion.version).name
        duplicates = find_duplicates_task(str(data_dir), keys, config, prior, str(index_out))
    with stage.time("write"):
        finals = [finalize_shard_task(str(data_dir), key, duplicates, config, out_dirs) for key in keys]
        stats = build_stats(summaries, finals, duplicate_files)
        _commit(stage, ingestion, out_dirs, versions.new_record(
            ingestion, versions.recipe_digest(stage.inputs), config.source, inputs, duplicate_files, stats))
    accelerator = data_stage.accelerator_use(summaries)
    for note in data_stage.inactive_accelerator_notes(accelerator):
        print(f"warning: {note}")
    records, _ = versions.read_records(data_dir)  # with the version just committed
    _publish_artifacts(workdir, data_dir, stats, records)
    incomplete = incomplete_message(summaries)
    if incomplete:
        raise IncompleteStage(incomplete)  # after publishing: the shards that succeeded are not lost
    counts, metrics = run_counts_and_metrics(stats, summaries, versions.dataset_totals(records))
    execution = {"accelerator": accelerator, "ingestion": ingestion.mode, **describe_runner(runner)}
    return stage.finish(counts=counts, metrics=metrics, execution=execution)


def _commit(stage: StageRun, ingestion: Ingestion, out_dirs: dict[str, str], record: dict[str, Any]) -> None:
    """Put the version in place (`tasks.data.versions`), then the latest funnel."""
    if ingestion.mode == "rebuild":
        stage.invalidate()
        versions.commit_rebuild(stage.workdir, out_dirs, record)
    else:
        versions.commit_append(stage.workdir, ingestion.version, out_dirs, record)
    atomic.write_json(stage.path("stats"), {**record["stats"], "version": ingestion.version})


def _earlier_versions_index(ingestion: Ingestion, config: DataConfig, data_dir: Path) -> PriorIndex | None:
    """The dedup index of the versions this one is deduplicated against: none on a rebuild or with
    `dedup.scope: per_version`."""
    if ingestion.mode != "append" or config.dedup.scope != "global":
        return None
    return PriorIndex.read(index_path(data_dir, record["version"]) for record in ingestion.earlier)
