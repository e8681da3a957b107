"""prefect.yaml declares a deployment for every stage and the pipeline, each pointing at a real flow."""

from __future__ import annotations

import importlib

import yaml
from prefect import Flow

from conftest import REPO_ROOT
from llmforge.stages import STAGE_ORDER, STAGES


def _deployments() -> list[dict]:
    return yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]


def test_every_stage_and_the_pipeline_is_deployed_on_the_process_pool() -> None:
    deployments = {d["name"]: d for d in _deployments()}
    assert set(deployments) == {*STAGE_ORDER, "pipeline"}
    for name, deployment in deployments.items():
        assert deployment["work_pool"]["name"] == "llmforge-process", name
        module_path, function = deployment["entrypoint"].split(":")
        module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
        assert isinstance(getattr(module, function), Flow), deployment["entrypoint"]
        if name in STAGES:
            assert f"{module.__name__}:{function}" == STAGES[name].flow_ref


def test_the_data_stage_runs_on_a_schedule() -> None:
    data = next(d for d in _deployments() if d["name"] == "data")
    assert data["schedules"] and data["schedules"][0]["cron"]
