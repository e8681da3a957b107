"""prefect.yaml's deployments on a real Prefect server and worker, triggered through the API as the UI does.

A server on a free loopback port (the persistent local server of a private LLMFORGE_HOME), the
work pool, `prefect deploy --all` from the project root and a process worker: the same set-up as
`llmforge dashboard`. The tokenize deployment is then run with a parameter, through the REST API,
and its state, headline, artifact and outputs are checked, and `llmforge runs` finds it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_process import free_port, run_cli

from llmforge.dashboard import WORK_POOL
from llmforge.local_server import ensure_server, stop_server

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 300.0
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}



def _api(api_url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"{api_url}/{path}", data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST", headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server with prefect.yaml deployed and a worker polling its pool."""
    base = tmp_path_factory.mktemp("deployments")
    home = base / "home"
    record, _ = ensure_server(home, port=free_port())
    env = {**{k: v for k, v in os.environ.items() if k != "LLMFORGE_EPHEMERAL"},
           "PREFECT_API_URL": record.api_url, "PREFECT_HOME": str(base / "prefect-home"), "LLMFORGE_HOME": str(home),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    worker = None
    try:
        for command in (["work-pool", "create", WORK_POOL, "--type", "process", "--overwrite"],
                        ["--no-prompt", "deploy", "--all"]):
            done = subprocess.run([sys.executable, "-m", "prefect", *command], cwd=REPO_ROOT, env=env,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, f"prefect {' '.join(command)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        worker_log = (base / "worker.log").open("wb")
        worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", WORK_POOL],
                                  cwd=REPO_ROOT, env=env, stdout=worker_log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        yield {"api": record.api_url, "env": env, "base": base, "worker_log": base / "worker.log"}
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        stop_server(home)


def _wait_for(api_url: str, flow_run_id: str, worker_log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        run = _api(api_url, f"flow_runs/{flow_run_id}")
        if run["state_type"] in TERMINAL:
            return run
        time.sleep(1.0)
    tail = worker_log.read_text(errors="replace")[-3000:]
    pytest.fail(f"flow run {flow_run_id} did not finish within {RUN_TIMEOUT:.0f} s; the worker's log ends:\n{tail}")


@pytest.mark.slow
def test_every_stage_is_deployed_on_the_process_pool(deployed: dict[str, Any]) -> None:
    deployments = _api(deployed["api"], "deployments/filter", {})
    names = {d["name"] for d in deployments}
    assert {"pipeline", "data", "tokenize", "pretrain", "evaluate", "sft", "rl"} <= names
    assert {d["work_pool_name"] for d in deployments} == {WORK_POOL}
    [data] = [d for d in deployments if d["name"] == "data"]
    assert [s["schedule"].get("cron") for s in data["schedules"]] == ["0 2 * * *"]


@pytest.mark.slow
def test_the_tokenize_deployment_runs_on_the_worker_with_its_parameters(
    deployed: dict[str, Any], shared_data: Path
) -> None:
    api, base = deployed["api"], deployed["base"]
    workdir = base / "work"
    source = base / "source"
    source.mkdir()
    shutil.copy(shared_data / "warc" / "jwarc-commoncrawl.org-single-response.warc.gz", source)
    # The documents come from a CLI run recorded on the same server.
    made = run_cli(["data", "--source", str(source), "--workdir", str(workdir)], deployed["env"])
    assert made.returncode == 0, made.describe()

    deployment = _api(api, "deployments/name/tokenize/tokenize")
    created = _api(api, f"deployments/{deployment['id']}/create_flow_run",
                   {"parameters": {"workdir": str(workdir)}})
    run = _wait_for(api, created["id"], deployed["worker_log"])

    assert run["state_type"] == "COMPLETED", (run["state"], deployed["worker_log"].read_text(errors="replace")[-3000:])
    assert run["state"]["message"].startswith("ran: vocabulary ")  # the stage's headline
    assert run["parameters"]["workdir"] == str(workdir)
    artifacts = _api(api, "artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
    assert any((a.get("key") or "").endswith("tokenize-summary") for a in artifacts)
    assert (workdir / "tokenizer" / "tokenizer.json").is_file()
    assert list((workdir / "tokens" / "train").glob("*.parquet"))
    assert json.loads((workdir / "tokens" / "manifest.json").read_text())["stage"] == "tokenize"

    listed = run_cli(["runs", "--workdir", str(workdir), "--json"], deployed["env"])
    stages = [row["stage"] for row in json.loads(listed.stdout)["runs"]]
    assert stages == ["tokenize", "data"]  # the deployment's run by its parameter, the CLI's by its tag


def _runs_of(api_url: str, deployment_id: str) -> list[dict[str, Any]]:
    return _api(api_url, "flow_runs/filter", {"deployments": {"id": {"any_": [deployment_id]}}})


def _triggered_tokenize(api: str, tokenize_id: str, before: set[str], workdir: Path, worker_log: Path) -> dict[str, Any]:
    """The tokenize run a data run's event started on `workdir`, once it has finished."""
    deadline = time.monotonic() + RUN_TIMEOUT
    triggered: list[dict[str, Any]] = []
    while not triggered and time.monotonic() < deadline:
        triggered = [r for r in _runs_of(api, tokenize_id)
                     if r["id"] not in before and r["parameters"].get("workdir") == str(workdir)]
        time.sleep(1.0)
    assert triggered, "no tokenize run was triggered by the data run"
    [follow] = triggered
    follow = _wait_for(api, follow["id"], worker_log)
    assert follow["state_type"] == "COMPLETED", follow["state"]
    return follow


@pytest.mark.slow
def test_each_warc_added_to_the_source_becomes_a_version_and_triggers_tokenize(
    deployed: dict[str, Any], shared_data: Path
) -> None:
    from llmforge.fingerprint import sha256_file

    api, base = deployed["api"], deployed["base"]
    workdir, source = base / "triggered", base / "triggered-source"
    source.mkdir()
    data = _api(api, "deployments/name/data/data")
    tokenize = _api(api, "deployments/name/tokenize/tokenize")
    tokenizer = None
    for version, name in enumerate(("jwarc-commoncrawl.org-single-response.warc.gz", "pywb-example.com.warc.gz"), 1):
        shutil.copy(shared_data / "warc" / name, source)
        before = {r["id"] for r in _runs_of(api, tokenize["id"])}
        created = _api(api, f"deployments/{data['id']}/create_flow_run",
                       {"parameters": {"workdir": str(workdir), "config": {"source": str(source)}}})
        run = _wait_for(api, created["id"], deployed["worker_log"])
        assert run["state_type"] == "COMPLETED", (run["state"], deployed["worker_log"].read_text(errors="replace")[-3000:])
        assert run["state"]["message"].startswith("ran: "), run["state"]
        record = json.loads((workdir / "data" / "versions" / f"{version:04d}.json").read_text())
        assert list(record["inputs"]) == [name]  # only the file added since the last version was read

        _triggered_tokenize(api, tokenize["id"], before, workdir, deployed["worker_log"])
        manifest = json.loads((workdir / "tokens" / "manifest.json").read_text())
        assert set(manifest["counts"]["encoded"]) == {p.name for p in (workdir / "data" / "documents").iterdir()}
        assert manifest["metrics"]["encoded_shards"] == 1  # the new version's shard only
        tokenizer = tokenizer or sha256_file(workdir / "tokenizer" / "tokenizer.json")
        assert sha256_file(workdir / "tokenizer" / "tokenizer.json") == tokenizer  # trained once, then frozen


def _wait_for_text(web: Any, texts: list[str], timeout: float = 90.0) -> str:
    """The page's visible text once it shows every one of `texts` (the UI renders after loading its data)."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        body = web.find_element(By.TAG_NAME, "body").text
        if all(text in body for text in texts):
            return body
        time.sleep(0.5)
    pytest.fail(f"the page never showed {texts}; it shows:\n{body[:2000]}")


@pytest.mark.slow
def test_the_prefect_ui_lists_the_deployments_and_shows_a_run_s_artifact(
    deployed: dict[str, Any], tmp_path: Path
) -> None:
    from chromium import chromium
    from selenium.webdriver.common.by import By

    api = deployed["api"]
    ui = api.removesuffix("/api")
    tokenize = _api(api, "deployments/name/tokenize/tokenize")
    done = [r for r in _runs_of(api, tokenize["id"]) if r["state_type"] == "COMPLETED"]
    assert done, "the tests above leave a completed tokenize run"
    with chromium(tmp_path / "profile", page_load_timeout=60) as web:
        web.get(f"{ui}/deployments")
        _wait_for_text(web, ["pipeline", "data", "tokenize", "pretrain", "evaluate", "sft", "rl"])
        web.get(f"{ui}/runs/flow-run/{done[0]['id']}")
        _wait_for_text(web, ["Artifacts"])
        tabs = []
        deadline = time.monotonic() + 60
        while not tabs and time.monotonic() < deadline:
            tabs = web.find_elements(By.CSS_SELECTOR, "li.p-tab#artifacts")
            time.sleep(0.5)
        assert tabs, "the run's page has no Artifacts tab"
        web.execute_script("arguments[0].click();", tabs[0])
        # The list renders its cards only once on screen (a virtual scroller).
        time.sleep(1.0)
        web.execute_script("document.querySelector('.flow-run-artifacts .p-virtual-scroller')?.scrollIntoView();")
        _wait_for_text(web, ["tokenize-summary"])
