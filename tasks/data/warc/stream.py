"""The decompressed bytes of a WARC file, read in bounded steps.

A `.warc.gz` file is a series of gzip members (WARC writers put one record in each,
and Common Crawl always does); a plain `.warc` file is one stream. A `ByteStream` hands
out the bytes of its current *segment* — the current gzip member, or the whole plain
file — through `readline`, `read`, `skip`, `skip_blank` and `find_line_start`. None of
them holds more than about a megabyte plus what the caller asked for, whatever the data:
a member that inflates to gigabytes without a newline is passed over in steps.

When a segment ends, `end` says how: cleanly, cut off by the end of the file, or on
corrupt compressed data. `next_segment` then moves to the next gzip member; where the
bytes that follow are not one (a corrupt member, junk between members), it scans ahead
for the next member that starts a WARC record and says how much it passed over.

Whether a file is gzip is decided by its first bytes, not its name.
"""

from __future__ import annotations

import enum
import zlib
from dataclasses import dataclass
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
# A gzip member header: the magic and the deflate method, the only one gzip defines.
_MEMBER_START = b"\x1f\x8b\x08"
_WARC_START = b"WARC/"

# Bytes produced per step. Always the same step, whatever the caller asked for: zlib
# drops the output of a step that meets corrupt data, so only fixed steps make a corrupt
# member break off at the same byte for every reader (iter_warc and count_records).
_STEP = 1 << 16
_RAW_STEP = 1 << 16  # compressed bytes read from the file per step
_SALVAGE_PIECE = 64  # compressed bytes fed per call when recovering what came before corrupt data
_SCAN_STEP = 1 << 20  # compressed bytes searched per step for the next gzip member
# How much of a candidate member is inflated to see whether it starts a WARC record.
_PROBE_RAW_LIMIT = 1 << 20
_BLANK = b" \t\r\n\x0b\x0c"


class SegmentEnd(enum.Enum):
    OPEN = "open"  # more bytes may follow
    CLEAN = "clean"  # the member (or the plain file) ended where it should
    CUT_OFF = "cut_off"  # the file ends inside a gzip member
    CORRUPT = "corrupt"  # the member's compressed data or checksum is wrong


@dataclass(frozen=True)
class Resync:
    """Where `next_segment` went: whether another segment starts, and what it passed over."""

    found: bool  # False: the end of the file
    skipped: int = 0  # bytes passed over that start no WARC record
    skipped_from: int = 0  # file offset where they began
    resumed_at: int | None = None  # file offset of the segment found after them


class ByteStream:
    """The current segment's bytes, from a buffer refilled by `_produce`."""

    gzipped: bool = False

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self.end = SegmentEnd.OPEN

    # ------------------------------------------------------------ to implement

    def _produce(self) -> bytes:
        """Up to `_STEP` further bytes of the current segment; b"" once it ended (and `end` says how)."""
        raise NotImplementedError

    def next_segment(self) -> Resync:
        """Leave the current segment (what is left of it unread) for the next one."""
        raise NotImplementedError

    def describe_end(self) -> str:
        """How the current segment ended, for a damage report."""
        return ""

    # ------------------------------------------------------------ reading

    def _refill(self) -> bool:
        chunk = self._produce()
        if not chunk:
            return False
        rest = self._buf[self._pos :]
        self._buf = rest + chunk if rest else chunk
        self._pos = 0
        return True

    def readline(self, limit: int) -> bytes:
        """The rest of the current line, newline included, but at most `limit` bytes; b"" at the segment end."""
        scanned = 0  # bytes after the position already known to hold no newline
        while True:
            end = self._buf.find(b"\n", self._pos + scanned, self._pos + limit)
            if end >= 0:
                return self._take(end + 1 - self._pos)
            available = len(self._buf) - self._pos
            if available >= limit:
                return self._take(limit)
            scanned = available
            if not self._refill():
                return self._take(available)

    def read(self, size: int) -> bytes:
        """Up to `size` bytes; fewer only where the segment ends."""
        parts: list[bytes] = []
        while size > 0:
            available = len(self._buf) - self._pos
            if not available:
                if not self._refill():
                    break
                continue
            part = self._take(min(size, available))
            parts.append(part)
            size -= len(part)
        return b"".join(parts)

    def skip(self, size: int | None = None) -> int:
        """Pass over up to `size` bytes (None: the rest of the segment); return how many there were."""
        skipped = 0
        while size is None or skipped < size:
            available = len(self._buf) - self._pos
            if not available:
                if not self._refill():
                    break
                continue
            step = available if size is None else min(available, size - skipped)
            self._pos += step
            skipped += step
        return skipped

    def skip_blank(self) -> None:
        """Pass over whitespace, such as the blank lines between records."""
        while True:
            # Usually a few bytes: look at a short piece first, then at all that is buffered.
            for end in (self._pos + 64, len(self._buf)):
                piece = self._buf[self._pos : end]
                rest = piece.lstrip(_BLANK)
                self._pos += len(piece) - len(rest)
                if rest:
                    return
            if not self._refill():
                return

    def find_line_start(self, prefix: bytes, at_line_start: bool) -> bool:
        """Move to the next line that starts with `prefix` in this segment (the current one
        counts when `at_line_start`); False, at the segment end, if there is none."""
        if at_line_start and self._peek(len(prefix)) == prefix:
            return True
        needle = b"\n" + prefix
        while True:
            found = self._buf.find(needle, self._pos)
            if found >= 0:
                self._pos = found + 1
                return True
            # The needle may straddle two refills: keep what could be its beginning.
            self._pos = max(self._pos, len(self._buf) - len(needle) + 1)
            if not self._refill():
                self._pos = len(self._buf)
                return False

    def ending(self, size: int) -> SegmentEnd:
        """How the segment ends, if nothing but whitespace is left in it within `size` bytes;
        OPEN if more is left. Looking ahead makes gzip check the checksum of a member that ends there."""
        ahead = self._peek(size + 1)
        if len(ahead) > size or ahead.strip(_BLANK):
            return SegmentEnd.OPEN
        return self.end

    def at_segment_end(self) -> bool:
        return self._pos >= len(self._buf) and not self._refill()

    def _peek(self, size: int) -> bytes:
        while len(self._buf) - self._pos < size and self._refill():
            pass
        return self._buf[self._pos : self._pos + size]

    def _take(self, size: int) -> bytes:
        data = self._buf[self._pos : self._pos + size]
        self._pos += len(data)
        return data

    def _drop_buffer(self) -> None:
        self._buf, self._pos = b"", 0


class PlainStream(ByteStream):
    """An uncompressed file: one segment, which ends with the file."""

    def __init__(self, fh: BinaryIO, first: bytes) -> None:
        super().__init__()
        self._fh = fh
        self._buf = first

    def _produce(self) -> bytes:
        if self.end is not SegmentEnd.OPEN:
            return b""
        data = self._fh.read(_STEP)
        if not data:
            self.end = SegmentEnd.CLEAN
        return data

    def next_segment(self) -> Resync:
        self._drop_buffer()
        return Resync(found=False)


class GzipStream(ByteStream):
    """A gzip file, one member per segment."""

    gzipped = True

    def __init__(self, fh: BinaryIO, first: bytes) -> None:
        super().__init__()
        self._fh = fh
        self._pending = first  # compressed bytes read from the file, not yet given to a decompressor
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self.member_offset = 0  # file offset where the current member starts
        self._zlib_error = ""

    def _produce(self) -> bytes:
        while self.end is SegmentEnd.OPEN:
            data = self._inflater.unconsumed_tail or self._take_raw()
            if not data:
                self.end = SegmentEnd.CUT_OFF
                return b""
            backup = self._inflater.copy()
            try:
                out = self._inflater.decompress(data, _STEP)
            except zlib.error:
                self._inflater = backup
                return self._salvage(data)
            if self._inflater.eof:
                self._pending = self._inflater.unused_data
                self.end = SegmentEnd.CLEAN
            if out:
                return out
        return b""

    def _salvage(self, data: bytes) -> bytes:
        """The bytes `data` inflates to before its corrupt part, which a failing zlib call
        throws away: fed again in small pieces, only the piece holding the damage is lost.
        So a member whose checksum is wrong still shows the record it held."""
        out: list[bytes] = []
        produced = 0
        for at in range(0, len(data), _SALVAGE_PIECE):
            try:
                # The failed call stopped short of _STEP bytes: so does this.
                part = self._inflater.decompress(data[at : at + _SALVAGE_PIECE], _STEP - produced)
            except zlib.error as err:
                self._zlib_error = str(err)
                break
            out.append(part)
            produced += len(part)
        self.end = SegmentEnd.CORRUPT
        return b"".join(out)

    def describe_end(self) -> str:
        if self.end is SegmentEnd.CORRUPT:
            return f"corrupt gzip data in the member at byte {self.member_offset} ({self._zlib_error})"
        return ""

    def _take_raw(self) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        return self._fh.read(_RAW_STEP)

    def _raw_offset(self) -> int:
        """File offset of the next compressed byte not yet given to a decompressor."""
        return self._fh.tell() - len(self._pending)

    def _start_member(self, offset: int) -> None:
        self._drop_buffer()
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self.member_offset = offset
        self.end = SegmentEnd.OPEN

    def next_segment(self) -> Resync:
        self._drop_buffer()
        if self.end is SegmentEnd.OPEN:
            self.skip()
        if self.end is SegmentEnd.CUT_OFF:
            return Resync(found=False)
        if self.end is SegmentEnd.CORRUPT:
            # Where in the member the data went wrong is unknown: the whole member is lost,
            # and the next one is looked for from just after its start.
            skipped_from = self.member_offset
            scan_from = skipped_from + 1
        else:
            skipped_from = scan_from = self._raw_offset()
            head = self._pending
            while len(head) < len(GZIP_MAGIC):
                more = self._fh.read(_RAW_STEP)
                if not more:
                    break
                head += more
            self._pending = head
            if not head:
                return Resync(found=False)
            if head.startswith(GZIP_MAGIC):
                self._start_member(scan_from)
                return Resync(found=True)
        found = self._scan(scan_from)
        self._pending = b""
        if found is None:
            return Resync(found=False, skipped=self._file_size() - skipped_from, skipped_from=skipped_from)
        self._fh.seek(found)
        self._start_member(found)
        return Resync(found=True, skipped=found - skipped_from, skipped_from=skipped_from, resumed_at=found)

    def _file_size(self) -> int:
        self._fh.seek(0, 2)
        return self._fh.tell()

    def _scan(self, offset: int) -> int | None:
        """File offset of the first gzip member at or after `offset` that starts a WARC record."""
        base = offset  # file offset of data[len(carry)]
        carry = b""
        while True:
            self._fh.seek(base)
            block = self._fh.read(_SCAN_STEP)
            if not block:
                return None
            data = carry + block
            at = data.find(_MEMBER_START)
            while at >= 0:
                candidate = base - len(carry) + at
                if self._starts_warc_record(candidate):
                    return candidate
                at = data.find(_MEMBER_START, at + 1)
            carry = data[-(len(_MEMBER_START) - 1) :]
            base += len(block)

    def _starts_warc_record(self, offset: int) -> bool:
        self._fh.seek(offset)
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        out = b""
        raw_read = 0
        try:
            while len(out) < len(_WARC_START) and raw_read < _PROBE_RAW_LIMIT and not inflater.eof:
                data = inflater.unconsumed_tail or self._fh.read(_RAW_STEP)
                if not data:
                    break
                raw_read += len(data)
                out += inflater.decompress(data, len(_WARC_START) - len(out))
        except zlib.error:
            return False
        return out.startswith(_WARC_START)


def open_stream(fh: BinaryIO) -> ByteStream:
    """The file's bytes: gzip when it starts like gzip, whatever its name; plain otherwise."""
    first = fh.read(len(GZIP_MAGIC))
    if first == GZIP_MAGIC:
        return GzipStream(fh, first)
    return PlainStream(fh, first)
