"""The RL stage as a Prefect flow: the SFT model in, a model tuned on checkable problems out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import FAILURE_HOOKS, accelerator_slot, artifact_key, reports_outcome, stage_progress
from llmforge.config import RlConfig
from llmforge.manifest import StageRun
from tasks.posttrain import rl as rl_stage


@task(name="reinforce", cache_policy=NO_CACHE)
def rl_task(workdir: str, config: RlConfig, checkpoint_dir: str) -> dict[str, Any]:
    root = Path(workdir)
    with stage_progress(workdir, "rl", "RL: share of the phase under way (%)") as progress:

        def on_log(log: rl_stage.RlStepLog) -> None:
            print(f"step {log.step:4d}  reward {log.mean_reward:.3f}  loss {log.loss:+.4f}  "
                  f"groups with signal {log.groups_with_signal}/{config.prompts_per_step}  {log.seconds:.1f}s")
            progress.advance(log.step + 1, reward=log.mean_reward)

        return rl_stage.rl(root / "checkpoints" / "sft", root / "tokenizer" / "tokenizer.json",
                           Path(checkpoint_dir), config, on_log, progress=progress)


@flow(name="rl", log_prints=True, **FAILURE_HOOKS)
@reports_outcome
def rl_flow(workdir: str = "runs/default", config: RlConfig = RlConfig(), force: bool = False) -> dict[str, Any]:
    """Sample several answers per problem, reward the right ones, reinforce; pass@k before and after."""
    stage = StageRun("rl", workdir, config, force)
    if stage.up_to_date:
        return stage.skipped()
    with accelerator_slot("rl"):  # one training stage at a time on this server
        with stage.time("train"):
            result = rl_task(workdir, config, str(stage.path("checkpoint")))
    rl_stage.write_rl_report(stage.path("report"), result)
    metrics = result["metrics"]
    create_markdown_artifact(key=artifact_key(workdir, "rl-report"), markdown=rl_stage.rl_report(result),
                             description=f"pass@1 {metrics['before']['pass@1']} → {metrics['after']['pass@1']}")
    return stage.finish(counts={"steps": config.steps}, metrics=metrics)
