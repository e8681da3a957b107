"""Damaged and foreign input: every record the reader cannot use is an error row with a
short reason, reading goes on after it, and a file that is not WARC is one damaged_file row.

The files are written by hand, record by record, so that each test holds exactly the
damage it is about; the last tests damage real WARCs at random.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import random
from pathlib import Path

import pytest

from llmforge.config import ReaderConfig
from tasks.data.warc_reader import (
    DAMAGE_KINDS,
    SKIP_REASONS,
    HtmlDocument,
    ReadStats,
    SkippedRecord,
    count_records,
    iter_warc,
)

Items = list[HtmlDocument | SkippedRecord]

# ------------------------------------------------------------------ building WARC files by hand


def record_id(n: int) -> str:
    return f"<urn:uuid:00000000-0000-4000-8000-{n:012d}>"


def page(n: int) -> bytes:
    return f"<!DOCTYPE html><html><head><title>Page {n}</title></head><body><p>Page number {n}.</p></body></html>".encode()


def http_response(body: bytes, *headers: str, content_type: str = "text/html; charset=utf-8") -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Type: {content_type}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def warc_record(
    n: int,
    block: bytes,
    rec_type: str | None = "response",
    uri: str | None = "default",
    extra: dict[str, str] | None = None,
    content_length: str | None = None,
) -> bytes:
    """One WARC/1.0 record; None leaves a header out, `content_length` overrides the true one."""
    headers: list[tuple[str, str]] = []
    if rec_type is not None:
        headers.append(("WARC-Type", rec_type))
    headers += [("WARC-Record-ID", record_id(n)), ("WARC-Date", "2024-01-02T03:04:05Z")]
    if uri is not None:
        headers.append(("WARC-Target-URI", f"https://example.org/{n}" if uri == "default" else uri))
    headers += list((extra or {}).items())
    headers.append(("Content-Length", str(len(block)) if content_length is None else content_length))
    head = "WARC/1.0\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    return head.encode() + block + b"\r\n\r\n"


def html_record(n: int, **kwargs) -> bytes:
    """A response holding a small HTML page, its payload type declared as Common Crawl does."""
    extra = {"WARC-Identified-Payload-Type": "text/html", **kwargs.pop("extra", {})}
    return warc_record(n, http_response(page(n)), extra=extra, **kwargs)


def gzip_members(*records: bytes) -> bytes:
    """A .warc.gz the way Common Crawl writes it: one gzip member per record."""
    return b"".join(gzip.compress(r, mtime=0) for r in records)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------ reading, with every invariant checked


def read_checked(path: Path, limits: ReaderConfig | None = None) -> tuple[Items, ReadStats]:
    """Read the whole file and check what must hold for any file, however broken."""
    stats = ReadStats()
    items = list(iter_warc(path, stats=stats, limits=limits))
    docs = [i for i in items if isinstance(i, HtmlDocument)]
    skipped = [i for i in items if isinstance(i, SkippedRecord)]
    assert stats.responses == stats.html + sum(n for r, n in stats.skipped.items() if r != "damaged_file")
    assert stats.html == len(docs)
    assert sum(stats.by_type.values()) == stats.records
    by_reason: dict[str, int] = {}
    for item in skipped:
        by_reason[item.reason] = by_reason.get(item.reason, 0) + 1
        assert item.reason in SKIP_REASONS
        assert len(item.detail) <= 200 and item.detail.isprintable(), item.detail
        if item.reason == "damaged_file":
            assert item.id is None and item.detail.split(":")[0] in DAMAGE_KINDS, item.detail
    assert by_reason == stats.skipped
    records = [i.record_index for i in items if not (isinstance(i, SkippedRecord) and i.reason == "damaged_file")]
    assert records == sorted(set(records))
    assert [i.record_index for i in items] == sorted(i.record_index for i in items)
    json.dumps(dataclasses.asdict(stats), sort_keys=True)  # no None keys, nothing unserialisable
    assert count_records(path, limits) == stats.records
    return items, stats


def reasons(items: Items) -> list[str]:
    return ["html" if isinstance(i, HtmlDocument) else i.reason for i in items]


# ------------------------------------------------------------------ the reproductions


def test_a_record_without_warc_type_mid_file_is_counted_by_name_and_the_rest_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path / "no-type.warc.gz",
        gzip_members(
            html_record(0),
            html_record(1, rec_type=None),
            warc_record(2, b"GET / HTTP/1.1\r\n\r\n", rec_type=None),
            html_record(3),
        ),
    )
    items, stats = read_checked(path)
    assert reasons(items) == ["html", "missing_warc_type", "missing_warc_type", "html"]
    assert stats.by_type == {"response": 2, "missing_warc_type": 2}
    assert None not in stats.by_type and stats.responses == 4
    missing = items[1]
    assert isinstance(missing, SkippedRecord) and missing.id == record_id(1) and missing.url == "https://example.org/1"
    # What made the stage fail after every shard: stats written as JSON with sorted keys.
    json.dumps({"records_by_type": stats.by_type, "skipped": stats.skipped}, sort_keys=True)


def test_a_response_without_target_uri_mid_file_is_skipped_and_the_rest_is_read(tmp_path: Path) -> None:
    records = [
        html_record(0),
        html_record(1, uri=None),
        warc_record(2, b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n", rec_type="request", uri=None),
        html_record(3),
    ]
    for name, data in (("a.warc.gz", gzip_members(*records)), ("a.warc", b"".join(records))):
        items, stats = read_checked(write(tmp_path / name, data))
        assert reasons(items) == ["html", "missing_target_uri", "html"], name
        assert items[1].id == record_id(1) and items[1].detail == "response record has no WARC-Target-URI header"
        assert stats.by_type == {"response": 3, "request": 1} and stats.damaged is None


@pytest.mark.parametrize(
    "name, content",
    [
        ("fake.warc.gz", b"this is a text file, not a crawl\nwith a second line\n"),
        ("crawl.warc", b"this is a text file, not a crawl\n"),
        (
            "documents.warc.gz",
            b"".join(json.dumps({"id": n, "url": f"https://example.org/{n}", "text": "x " * 50}).encode() + b"\n"
                     for n in range(96)),
        ),
        ("page.warc", b"<!DOCTYPE html><html><body>" + b"<p>text</p>\n" * 100 + b"</body></html>"),
        ("binary.warc.gz", bytes(range(256)) * 40),
        ("gzipped-text.warc.gz", gzip.compress(b"just some text\n" * 100)),
        (
            "old.arc",
            (
                b"filedesc://old.arc 0.0.0.0 20080101000000 text/plain 70\n1 0 Heritrix\n"
                b"URL IP-address Archive-date Content-type Archive-length\n\n"
            ),
        ),
    ],
)
def test_input_that_is_not_warc_is_one_damaged_file_row_and_no_records(tmp_path: Path, name: str, content: bytes) -> None:
    items, stats = read_checked(write(tmp_path / name, content))
    assert len(items) == 1
    (item,) = items
    assert item.reason == "damaged_file" and item.detail.startswith("not_warc: ") and item.record_index == 0
    assert stats.records == stats.responses == stats.html == 0 and stats.by_type == {}
    assert stats.damaged == item.detail


def test_binary_garbage_in_a_header_gives_a_short_printable_detail(tmp_path: Path) -> None:
    junk = bytes(range(256)) * 8 + b"\r\n"
    broken = html_record(1).replace(b"WARC-Date:", junk + b"WARC-Date:", 1)
    bad_start = junk + html_record(2)[len(b"WARC/1.0\r\n") :]
    path = write(tmp_path / "junk.warc.gz", gzip_members(html_record(0), broken, bad_start, html_record(3)))
    items, _ = read_checked(path)
    # A junk line inside a header has no colon, so warcio's header parser passes over it.
    assert reasons(items) == ["html", "html", "bad_header", "html"]
    detail = items[2].detail
    assert detail.startswith("no WARC record starts here (line: '\\x00\\x01\\x02")
    assert len(detail) < 120 and detail.isprintable()

    first = write(tmp_path / "junk-first.warc.gz", gzip_members(junk * 2 + html_record(0)))
    (damage,), _ = read_checked(first)
    assert damage.reason == "damaged_file" and damage.detail.startswith("not_warc: ") and len(damage.detail) <= 200


# ------------------------------------------------------------------ re-synchronising


def test_plain_warc_reads_on_at_the_next_warc_line_after_junk(tmp_path: Path) -> None:
    junk = b"garbage that is not a record\r\n\x00\x01\x02 more of it\r\n\r\n"
    records = [html_record(0), junk, html_record(1), html_record(2, content_length="12x"), html_record(3)]
    items, stats = read_checked(write(tmp_path / "junk.warc", b"".join(records)))
    assert reasons(items) == ["html", "bad_header", "html", "bad_header", "html"]
    assert [i.record_index for i in items] == [0, 1, 2, 3, 4]
    assert items[3].id == record_id(2) and "invalid Content-Length '12x'" in items[3].detail
    assert stats.by_type == {"response": 3, "unreadable": 2} and stats.damaged is None


def test_gzip_reads_on_at_the_next_member(tmp_path: Path) -> None:
    records = [
        html_record(0),
        html_record(1, content_length=None).replace(b"Content-Length", b"Content-Lungth"),
        gzip.compress(b"no WARC record in this member\r\n"),
        html_record(2),
    ]
    data = gzip_members(records[0], records[1]) + records[2] + gzip_members(records[3])
    items, stats = read_checked(write(tmp_path / "members.warc.gz", data))
    assert reasons(items) == ["html", "bad_header", "bad_header", "html"]
    assert "has no Content-Length" in items[1].detail
    assert stats.by_type == {"response": 2, "unreadable": 2}


def test_junk_between_gzip_members_is_reported_and_skipped(tmp_path: Path) -> None:
    first, second = gzip_members(html_record(0)), gzip_members(html_record(1))
    items, stats = read_checked(write(tmp_path / "junk.warc.gz", first + b"\x00" * 37 + second + b"trailing\r\n"))
    assert reasons(items) == ["html", "damaged_file", "html", "damaged_file"]
    assert items[1].detail == (
        f"not_gzip: 37 bytes at byte {len(first)} are not gzip data; reading resumed at byte {len(first) + 37}"
    )
    assert items[1].record_index == 1
    assert items[3].detail.startswith("not_gzip: 10 bytes") and items[3].detail.endswith("no record after it")
    assert stats.records == 2 and stats.damaged == items[1].detail


def test_a_corrupt_gzip_member_loses_its_record_only(tmp_path: Path) -> None:
    rng = random.Random(3)
    text = " ".join("".join(rng.choices("abcdefghij", k=rng.randint(2, 9))) for _ in range(4000)).encode()
    big = warc_record(
        1, http_response(b"<html><body><p>" + text + b"</p></body></html>"), extra={"WARC-Identified-Payload-Type": "text/html"}
    )
    members = [gzip.compress(r, mtime=0) for r in (html_record(0), big, html_record(2), html_record(3))]
    in_the_data = bytearray(members[1])
    in_the_data[len(in_the_data) * 3 // 4] ^= 0x55  # deep in the deflate data of the page
    in_the_checksum = bytearray(members[2])
    in_the_checksum[-6] ^= 0x01  # the CRC-32 that closes the member: every byte came out, none is trusted
    members[1:3] = [bytes(in_the_data), bytes(in_the_checksum)]
    items, stats = read_checked(write(tmp_path / "corrupt.warc.gz", b"".join(members)))
    assert reasons(items) == ["html", "corrupt_gzip", "corrupt_gzip", "html"]
    assert [i.id for i in items] == [record_id(n) for n in range(4)]
    assert "incorrect data check" in items[2].detail
    assert stats.damaged and stats.damaged.startswith("bad_gzip: corrupt gzip data in the member at byte ")

    # Corrupt before the header is complete: no record to report it, so the damage is a row.
    members = [gzip.compress(html_record(n), mtime=0) for n in range(3)]
    members[1] = members[1][:12] + bytes(40) + members[1][52:]
    items, _ = read_checked(write(tmp_path / "corrupt-header.warc.gz", b"".join(members)))
    assert reasons(items) == ["html", "damaged_file", "html"]
    assert items[1].detail.startswith("bad_gzip: corrupt gzip data in the member at byte ")
    assert [i.record_index for i in items] == [0, 1, 1]


def test_a_gzip_file_of_one_member_with_many_records_is_read_whole(tmp_path: Path) -> None:
    # warcio stops after the first record of such a file ("non-chunked gzip file detected").
    path = write(tmp_path / "one-member.warc.gz", gzip.compress(b"".join(html_record(n) for n in range(5))))
    items, stats = read_checked(path)
    assert reasons(items) == ["html"] * 5 and stats.damaged is None


def test_a_record_written_short_inside_its_member_is_truncated_and_the_next_is_read(tmp_path: Path) -> None:
    short = html_record(1)[:-60]
    items, stats = read_checked(write(tmp_path / "short.warc.gz", gzip_members(html_record(0), short, html_record(2))))
    assert reasons(items) == ["html", "truncated", "html"] and stats.damaged is None


def test_a_plain_file_cut_inside_a_header_or_version_line(tmp_path: Path) -> None:
    whole = html_record(0) + html_record(1)
    for cut in (len(html_record(0)) + 3, len(html_record(0)) + 30):
        items, stats = read_checked(write(tmp_path / f"cut-{cut}.warc", whole[:cut]))
        assert reasons(items) == ["html", "damaged_file"], cut
        assert items[1].detail == "cut_off: file ends inside the header of record 1" and stats.records == 1


def test_damage_goes_with_the_shard_of_the_record_it_cut(tmp_path: Path) -> None:
    data = b"".join(html_record(n) for n in range(3))[:-100]
    path = write(tmp_path / "cut.warc", data)
    whole, whole_stats = read_checked(path)
    assert reasons(whole) == ["html", "html", "truncated"] and whole_stats.damaged
    first = list(iter_warc(path, 0, 3))
    rest = list(iter_warc(path, 3, None))
    assert first == whole and rest == []


def test_shards_planned_on_a_damaged_file_partition_what_the_reader_reads(tmp_path: Path) -> None:
    from tasks.data.shards import plan_shards

    members = [gzip.compress(html_record(n), mtime=0) for n in range(9)]
    members[2] = members[2][:12] + bytes(40) + members[2][52:]  # no record to be found in it
    members[5] = gzip.compress(b"junk\r\n" + html_record(5))  # the record after the junk line is found
    data = b"".join(members[:7]) + b"junk between members" + members[7] + members[8][:-30]
    path = write(tmp_path / "damaged.warc.gz", data)
    whole, stats = read_checked(path)
    assert reasons(whole) == [
        "html", "html", "damaged_file", "html", "html", "bad_header", "html", "html", "damaged_file", "html", "truncated"
    ]
    for per_shard in (1, 2, 3, 4):
        shards = plan_shards([path], per_shard, {str(path): "x"})
        assert shards[-1].stop is None and sum(1 for _ in shards) == -(-stats.records // per_shard)
        assert [item for shard in shards for item in iter_warc(shard.path, shard.start, shard.stop)] == whole, per_shard
    small = ReaderConfig(max_header_bytes=4096)
    assert plan_shards([path], 3, {str(path): "x"}, reader=small) == plan_shards([path], 3, {str(path): "x"})


class _FailingFile:
    """A file that fails with EIO once `good` bytes have been read (a disk going bad)."""

    def __init__(self, fh, good: int) -> None:
        self._fh, self._good = fh, good

    def read(self, size: int = -1) -> bytes:
        if self._fh.tell() >= self._good:
            raise OSError(5, "Input/output error")
        return self._fh.read(min(size, self._good - self._fh.tell()) if size >= 0 else self._good - self._fh.tell())

    def __getattr__(self, name: str):
        return getattr(self._fh, name)


def test_a_read_error_mid_file_ends_reading_with_a_damage_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.data.warc_reader as warc_reader
    from tasks.data.warc.stream import open_stream

    members = [gzip.compress(html_record(n), mtime=0) for n in range(4)]
    path = write(tmp_path / "eio.warc.gz", b"".join(members))
    good = len(members[0]) + len(members[1]) + 5
    monkeypatch.setattr(warc_reader, "open_stream", lambda fh: open_stream(_FailingFile(fh, good)))
    stats = ReadStats()
    items = list(iter_warc(path, stats=stats))  # must not raise
    assert reasons(items) == ["html", "html", "damaged_file"]
    assert items[-1].detail.startswith("read_error: OSError: [Errno 5] Input/output error") and items[-1].record_index == 2
    assert stats.responses == stats.html == 2
    with pytest.raises(OSError, match="eio.warc.gz"):
        count_records(path)


# ------------------------------------------------------------------ real WARCs damaged at random


def _damage(data: bytes, rng: random.Random) -> bytes:
    """One random kind of damage to a .warc.gz, on its compressed bytes or on its records."""
    raw = bytearray(data)
    kind = rng.randrange(6)
    at = rng.randrange(len(raw))
    if kind == 0:
        for _ in range(rng.randint(1, 5)):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        return bytes(raw)
    if kind == 1:
        return bytes(raw[:at])
    if kind == 2:
        return bytes(raw[:at]) + rng.randbytes(rng.randint(1, 300)) + bytes(raw[at:])
    plain = bytearray(gzip.decompress(data))
    lines = bytes(plain).split(b"\r\n")
    if kind == 3:
        for _ in range(rng.randint(1, 5)):
            lines[rng.randrange(len(lines))] = rng.randbytes(rng.randint(0, 80))
    elif kind == 4:
        wanted = (b"WARC-Type", b"WARC-Target-URI", b"Content-Length")
        named = [i for i, line in enumerate(lines) if line.split(b":")[0] in wanted]
        for _ in range(rng.randint(1, 3)):
            lines[rng.choice(named)] = b"X-Removed: 1"
    else:
        return bytes(plain[: rng.randrange(len(plain))])
    return b"\r\n".join(lines) if rng.random() < 0.5 else gzip.compress(b"\r\n".join(lines), mtime=0)


def _check_damaged_copies(sources: list[Path], tmp_path: Path, copies: int, seed: int) -> None:
    rng = random.Random(seed)
    for n in range(copies):
        source = rng.choice(sources)
        path = write(tmp_path / f"damaged-{n}.warc.gz", _damage(source.read_bytes(), rng))
        items, stats = read_checked(path)
        cut = rng.randint(0, stats.records + 1)
        assert list(iter_warc(path, 0, cut)) + list(iter_warc(path, cut, None)) == items, (n, source.name, cut)


SMALL_WARCS = [
    "pywb-example.com.warc.gz",
    "CC-MAIN-2024-22-whirlwind-an.wikipedia.warc.gz",
    "jwarc-commoncrawl.org-single-response.warc.gz",
]


def test_randomly_damaged_copies_of_real_warcs_keep_every_invariant(shared_data: Path, tmp_path: Path) -> None:
    _check_damaged_copies([shared_data / "warc" / name for name in SMALL_WARCS], tmp_path, copies=60, seed=7)


@pytest.mark.slow
def test_many_randomly_damaged_copies_of_real_warcs_keep_every_invariant(shared_data: Path, tmp_path: Path) -> None:
    sources = [shared_data / "warc" / name for name in [*SMALL_WARCS, "dolma-sample-0000-wget-2024.warc.gz"]]
    _check_damaged_copies(sources, tmp_path, copies=300, seed=11)


# ------------------------------------------------------------------ through the data stage


@pytest.mark.slow
def test_a_shard_with_a_record_without_warc_type_gives_stats_json_with_sorted_keys(tmp_path: Path) -> None:
    """The stage used to fail here, after every shard was done: stats.json with sort_keys met a None key."""
    from llmforge import atomic
    from llmforge.config import DataConfig
    from tasks.data.shards import file_digests, plan_shards
    from tasks.data.stage import finalize_shard, fresh_output_dirs, process_shard
    from tasks.data.stats import build_stats

    path = write(tmp_path / "no-type.warc.gz", gzip_members(html_record(0), html_record(1, rec_type=None), html_record(2)))
    config = DataConfig(source=str(path))
    data_dir = tmp_path / "data"
    (shard,) = plan_shards([path], 0, file_digests([path]))
    summary = process_shard(shard, config, str(data_dir), "code")
    assert summary["records_by_type"] == {"response": 2, "missing_warc_type": 1}
    assert summary["skipped"] == {"missing_warc_type": 1}
    out_dirs = fresh_output_dirs(data_dir, ("documents", "removed", "errors"))
    final = finalize_shard(str(data_dir), shard.key, {"exact_dedup": {}, "minhash": {}}, config, out_dirs)
    stats = build_stats([summary], [final])
    atomic.write_json(tmp_path / "stats.json", stats)  # sorted keys, as the stage writes it
    written = json.loads((tmp_path / "stats.json").read_text())
    assert written["errors"] == {"missing_warc_type": 1} and written["accounted"] == written["responses"] == 3
