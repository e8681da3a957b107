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
`HtmlDocument` or as a `SkippedRecord` with a reason, so that

    stats.responses == stats.html + (sum of stats.skipped except "damaged_file")

holds for any file, damaged or not. A damaged file never raises out of the
iterator: the records before the damage are kept and the damage is reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import cchardet
import magic
from warcio.archiveiterator import ArchiveIterator
from warcio.limitreader import LimitReader
from warcio.recordloader import ArcWarcRecord

# The FineWeb recipe wants XHTML too; datatrove's check only lets text/html through.
HTML_MIME_TYPES: frozenset[str] = frozenset({"text/html", "application/xhtml+xml"})
DOCUMENT_RECORD_TYPES: frozenset[str] = frozenset({"response", "conversion"})
SKIP_REASONS: tuple[str, ...] = ("non_html", "decode_error", "truncated", "damaged_file")

# Lone surrogates are the only code points UTF-8 cannot encode; Parquet and every
# later stage would choke on them, so they are replaced where documents enter.
_UNENCODABLE = re.compile("[\ud800-\udfff]")
_READ_CHUNK = 1 << 16
_MAX_DETAIL = 400


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
    id: str | None
    url: str | None
    reason: str  # one of SKIP_REASONS
    detail: str
    record_index: int


@dataclass
class ReadStats:
    records: int = 0  # every record seen (any type) in the range
    by_type: dict[str, int] = field(default_factory=dict)
    responses: int = 0  # response/conversion records in the range
    html: int = 0  # yielded HtmlDocuments
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    damaged: str | None = None  # description if the file was damaged

    @property
    def accounted_responses(self) -> int:
        """Responses that came out as a document or a per-record skip (must equal `responses`)."""
        return self.html + sum(n for reason, n in self.skipped.items() if reason != "damaged_file")

    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


class _EndAwareIterator(ArchiveIterator):
    """An ArchiveIterator that notes, as it closes at the end of the file, whether the
    gzip stream stopped inside a member: warcio treats a cut-off file as a normal end."""

    ended_inside_gzip_member: bool = False
    gzipped: bool = False

    def close(self) -> None:
        reader = getattr(self, "reader", None)
        decompressor = getattr(reader, "decompressor", None)
        # warcio drops the decompressor at the first block that is not gzip.
        self.gzipped = decompressor is not None
        # An empty file is an empty archive, not a damaged one.
        consumed = self.fh.tell() > 0
        if consumed and decompressor is not None and not getattr(decompressor, "eof", True):
            self.ended_inside_gzip_member = True
        super().close()


def _open_checked(path: Path) -> BinaryIO:
    """Open the file now, so that a wrong path fails where the caller asked for it,
    not at the first `next()` of a generator somewhere downstream."""
    try:
        return open(path, "rb")
    except OSError as err:
        raise type(err)(err.errno, f"cannot open WARC file: {err.strerror}", str(path)) from err


def _new_iterator(fh: BinaryIO) -> _EndAwareIterator:
    return _EndAwareIterator(fh, arc2warc=True)


def _header(record: ArcWarcRecord, *names: str) -> str | None:
    for name in names:
        value = record.rec_headers.get_header(name)
        if value is not None:
            return value
    return None


def _base_mime(value: str) -> str:
    # Some crawlers put parameters in the payload type ("text/html; charset=..."); the
    # comparison is about the media type only.
    return value.split(";", 1)[0].strip().lower()


def _drain(record: ArcWarcRecord) -> tuple[int, int | None]:
    """Read the rest of the record block; return (bytes the block had, bytes it declared).

    warcio stops quietly at the end of the data when a block is shorter than its
    Content-Length, so the only evidence of a cut-off record is the shortfall.
    """
    raw = record.raw_stream
    while raw.read(_READ_CHUNK):
        pass
    if isinstance(raw, LimitReader):
        return raw.tell(), raw.tell() + raw.limit
    return 0, None


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
) -> Iterator[HtmlDocument | SkippedRecord]:
    """Yield an `HtmlDocument` or a `SkippedRecord` for every response record with
    `start <= index < stop` (indices count ALL records of the file, from 0).

    Ranges `[0, k)` and `[k, None)` partition a file's records. Damage found at
    position `n` (the index the next record would have had) is reported by the
    range that contains `n`, or by the open-ended last range; give the last
    shard `stop=None` so a damaged tail is always reported.

    Raises `FileNotFoundError`/`OSError` naming the file immediately (not at the
    first `next()`), and `ValueError` for an invalid range.
    """
    path = Path(path)
    if start < 0 or (stop is not None and stop < start):
        raise ValueError(f"invalid record range [{start}, {stop}) for {path}")
    fh = _open_checked(path)
    return _read(fh, start, stop, stats if stats is not None else ReadStats())


def _read(fh: BinaryIO, start: int, stop: int | None, stats: ReadStats) -> Iterator[HtmlDocument | SkippedRecord]:
    with fh:
        records = _new_iterator(fh)
        index = 0
        last_block_short = False  # did the most recent record end before its Content-Length?
        last_reported_truncated = False  # ... and was that reported as a "truncated" document?
        while stop is None or index < stop:
            try:
                record = next(records)
            except StopIteration:
                break
            except Exception as err:  # noqa: BLE001 - any parse/decompression failure is damage, not a crash
                if index >= start:
                    yield _damage(stats, index, f"{type(err).__name__}: {err}".strip() + f" (at record {index})")
                return
            in_range = index >= start
            try:
                if in_range:
                    stats.records += 1
                    stats.by_type[record.rec_type] = stats.by_type.get(record.rec_type, 0) + 1
                if in_range and record.rec_type in DOCUMENT_RECORD_TYPES:
                    stats.responses += 1
                    item = _document(record, index)
                    if isinstance(item, HtmlDocument):
                        stats.html += 1
                    else:
                        stats._skip(item.reason)
                    last_reported_truncated = isinstance(item, SkippedRecord) and item.reason == "truncated"
                    last_block_short = last_reported_truncated or _drain_short(record)
                    yield item
                else:
                    last_reported_truncated = False
                    last_block_short = _drain_short(record)
            except OSError as err:
                # The payload is read from the same file: a read error there damages the rest.
                yield _damage(stats, index, f"{type(err).__name__}: {err} (while reading record {index})")
                return
            index += 1
        else:  # the loop reached `stop` (no break): the rest of the file belongs to other shards
            return
        if index < start:
            return
        # In a gzip file a short last block inside a complete member is a record written
        # short (reported as "truncated" above), not a file that was cut.
        if records.ended_inside_gzip_member or (last_block_short and not records.gzipped):
            where = f"file ends inside record {index - 1}" if index else "file ends inside the first record"
            if records.ended_inside_gzip_member:
                where += " (gzip stream cut off)"
            else:
                where += " (block shorter than its Content-Length)"
            if last_reported_truncated:
                # The truncated record already accounts for the cut; one report is enough.
                stats.damaged = where
            else:
                yield _damage(stats, index, where)


def _drain_short(record: ArcWarcRecord) -> bool:
    got, declared = _drain(record)
    return declared is not None and got < declared


def _damage(stats: ReadStats, index: int, detail: str) -> SkippedRecord:
    # warcio quotes the offending line in its errors; on binary junk that can be huge.
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 15] + " ...[shortened]"
    stats.damaged = detail
    stats._skip("damaged_file")
    return SkippedRecord(id=None, url=None, reason="damaged_file", detail=detail, record_index=index)


def _document(record: ArcWarcRecord, index: int) -> HtmlDocument | SkippedRecord:
    """Classify one response/conversion record."""
    record_id = _header(record, "WARC-Record-ID")
    url = _header(record, "WARC-Target-URI", "uri")
    date = _header(record, "WARC-Date", "archive-date")

    def skip(reason: str, detail: str) -> SkippedRecord:
        return SkippedRecord(id=record_id, url=url, reason=reason, detail=detail, record_index=index)

    payload: bytes | None = None
    declared_type = _header(record, "WARC-Identified-Payload-Type")
    if declared_type is not None:
        mime, source = _base_mime(declared_type), "WARC-Identified-Payload-Type"
    else:
        try:
            payload = record.content_stream().read()
        except OSError:
            raise
        except Exception as err:  # noqa: BLE001 - a broken Content-Encoding is this record's problem only
            return skip("decode_error", f"cannot read HTTP body: {type(err).__name__}: {err}")
        try:
            mime, source = magic.from_buffer(payload, mime=True), "sniffed"
        except magic.MagicException as err:
            mime, source = "unknown", f"sniffing failed: {err}"
    if mime not in HTML_MIME_TYPES:
        return skip("non_html", f"mime {mime} ({source})")

    if payload is None:
        try:
            payload = record.content_stream().read()
        except OSError:
            raise
        except Exception as err:  # noqa: BLE001
            return skip("decode_error", f"cannot read HTTP body: {type(err).__name__}: {err}")
    got, declared = _drain(record)
    if declared is not None and got < declared:
        return skip("truncated", f"record block has {got} of the {declared} bytes its Content-Length declares")

    text, why = decode_payload(payload)
    if text is None:
        return skip("decode_error", why)
    html, replaced = to_encodable(text)
    return HtmlDocument(
        id=record_id or "",
        url=url or "",
        crawl_date=date or "",
        html=html,
        record_index=index,
        replaced_chars=replaced,
    )


def count_records(path: str | Path) -> int:
    """Number of records of any type in the file (what `start`/`stop` index).

    Tolerant of damage: counts the records before it. Raises `FileNotFoundError`/
    `OSError` naming the file if it cannot be opened.
    """
    path = Path(path)
    with _open_checked(path) as fh:
        count = 0
        records = _new_iterator(fh)
        while True:
            try:
                next(records)
            except StopIteration:
                return count
            except Exception:  # noqa: BLE001 - damage ends the count, as it ends reading
                return count
            count += 1
