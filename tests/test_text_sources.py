"""Text datasets as the data stage's source: plain text, JSON Lines and Parquet files, broken ones too."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmforge.config import DataConfig, ReaderConfig
from tasks.data.shards import plan_shards
from tasks.data.sources import SourceError, resolve_local
from tasks.data.text_reader import TextDocument, count_rows, iter_text_file
from tasks.data.warc_reader import ReadStats, SkippedRecord

PROSE = ("The committee met on Tuesday to discuss the new library. Members agreed that the reading room "
         "needs more light, and that the children's section should open on weekends. ")

# FineWeb's published shard schema.
FINEWEB_SCHEMA = pa.schema([
    ("text", pa.string()), ("id", pa.string()), ("dump", pa.string()), ("url", pa.string()), ("date", pa.string()),
    ("file_path", pa.string()), ("language", pa.string()), ("language_score", pa.float64()),
    ("token_count", pa.int64()),
])


def _read(path: Path, **kwargs) -> tuple[list[TextDocument | SkippedRecord], ReadStats]:
    stats = ReadStats()
    return list(iter_text_file(path, stats=stats, **kwargs)), stats


def _accounted(stats: ReadStats) -> bool:
    return stats.responses == stats.html + sum(n for reason, n in stats.skipped.items() if reason != "damaged_file")


def _fineweb_rows(n: int) -> list[dict]:
    return [{
        "text": f"Document {i}. {PROSE * 3}", "id": f"<urn:uuid:{i:08d}>", "dump": "CC-MAIN-2024-10",
        "url": f"https://example.org/{i}", "date": "2024-02-21T10:00:00Z", "file_path": "s3://x.warc.gz",
        "language": "en", "language_score": 0.97, "token_count": 120,
    } for i in range(n)]


def test_a_plain_text_file_is_one_document(tmp_path: Path) -> None:
    path = tmp_path / "book.txt"
    path.write_bytes("\ufeffFirst line.\r\nSecond line \xff.\r".encode("utf-8").replace(b"\xc3\xbf", b"\xff"))
    items, stats = _read(path, name="books/book.txt")
    [document] = items
    assert isinstance(document, TextDocument)
    assert document.text == "First line.\nSecond line \ufffd.\n"  # BOM dropped, a bad byte replaced
    assert (document.id, document.url, document.record_index, document.replaced_chars) == ("books/book.txt#0", "", 0, 1)
    assert (stats.records, stats.responses, stats.html) == (1, 1, 1)


def test_json_lines_rows_and_their_faults(tmp_path: Path) -> None:
    lines = [
        json.dumps({"text": PROSE, "id": "a", "url": "https://a.example/", "date": "2024-01-01"}),
        "{not json",
        json.dumps({"body": PROSE}),
        json.dumps({"text": 42}),
        json.dumps({"text": "   "}),
        json.dumps(["a list"]),
        "",  # a blank line is not a row
        json.dumps({"text": "Lone \ud800 surrogate."}),
        json.dumps({"content": PROSE}),
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    items, stats = _read(path)
    reasons = [item.reason if isinstance(item, SkippedRecord) else "kept" for item in items]
    assert reasons == ["kept", "bad_json", "missing_text", "not_text", "empty_text", "bad_json", "kept", "missing_text"]
    first, surrogate = items[0], items[6]
    assert (first.id, first.url, first.crawl_date) == ("a", "https://a.example/", "2024-01-01")
    assert surrogate.text == "Lone \ufffd surrogate." and surrogate.replaced_chars == 1 and surrogate.id == "rows.jsonl#7"
    assert [item.record_index for item in items] == [0, 1, 2, 3, 4, 5, 7, 8]  # line numbers
    assert stats.responses == 8 and stats.html == 2 and _accounted(stats)
    # Another column holds the text.
    items, _ = _read(path, text_column="content")
    assert [isinstance(item, TextDocument) for item in items].count(True) == 1


def test_an_overlong_line_is_passed_over_in_bounded_steps(tmp_path: Path) -> None:
    limits = ReaderConfig(max_payload_bytes=65_536)
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({"text": "x" * 200_000}) + "\n" + json.dumps({"text": PROSE}) + "\n", encoding="utf-8")
    items, stats = _read(path, limits=limits)
    assert [getattr(item, "reason", "kept") for item in items] == ["too_large", "kept"]
    assert _accounted(stats)


def test_a_cut_off_gzip_file_ends_with_one_damaged_row(tmp_path: Path) -> None:
    rows = "".join(json.dumps({"text": f"{i} {PROSE}"}) + "\n" for i in range(200))
    whole = gzip.compress(rows.encode("utf-8"))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    items, stats = _read(path)
    assert isinstance(items[-1], SkippedRecord) and items[-1].reason == "damaged_file"
    assert 0 < stats.html < 200 and stats.damaged and _accounted(stats)


def test_fineweb_parquet_shards_are_read_and_split_by_their_row_count(tmp_path: Path) -> None:
    path = tmp_path / "000_00000.parquet"
    pq.write_table(pa.Table.from_pylist(_fineweb_rows(10), schema=FINEWEB_SCHEMA), path, row_group_size=4)
    assert count_rows(path) == 10
    items, stats = _read(path, start=3, stop=7)
    assert [item.id for item in items] == [f"<urn:uuid:{i:08d}>" for i in range(3, 7)]
    assert items[0].url == "https://example.org/3" and items[0].crawl_date == "2024-02-21T10:00:00Z"
    assert stats.responses == 4
    shards = plan_shards([path], 4, {str(path): "digest"})
    assert [(s.start, s.stop) for s in shards] == [(0, 4), (4, 8), (8, None)]
    # JSON Lines and plain text cannot be counted without reading them: one shard each.
    other = tmp_path / "rows.jsonl"
    other.write_text(json.dumps({"text": PROSE}) + "\n")
    assert [(s.start, s.stop) for s in plan_shards([other], 4, {str(other): "d"})] == [(0, None)]


def test_a_damaged_parquet_file_is_a_row_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    pq.write_table(pa.Table.from_pylist(_fineweb_rows(5), schema=FINEWEB_SCHEMA), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a download cut off: no footer
    items, stats = _read(path)
    assert [item.reason for item in items] == ["damaged_file"] and "not_parquet" in items[0].detail
    assert stats.damaged and _accounted(stats)
    assert count_rows(path) is None
    path.write_bytes(b"not parquet at all")
    items, stats = _read(path)
    assert [item.reason for item in items] == ["damaged_file"] and stats.responses == 0


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".txt"])
def test_fuzzed_files_never_raise_and_every_row_is_accounted_for(tmp_path: Path, suffix: str) -> None:
    rng = random.Random(7)
    rows = "".join(json.dumps({"text": f"{i} {PROSE}", "id": str(i)}) + "\n" for i in range(50)).encode("utf-8")
    clean = gzip.compress(rows) if suffix.endswith(".gz") else rows
    for trial in range(40):
        data = bytearray(clean)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if trial % 3 == 0:
            del data[rng.randrange(len(data)):]
        path = tmp_path / f"fuzz{trial}{suffix}"
        path.write_bytes(bytes(data))
        items, stats = _read(path)
        assert _accounted(stats)
        assert all(isinstance(item, TextDocument | SkippedRecord) for item in items)


def test_a_folder_gives_its_warc_files_or_else_its_text_files(tmp_path: Path) -> None:
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.jsonl").write_text("{}\n")
    (tmp_path / "texts" / "b.parquet").write_bytes(b"")
    (tmp_path / "texts" / "notes.md").write_text("not a dataset")
    assert [p.name for p in resolve_local(str(tmp_path / "texts"))] == ["a.jsonl", "b.parquet"]
    (tmp_path / "crawl").mkdir()
    (tmp_path / "crawl" / "x.warc.gz").write_bytes(b"")
    (tmp_path / "crawl" / "README.txt").write_text("how this crawl was made")
    assert [p.name for p in resolve_local(str(tmp_path / "crawl"))] == ["x.warc.gz"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no .warc, .warc.gz, .txt, .jsonl, .jsonl.gz or .parquet files"):
        resolve_local(str(tmp_path / "empty"))


def test_the_data_stage_on_text_files(tmp_path: Path, prefect_harness, lid_model_path: Path) -> None:
    """Text rows skip extraction; with the FineWeb filters on they are still filtered and deduplicated,
    and every row is kept, removed with its reason, or an error."""
    from flows.data import data_flow

    from tasks.data.sample_corpus.prose import prose_paragraphs

    # Web-like documents that pass FineWeb's filters: a few paragraphs of reference prose each.
    paragraphs = [p.text for p in prose_paragraphs()]
    passages = ["\n".join(paragraphs[i : i + 6]) for i in range(0, 60, 6)]
    source = tmp_path / "src"
    source.mkdir()
    rows = _fineweb_rows(6)
    for row, passage in zip(rows, passages):
        row["text"] = passage
    rows[1]["text"] = "Buy now! " * 30  # repetitive: Gopher's repetition filter
    rows[2]["text"] = rows[0]["text"]  # an exact duplicate
    rows[3]["text"] = "Der Ausschuss traf sich am Dienstag, um über die neue Bibliothek zu sprechen. " * 6
    pq.write_table(pa.Table.from_pylist(rows, schema=FINEWEB_SCHEMA), source / "fineweb.parquet")
    (source / "more.jsonl").write_text(
        json.dumps({"text": passages[8], "url": "https://b.example/x"}) + "\nnot json\n", encoding="utf-8")
    (source / "book.txt").write_text(passages[9], encoding="utf-8")
    config = DataConfig(source=str(source), max_workers=1)
    config.language.model_path = str(lid_model_path)
    workdir = tmp_path / "work"
    assert data_flow(workdir=str(workdir), config=config)["status"] == "ran"
    stats = json.loads((workdir / "data" / "stats.json").read_text())
    assert stats["responses"] == 9 and stats["accounted"] == 9
    assert stats["errors"] == {"bad_json": 1}
    removed = {name: count for name, count in stats["removed"].items() if count}
    assert removed == {"exact_dedup": 1, "language": 1, "gopher_repetition": 1}
    assert stats["extracted"] == 8 and stats["kept"] == 5
    kept = pa.concat_tables(pq.read_table(p) for p in sorted((workdir / "data" / "documents").glob("*.parquet")))
    assert kept.num_rows == 5
    ids = kept.column("id").to_pylist()
    assert "<urn:uuid:00000000>" in ids and "book.txt#0" in ids and "more.jsonl#0" in ids

    # No text filters: only dedup removes anything.
    unfiltered = DataConfig(source=str(source), max_workers=1, text_filters="none")
    workdir = tmp_path / "unfiltered"
    data_flow(workdir=str(workdir), config=unfiltered)
    stats = json.loads((workdir / "data" / "stats.json").read_text())
    assert stats["kept"] == 7 and {name for name, count in stats["removed"].items() if count} == {"exact_dedup"}


def test_json_that_python_refuses_is_a_bad_row_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text('{"text": ' + "9" * 5000 + "}\n" + "[" * 100_000 + "]" * 100_000 + "\n"
                    + json.dumps({"text": PROSE}) + "\n", encoding="utf-8")
    items, stats = _read(path)
    assert [getattr(item, "reason", "kept") for item in items] == ["bad_json", "bad_json", "kept"]
    assert _accounted(stats)


def test_a_parquet_file_without_the_text_column_says_which_columns_it_has(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"body": ["a", "b"], "id": ["1", "2"]}), path)
    items, stats = _read(path)
    assert [item.reason for item in items] == ["missing_text", "missing_text"]
    assert "no column 'text' in the file (its columns: body, id)" in items[0].detail
    assert _accounted(stats)
