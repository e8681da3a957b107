"""The evaluate stage as a Prefect flow: a checkpoint in, readable reports out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import FAILURE_HOOKS, artifact_key, reports_outcome
from llmforge.config import EvaluateConfig
from llmforge.manifest import StageRun
from tasks.train import evaluate as evaluate_stage


@task(name="evaluate-checkpoint", cache_policy=NO_CACHE)
def evaluate_task(workdir: str, config: EvaluateConfig) -> dict[str, Any]:
    root = Path(workdir)
    return evaluate_stage.evaluate(root / "checkpoints" / "base", root / "tokenizer" / "tokenizer.json", root / "tokens" / "val", config)


@flow(name="evaluate", log_prints=True, **FAILURE_HOOKS)
@reports_outcome
def evaluate_flow(workdir: str = "runs/default", config: EvaluateConfig = EvaluateConfig(), force: bool = False) -> dict[str, Any]:
    """Validation loss and bits per byte on the val shards, plus samples at several temperatures."""
    stage = StageRun("evaluate", workdir, config, force)
    if stage.up_to_date:
        return stage.skipped()
    with stage.time("evaluate"):
        result = evaluate_task(workdir, config)
    result["history"] = evaluate_stage.update_history(stage.path("report").parent / "history.jsonl", result["comparison"])
    evaluate_stage.write_reports(stage.path("report"), stage.path("metrics"), result)
    create_table_artifact(key=artifact_key(workdir, "evaluation-comparison"), table=result["history"],
                          description="every checkpoint evaluated in this work directory, on the same validation data")
    create_table_artifact(key=artifact_key(workdir, "evaluation"),
                          table=[{"metric": k, "value": v} for k, v in result["metrics"].items()],
                          description="validation metrics of the base checkpoint")
    create_markdown_artifact(key=artifact_key(workdir, "evaluation-samples"), markdown=evaluate_stage.report_markdown(result))
    return stage.finish(counts={"samples": len(result["samples"])}, metrics=result["metrics"])
