"""The data stage through Prefect: real WARCs fully accounted for, and resuming after a crash."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llmforge.config import DataConfig
from llmforge.fingerprint import source_digest
from llmforge.stages import STAGES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _rows(directory: Path, columns: list[str]) -> list[dict]:
    rows: list[dict] = []
    for path in sorted(directory.glob("*.parquet")):
        rows += pq.read_table(path, columns=columns).to_pylist()
    return rows


def test_every_response_record_of_the_shared_warcs_is_accounted_for(prefect_harness, shared_data, tmp_path):
    from flows.data import data_flow
    from tasks.data.warc_reader import ReadStats, iter_warc

    warc_dir = shared_data / "warc"
    outcome = data_flow(workdir=str(tmp_path), config=DataConfig(source=str(warc_dir), max_workers=2))
    assert outcome["status"] == "ran"
    stats = json.loads((tmp_path / "data" / "stats.json").read_text())

    per_file: Counter = Counter()
    data_dir = tmp_path / "data"
    for kind in ("documents", "removed"):
        per_file.update(r["source_file"] for r in _rows(data_dir / kind, ["source_file"]))
    per_file.update(r["source_file"] for r in _rows(data_dir / "errors", ["source_file", "reason"]) if r["reason"] != "damaged_file")

    files = sorted(warc_dir.glob("*.warc*"))
    assert {f.name for f in files} == set(stats["per_file"])
    for path in files:
        read = ReadStats()
        for _ in iter_warc(path, stats=read):
            pass
        entry = stats["per_file"][path.name]
        assert entry["responses"] == read.responses, path.name
        assert per_file[path.name] == read.responses, f"{path.name}: rows {per_file[path.name]} != responses {read.responses}"
        assert entry["kept"] + sum(entry["removed"].values()) + sum(
            v for k, v in entry["errors"].items() if k != "damaged_file"
        ) == read.responses, path.name
    assert stats["accounted"] == stats["responses"]
    assert stats["per_file"]["resiliparse-clipped-record.warc.gz"]["errors"].get("truncated") == 1
    assert stats["kept"] > 0
    # With the locked trafilatura every shard extracts with the accelerator, and the manifest says so.
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    [use] = manifest["execution"]["accelerator"]
    assert use["mode"] == "auto" and use["active"] and use["failed_guard"] is None, use
    assert use["shards"] == sum(1 for f in files if stats["per_file"][f.name]["html"])


def test_a_stage_killed_half_way_reuses_finished_shards_and_gives_the_same_documents(prefect_harness, tmp_path):
    from flows.data import data_flow
    from tasks.data import stage as data_stage
    from tasks.data.shards import file_digests, plan_shards
    from tasks.data.sources import resolve_source

    config = DataConfig(sample_pages=120, records_per_shard=60, max_workers=2)
    clean = tmp_path / "clean"
    assert data_flow(workdir=str(clean), config=config)["metrics"]["shards"] >= 3

    # The crash: two shards finished, a third left a result file but no completion marker,
    # a fourth a temporary file; the final outputs were never written.
    crashed = tmp_path / "crashed"
    files = resolve_source(config, crashed)
    shards = plan_shards(files, config.records_per_shard, file_digests(files))
    code = source_digest(STAGES["data"].code_modules)
    for shard in shards[:3]:
        data_stage.process_shard(shard, config, str(crashed / "data"), code)
    (crashed / "data" / "_work" / f"{shards[2].key}.done.json").unlink()
    (crashed / "data" / "_work" / f".{shards[3].key}.candidates.parquet.x.tmp").write_bytes(b"half a file")

    resumed = data_flow(workdir=str(crashed), config=config)
    assert resumed["status"] == "ran"
    assert resumed["metrics"]["reused_shards"] == 2

    def documents(root: Path) -> list[dict]:
        return _rows(root / "data" / "documents", ["id", "url", "text"])

    assert documents(crashed) == documents(clean)
    assert _rows(crashed / "data" / "removed", ["id", "filter"]) == _rows(clean / "data" / "removed", ["id", "filter"])


def test_a_common_crawl_source_over_a_faulty_network_gives_the_same_documents_as_local_files(
    prefect_harness, shared_data, tmp_path
):
    import gzip
    import shutil

    from flows.data import data_flow
    from http_fault_server import serve

    names = ["dolma-sample-0000-wget-2024.warc.gz", "CC-MAIN-2020-34-sample-resiliparse.warc.gz"]
    crawl_id = "CC-MAIN-2099-01"
    served, local = tmp_path / "server", tmp_path / "local-warcs"
    paths = []
    for index, name in enumerate(names):
        relative = f"crawl-data/{crawl_id}/segments/1.{index}/warc/{name}"
        (served / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "warc" / name, served / relative)
        local.mkdir(exist_ok=True)
        shutil.copyfile(shared_data / "warc" / name, local / name)
        paths.append(relative)
    (served / f"crawl-data/{crawl_id}/warc.paths.gz").write_bytes(gzip.compress("\n".join(paths).encode()))
    faults = {p: ["503", "drop_after:20000", "short:50000", "ok"] for p in paths}

    with serve(served, faults) as server:
        remote = data_flow(
            workdir=str(tmp_path / "remote"),
            config=DataConfig(source=f"cc:{crawl_id}", cc_max_files=2, cc_base_url=server.base_url,
                              cc_backoff_seconds=0.01, max_workers=2),
        )
        assert sum(r.status == 503 for r in server.requests) == len(paths), "every file met a 503 first"
    from_disk = data_flow(workdir=str(tmp_path / "disk"), config=DataConfig(source=str(local), max_workers=2))
    assert remote["status"] == from_disk["status"] == "ran"
    columns = ["id", "url", "text", "record_index"]
    assert _rows(tmp_path / "remote" / "data" / "documents", columns) == _rows(tmp_path / "disk" / "data" / "documents", columns)
    assert remote["metrics"]["documents"] == from_disk["metrics"]["documents"] > 0
    # A crawl's files are named by their path in the crawl, local files by their path under the folder given.
    remote_names = {r["source_file"] for r in _rows(tmp_path / "remote" / "data" / "documents", ["source_file"])}
    disk_names = {r["source_file"] for r in _rows(tmp_path / "disk" / "data" / "documents", ["source_file"])}
    assert remote_names <= set(paths) and disk_names <= set(names)
    assert {Path(name).name for name in remote_names} == disk_names


def test_text_filters_run_in_batches_without_changing_any_output(shared_data, tmp_path, monkeypatch):
    """Extraction runs ahead of language ID and the text filters by a batch of documents;
    the staged rows are the same, in the same order, whatever the batch size."""
    from tasks.data import recipe
    from tasks.data import stage as data_stage
    from tasks.data.shards import file_digests, plan_shards

    warc = shared_data / "warc" / "ukwa-data.gov.uk-2014-crawl-a.warc.gz"  # drops at four steps, keeps 16
    config = DataConfig(records_per_shard=0)
    shard = plan_shards([warc], 0, file_digests([warc]))[0]
    staged = {}
    for batch in (1, 3, 10_000):
        monkeypatch.setattr(recipe, "TEXT_FILTER_BATCH", batch)
        out = tmp_path / f"batch-{batch}"
        summary = data_stage.process_shard(shard, config, str(out), "code")
        tables = {kind: pq.read_table(out / "_work" / f"{shard.key}.{kind}.parquet").to_pylist()
                  for kind in ("candidates", "removed", "errors")}
        staged[batch] = (tables, summary["filters"]["reasons"], summary["candidates"])
    assert staged[1] == staged[3] == staged[10_000]
    tables = staged[1][0]
    assert tables["candidates"] and len({row["filter"] for row in tables["removed"]}) >= 3
    positions = [row["record_index"] for row in tables["removed"]]
    assert positions == sorted(positions)


def test_shards_processed_in_threads_at_once_match_one_after_the_other(shared_data, tmp_path):
    """A Dask worker may run shards in several threads of one process: each thread gets its
    own extraction child, and the collector settings come back when the last shard ends."""
    import gc
    from concurrent.futures import ThreadPoolExecutor

    from tasks.data import recipe
    from tasks.data import stage as data_stage
    from tasks.data.shards import file_digests, plan_shards

    warcs = [shared_data / "warc" / name for name in
             ("ukwa-data.gov.uk-2014-crawl-a.warc.gz", "dolma-sample-0000-wget-2024.warc.gz")]
    config = DataConfig(records_per_shard=0)
    shards = plan_shards(warcs, 0, file_digests(warcs))
    threshold = gc.get_threshold()

    def staged(out: Path) -> list[list[dict]]:
        return [pq.read_table(out / "_work" / f"{shard.key}.{kind}.parquet").to_pylist()
                for shard in shards for kind in ("candidates", "removed", "errors")]

    for shard in shards:
        data_stage.process_shard(shard, config, str(tmp_path / "serial"), "code")
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda shard: data_stage.process_shard(shard, config, str(tmp_path / "threads"), "code"), shards))
    assert staged(tmp_path / "threads") == staged(tmp_path / "serial")
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0
    assert len({key[1] for key in recipe._EXTRACTORS}) >= 2  # one child per thread
    recipe.close_shared_extractors()
