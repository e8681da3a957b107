"""WARC reading: every response record accounted for, on real third-party WARCs and on damaged copies."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import magic
import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

import tasks.data.warc_reader as warc_reader
from tasks.data.warc_reader import (
    DAMAGE_KINDS,
    HTML_MIME_TYPES,
    HtmlDocument,
    ReadStats,
    SkippedRecord,
    count_records,
    decode_payload,
    iter_warc,
    to_encodable,
)

CLIPPED = "resiliparse-clipped-record.warc.gz"

# Record counts from ../shared/data/SOURCES.md (stable: they do not depend on libmagic).
KNOWN = {
    "aut-archive.org-2008-heritrix.warc.gz": {"records": 822, "responses": 299},
    "ukwa-data.gov.uk-2014-crawl-a.warc.gz": {"records": 190, "responses": 65},
    "dolma-sample-0000-wget-2024.warc.gz": {"records": 48, "responses": 22},
    "CC-MAIN-2020-34-sample-resiliparse.warc.gz": {"records": 50, "responses": 16},
    "CC-MAIN-2024-22-whirlwind-an.wikipedia.warc.gz": {"records": 4, "responses": 1},
    "jwarc-commoncrawl.org-single-response.warc.gz": {"records": 1, "responses": 1},
    "pywb-example.com.warc.gz": {"records": 6, "responses": 2},
    CLIPPED: {"records": 1, "responses": 1},
}


Items = list[HtmlDocument | SkippedRecord]


def read_all(path: Path, start: int = 0, stop: int | None = None) -> tuple[Items, ReadStats]:
    stats = ReadStats()
    return list(iter_warc(path, start, stop, stats=stats)), stats


def check_accounting(items: Items, stats: ReadStats) -> None:
    """The invariants every read must satisfy, damaged or not."""
    docs = [i for i in items if isinstance(i, HtmlDocument)]
    skipped = [i for i in items if isinstance(i, SkippedRecord)]
    assert stats.responses == stats.html + sum(n for r, n in stats.skipped.items() if r != "damaged_file")
    assert stats.responses == stats.accounted_responses
    assert stats.html == len(docs)
    by_reason: dict[str, int] = {}
    for item in skipped:
        by_reason[item.reason] = by_reason.get(item.reason, 0) + 1
        assert item.reason in warc_reader.SKIP_REASONS
        assert len(item.detail) <= 200 and item.detail.isprintable()
        if item.reason == "damaged_file":
            assert item.id is None and item.detail.split(":")[0] in DAMAGE_KINDS
    assert by_reason == stats.skipped
    assert sum(stats.by_type.values()) == stats.records and all(isinstance(t, str) for t in stats.by_type)
    indices = [i.record_index for i in items]
    records = [i.record_index for i in items if not (isinstance(i, SkippedRecord) and i.reason == "damaged_file")]
    assert indices == sorted(indices) and len(set(records)) == len(records)
    assert len({d.id for d in docs}) == len(docs)
    for doc in docs:
        doc.html.encode("utf-8")  # never raises: unencodable characters were replaced
        assert doc.id.startswith("<urn:") and doc.url and doc.crawl_date


@pytest.fixture(scope="module")
def warc_dir(shared_data: Path) -> Path:
    return shared_data / "warc"


def test_every_shared_warc_accounts_for_every_response(warc_dir: Path) -> None:
    files = sorted(warc_dir.glob("*.warc.gz"))
    assert len(files) >= len(KNOWN)
    for path in files:
        items, stats = read_all(path)
        check_accounting(items, stats)
        assert count_records(path) == stats.records, path.name
        if path.name in KNOWN:
            assert stats.records == KNOWN[path.name]["records"], path.name
            assert stats.responses == KNOWN[path.name]["responses"], path.name
        if path.name != CLIPPED:
            assert stats.damaged is None and "truncated" not in stats.skipped, path.name


def _as_warcio_reads_it(path: Path) -> list[tuple]:
    """The reference for an intact file: warcio's ArchiveIterator with unbounded reads, and
    the classification the module docstring describes."""
    expected: list[tuple] = []
    with open(path, "rb") as fh:
        for index, record in enumerate(ArchiveIterator(fh)):
            if record.rec_type not in ("response", "conversion"):
                continue
            declared = record.rec_headers.get_header("WARC-Identified-Payload-Type")
            payload = record.content_stream().read()
            mime = declared.split(";")[0].strip().lower() if declared else magic.from_buffer(payload, mime=True)
            if mime not in HTML_MIME_TYPES:
                expected.append((index, "non_html"))
                continue
            text, _ = decode_payload(payload)
            headers = record.rec_headers
            html = None if text is None else to_encodable(text)[0]
            expected.append((index, headers.get_header("WARC-Record-ID"), headers.get_header("WARC-Target-URI"), html))
    return expected


def test_intact_warcs_are_read_exactly_as_warcio_reads_them(warc_dir: Path) -> None:
    for path in sorted(warc_dir.glob("*.warc.gz")):
        if path.name == CLIPPED:
            continue
        items, _ = read_all(path)
        got = [
            (i.record_index, i.id, i.url, i.html) if isinstance(i, HtmlDocument)
            else (i.record_index, "non_html") if i.reason == "non_html"
            else (i.record_index, i.id, i.url, None)
            for i in items
        ]
        assert got == _as_warcio_reads_it(path), path.name


def test_record_types_are_counted_but_only_responses_are_documents(warc_dir: Path) -> None:
    _, aut = read_all(warc_dir / "aut-archive.org-2008-heritrix.warc.gz")
    assert aut.by_type == {"warcinfo": 1, "response": 299, "request": 261, "metadata": 261}
    _, pywb = read_all(warc_dir / "pywb-example.com.warc.gz")
    assert pywb.by_type["revisit"] == 1 and pywb.responses == 2 and pywb.html == 2
    _, dolma = read_all(warc_dir / "dolma-sample-0000-wget-2024.warc.gz")
    assert dolma.by_type["resource"] == 2 and dolma.responses == 22


def test_declared_payload_type_decides_and_xhtml_counts_as_html(warc_dir: Path) -> None:
    # Common Crawl declares the payload type on every response: 6 text/html, 10 XHTML.
    items, stats = read_all(warc_dir / "CC-MAIN-2020-34-sample-resiliparse.warc.gz")
    assert stats.html == 16 and not stats.skipped
    assert all(d.url.startswith("http") and d.crawl_date.startswith("2020-08-08") for d in items)


def test_sniffed_non_html_names_the_mime_type(warc_dir: Path) -> None:
    # The 2008 Heritrix crawl has no payload-type headers: its images, scripts and DNS
    # records must be sniffed out, and the 140 responses served as HTML mostly kept.
    items, stats = read_all(warc_dir / "aut-archive.org-2008-heritrix.warc.gz")
    non_html = [i for i in items if isinstance(i, SkippedRecord)]
    assert stats.skipped == {"non_html": len(non_html)}
    details = " ".join(i.detail for i in non_html)
    assert "image/" in details and "(sniffed)" in details
    assert 120 <= stats.html <= 145
    assert any(i.url.startswith("dns:") for i in non_html)


def test_clipped_record_is_reported_truncated_not_read(warc_dir: Path) -> None:
    items, stats = read_all(warc_dir / CLIPPED)
    assert len(items) == 1
    (item,) = items
    assert isinstance(item, SkippedRecord) and item.reason == "truncated"
    assert item.id == "<urn:uuid:f3dfa8fa-f031-4a38-90cc-1dcee3d07bb5>" and "houstonpress.com" in item.url
    assert "88275" in item.detail
    assert stats.skipped == {"truncated": 1} and stats.html == 0
    # The gzip stream is cut too: the file is noted as damaged, reported once (by the record).
    assert stats.damaged is not None


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("aut-archive.org-2008-heritrix.warc.gz", marks=pytest.mark.slow),  # 822 records, ~2 s
        "ukwa-data.gov.uk-2014-crawl-a.warc.gz",
        "dolma-sample-0000-wget-2024.warc.gz",
    ],
)
def test_record_ranges_partition_the_file(warc_dir: Path, name: str) -> None:
    path = warc_dir / name
    whole, whole_stats = read_all(path)
    total = count_records(path)
    for cuts in ([0], [1], [total // 2], [total - 1], [total], [total // 3, 2 * total // 3], [5, 6, 7]):
        bounds = [0, *cuts, None]
        parts: list[HtmlDocument | SkippedRecord] = []
        records = responses = 0
        for start, stop in zip(bounds, bounds[1:]):
            items, stats = read_all(path, start, stop)
            check_accounting(items, stats)
            assert all(start <= i.record_index and (stop is None or i.record_index < stop) for i in items)
            parts += items
            records += stats.records
            responses += stats.responses
        assert parts == whole, cuts
        assert (records, responses) == (whole_stats.records, whole_stats.responses)


def test_range_past_the_end_is_empty(warc_dir: Path) -> None:
    items, stats = read_all(warc_dir / "pywb-example.com.warc.gz", 100, None)
    assert items == [] and stats.records == 0


def test_invalid_range_is_rejected(warc_dir: Path) -> None:
    with pytest.raises(ValueError):
        iter_warc(warc_dir / "pywb-example.com.warc.gz", 5, 2)
    with pytest.raises(ValueError):
        iter_warc(warc_dir / "pywb-example.com.warc.gz", -1)


def test_missing_or_unreadable_file_fails_at_once_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-crawl.warc.gz"
    with pytest.raises(FileNotFoundError, match="no-such-crawl.warc.gz"):
        iter_warc(missing)  # no next(): the error must not wait for iteration
    with pytest.raises(FileNotFoundError, match="no-such-crawl.warc.gz"):
        count_records(missing)
    with pytest.raises(OSError, match=str(tmp_path.name)):
        iter_warc(tmp_path)


def test_empty_file_has_no_records_and_no_damage(tmp_path: Path) -> None:
    empty = tmp_path / "empty.warc.gz"
    empty.write_bytes(b"")
    items, stats = read_all(empty)
    assert items == [] and stats.records == 0 and stats.damaged is None
    assert count_records(empty) == 0


@pytest.mark.parametrize("fraction", [0.003, 0.3, 0.5, 0.9, 0.999])
def test_gzip_file_cut_short_keeps_records_before_the_cut(warc_dir: Path, tmp_path: Path, fraction: float) -> None:
    source = warc_dir / "dolma-sample-0000-wget-2024.warc.gz"
    whole, _ = read_all(source)
    data = source.read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: int(len(data) * fraction)])

    items, stats = read_all(cut)  # must not raise
    check_accounting(items, stats)
    assert stats.damaged is not None
    last = items[-1]
    assert isinstance(last, SkippedRecord) and last.reason in {"truncated", "damaged_file"}
    # Everything before the cut comes out exactly as from the intact file.
    before = items[:-1]
    assert before == whole[: len(before)]
    assert count_records(cut) == stats.records


def test_corrupted_bytes_mid_file_lose_one_record_and_reading_goes_on(warc_dir: Path, tmp_path: Path) -> None:
    source = warc_dir / "ukwa-data.gov.uk-2014-crawl-a.warc.gz"
    whole, whole_stats = read_all(source)
    data = bytearray(source.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 300] = b"\x00" * 300
    broken = tmp_path / "broken.warc.gz"
    broken.write_bytes(bytes(data))

    items, stats = read_all(broken)
    check_accounting(items, stats)
    assert stats.damaged and stats.damaged.startswith("bad_gzip: ")
    assert count_records(broken) == stats.records == whole_stats.records
    # The member holding the zeros is the one record lost; it reports the damage itself.
    (lost,) = [i for i in items if i not in whole]
    assert isinstance(lost, SkippedRecord) and lost.reason == "corrupt_gzip" and lost.url
    assert [i for i in whole if i.record_index != lost.record_index] == [i for i in items if i is not lost]


def test_trailing_garbage_keeps_every_record(warc_dir: Path, tmp_path: Path) -> None:
    source = warc_dir / "pywb-example.com.warc.gz"
    whole, whole_stats = read_all(source)
    spoiled = tmp_path / "garbage.warc.gz"
    spoiled.write_bytes(source.read_bytes() + b"\x00\x01 trailing-garbage\r\n\r\n")
    items, stats = read_all(spoiled)
    check_accounting(items, stats)
    assert items[:-1] == whole
    assert items[-1].reason == "damaged_file" and items[-1].record_index == whole_stats.records
    assert stats.skipped["damaged_file"] == 1 and stats.damaged


def test_damage_is_reported_by_the_last_shard_only(warc_dir: Path, tmp_path: Path) -> None:
    source = warc_dir / "pywb-example.com.warc.gz"
    spoiled = tmp_path / "garbage.warc.gz"
    spoiled.write_bytes(source.read_bytes() + b"garbage\r\n\r\n")
    first, first_stats = read_all(spoiled, 0, 3)
    rest, rest_stats = read_all(spoiled, 3, None)
    assert first_stats.damaged is None
    assert all(i.reason != "damaged_file" for i in first if isinstance(i, SkippedRecord))
    assert rest_stats.damaged and rest[-1].reason == "damaged_file"


def test_uncompressed_warc_cut_short(warc_dir: Path, tmp_path: Path) -> None:
    plain = gzip.decompress((warc_dir / "dolma-sample-0000-wget-2024.warc.gz").read_bytes())
    intact = tmp_path / "plain.warc"
    intact.write_bytes(plain)
    whole, whole_stats = read_all(intact)
    check_accounting(whole, whole_stats)
    assert whole_stats.records == 48 and whole_stats.damaged is None

    cut = tmp_path / "plain-cut.warc"
    cut.write_bytes(plain[: len(plain) // 2])
    items, stats = read_all(cut)
    check_accounting(items, stats)
    assert stats.damaged is not None
    assert items[:-1] == whole[: len(items) - 1]


# ------------------------------------------------------- hand-made records


def _write_warc(path: Path, records: list[dict]) -> None:
    """A small gzip WARC: each dict has url, body, and optionally payload_type, content_type, type."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    for n, spec in enumerate(records):
        headers = {
            "WARC-Record-ID": f"<urn:uuid:00000000-0000-4000-8000-{n:012d}>",
            "WARC-Date": "2024-01-02T03:04:05Z",
        }
        if spec.get("payload_type"):
            headers["WARC-Identified-Payload-Type"] = spec["payload_type"]
        rec_type = spec.get("type", "response")
        http = None
        if rec_type == "response":
            http = StatusAndHeaders(
                "200 OK", [("Content-Type", spec.get("content_type", "text/html"))], protocol="HTTP/1.1"
            )
        body = spec["body"]
        writer.write_record(
            writer.create_warc_record(
                spec["url"], rec_type, payload=io.BytesIO(body), length=len(body), http_headers=http,
                warc_headers_dict=headers,
            )
        )
    path.write_bytes(out.getvalue())


def test_mime_and_charset_rules_on_hand_made_records(tmp_path: Path) -> None:
    latin1 = (
        "<!DOCTYPE html><html><head><title>Le marché</title></head><body><p>Le marché du village est très animé "
        "le samedi matin. On y trouve des légumes frais, du fromage affiné et des fleurs. Les enfants achètent "
        "des crêpes pendant que leurs parents bavardent près de la fontaine.</p></body></html>"
    )
    page = "<!DOCTYPE html><html><head><title>t</title></head><body><p>Hello world.</p></body></html>"
    junk = b"<!DOCTYPE html><html><body><p>" + bytes(range(128, 256)) * 3 + b"</p></body></html>"
    path = tmp_path / "mixed.warc.gz"
    _write_warc(
        path,
        [
            {"url": "https://a.example/latin1", "body": latin1.encode("latin-1"), "payload_type": "text/html"},
            {"url": "https://a.example/sniffed", "body": page.encode()},
            {"url": "https://a.example/xhtml", "body": page.encode(), "payload_type": "application/xhtml+xml"},
            {"url": "https://a.example/junk", "body": junk, "payload_type": "text/html"},
            {"url": "https://a.example/api", "body": b'{"a": [1, 2]}', "payload_type": "application/json"},
            {"url": "https://a.example/api2", "body": json.dumps({"b": "c"}).encode()},
            {"url": "https://a.example/meta", "body": b"via: test\r\n", "type": "metadata"},
            {"url": "https://a.example/params", "body": page.encode(), "payload_type": "text/html; charset=utf-8"},
        ],
    )
    items, stats = read_all(path)
    check_accounting(items, stats)
    by_url = {i.url: i for i in items}
    assert len(items) == 7 and stats.by_type == {"response": 7, "metadata": 1}
    assert isinstance(by_url["https://a.example/latin1"], HtmlDocument)
    assert "marché du village est très animé" in by_url["https://a.example/latin1"].html
    assert isinstance(by_url["https://a.example/sniffed"], HtmlDocument)
    assert isinstance(by_url["https://a.example/xhtml"], HtmlDocument)
    assert isinstance(by_url["https://a.example/params"], HtmlDocument)
    junk_item = by_url["https://a.example/junk"]
    assert isinstance(junk_item, SkippedRecord) and junk_item.reason == "decode_error"
    api = by_url["https://a.example/api"]
    assert api.reason == "non_html" and "application/json" in api.detail and "Payload-Type" in api.detail
    api2 = by_url["https://a.example/api2"]
    assert api2.reason == "non_html" and "sniffed" in api2.detail
    assert by_url["https://a.example/sniffed"].id == "<urn:uuid:00000000-0000-4000-8000-000000000001>"
    assert by_url["https://a.example/sniffed"].crawl_date == "2024-01-02T03:04:05Z"


def test_decode_payload_rules() -> None:
    assert warc_reader.decode_payload("naïve".encode()) == ("naïve", "")
    text, why = warc_reader.decode_payload(bytes(range(128, 256)) * 4)
    assert text is None and why


def test_lone_surrogates_are_replaced_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert to_encodable("plain") == ("plain", 0)
    fixed, count = to_encodable("a\ud800b\udfffc")
    assert (fixed, count) == ("a\ufffdb\ufffdc", 2)
    fixed.encode("utf-8")

    # End to end: whatever a decoder produces, the document handed on is encodable.
    path = tmp_path / "one.warc.gz"
    page = {"url": "https://a.example/", "body": b"<html><body>x</body></html>", "payload_type": "text/html"}
    _write_warc(path, [page])
    monkeypatch.setattr(warc_reader, "decode_payload", lambda payload: ("<p>\udc80 and \ud83d</p>", ""))
    (doc,) = list(iter_warc(path))
    assert isinstance(doc, HtmlDocument) and doc.replaced_chars == 2
    assert doc.html == "<p>\ufffd and \ufffd</p>"
    doc.html.encode("utf-8")


def test_stats_accumulate_across_calls(warc_dir: Path) -> None:
    stats = ReadStats()
    for _ in range(2):
        list(iter_warc(warc_dir / "pywb-example.com.warc.gz", stats=stats))
    assert stats.records == 12 and stats.responses == 4 and stats.html == 4
