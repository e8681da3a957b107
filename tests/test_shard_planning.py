"""Splitting WARC files into shards that partition their records."""

from __future__ import annotations

from pathlib import Path

from tasks.data.shards import plan_shards
from tasks.data.warc_reader import count_records, iter_warc


def _ids(shards) -> list[str | None]:
    return [item.id for shard in shards for item in iter_warc(shard.path, shard.start, shard.stop)]


def test_record_ranges_partition_each_file(shared_data: Path) -> None:
    path = shared_data / "warc" / "ukwa-data.gov.uk-2014-crawl-a.warc.gz"
    total = count_records(path)
    shards = plan_shards([path], 50, {str(path): "x"})
    assert [(s.start, s.stop) for s in shards] == [(i, i + 50) for i in range(0, total - 50, 50)] + [
        (shards[-1].start, None)
    ]
    assert _ids(shards) == _ids(plan_shards([path], 0, {str(path): "x"}))


def test_max_records_per_file_reads_only_the_first_records(shared_data: Path) -> None:
    path = shared_data / "warc" / "ukwa-data.gov.uk-2014-crawl-a.warc.gz"
    whole = plan_shards([path], 0, {str(path): "x"}, max_records_per_file=30)
    split = plan_shards([path], 20, {str(path): "x"}, max_records_per_file=30)
    assert [(s.start, s.stop) for s in whole] == [(0, 30)]
    assert [(s.start, s.stop) for s in split] == [(0, 20), (20, 30)]
    assert _ids(whole) == _ids(split)
