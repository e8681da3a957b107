"""The pretrain stage as a Prefect flow: token shards in, a base checkpoint out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import FAILURE_HOOKS, accelerator_slot, artifact_key, reports_outcome, stage_progress
from llmforge.config import PretrainConfig
from llmforge.manifest import StageRun
from model.train import StepLog
from tasks.train import launch as pretrain_launch
from tasks.train import pretrain as pretrain_stage
from tasks.train.loss_curve import plot_loss_curve


@task(name="train-gpt", cache_policy=NO_CACHE)
def train_task(workdir: str, config: PretrainConfig, checkpoint_dir: str, resume: bool = False) -> dict[str, Any]:
    root = Path(workdir)
    args = (root / "tokens", root / "tokenizer" / "tokenizer.json", Path(checkpoint_dir), config)
    with stage_progress(workdir, "pretrain", "pretraining: share of the phase under way (%)") as progress:

        def on_log(log: StepLog) -> None:
            mfu = f"  MFU {100 * log.mfu:.1f}%" if log.mfu is not None else ""
            print(f"step {log.step:5d}  loss {log.loss:.4f}  lr {log.lr:.2e}  {log.tokens_per_s:,.0f} tok/s{mfu}")
            progress.advance(log.step + 1, loss=log.loss, tokens_per_s=log.tokens_per_s)

        if config.nproc > 1:
            # The ranks report every log_every steps; a resumed run's ETA starts from the next log.
            progress.start("training", config.steps, budget_s=None if resume else config.time_budget_s)
            return pretrain_launch.pretrain_distributed(*args, on_log=on_log, resume=resume)
        return pretrain_stage.pretrain(*args, on_log, resume=resume, progress=progress)


@flow(name="pretrain", log_prints=True, **FAILURE_HOOKS)
@reports_outcome
def pretrain_flow(
    workdir: str = "runs/default", config: PretrainConfig = PretrainConfig(), force: bool = False, resume: bool = False
) -> dict[str, Any]:
    """Train a GPT on the token shards (next-token prediction) and save the base checkpoint.

    `resume` continues an interrupted run from its last saved training state.
    """
    stage = StageRun("pretrain", workdir, config, force or resume)
    if stage.up_to_date:
        return stage.skipped()
    with accelerator_slot("pretrain"):  # one training stage at a time on this server
        with stage.time("train"):
            result = train_task(workdir, config, str(stage.path("checkpoint")), resume)
    pretrain_stage.write_training_report(stage.path("report"), result)
    plot_loss_curve(result["history"], stage.path("loss_curve"))
    create_table_artifact(key=artifact_key(workdir, "pretrain-loss-curve"), table=result["history"],
                          description=f"final loss {result['metrics']['final_loss']}")
    # A time-budgeted run may end before `steps`: count the steps it took.
    return stage.finish(counts={"steps": result["metrics"]["steps"]}, metrics=result["metrics"])
