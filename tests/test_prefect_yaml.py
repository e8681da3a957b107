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


def test_new_documents_trigger_tokenize_and_training_stays_manual() -> None:
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    from flows.common import UPDATE_EVENT, WORKDIR_RESOURCE

    deployments = {d["name"]: d for d in _deployments()}
    triggers = {name: [DeploymentEventTrigger.model_validate(t) for t in d.get("triggers", [])]
                for name, d in deployments.items()}
    [tokenize] = triggers["tokenize"]
    assert tokenize.enabled and tokenize.expect == {UPDATE_EVENT.format(stage="data")}
    assert tokenize.match.model_dump() == {"prefect.resource.id": WORKDIR_RESOURCE + "*"}
    assert tokenize.parameters == {"workdir": "{{ event.resource.name }}"}
    [pretrain] = triggers["pretrain"]
    assert not pretrain.enabled and pretrain.expect == {UPDATE_EVENT.format(stage="tokenize")}
    assert not any(t.enabled for name, ts in triggers.items() if name != "tokenize" for t in ts)


def test_no_flow_module_shadows_the_standard_library() -> None:
    # A worker puts the entrypoint's folder, flows/, on sys.path; a flows/tokenize.py there once
    # became the `tokenize` every child process imported (the extraction child died at start-up).
    import sys

    shadowing = {p.stem for p in (REPO_ROOT / "flows").glob("*.py")} & set(sys.stdlib_module_names)
    assert not shadowing
