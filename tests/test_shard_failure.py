"""A shard that crashes fails alone: its records become errors, the other shards are published,
the stage ends with one clear line and no manifest, and the next run redoes that shard only."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llmforge.config import DataConfig
from tasks.data import stage as data_stage
from tasks.data.report import funnel_rows
from tasks.data.shard_failure import SHARD_FAILED, failed_shards
from tasks.data.shards import file_digests, plan_shards

FAILING = "pywb-example.com.warc.gz"  # 2 responses
OTHERS = ("jwarc-commoncrawl.org-single-response.warc.gz", "CC-MAIN-2024-22-whirlwind-an.wikipedia.warc.gz")
MESSAGE = (
    f"1 of 3 shards failed (first: {FAILING}: OSError: [Errno 5] Input/output error); "
    "the other shards are published; re-run to retry the failed shards"
)


def _rows(directory: Path) -> list[dict]:
    return [row for path in sorted(directory.glob("*.parquet")) for row in pq.read_table(path).to_pylist()]


@pytest.mark.slow
@pytest.mark.integration
def test_a_crashing_shard_fails_alone_and_the_next_run_redoes_only_it(
    prefect_harness, shared_data: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Shards run in threads here, so the fault injected into this process reaches them."""
    from prefect.task_runners import ThreadPoolTaskRunner

    import flows.data
    from flows.data import data_flow
    from llmforge.manifest import IncompleteStage

    source = tmp_path / "warcs"
    source.mkdir()
    for name in (FAILING, *OTHERS):
        (source / name).write_bytes((shared_data / "warc" / name).read_bytes())
    monkeypatch.setattr(flows.data, "shard_runner", lambda *args: ThreadPoolTaskRunner(max_workers=2))
    process_shard = data_stage.process_shard

    def failing_on_one_file(shard, *args):
        if shard.name == FAILING:
            raise OSError(5, "Input/output error")
        return process_shard(shard, *args)

    monkeypatch.setattr(data_stage, "process_shard", failing_on_one_file)
    work, config = tmp_path / "work", DataConfig(source=str(source))
    with pytest.raises(IncompleteStage) as raised:
        data_flow(workdir=str(work), config=config)
    assert str(raised.value) == MESSAGE

    data = work / "data"
    assert not (data / "manifest.json").exists()
    assert {row["source_file"] for row in _rows(data / "documents")} == {OTHERS[0]}  # the others are published
    stats = json.loads((data / "stats.json").read_text())
    [failed] = stats["failed_shards"]
    traceback = failed.pop("traceback")
    assert failed == {"shard": failed["shard"], "file": FAILING, "range": [0, None],
                      "error": "OSError: [Errno 5] Input/output error", "responses": 2}
    # The console got one line; where it was raised is kept here for whoever debugs it.
    assert "in failing_on_one_file" in traceback and traceback.endswith("OSError: [Errno 5] Input/output error\n")
    entry = stats["per_file"][FAILING]
    assert entry["responses"] == 2 and entry["errors"] == {SHARD_FAILED: 2} and entry["kept"] == 0
    assert stats["errors"][SHARD_FAILED] == 2
    assert stats["accounted"] == stats["responses"]
    rows = {row["step"]: row for row in funnel_rows(stats)}
    assert rows["records of failed shards (stats: failed_shards)"]["removed"] == 2
    errors = [row for row in _rows(data / "errors") if row["source_file"] == FAILING]
    assert [(row["reason"], row["detail"]) for row in errors] == [(SHARD_FAILED, failed["error"])] * 2
    assert all(row["id"] and row["url"] for row in errors)

    monkeypatch.setattr(data_stage, "process_shard", process_shard)  # the fault is gone
    outcome = data_flow(workdir=str(work), config=config)
    assert outcome["status"] == "ran" and outcome["metrics"]["reused_shards"] == 2
    stats = json.loads((data / "stats.json").read_text())
    assert "failed_shards" not in stats and SHARD_FAILED not in stats["errors"]
    assert stats["per_file"][FAILING]["responses"] == 2 and (data / "manifest.json").is_file()


def test_a_shard_whose_file_cannot_be_read_is_a_failed_shard_with_an_unknown_count(shared_data: Path, tmp_path: Path) -> None:
    warc = tmp_path / FAILING
    warc.write_bytes((shared_data / "warc" / FAILING).read_bytes())
    [shard] = plan_shards([warc], 0, file_digests([warc]))
    warc.unlink()  # gone between planning and reading
    summary = data_stage.run_shard(shard, DataConfig(), str(tmp_path / "data"), "code")
    assert summary["failed"]["error"].startswith("FileNotFoundError: ")
    assert summary["failed"]["responses_known"] is False
    assert failed_shards([summary])[0]["responses"] is None
    assert not (tmp_path / "data" / "_work" / f"{shard.key}.done.json").exists()
    staged = pq.read_table(tmp_path / "data" / "_work" / f"{shard.key}.errors.parquet")
    assert staged.num_rows == 0


def test_a_task_that_died_is_recorded_as_a_failed_shard(shared_data: Path, tmp_path: Path) -> None:
    """The worker process itself can die; the flow records the shard as failed, not the run."""
    from flows.data import _shard_result

    warc = shared_data / "warc" / FAILING
    [shard] = plan_shards([warc], 0, file_digests([warc]))

    class DeadWorker:
        def result(self):
            raise RuntimeError("A process in the process pool was terminated abruptly")

    summary = _shard_result(DeadWorker(), shard, str(tmp_path), DataConfig())
    assert "in result" in summary["failed"].pop("traceback")
    assert summary["failed"] == {"error": "RuntimeError: A process in the process pool was terminated abruptly",
                                 "responses_known": True}
    assert summary["skipped"] == {SHARD_FAILED: 2} and summary["responses"] == 2
