"""A month of nightly ingestion in a few minutes: 30 data runs on a folder that grows, each followed by
tokenize, against a real Prefect server.

Every night brings a fresh crawl file (the sample generator with a new seed, so new pages, with its
own damaged and duplicated records) and, on some nights, a re-crawl of an earlier file under new
record ids, a near copy of one, a byte copy under another name, a truncated file or a file that is no
WARC at all. One night's run is killed half-way (the CLI, SIGKILL to its process group) and the next
run completes that version. The deployment path of the same chain (schedule → data → event → tokenize)
is tested in tests/test_deployments.py; here the flows run in this process, to fit 30 nights in CI.
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


def _kill_half_way(workdir: Path, config_file: Path, env: dict[str, str]) -> None:
    """Run `llmforge data` and SIGKILL it, with every process under it, once its first shard is staged."""
    import psutil

    process = subprocess.Popen(
        [sys.executable, "-m", "llmforge.cli", "data", "--workdir", str(workdir), "--config", str(config_file)],
        env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
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
    from tasks.data.warc_reader import ReadStats, iter_warc

    src, workdir = tmp_path / "incoming", tmp_path / "work"
    src.mkdir()
    config = DataConfig(source=str(src), max_workers=1)
    tokenize = TokenizeConfig(vocab_size=512)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(REPO_ROOT)}
    config_file = tmp_path / "llmforge.yaml"  # the killed CLI run's config: the same recipe as the others
    config_file.write_text(json.dumps({"data": config.model_dump(mode="json", exclude_defaults=True)}))
    rng = random.Random(7)
    arrived: list[Path] = []
    tokenizer_digest = None
    for night in range(1, NIGHTS + 1):
        crawl_files = [p for p in arrived if p.name.endswith(".warc.gz") and "truncated" not in p.name]
        arrived += _night_files(night, src, shared_data, crawl_files, rng)
        if night == KILLED_NIGHT:
            _kill_half_way(workdir, config_file, env)
            assert not (workdir / "data" / "versions" / f"{night:04d}.json").exists()
            continue  # the next night's run completes this version, with that night's files too
        outcome = data_flow(workdir=str(workdir), config=config)
        assert outcome["status"] == "ran", (night, outcome)
        tokenize_flow(workdir=str(workdir), config=tokenize)
        digest = sha256_file(workdir / "tokenizer" / "tokenizer.json")
        assert digest == (tokenizer_digest := tokenizer_digest or digest), f"night {night}: the tokenizer changed"

    records = [json.loads(p.read_text()) for p in sorted((workdir / "data" / "versions").glob("*.json"))]
    assert [r["version"] for r in records] == list(range(1, NIGHTS))  # the killed night's version came with the next
    assert all(r["mode"] == "append" for r in records[1:]) and not any(r["incomplete"] for r in records)
    assert {f"night-{KILLED_NIGHT:02d}/crawl.warc.gz", f"night-{KILLED_NIGHT + 1:02d}/crawl.warc.gz"} <= set(
        records[KILLED_NIGHT - 1]["inputs"])

    # Every response record of every file read is kept, removed or an error, once.
    read_names = {name: entry for r in records for name, entry in r["inputs"].items() if "copy_of" not in entry}
    copies = {name for r in records for name, entry in r["inputs"].items() if "copy_of" in entry}
    assert copies and len(read_names) + len(copies) == len(arrived)
    rows = Counter(row["source_file"] for kind in ("documents", "removed")
                   for row in _rows(workdir, kind, ["source_file"]))
    rows.update(row["source_file"] for row in _rows(workdir, "errors", ["source_file", "reason"])
                if row["reason"] != "damaged_file")
    for name in read_names:
        stats = ReadStats()
        for _ in iter_warc(src / name, stats=stats):
            pass
        assert rows[name] == stats.responses, name

    # No document kept twice: distinct ids, distinct texts, no two kept documents in one MinHash bucket;
    # the re-crawled pages were removed pointing at documents kept by earlier versions.
    kept = _rows(workdir, "documents", ["id", "text"])
    assert len({row["id"] for row in kept}) == len(kept) == sum(r["stats"]["kept"] for r in records)
    index = _rows(workdir, "dedup_index", ["id", "kept_as", "minhash_bands"])
    buckets: dict[tuple[int, int], str] = {}
    for row in index:
        if row["kept_as"] == row["id"] and row["minhash_bands"]:
            for bucket, band in enumerate(row["minhash_bands"]):
                assert buckets.setdefault((bucket, band), row["id"]) == row["id"], "two kept documents share a bucket"
    version_of = {row["id"]: int(row["shard"][1:5]) for row in kept}
    duplicates = [row for row in _rows(workdir, "removed", ["source_file", "filter", "duplicate_of"])
                  if row["filter"] in DUPLICATE_FILTERS and "recrawl" in row["source_file"]]
    assert duplicates
    for row in duplicates:
        assert version_of.get(row["duplicate_of"], 99) < int(row["shard"][1:5]), row

    # Token shards for every document shard, all encoded by the one tokenizer.
    manifest = json.loads((workdir / "tokens" / "manifest.json").read_text())
    assert set(manifest["counts"]["encoded"]) == {p.name for p in (workdir / "data" / "documents").iterdir()}
    assert manifest["counts"]["tokenizer"]["sha256"] == tokenizer_digest

    # The history: every run on the server, with its state.
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(limit=200)
    flows = {f.id: f.name for f in client_flows(runs)}
    mine = [run for run in runs if (run.parameters or {}).get("workdir") == str(workdir)]
    states = Counter((flows[run.flow_id], run.state.type.value if run.state else None) for run in mine)
    assert states[("data", "COMPLETED")] == NIGHTS - 1 and states[("tokenize", "COMPLETED")] == NIGHTS - 1
    killed = [run for run in mine if flows[run.flow_id] == "data" and run.state and run.state.type.value != "COMPLETED"]
    assert len(killed) == 1 and killed[0].state.type.value in ("RUNNING", "CRASHED")


def client_flows(runs: list) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterId

    with get_client(sync_client=True) as client:
        return client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=list({run.flow_id for run in runs}))))
