"""A month of nightly ingestion in a few minutes: 30 runs of the `data` deployment on a folder that
grows, each followed by the `tokenize` run its event triggers, on a real Prefect server.

Every night brings a fresh crawl file (the sample generator with a new seed, so new pages, with its
own damaged and duplicated records) and, on some nights, a re-crawl of an earlier file under new
record ids, a near copy of one, a byte copy under another name, a truncated file or a file that is no
WARC at all. The deployments are registered on the test server with prefect.yaml's trigger; each
night's data run is created through the API and executed as a worker executes it, but in this
process (a worker would start a Python process per run: 30 nights would not fit in CI). One night's
run is executed by the flow engine in a child process instead and killed half-way; the next night's
run completes that version.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from cli_process import REPO_ROOT
from fuzz_warc import not_warc, truncate
from warc_copies import copy_responses, near_copy

from llmforge.config import DataConfig, TokenizeConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NIGHTS = 30
KILLED_NIGHT = 12
DUPLICATE_FILTERS = {"duplicate_record", "exact_dedup", "minhash"}


def _night_files(night: int, src: Path, shared: Path, earlier: list[Path], rng: random.Random) -> list[Path]:
    """What arrives in the folder on one night: always a fresh crawl file, sometimes a repeat or a broken one."""
    from tasks.data.sample_corpus import write_sample

    folder = src / f"night-{night:02d}"
    corpus = write_sample(folder / "tmp", seed=1000 + night, pages=20)
    fresh = folder / "crawl.warc.gz"
    corpus.warc_path.rename(fresh)
    shutil.rmtree(folder / "tmp")
    files = [fresh]
    if night == 1:
        shutil.copy(shared / "warc" / "dolma-sample-0000-wget-2024.warc.gz", folder / "dolma.warc.gz")
        files.append(folder / "dolma.warc.gz")
    if earlier and night % 4 == 0:
        files.append(folder / "recrawl.warc.gz")
        copy_responses(rng.choice(earlier), files[-1], seed=night)
    if earlier and night % 5 == 2:
        files.append(folder / "near.warc.gz")
        copy_responses(rng.choice(earlier), files[-1], seed=night, edit=near_copy)
    if earlier and night % 7 == 3:
        files.append(folder / "copy.warc.gz")
        shutil.copy(rng.choice(earlier), files[-1])
    if night % 6 == 5:
        files.append(folder / "truncated.warc.gz")
        files[-1].write_bytes(truncate(fresh.read_bytes(), rng))
    if night % 9 == 7:
        data, suffix = not_warc(rng)
        files.append(folder / f"export{suffix}")
        files[-1].write_bytes(data)
    return files


def _kill_half_way(flow_run_id: str, workdir: Path, env: dict[str, str]) -> None:
    """Execute the flow run in a child process, as a process worker does, and SIGKILL it (with every
    process under it) once its first shard is staged."""
    import psutil

    process = subprocess.Popen(
        [sys.executable, "-m", "prefect.flow_engine", "flows/data.py:data_flow"],
        env={**env, "PREFECT__FLOW_RUN_ID": flow_run_id}, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if list((workdir / "data" / "_work").glob(f"v{KILLED_NIGHT:04d}-*.done.json")):
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
    finally:
        tree = [process.pid, *(child.pid for child in psutil.Process(process.pid).children(recursive=True))]
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()


def _deploy(tokenize: TokenizeConfig) -> tuple[str, str]:
    """The data and tokenize deployments on the test server, tokenize with prefect.yaml's trigger."""
    import yaml
    from prefect.events import DeploymentEventTrigger

    from flows.data import data_flow
    from flows.tokenization import tokenize_flow

    declared = {d["name"]: d for d in yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]}
    [trigger] = declared["tokenize"]["triggers"]
    data_id = data_flow.to_deployment(name="data").apply()
    tokenize_id = tokenize_flow.to_deployment(
        name="tokenize", parameters={"config": tokenize.model_dump(mode="json", exclude_defaults=True)},
        triggers=[DeploymentEventTrigger(**{k: v for k, v in trigger.items() if k != "type"})],
    ).apply()
    return str(data_id), str(tokenize_id)


def _execute(client: Any, flow: Any, flow_run_id: Any) -> Any:
    """Run a scheduled flow run in this process, as a worker's process would."""
    from prefect.flow_engine import run_flow

    run_flow(flow, flow_run=client.read_flow_run(flow_run_id))
    return client.read_flow_run(flow_run_id)


def _triggered_run(client: Any, deployment_id: str, seen: set[Any]) -> Any:
    """The run of the deployment that an event scheduled since `seen`, once the server has made it."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
        new = [run for run in runs if run.id not in seen]
        if new:
            [run] = new
            return run
        time.sleep(0.2)
    raise AssertionError("the data run's event triggered no tokenize run")


def _rows(workdir: Path, kind: str, columns: list[str]) -> list[dict]:
    rows: list[dict] = []
    for path in sorted((workdir / "data" / kind).glob("*.parquet")):
        rows += [{**row, "shard": path.stem} for row in pq.read_table(path, columns=columns).to_pylist()]
    return rows


def test_thirty_nights_of_a_growing_crawl(prefect_harness, shared_data, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    from flows.data import data_flow
    from flows.tokenization import tokenize_flow
    from llmforge.fingerprint import sha256_file

    src, workdir = tmp_path / "incoming", tmp_path / "work"
    src.mkdir()
    config = DataConfig(source=str(src), max_workers=1)
    data_id, tokenize_id = _deploy(TokenizeConfig(vocab_size=512))
    parameters = {"workdir": str(workdir), "config": config.model_dump(mode="json", exclude_defaults=True)}
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(REPO_ROOT)}
    rng = random.Random(7)
    arrived: list[Path] = []
    tokenizer_digest, tokenize_runs = None, set()
    with get_client(sync_client=True) as client:
        for night in range(1, NIGHTS + 1):
            crawl_files = [p for p in arrived if p.name.endswith(".warc.gz") and "truncated" not in p.name]
            arrived += _night_files(night, src, shared_data, crawl_files, rng)
            run = client.create_flow_run_from_deployment(data_id, parameters=parameters)
            if night == KILLED_NIGHT:
                _kill_half_way(str(run.id), workdir, env)
                assert not (workdir / "data" / "versions" / f"{night:04d}.json").exists()
                continue  # the next night's run completes this version, with that night's files too
            run = _execute(client, data_flow, run.id)
            assert run.state.is_completed() and run.state.message.startswith("ran: "), (night, run.state)
            follow = _triggered_run(client, tokenize_id, tokenize_runs)
            tokenize_runs.add(follow.id)
            assert follow.parameters["workdir"] == str(workdir)
            assert _execute(client, tokenize_flow, follow.id).state.is_completed()
            digest = sha256_file(workdir / "tokenizer" / "tokenizer.json")
            assert digest == (tokenizer_digest := tokenizer_digest or digest), f"night {night}: the tokenizer changed"

    records = [json.loads(p.read_text()) for p in sorted((workdir / "data" / "versions").glob("*.json"))]
    assert [r["version"] for r in records] == list(range(1, NIGHTS))  # the killed night's version came with the next
    assert all(r["mode"] == "append" for r in records[1:]) and not any(r["incomplete"] for r in records)
    assert {f"night-{KILLED_NIGHT:02d}/crawl.warc.gz", f"night-{KILLED_NIGHT + 1:02d}/crawl.warc.gz"} <= set(
        records[KILLED_NIGHT - 1]["inputs"])
    _assert_every_record_accounted_for(workdir, src, records, len(arrived))
    _assert_no_document_kept_twice(workdir, records)
    manifest = json.loads((workdir / "tokens" / "manifest.json").read_text())
    assert set(manifest["counts"]["encoded"]) == {p.name for p in (workdir / "data" / "documents").iterdir()}
    assert manifest["counts"]["tokenizer"]["sha256"] == tokenizer_digest
    _assert_history(data_id, tokenize_id)


def _assert_every_record_accounted_for(workdir: Path, src: Path, records: list[dict], arrived: int) -> None:
    """Every response record of every file read is kept, removed or an error, once; copies are not read."""
    from tasks.data.warc_reader import ReadStats, iter_warc

    read_names = {name for r in records for name, entry in r["inputs"].items() if "copy_of" not in entry}
    copies = {name for r in records for name, entry in r["inputs"].items() if "copy_of" in entry}
    assert copies and len(read_names) + len(copies) == arrived
    rows = Counter(row["source_file"] for kind in ("documents", "removed")
                   for row in _rows(workdir, kind, ["source_file"]))
    rows.update(row["source_file"] for row in _rows(workdir, "errors", ["source_file", "reason"])
                if row["reason"] != "damaged_file")
    for name in read_names:
        stats = ReadStats()
        for _ in iter_warc(src / name, stats=stats):
            pass
        assert rows[name] == stats.responses, name


def _assert_no_document_kept_twice(workdir: Path, records: list[dict]) -> None:
    """Distinct ids, no two kept documents in one MinHash bucket, and the re-crawled pages removed
    pointing at documents kept by earlier versions."""
    kept = _rows(workdir, "documents", ["id"])
    assert len({row["id"] for row in kept}) == len(kept) == sum(r["stats"]["kept"] for r in records)
    buckets: dict[tuple[int, int], str] = {}
    for row in _rows(workdir, "dedup_index", ["id", "kept_as", "minhash_bands"]):
        if row["kept_as"] == row["id"] and row["minhash_bands"]:
            for bucket, band in enumerate(row["minhash_bands"]):
                assert buckets.setdefault((bucket, band), row["id"]) == row["id"], "two kept documents share a bucket"
    version_of = {row["id"]: int(row["shard"][1:5]) for row in kept}
    duplicates = [row for row in _rows(workdir, "removed", ["source_file", "filter", "duplicate_of"])
                  if row["filter"] in DUPLICATE_FILTERS and "recrawl" in row["source_file"]]
    assert duplicates
    for row in duplicates:
        assert version_of.get(row["duplicate_of"], NIGHTS) < int(row["shard"][1:5]), row


def _assert_history(data_id: str, tokenize_id: str) -> None:
    """Every run of both deployments is on the server with its state: the killed one never completed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        states = {
            name: Counter(run.state.type.value for run in client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])), limit=200))
            for name, deployment_id in (("data", data_id), ("tokenize", tokenize_id))
        }
    assert states["tokenize"] == Counter({"COMPLETED": NIGHTS - 1})
    assert states["data"]["COMPLETED"] == NIGHTS - 1
    assert states["data"]["RUNNING"] + states["data"]["CRASHED"] == 1  # the killed run, until the server gives up on it
