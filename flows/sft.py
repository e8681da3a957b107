"""The SFT stage as a Prefect flow: the base checkpoint in, a chat model out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import FAILURE_HOOKS, accelerator_slot, artifact_key, reports_outcome, stage_progress
from llmforge.config import SftConfig
from llmforge.manifest import StageRun
from model.train import StepLog
from tasks.posttrain import sft as sft_stage


@task(name="fine-tune", cache_policy=NO_CACHE)
def sft_task(workdir: str, config: SftConfig, checkpoint_dir: str) -> dict[str, Any]:
    root = Path(workdir)
    with stage_progress(workdir, "sft", "fine-tuning: share of the phase under way (%)") as progress:

        def on_log(log: StepLog) -> None:
            print(f"step {log.step:5d}  loss {log.loss:.4f}  lr {log.lr:.2e}  {log.tokens_per_s:,.0f} tok/s")
            progress.advance(log.step + 1, loss=log.loss)

        return sft_stage.sft(root / "checkpoints" / "base", root / "tokenizer" / "tokenizer.json",
                             Path(checkpoint_dir), config, on_log, progress=progress)


@flow(name="sft", log_prints=True, **FAILURE_HOOKS)
@reports_outcome
def sft_flow(workdir: str = "runs/default", config: SftConfig = SftConfig(), force: bool = False) -> dict[str, Any]:
    """Fine-tune the base model on conversations (loss on the assistant's tokens only) and measure
    its accuracy on held-out word problems."""
    stage = StageRun("sft", workdir, config, force)
    if stage.up_to_date:
        return stage.skipped()
    with accelerator_slot("sft"):  # one training stage at a time on this server
        with stage.time("train"):
            result = sft_task(workdir, config, str(stage.path("checkpoint")))
    sft_stage.write_sft_report(stage.path("report"), result)
    create_markdown_artifact(key=artifact_key(workdir, "sft-report"), markdown=sft_stage.sft_report(result),
                             description=f"held-out accuracy {result['metrics']['heldout_accuracy']}")
    return stage.finish(counts={"examples": result["metrics"]["examples"]}, metrics=result["metrics"])
