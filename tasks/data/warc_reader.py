"""Read HTML responses from WARC files, accounting for every response record.

What counts as an HTML document follows datatrove's `WarcReader`, so that our
counts can be compared with the FineWeb reference:

* only `response` and `conversion` records are documents; every other record
  type is only counted;
* the MIME type comes from the `WARC-Identified-Payload-Type` header when the
  crawler wrote one, otherwise from libmagic on the HTTP body;
* the body is decoded as UTF-8, falling back to the charset cchardet detects.

Where datatrove drops records silently or raises, this reader reports instead:
every response record in the requested range ends up either as an
`HtmlDocument` or as a `SkippedRecord` with a reason from `SKIP_REASONS`, so that

    stats.responses == stats.html + (sum of stats.skipped except "damaged_file")

holds for any file, damaged or not. A record whose header cannot be read, or
that has no WARC-Type, counts as a response (it may have been one) under the
type `unreadable` or `missing_warc_type`. Bytes that belong to no record (a file
that is not WARC at all, a cut-off end, corrupt gzip data, junk between gzip
members) are `damaged_file` rows, whose detail starts with one of `DAMAGE_KINDS`.

Whatever the bytes, `iter_warc` never raises once the file is open, and reading
goes on after a record it cannot read: at the next gzip member of a `.warc.gz`
(Common Crawl writes one per record), at the next `WARC/1.x` line of a plain
`.warc`. Memory stays bounded too: headers and HTTP bodies are read within the
byte limits of `ReaderConfig`, and a record over them (a decompression bomb, say)
is a `decompression_limit` row whose rest is passed over in bounded steps.
The parts live in `tasks.data.warc`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import cchardet
import magic
from warcio.limitreader import LimitReader
from warcio.recordloader import ArcWarcRecord, ArcWarcRecordLoader

from llmforge.config import ReaderConfig
from tasks.data.warc.detail import printable
from tasks.data.warc.payload import read_body
from tasks.data.warc.records import (
    DAMAGE_KINDS,
    MISSING_TYPE,
    UNREADABLE,
    Damage,
    Record,
    iter_records,
)
from tasks.data.warc.stream import SegmentEnd, open_stream

__all__ = [
    "DAMAGE_KINDS", "DOCUMENT_RECORD_TYPES", "HTML_MIME_TYPES", "MISSING_TYPE", "SKIP_REASONS", "UNREADABLE",
    "HtmlDocument", "ReadStats", "SkippedRecord", "count_records", "decode_payload", "iter_warc", "to_encodable",
]

# The FineWeb recipe wants XHTML too; datatrove's check only lets text/html through.
HTML_MIME_TYPES: frozenset[str] = frozenset({"text/html", "application/xhtml+xml"})
DOCUMENT_RECORD_TYPES: frozenset[str] = frozenset({"response", "conversion"})
SKIP_REASONS: tuple[str, ...] = (
    "non_html",  # not an HTML page: the declared (or else sniffed) MIME type says so
    "decode_error",  # an HTML page whose bytes no charset decodes, or whose HTTP coding is broken
    "truncated",  # the record's block is shorter than its Content-Length (written short, or the file ends there)
    "missing_warc_type",  # the header has no WARC-Type: what the record holds is unknown
    "missing_target_uri",  # a response without WARC-Target-URI: a document needs its URL
    "bad_header",  # no readable WARC header where a record starts (no version line, no valid Content-Length, ...)
    "decompression_limit",  # the header or the HTTP body is over ReaderConfig's byte limits; the rest was passed over
    "corrupt_gzip",  # the gzip member holding the record has corrupt data or a wrong checksum: its bytes are not trusted
    "damaged_file",  # not a record: bytes that belong to none (the detail starts with one of DAMAGE_KINDS)
)

# Lone surrogates are the only code points UTF-8 cannot encode; Parquet and every
# later stage would choke on them, so they are replaced where documents enter.
_UNENCODABLE = re.compile("[\ud800-\udfff]")
# Parses a response's HTTP header the way warcio's ArchiveIterator does (no status-line check).
_HTTP_LOADER = ArcWarcRecordLoader(verify_http=False, arc2warc=False)


@dataclass(frozen=True)
class HtmlDocument:
    id: str  # WARC-Record-ID of the response record, e.g. "<urn:uuid:...>"
    url: str
    crawl_date: str  # as written in the WARC header
    html: str  # always encodable as UTF-8
    record_index: int  # index among all records of the file
    replaced_chars: int = 0


@dataclass(frozen=True)
class SkippedRecord:
    id: str | None  # None for damaged_file, and where the header could not be read
    url: str | None
    reason: str  # one of SKIP_REASONS
    detail: str  # at most 200 printable characters
    record_index: int


@dataclass
class ReadStats:
    records: int = 0  # every record seen (any type) in the range
    by_type: dict[str, int] = field(default_factory=dict)  # WARC-Type, or "unreadable" / "missing_warc_type"
    responses: int = 0  # response/conversion records in the range, and records of unknown type
    html: int = 0  # yielded HtmlDocuments
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    damaged: str | None = None  # the first damage found, if any

    @property
    def accounted_responses(self) -> int:
        """Responses that came out as a document or a per-record skip (must equal `responses`)."""
        return self.html + sum(n for reason, n in self.skipped.items() if reason != "damaged_file")

    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _open_checked(path: Path) -> BinaryIO:
    """Open the file now, so that a wrong path fails where the caller asked for it,
    not at the first `next()` of a generator somewhere downstream."""
    try:
        return open(path, "rb")
    except OSError as err:
        raise type(err)(err.errno, f"cannot open WARC file: {err.strerror}", str(path)) from err


def _base_mime(value: str) -> str:
    # Some crawlers put parameters in the payload type ("text/html; charset=..."); the
    # comparison is about the media type only.
    return value.split(";", 1)[0].strip().lower()


def decode_payload(payload: bytes) -> tuple[str | None, str]:
    """Decode an HTML body the datatrove way; return (text, "") or (None, why not)."""
    try:
        return payload.decode("utf-8"), ""
    except UnicodeDecodeError as err:
        utf8_error = str(err)
    encoding = cchardet.detect(payload).get("encoding")
    if not encoding:
        return None, f"not UTF-8 ({utf8_error}) and no charset detected"
    if encoding.replace("-", "").replace("_", "").lower() == "utf8":
        return None, f"not UTF-8 ({utf8_error}) and cchardet guessed UTF-8 again"
    try:
        return payload.decode(encoding), ""
    except LookupError:
        return None, f"not UTF-8 and detected charset {encoding!r} is unknown to Python"
    except UnicodeDecodeError as err:
        return None, f"not UTF-8 and not {encoding}: {err}"


def to_encodable(text: str) -> tuple[str, int]:
    """Replace characters UTF-8 cannot encode with U+FFFD; return (text, how many)."""
    try:
        text.encode("utf-8")
        return text, 0
    except UnicodeEncodeError:
        return _UNENCODABLE.subn("\ufffd", text)


def iter_warc(
    path: str | Path,
    start: int = 0,
    stop: int | None = None,
    stats: ReadStats | None = None,
    limits: ReaderConfig | None = None,
) -> Iterator[HtmlDocument | SkippedRecord]:
    """Yield an `HtmlDocument` or a `SkippedRecord` for every response record with
    `start <= index < stop` (indices count ALL records of the file, from 0).

    Ranges `[0, k)` and `[k, None)` partition a file's records. Damage found at
    position `n` (the index the next record would have had; its row's
    record_index) is reported by the range that contains `n`, or by the
    open-ended last range, except that damage cutting record `i` short goes
    with record `i`. Give the last shard `stop=None` so a damaged tail is
    always reported.

    Raises `FileNotFoundError`/`OSError` naming the file immediately (not at the
    first `next()`), and `ValueError` for an invalid range; nothing after that.
    """
    path = Path(path)
    if start < 0 or (stop is not None and stop < start):
        raise ValueError(f"invalid record range [{start}, {stop}) for {path}")
    fh = _open_checked(path)
    return _read(fh, start, stop, stats if stats is not None else ReadStats(), limits or ReaderConfig())


def _read(
    fh: BinaryIO, start: int, stop: int | None, stats: ReadStats, limits: ReaderConfig
) -> Iterator[HtmlDocument | SkippedRecord]:
    with fh:
        events = iter_records(open_stream(fh), limits.max_header_bytes)
        next_index = 0
        # The last record reported "truncated" or "corrupt_gzip": the damage that cut it is already reported.
        reported_damage: int | None = None
        try:
            for event in events:
                if isinstance(event, Damage):
                    # Damage that cut a record short goes with that record's range.
                    anchor = event.position if event.cut_record is None else event.cut_record
                    if stop is not None and anchor >= stop:
                        return
                    if anchor < start:
                        continue
                    if event.cut_record is not None and event.cut_record == reported_damage:
                        stats.damaged = stats.damaged or event.detail
                    else:
                        yield _damage(stats, event.detail, event.position)
                    continue
                next_index = event.index
                if stop is not None and event.index >= stop:
                    return
                if event.index < start:
                    continue
                item = _account(event, stats, limits)
                next_index = event.index + 1
                if item is None:
                    continue
                if isinstance(item, SkippedRecord) and item.reason in ("truncated", "corrupt_gzip"):
                    reported_damage = event.index
                yield item
        except OSError as err:
            # The blocks are read from the same file: a read error there damages the rest.
            if next_index >= start and (stop is None or next_index < stop):
                yield _damage(stats, f"read_error: {type(err).__name__}: {err} (at record {next_index})", next_index)


def _account(record: Record, stats: ReadStats, limits: ReaderConfig) -> HtmlDocument | SkippedRecord | None:
    """Classify one record in the range, then count it (a read error in between leaves it uncounted)."""
    item: HtmlDocument | SkippedRecord | None = None
    if record.problem is not None:
        item = _skipped(record, record.problem.reason, record.problem.detail)
    elif record.type_key == MISSING_TYPE:
        item = _skipped(record, "missing_warc_type", "the record has no WARC-Type header")
    elif record.type_key in DOCUMENT_RECORD_TYPES:
        item = _document(record, limits)
    stats.records += 1
    stats.by_type[record.type_key] = stats.by_type.get(record.type_key, 0) + 1
    if item is not None:
        stats.responses += 1
        if isinstance(item, HtmlDocument):
            stats.html += 1
        else:
            stats._skip(item.reason)
    return item


def _skipped(record: Record, reason: str, detail: str) -> SkippedRecord:
    return SkippedRecord(
        id=record.header("WARC-Record-ID"),
        url=record.header("WARC-Target-URI"),
        reason=reason,
        detail=printable(detail),
        record_index=record.index,
    )


def _damage(stats: ReadStats, detail: str, position: int) -> SkippedRecord:
    detail = printable(detail)
    stats.damaged = stats.damaged or detail
    stats._skip("damaged_file")
    return SkippedRecord(id=None, url=None, reason="damaged_file", detail=detail, record_index=position)


def _http_record(record: Record, block: bytes) -> ArcWarcRecord:
    """The record as warcio's ArchiveIterator makes it, over the block bytes in memory."""
    stream = LimitReader(io.BytesIO(block), record.length)
    uri = record.header("WARC-Target-URI") or ""
    http_headers = _HTTP_LOADER.load_http_headers(record.type_key, uri, stream, record.length)
    content_type = record.header("Content-Type")
    return ArcWarcRecord("warc", record.type_key, record.headers, stream, http_headers, content_type, record.length)


def _sniff(payload: bytes) -> tuple[str, str]:
    try:
        return magic.from_buffer(payload, mime=True), "sniffed"
    except magic.MagicException as err:
        return "unknown", f"sniffing failed: {err}"


def _document(record: Record, limits: ReaderConfig) -> HtmlDocument | SkippedRecord:
    """Classify one response/conversion record, reading no more of it than the limits allow."""

    def skip(reason: str, detail: str) -> SkippedRecord:
        return _skipped(record, reason, detail)

    if not record.header("WARC-Target-URI"):
        return skip("missing_target_uri", f"{record.type_key} record has no WARC-Target-URI header")
    declared_type = record.header("WARC-Identified-Payload-Type")
    if declared_type is not None and _base_mime(declared_type) not in HTML_MIME_TYPES:
        return skip("non_html", f"mime {_base_mime(declared_type)} (WARC-Identified-Payload-Type)")

    block_limit = limits.max_header_bytes + limits.max_payload_bytes
    block = record.read_block(block_limit)
    got = record.finish()
    if record.settle() is SegmentEnd.CORRUPT:
        return skip("corrupt_gzip", f"{record.segment_trouble()}; {got} of the block's {record.length} bytes were read")
    try:
        http = _http_record(record, block)
        payload, over_limit = read_body(http, limits.max_payload_bytes)
    except Exception as err:  # noqa: BLE001 - a broken HTTP header or coding is this record's problem only
        if got < record.length:  # an HTTP header cut short by the end of the block
            return skip("truncated", f"record block has {got} of the {record.length} bytes its Content-Length declares")
        return skip("decode_error", f"cannot read HTTP body: {type(err).__name__}: {err}")
    if declared_type is None:
        mime, source = _sniff(payload)
        if mime not in HTML_MIME_TYPES:
            return skip("non_html", f"mime {mime} ({source})")
    if record.length > block_limit:
        return skip("decompression_limit", f"record block of {record.length} bytes is over the {block_limit}-byte limit")
    if over_limit:
        return skip("decompression_limit", f"HTTP body is over the {limits.max_payload_bytes}-byte limit once decoded")
    if got < record.length:
        return skip("truncated", f"record block has {got} of the {record.length} bytes its Content-Length declares")

    text, why = decode_payload(payload)
    if text is None:
        return skip("decode_error", why)
    html, replaced = to_encodable(text)
    return HtmlDocument(
        id=record.header("WARC-Record-ID") or "",
        url=record.header("WARC-Target-URI") or "",
        crawl_date=record.header("WARC-Date") or "",
        html=html,
        record_index=record.index,
        replaced_chars=replaced,
    )


def count_records(path: str | Path, limits: ReaderConfig | None = None) -> int:
    """Number of records of any type in the file (what `start`/`stop` index), exactly as
    `iter_warc` with the same limits numbers them, damaged files included.

    Raises `FileNotFoundError`/`OSError` naming the file if it cannot be opened or read.
    """
    path = Path(path)
    limits = limits or ReaderConfig()
    with _open_checked(path) as fh:
        try:
            return sum(isinstance(event, Record) for event in iter_records(open_stream(fh), limits.max_header_bytes))
        except OSError as err:
            raise OSError(err.errno, f"cannot read WARC file: {err.strerror or err}", str(path)) from err
