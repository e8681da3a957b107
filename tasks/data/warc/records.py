"""WARC records out of a file's bytes, and the damage between them.

`iter_records` yields, in file order, a `Record` for every place where a record starts
(numbered from 0: the indices that shard ranges use) and a `Damage` for bytes that
belong to no record. Nothing in it raises on bad data, and nothing it holds grows with
the data: a record's header is read up to `max_header_bytes`, and its block is left in
the file until the caller reads (a bounded part of) it; what the caller leaves is passed
over when the next record is asked for.

A record whose header cannot be read is still a record — type `UNREADABLE`, with a
`problem` saying why — and reading goes on at the next place a record can start: the
next line that starts a WARC record in the same gzip member (or plain file), else the
next gzip member. The first record of a file is the exception: a file that does not
start with a WARC record is not a WARC file, reported as `not_warc` damage with no
records at all.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from warcio.statusandheaders import StatusAndHeaders, StatusAndHeadersParser

from tasks.data.warc.detail import printable, quoted
from tasks.data.warc.stream import ByteStream, Resync, SegmentEnd

# The WARC versions warcio reads (its ArcWarcRecordLoader.WARC_TYPES), compared upper-case as it does.
WARC_VERSIONS: tuple[str, ...] = ("WARC/1.1", "WARC/1.0", "WARC/0.17", "WARC/0.18")
_WARC_HEADER_PARSER = StatusAndHeadersParser(list(WARC_VERSIONS))
_DIGITS = re.compile(r"[0-9]+")
# What may follow a record's block in its gzip member: the two CRLFs, with room to spare.
_RECORD_TAIL = 64

# Record types (ReadStats.by_type keys) for records whose WARC-Type is not known.
UNREADABLE = "unreadable"  # the header could not be read, so neither could the type
MISSING_TYPE = "missing_warc_type"  # the header was read and has no WARC-Type

# Why a file, or a stretch of it, holds no records (the start of a Damage detail).
DAMAGE_KINDS: dict[str, str] = {
    "not_warc": "the file does not start with a WARC record (text, JSON, HTML, ARC, ...): nothing in it is read",
    "cut_off": "the file ends inside a record or its gzip member",
    "bad_gzip": "a gzip member's compressed data or checksum is wrong: the member is lost",
    "not_gzip": "bytes between or after gzip members that are not gzip",
    "read_error": "the operating system failed to read the file",
}


@dataclass(frozen=True)
class Problem:
    """Why a record's header cannot be used; `reason` is one of the reader's skip reasons."""

    reason: str
    detail: str


@dataclass(frozen=True)
class Damage:
    """Bytes that belong to no record.

    `position` is the index the next record would have had; `cut_record` names the
    record the damage cut short, if it did (that record may have reported it already).
    """

    kind: str
    detail: str  # starts with the kind
    position: int
    cut_record: int | None = None


@dataclass
class Record:
    """One record: its header, and its block still in the stream until read or passed over."""

    index: int
    type_key: str  # WARC-Type, or UNREADABLE / MISSING_TYPE
    headers: StatusAndHeaders | None = None
    problem: Problem | None = None
    length: int = 0  # Content-Length
    _stream: ByteStream | None = field(default=None, repr=False)
    _consumed: int = 0
    _finished: bool = False

    def header(self, name: str) -> str | None:
        return self.headers.get_header(name) if self.headers is not None else None

    def read_block(self, size: int) -> bytes:
        """Up to `size` further bytes of the block."""
        if self._stream is None or self._finished:
            return b""
        data = self._stream.read(min(size, self.length - self._consumed))
        self._consumed += len(data)
        return data

    def finish(self) -> int:
        """Pass over the rest of the block; return how many bytes the block had in all."""
        if self._stream is not None and not self._finished:
            self._consumed += self._stream.skip(self.length - self._consumed)
            self._finished = True
        return self._consumed

    @property
    def short(self) -> bool:
        """Did the block end (with its segment) before its Content-Length? Valid after `finish`."""
        return self._finished and self._consumed < self.length

    def settle(self) -> SegmentEnd:
        """After `finish`: how the record's segment ends, if it ends with the record (OPEN if more follows).
        A gzip member's checksum is checked only at its end, so a record is known intact only then."""
        return self._stream.ending(_RECORD_TAIL) if self._stream is not None else SegmentEnd.OPEN

    def segment_trouble(self) -> str:
        """What went wrong with the record's segment, for a detail."""
        return self._stream.describe_end() if self._stream is not None else ""


def is_record_start(line: bytes) -> bool:
    return line[:16].decode("latin-1").upper().startswith(WARC_VERSIONS)


def _target_uri_as_warcio_gives_it(headers: StatusAndHeaders) -> None:
    """warcio strips the angle brackets Wget 1.19 put around WARC-Target-URI and percent-encodes
    spaces in it; documents keep the URL as it has always come out of the reader."""
    uri = headers.get_header("WARC-Target-URI")
    if uri is None:
        return
    fixed = uri[1:-1] if uri.startswith("<") and uri.endswith(">") else uri
    fixed = fixed.replace(" ", "%20")
    if fixed != uri:
        headers.replace_header("WARC-Target-URI", fixed)


@dataclass
class _Header:
    raw: bytes
    status: str  # "complete", "too_long", or "unended" (the segment ended before the blank line)
    at_line_start: bool  # does the stream stand at the start of a line after it?


def _read_header(stream: ByteStream, first_line: bytes, limit: int) -> _Header:
    """The header's lines, from the version line to the blank line that ends it, within `limit` bytes."""
    lines = [first_line]
    total = len(first_line)
    line = first_line
    while True:
        if not line.endswith(b"\n"):
            status = "too_long" if total >= limit or len(line) >= limit else "unended"
            return _Header(b"".join(lines), status, False)
        if len(lines) > 1 and not StatusAndHeadersParser.decode_header(line).rstrip():
            return _Header(b"".join(lines), "complete", True)
        if total >= limit:
            return _Header(b"".join(lines), "too_long", True)
        line = stream.readline(limit - total)
        if not line:
            return _Header(b"".join(lines), "unended", True)
        lines.append(line)
        total += len(line)


def _content_length(headers: StatusAndHeaders) -> int | None:
    value = headers.get_header("Content-Length")
    if value is None or not _DIGITS.fullmatch(value.strip()):
        return None
    return int(value.strip())


def _parse_header(raw: bytes) -> tuple[StatusAndHeaders | None, Problem | None]:
    try:
        headers = _WARC_HEADER_PARSER.parse(io.BytesIO(raw))
    except Exception as err:  # noqa: BLE001 - whatever warcio makes of these bytes, the record is unreadable
        return None, Problem("bad_header", printable(f"WARC header cannot be parsed: {type(err).__name__}: {err}"))
    _target_uri_as_warcio_gives_it(headers)
    if _content_length(headers) is None:
        found = headers.get_header("Content-Length")
        what = "has no Content-Length" if found is None else f"has an invalid Content-Length {printable(found, 40)!r}"
        return headers, Problem("bad_header", f"WARC header {what}: the record's end is unknown")
    return headers, None


def _resync(stream: ByteStream, at_line_start: bool, limit: int) -> bytes | None:
    """The first line of the next record in this segment, passing over all before it; None if there is none."""
    while stream.find_line_start(b"WARC/", at_line_start):
        line = stream.readline(limit)
        if is_record_start(line):
            return line
        at_line_start = line.endswith(b"\n")
    return None


class _Reader:
    """The state of one pass over a file: the next record's index, and the line found by re-synchronising."""

    def __init__(self, stream: ByteStream, max_header_bytes: int) -> None:
        self.stream = stream
        self.limit = max_header_bytes
        self.index = 0
        self.next_line: bytes | None = None
        self.at_file_end = False

    def records(self) -> Iterator[Record | Damage]:
        while not self.at_file_end:
            line = self.next_line
            self.next_line = None
            if line is None:
                self.stream.skip_blank()
                line = self.stream.readline(self.limit)
            if not line:
                yield from self._leave_segment()
                continue
            if self._broken_off(line):
                yield from self._leave_segment(in_header=True)
                continue
            if not is_record_start(line):
                if self.index == 0:
                    first = f"not_warc: the file does not start with a WARC record (first line: {quoted(line)})"
                    yield Damage("not_warc", first, 0)
                    return
                yield self._unreadable("bad_header", f"no WARC record starts here (line: {quoted(line)})")
                self.next_line = _resync(self.stream, line.endswith(b"\n"), self.limit)
                continue
            yield from self._record(line)

    def _record(self, first_line: bytes) -> Iterator[Record | Damage]:
        header = _read_header(self.stream, first_line, self.limit)
        if header.status == "too_long":
            yield self._unreadable("decompression_limit", f"WARC header is over the {self.limit}-byte limit")
            self.next_line = _resync(self.stream, header.at_line_start, self.limit)
            return
        if header.status == "unended":
            if self.stream.gzipped and self.stream.end is SegmentEnd.CLEAN:
                yield self._unreadable("bad_header", "the gzip member ends inside the WARC header")
            else:
                yield from self._leave_segment(in_header=True)
            return
        headers, problem = _parse_header(header.raw)
        if problem is not None:
            yield self._unreadable(problem.reason, problem.detail, headers)
            self.next_line = _resync(self.stream, True, self.limit)
            return
        assert headers is not None
        rec_type = (headers.get_header("WARC-Type") or "").strip()
        length = _content_length(headers) or 0
        record = Record(self.index, rec_type or MISSING_TYPE, headers, length=length, _stream=self.stream)
        self.index += 1
        yield record
        record.finish()
        end = record.settle()
        # A short block in a complete gzip member is a record written short (the caller
        # reports it); a short block anywhere else, or a member that breaks off or fails
        # its checksum with the record, is damage to the file.
        if end in (SegmentEnd.CUT_OFF, SegmentEnd.CORRUPT) or (record.short and not self.stream.gzipped):
            yield from self._leave_segment(cut_record=record.index)

    def _broken_off(self, line: bytes) -> bool:
        """Did the data break off (file cut, corrupt gzip) inside this first line of a record?"""
        if line.endswith(b"\n") or len(line) >= self.limit or not self.stream.at_segment_end():
            return False
        if self.stream.end in (SegmentEnd.CUT_OFF, SegmentEnd.CORRUPT):
            return True
        # A plain file ends with its segment: a cut inside a version line leaves a prefix of one.
        start = line.decode("latin-1").upper()
        return not self.stream.gzipped and any(version.startswith(start) for version in WARC_VERSIONS)

    def _unreadable(self, reason: str, detail: str, headers: StatusAndHeaders | None = None) -> Record:
        record = Record(self.index, UNREADABLE, headers, Problem(reason, detail))
        self.index += 1
        return record

    def _leave_segment(self, cut_record: int | None = None, in_header: bool = False) -> Iterator[Damage]:
        """Move to the next segment, reporting how this one ended badly and what was passed over.

        `cut_record`: the record whose block the segment ended in; `in_header`: it ended
        inside the header of the next record; neither: it ended between records.
        """
        stream = self.stream
        end, how = stream.end, stream.describe_end()
        resync = stream.next_segment()
        self.at_file_end = not resync.found
        if in_header:
            inside = f"the header of record {self.index}"
        elif cut_record is not None:
            inside = f"record {cut_record}"
        else:
            inside = f"record {self.index - 1}" if self.index else "the first record"
        after = _resync_note(resync)
        position = self.index
        if end is SegmentEnd.CORRUPT:
            yield Damage("bad_gzip", f"bad_gzip: {how}; {after}", position, cut_record)
        elif end is SegmentEnd.CUT_OFF:
            yield Damage("cut_off", f"cut_off: file ends inside {inside} (gzip stream cut off)", position, cut_record)
        elif not stream.gzipped and cut_record is not None:
            short = f"cut_off: file ends inside {inside} (block shorter than its Content-Length)"
            yield Damage("cut_off", short, position, cut_record)
        elif not stream.gzipped and in_header:
            yield Damage("cut_off", f"cut_off: file ends inside {inside}", position)
        elif resync.skipped:
            junk = f"not_gzip: {resync.skipped} bytes at byte {resync.skipped_from} are not gzip data; {after}"
            yield Damage("not_gzip", junk, position)


def _resync_note(resync: Resync) -> str:
    if resync.resumed_at is not None:
        return f"reading resumed at byte {resync.resumed_at}"
    return "no record after it"


def iter_records(stream: ByteStream, max_header_bytes: int) -> Iterator[Record | Damage]:
    """Every record of the file and every stretch of damage, in file order (see the module docstring)."""
    return _Reader(stream, max_header_bytes).records()
