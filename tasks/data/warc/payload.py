"""The HTTP body of a response record, read within a byte budget whatever its encoding.

warcio's `ArcWarcRecord.content_stream()` undoes chunked transfer coding and gzip or
deflate content coding, but inflates each chunk (or each 16 KB read) whole: a record
of a few hundred kilobytes can expand to gigabytes in one call. `read_body` opens the
same warcio readers the same way, except that their decompressors stop producing output
once the budget is spent; up to the budget the bytes are exactly content_stream()'s.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from warcio.bufferedreaders import BufferedReader, ChunkedDataReader
from warcio.recordloader import ArcWarcRecord


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit
        self.exceeded = False


class _CappedDecompressor:
    """A zlib decompressor whose output, over all calls, stops just past the budget."""

    def __init__(self, inner: Any, budget: _Budget) -> None:
        self._inner = inner
        self._budget = budget

    def decompress(self, data: bytes) -> bytes:
        if self._budget.exceeded:
            return b""
        # One byte more than the budget allows: getting it is how going over shows.
        out = self._inner.decompress(data, self._budget.left + 1)
        self._budget.left -= len(out)
        if self._budget.left < 0 or self._inner.unconsumed_tail:
            self._budget.exceeded = True
        return out

    @property
    def unused_data(self) -> bytes:
        return self._inner.unused_data

    def flush(self) -> bytes:
        # warcio flushes only to discard; flushing could inflate the rest without bound.
        return b""


class _CappedReader(BufferedReader):
    def __init__(self, stream: BinaryIO, budget: _Budget, decomp_type: str) -> None:
        self._budget = budget  # before the base class sets up its decompressor
        super().__init__(stream, decomp_type=decomp_type)

    def _init_decomp(self, decomp_type: str | None) -> None:
        super()._init_decomp(decomp_type)
        if self.decompressor is not None:
            self.decompressor = _CappedDecompressor(self.decompressor, self._budget)


class _CappedChunkedReader(ChunkedDataReader):
    def __init__(self, stream: BinaryIO, budget: _Budget, decomp_type: str | None) -> None:
        self._budget = budget
        super().__init__(stream, decomp_type=decomp_type)

    def _init_decomp(self, decomp_type: str | None) -> None:
        super()._init_decomp(decomp_type)
        if self.decompressor is not None:
            self.decompressor = _CappedDecompressor(self.decompressor, self._budget)


# warcio's zlib codings (BufferedReader.DECOMPRESSORS without brotli, which is not
# installed here and whose decompressor cannot be capped).
_CODINGS = frozenset({"gzip", "deflate", "deflate_alt"})


def _content_stream(record: ArcWarcRecord, budget: _Budget) -> Any:
    """ArcWarcRecord.content_stream(), with capped decompressors."""
    if not record.http_headers:
        return record.raw_stream
    coding = record.http_headers.get_header("content-encoding")
    coding = coding.lower() if coding and coding.lower() in _CODINGS else None
    if record.http_headers.get_header("transfer-encoding") == "chunked":
        return _CappedChunkedReader(record.raw_stream, budget, coding)
    if coding:
        return _CappedReader(record.raw_stream, budget, coding)
    return record.raw_stream


def read_body(record: ArcWarcRecord, limit: int) -> tuple[bytes, bool]:
    """The decoded HTTP body (at most `limit` + 1 bytes) and whether it is over `limit`.

    Raises what warcio's readers raise on a broken coding, as content_stream().read() would.
    """
    budget = _Budget(limit)
    body = _content_stream(record, budget).read(limit + 1)
    return body, budget.exceeded or len(body) > limit
