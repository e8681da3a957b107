"""The tokenize stage as a Prefect flow: documents in, tokenizer and token shards out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner

from flows.common import FAILURE_HOOKS, artifact_key, describe_runner, map_tasks, process_pool, reports_outcome
from llmforge import atomic
from llmforge.config import TokenizeConfig
from llmforge.fingerprint import sha256_file
from llmforge.manifest import StageRun
from tasks.tokenize import stage as tokenize_stage
from tasks.tokenize.plan import TokenizePlan, encoding_settings, plan_tokenize, training_settings


# Document shards (Parquet bytes) below which encoding runs in the stage's own process: about 3 s of
# tiktoken on one core, against ~2 s of start-up per worker process.
IN_PROCESS_BYTES = 8_000_000


@task(name="train-tokenizer", cache_policy=NO_CACHE)
def train_tokenizer_task(documents_dir: str, config: TokenizeConfig, destination: str) -> dict[str, Any]:
    return tokenize_stage.train_tokenizer(Path(documents_dir), config, Path(destination))


@task(name="encode-shard", cache_policy=NO_CACHE)
def encode_shard_task(documents_path: str, tokenizer_path: str, out_dirs: dict[str, str], config: TokenizeConfig) -> dict:
    return tokenize_stage.encode_shard(Path(documents_path), Path(tokenizer_path), out_dirs, config)


@flow(name="tokenize-shards")
def encode_shards_flow(shards: list[str], tokenizer_path: str, out_dirs: dict[str, str], config: TokenizeConfig) -> list[dict]:
    futures = [encode_shard_task.submit(shard, tokenizer_path, out_dirs, config) for shard in shards]
    return [future.result() for future in futures]


@flow(name="tokenize", log_prints=True, **FAILURE_HOOKS)
@reports_outcome
def tokenize_flow(workdir: str = "runs/default", config: TokenizeConfig = TokenizeConfig(), force: bool = False) -> dict[str, Any]:
    """Train a byte-level BPE tokenizer on the documents once, then encode the document shards not yet
    encoded into train/val token shards. `force`: train the tokenizer again and encode everything."""
    with StageRun("tokenize", workdir, config, force) as stage:
        if stage.up_to_date:
            return stage.skipped()
        return _run(stage, Path(workdir), config)


def _run(stage: StageRun, workdir: Path, config: TokenizeConfig) -> dict[str, Any]:
    documents_dir, tokenizer_path = workdir / "data" / "documents", stage.path("tokenizer")
    shards = {path.name: path for path in tokenize_stage.document_shards(documents_dir)}
    digests = tokenize_stage.document_digests(workdir, list(shards.values()))
    plan = plan_tokenize(shards, digests, config, stage.inputs, stage.previous, tokenizer_path, stage.force)
    print(plan.describe())
    if plan.train:
        stage.invalidate()  # every token id changes: the old shards no longer match the tokenizer
        with stage.time("train_tokenizer"):
            train_tokenizer_task(str(documents_dir), config, str(tokenizer_path))
    with stage.time("encode"):
        new, runner = _encode(plan, workdir / "tokens", tokenizer_path, config)
    encoded = {**plan.kept, **{path.name: {"sha256": digests[path.name], **counts} for path, counts in zip(plan.encode, new)}}
    vocabulary = tokenize_stage.vocabulary_report(tokenizer_path, workdir / "tokens" / "val")
    metrics = tokenize_stage.summarize(list(encoded.values()), vocabulary["vocab_size"])
    metrics.update(val_vocab_usage=vocabulary.get("vocab_usage"), encoded_shards=len(plan.encode))
    report = tokenize_stage.report_markdown(metrics, vocabulary)
    atomic.write_text(stage.path("report"), report)
    create_markdown_artifact(key=artifact_key(str(workdir), "tokenize-summary"), markdown=report)
    counts = {
        "shards": len(encoded),
        "tokenizer": {"settings": training_settings(config), "sha256": sha256_file(tokenizer_path)},
        "encoding": encoding_settings(config, stage.inputs),
        "encoded": dict(sorted(encoded.items())),
    }
    execution = {"tokenizer": "trained" if plan.train else "frozen", **describe_runner(runner)}
    return stage.finish(counts=counts, metrics=metrics, execution=execution)


def _encode(plan: TokenizePlan, tokens_dir: Path, tokenizer_path: Path, config: TokenizeConfig) -> tuple[list[dict], TaskRunner]:
    """Encode the plan's document shards into staged splits, then put them in place."""
    tokens_dir.mkdir(parents=True, exist_ok=True)
    staged = {split: tokenize_stage.staging_dir(tokens_dir, split) for split in ("train", "val")}
    # Little to encode (a night's new version): worker processes would cost more than they save.
    small = sum(path.stat().st_size for path in plan.encode) < IN_PROCESS_BYTES
    runner = process_pool(1 if small else None, len(plan.encode))
    shards = [str(p) for p in plan.encode]
    new = map_tasks(encode_shard_task, encode_shards_flow, runner, shards, str(tokenizer_path), staged, config)
    tokenize_stage.publish_token_shards(tokens_dir, staged, replace=plan.everything, dropped=plan.dropped)
    return new, runner
