"""The whole chain as one flow: every stage in order, each as a subflow that skips itself when up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.common import FAILURE_HOOKS, artifact_key, reports_outcome

from llmforge.config import PipelineConfig
from llmforge.stages import STAGE_ORDER, STAGES
from tasks.report_card import write_report_card


@flow(name="pipeline", log_prints=True, **FAILURE_HOOKS)
@reports_outcome
def pipeline_flow(
    workdir: str = "runs/default", config: PipelineConfig = PipelineConfig(), force: list[str] | None = None
) -> dict[str, Any]:
    """data → tokenize → pretrain → evaluate → sft → rl, then the report card. `force` names stages to re-run even when up to date."""
    forced = set(force or [])
    unknown = forced - set(STAGE_ORDER)
    if unknown:
        raise ValueError(f"unknown stage(s) to force: {sorted(unknown)}; stages are {list(STAGE_ORDER)}")
    outcomes = []
    for name in STAGE_ORDER:
        stage_flow = STAGES[name].load_flow()
        outcomes.append(stage_flow(workdir=workdir, config=getattr(config, name), force=name in forced))
    card = write_report_card(Path(workdir) / "reports" / "report.md", outcomes)
    create_markdown_artifact(key=artifact_key(workdir, "report-card"), markdown=card,
                             description="every stage's headline numbers")
    return {"stages": outcomes, "report_card": str(Path(workdir) / "reports" / "report.md")}
