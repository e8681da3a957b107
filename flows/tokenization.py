"""The tokenize stage as a Prefect flow: documents in, tokenizer and token shards out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import FAILURE_HOOKS, artifact_key, process_pool, reports_outcome
from llmforge import atomic
from llmforge.atomic import replace_directory
from llmforge.config import TokenizeConfig
from llmforge.manifest import StageRun
from tasks.tokenize import stage as tokenize_stage


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
    """Train a byte-level BPE tokenizer on the documents, then encode them into train/val token shards."""
    stage = StageRun("tokenize", workdir, config, force)
    if stage.up_to_date:
        return stage.skipped()
    documents_dir = Path(workdir) / "data" / "documents"
    tokenizer_path = stage.path("tokenizer")
    with stage.time("train_tokenizer"):
        trained = train_tokenizer_task(str(documents_dir), config, str(tokenizer_path))
    with stage.time("encode"):
        tokens_dir = Path(workdir) / "tokens"
        tokens_dir.mkdir(parents=True, exist_ok=True)
        staged = {split: tokenize_stage.staging_dir(tokens_dir, split) for split in ("train", "val")}
        shards = [str(p) for p in tokenize_stage.document_shards(documents_dir)]
        counts = encode_shards_flow.with_options(task_runner=process_pool(None, len(shards)))(shards, str(tokenizer_path), staged, config)
        for split, tmp in staged.items():
            replace_directory(Path(tmp), tokens_dir / split)
    metrics = tokenize_stage.summarize(counts, trained["vocab_size"])
    vocabulary = tokenize_stage.vocabulary_report(tokenizer_path, counts)
    metrics["val_vocab_usage"] = vocabulary.get("vocab_usage")
    report = tokenize_stage.report_markdown(metrics, vocabulary)
    atomic.write_text(stage.path("report"), report)
    create_markdown_artifact(key=artifact_key(workdir, "tokenize-summary"), markdown=report)
    return stage.finish(counts={"shards": len(shards)}, metrics=metrics)
