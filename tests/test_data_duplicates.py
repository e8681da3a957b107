"""Copies in a download folder: identical files read once, a record id seen again removed as a
duplicate (never a crash), and files named by their path under the source, not their base name."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llmforge.config import DataConfig
from tasks.data.duplicates import DUPLICATE_RECORD, SAME_RECORD_ID, repeated_record_ids
from tasks.data.shards import distinct_files, plan_shards
from tasks.data.sources import source_names

A = "pywb-example.com.warc.gz"  # 2 responses
B = "CC-MAIN-2024-22-whirlwind-an.wikipedia.warc.gz"  # 1 response
C = "jwarc-commoncrawl.org-single-response.warc.gz"  # 1 response, kept


def test_identical_files_are_read_once_the_first_in_order_kept() -> None:
    files = [Path("s1/x.warc.gz"), Path("s1/y.warc.gz"), Path("s2/x.warc.gz"), Path("s3/x.warc.gz")]
    digests = {"s1/x.warc.gz": "a", "s1/y.warc.gz": "a", "s2/x.warc.gz": "b", "s3/x.warc.gz": "a"}
    distinct, copies = distinct_files(files, digests)
    assert distinct == [Path("s1/x.warc.gz"), Path("s2/x.warc.gz")]
    assert copies == {"s1/y.warc.gz": "s1/x.warc.gz", "s3/x.warc.gz": "s1/x.warc.gz"}


def test_a_repeated_record_id_points_at_its_first_occurrence_and_empty_ids_repeat_nothing() -> None:
    labels = ["0:1", "0:2", "1:1", "1:5", "2:0", "2:1"]
    ids = ["<a>", "<b>", "<a>", "", "", "<a>"]
    assert repeated_record_ids(labels, ids) == {"1:1": "0:1", "2:1": "0:1"}


def test_files_are_named_by_their_path_under_the_source_root(tmp_path: Path) -> None:
    for name in ("s1/x.warc.gz", "s2/x.warc.gz", "s2/deep/z.warc", "top.warc.gz"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    from tasks.data.sources import resolve_local

    def names(source: str) -> list[str]:
        config = DataConfig(source=source)
        return sorted(source_names(config, tmp_path, resolve_local(source)).values())

    assert names(str(tmp_path)) == ["s1/x.warc.gz", "s2/deep/z.warc", "s2/x.warc.gz", "top.warc.gz"]
    assert names(str(tmp_path / "s*" / "*.warc.gz")) == ["s1/x.warc.gz", "s2/x.warc.gz"]
    assert names(str(tmp_path / "s2" / "**" / "*.warc*")) == ["deep/z.warc", "x.warc.gz"]
    assert names(str(tmp_path / "s2" / "x.warc.gz")) == ["x.warc.gz"]
    files = resolve_local(str(tmp_path))
    shards = plan_shards(files, 0, {str(p): "d" for p in files}, names=source_names(DataConfig(source=str(tmp_path)), tmp_path, files))
    assert [s.name for s in shards] == ["s1/x.warc.gz", "s2/deep/z.warc", "s2/x.warc.gz", "top.warc.gz"]


def _rows(directory: Path) -> list[dict]:
    return [row for path in sorted(directory.glob("*.parquet")) for row in pq.read_table(path).to_pylist()]


@pytest.fixture(scope="module")
def copies_run(prefect_harness, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A download folder with copies: A three times (two names, three folders), B under A's name in
    another folder, C's records twice in one file and once more in another."""
    from prefect.task_runners import ThreadPoolTaskRunner

    import flows.data
    from flows.data import data_flow

    root = tmp_path_factory.mktemp("copies")
    source = root / "downloads"
    warcs = shared_data / "warc"
    layout = {"s1/x.warc.gz": [A], "s1/y.warc.gz": [A], "s2/x.warc.gz": [B], "s3/x.warc.gz": [A],
              "twice.warc.gz": [C, C], "zz-again.warc.gz": [C]}
    for name, parts in layout.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(b"".join((warcs / part).read_bytes() for part in parts))  # gzip members concatenate
    runner = pytest.MonkeyPatch()
    runner.setattr(flows.data, "shard_runner", lambda *args: ThreadPoolTaskRunner(max_workers=2))
    try:
        outcome = data_flow(workdir=str(root / "work"), config=DataConfig(source=str(source)))
    finally:
        runner.undo()
    assert outcome["status"] == "ran"
    return root / "work"


@pytest.mark.slow
@pytest.mark.integration
def test_identical_files_under_other_names_and_folders_are_processed_once_and_reported(copies_run: Path) -> None:
    stats = json.loads((copies_run / "data" / "stats.json").read_text())
    assert stats["duplicate_files"] == {"s1/y.warc.gz": "s1/x.warc.gz", "s3/x.warc.gz": "s1/x.warc.gz"}
    assert set(stats["per_file"]) == {"s1/x.warc.gz", "s2/x.warc.gz", "twice.warc.gz", "zz-again.warc.gz"}
    assert stats["per_file"]["s1/x.warc.gz"]["responses"] == 2
    assert stats["per_file"]["s2/x.warc.gz"]["responses"] == 1  # B, not merged with s1/x
    assert stats["accounted"] == stats["responses"] == 2 + 1 + 2 + 1


@pytest.mark.slow
@pytest.mark.integration
def test_a_record_seen_again_is_removed_as_a_duplicate_record_naming_the_one_kept(copies_run: Path) -> None:
    data = copies_run / "data"
    stats = json.loads((data / "stats.json").read_text())
    [kept] = [row for row in _rows(data / "documents") if row["source_file"] == "twice.warc.gz"]
    repeats = [row for row in _rows(data / "removed") if row["filter"] == DUPLICATE_RECORD]
    assert sorted(row["source_file"] for row in repeats) == ["twice.warc.gz", "zz-again.warc.gz"]
    for row in repeats:
        assert row["id"] == row["duplicate_of"] == kept["id"]
        assert row["reason"] == f"{SAME_RECORD_ID} (kept: twice.warc.gz record {kept['record_index']})"
    assert stats["removed"][DUPLICATE_RECORD] == 2
    assert stats["removed_reasons"][DUPLICATE_RECORD] == {SAME_RECORD_ID: 2}
    assert [step["step"] for step in stats["funnel"]][-3:] == ["after duplicate_record", "after exact_dedup", "after minhash"]
    assert stats["funnel"][-1]["count"] == stats["kept"]
    for name, entry in stats["per_file"].items():
        errors = sum(v for k, v in entry["errors"].items() if k != "damaged_file")
        assert entry["kept"] + sum(entry["removed"].values()) + errors == entry["responses"], name
    assert stats["per_file"]["twice.warc.gz"]["removed"][DUPLICATE_RECORD] == 1
    assert stats["per_file"]["zz-again.warc.gz"]["removed"] == {"exact_dedup": 0, "minhash": 0, DUPLICATE_RECORD: 1}


@pytest.mark.slow
@pytest.mark.integration
def test_rows_name_their_file_by_its_path_under_the_source(copies_run: Path) -> None:
    data = copies_run / "data"
    named: Counter = Counter()
    for kind in ("documents", "removed", "errors"):
        named.update(row["source_file"] for row in _rows(data / kind))
    stats = json.loads((data / "stats.json").read_text())
    assert named == {name: entry["responses"] for name, entry in stats["per_file"].items()}


def test_the_stats_of_a_clean_run_have_no_new_keys() -> None:
    from tasks.data.stats import build_stats
    from tasks.data.steps import FilterBook

    summary = {"source_file": "f", "records": 1, "responses": 1, "html": 1, "extracted": 1, "replaced_chars": 0,
               "skipped": {}, "damaged": None, "filters": FilterBook().as_dict()}
    final = {"kept": 1, "pii_replacements": 0, "exact_dedup": 0, "minhash": 0, DUPLICATE_RECORD: 0}
    stats = build_stats([summary], [final])
    assert not {"duplicate_files", "failed_shards"} & set(stats)
    assert DUPLICATE_RECORD not in stats["removed"] and DUPLICATE_RECORD not in stats["per_file"]["f"]["removed"]
    assert DUPLICATE_RECORD not in stats["removed_reasons"]
    assert not any("duplicate_record" in step["step"] for step in stats["funnel"])



def test_the_per_file_table_says_which_files_were_copies() -> None:
    from tasks.data.report import per_file_rows

    entry = {"records": 3, "responses": 2, "html": 2, "kept": 1, "removed": {"language": 1}, "errors": {},
             "damaged": None}
    rows = per_file_rows({"per_file": {"s1/x.warc.gz": entry}, "duplicate_files": {"s3/x.warc.gz": "s1/x.warc.gz"}})
    assert [row["file"] for row in rows] == ["s1/x.warc.gz", "s3/x.warc.gz (same content as s1/x.warc.gz: not read)"]
    assert rows[0]["kept"] == 1 and rows[1]["responses"] == ""
