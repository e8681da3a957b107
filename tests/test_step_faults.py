"""A step that raises on one document: that document becomes an error row, everything else goes on.

Through process_shard (the staged tables) and through the whole data flow (stats.json and
the per-file invariant kept + removed + errors = response records).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llmforge.config import DataConfig
from tasks.data import recipe
from tasks.data.shards import Shard, file_digests, plan_shards
from tasks.data.stage import process_shard
from tasks.data.steps import STEP_ERROR, Document, Step, Verdict

WARC = "ukwa-data.gov.uk-2014-crawl-a.warc.gz"  # 65 responses; 20 documents reach gopher_quality in one batch
FAILING_STEP = "gopher_quality"
CONFIG = DataConfig(records_per_shard=0)


def staged(data_dir: Path, shard: Shard) -> dict[str, list[dict]]:
    return {
        kind: pq.read_table(data_dir / "_work" / f"{shard.key}.{kind}.parquet").to_pylist()
        for kind in ("candidates", "removed", "errors")
    }


@pytest.fixture(scope="module")
def shard(shared_data: Path) -> Shard:
    path = shared_data / "warc" / WARC
    return plan_shards([path], 0, file_digests([path]))[0]


@pytest.fixture(scope="module")
def clean(shard: Shard, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    out = tmp_path_factory.mktemp("clean")
    process_shard(shard, CONFIG, str(out), "code")
    return staged(out, shard)


@pytest.fixture
def victim(clean) -> dict:
    """A document in the middle of the documents that reach the failing step (so the batch holds others)."""
    candidates = clean["candidates"]
    return candidates[len(candidates) // 2]


@pytest.fixture
def fault(monkeypatch: pytest.MonkeyPatch, victim: dict) -> None:
    """The data stage's steps, with the Gopher quality step raising on the victim."""
    shard_steps = recipe.shard_steps

    def raising_on_victim(step: Step):
        def run(batch: Sequence[Document]) -> Sequence[Verdict]:
            if any(document.row["id"] == victim["id"] for document in batch):
                raise ZeroDivisionError("division by zero\n  while counting words")
            return step.run(batch)

        return run

    def with_fault(config: DataConfig, extract: bool = True) -> list[Step]:
        steps = shard_steps(config, extract)
        return [Step(s.name, raising_on_victim(s), s.batch_size) if s.name == FAILING_STEP else s for s in steps]

    monkeypatch.setattr(recipe, "shard_steps", with_fault)


EXPECTED_DETAIL = f"{FAILING_STEP}: ZeroDivisionError: division by zero while counting words"


@pytest.mark.slow
def test_process_shard_records_the_failing_document_and_keeps_the_rest(shard, clean, victim, fault, tmp_path):
    summary = process_shard(shard, CONFIG, str(tmp_path), "code")
    tables = staged(tmp_path, shard)
    assert [r for r in tables["errors"] if r["reason"] == STEP_ERROR] == [{
        "id": victim["id"], "url": victim["url"], "reason": STEP_ERROR, "detail": EXPECTED_DETAIL,
        "source_file": WARC, "record_index": victim["record_index"],
    }]
    assert [r for r in tables["errors"] if r["reason"] != STEP_ERROR] == clean["errors"]
    # Every other document took the path it takes without the fault.
    assert tables["candidates"] == [r for r in clean["candidates"] if r["id"] != victim["id"]]
    assert tables["removed"] == clean["removed"]
    assert summary["filters"]["errors"] == {FAILING_STEP: 1}
    assert summary["candidates"] == len(clean["candidates"]) - 1
    error_positions = [r["record_index"] for r in tables["errors"]]
    assert error_positions == sorted(error_positions)


@pytest.mark.slow
@pytest.mark.integration
def test_the_data_flow_counts_the_failure_as_an_error_of_its_file(
    prefect_harness, shared_data, clean, victim, fault, monkeypatch, tmp_path
):
    """Shards run in threads here, so the fault injected into this process reaches them."""
    from prefect.task_runners import ThreadPoolTaskRunner

    import flows.data
    from flows.data import data_flow

    monkeypatch.setattr(flows.data, "shard_runner", lambda *args: ThreadPoolTaskRunner(max_workers=2))
    outcome = data_flow(workdir=str(tmp_path), config=DataConfig(source=str(shared_data / "warc" / WARC)))
    assert outcome["status"] == "ran"
    data_dir = tmp_path / "data"
    stats = json.loads((data_dir / "stats.json").read_text())

    assert stats["errors"][STEP_ERROR] == 1
    assert stats["accounted"] == stats["responses"]
    entry = stats["per_file"][WARC]
    assert entry["errors"][STEP_ERROR] == 1
    assert entry["kept"] + sum(entry["removed"].values()) + sum(entry["errors"].values()) == entry["responses"]
    step = next(row for row in stats["funnel"] if row["step"] == f"after {FAILING_STEP}")
    assert step["errors"] == 1
    assert stats["funnel"][-1]["count"] == stats["kept"]

    rows: Counter = Counter()
    for kind in ("documents", "removed", "errors"):
        for path in (data_dir / kind).glob("*.parquet"):
            rows[kind] += pq.read_table(path).num_rows
    assert rows["documents"] + rows["removed"] + rows["errors"] == entry["responses"]
    errors = [r for p in (data_dir / "errors").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    assert [(r["id"], r["detail"]) for r in errors if r["reason"] == STEP_ERROR] == [(victim["id"], EXPECTED_DETAIL)]
    documents = {r["id"] for p in (data_dir / "documents").glob("*.parquet") for r in pq.read_table(p).to_pylist()}
    assert victim["id"] not in documents and documents
