"""Read documents from text datasets (already extracted text), accounting for every row.

Three kinds of file, told apart by their suffix:

* ``.txt``: the whole file is one document (a book, a transcript), its line ends made ``\n``;
* ``.jsonl`` / ``.jsonl.gz``: one JSON object per line;
* ``.parquet``: one row per document, read a record batch at a time.

JSON Lines and Parquet rows hold the text under ``text_column`` (``text`` by default,
as in FineWeb's published shards); ``id``, ``url`` and ``date`` are picked up when the
row has them. A row without its own id gets ``<file name>#<index>`` (its row, or its line from 0).

As with the WARC reader, every row in the requested range comes out either as a
``TextDocument`` or as a ``SkippedRecord`` with a reason from ``TEXT_SKIP_REASONS``,
and ``stats.responses == stats.html + (sum of stats.skipped except "damaged_file")``
holds whatever the file holds (``ReadStats`` keeps the WARC reader's field names:
``responses`` counts rows, ``html`` the documents handed on). Bytes that are not
UTF-8 are replaced and counted; a file that breaks off (a cut-off gzip stream, a
Parquet file that cannot be read any further) ends with one ``damaged_file`` row.
Memory stays bounded: a line or a file over ``ReaderConfig.max_payload_bytes`` is a
``too_large`` row, and its bytes are passed over in bounded steps.
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from llmforge.config import ReaderConfig
from tasks.data.warc.detail import printable
from tasks.data.warc_reader import ReadStats, SkippedRecord, to_encodable

log = logging.getLogger(__name__)

TEXT_SUFFIXES: tuple[str, ...] = (".txt", ".jsonl", ".jsonl.gz", ".parquet")
TEXT_SKIP_REASONS: tuple[str, ...] = (
    "bad_json",  # a JSON Lines line that is not a JSON object
    "missing_text",  # the row has no text column, or it is null
    "not_text",  # the text column holds something other than a string
    "empty_text",  # the text is empty or only white space
    "too_large",  # a line or a plain-text file over ReaderConfig.max_payload_bytes; its bytes were passed over
    "damaged_file",  # the file cannot be read on from here (the detail says why)
)
_CHUNK = 1 << 20  # bytes read at a time while passing over a line that is too long


def is_text_file(path: str | Path) -> bool:
    return Path(path).name.endswith(TEXT_SUFFIXES)


@dataclass(frozen=True)
class TextDocument:
    id: str
    url: str
    crawl_date: str
    text: str
    record_index: int  # the row's index in a Parquet file, its line's in a JSON Lines file, 0 for a .txt file
    replaced_chars: int = 0


def iter_text_file(
    path: str | Path,
    start: int = 0,
    stop: int | None = None,
    stats: ReadStats | None = None,
    limits: ReaderConfig | None = None,
    text_column: str = "text",
    name: str | None = None,
) -> Iterator[TextDocument | SkippedRecord]:
    """A ``TextDocument`` or a ``SkippedRecord`` for every row with ``start <= index < stop``.

    ``name``: the file's name in the outputs, used for ids of rows that have none.
    Raises ``OSError`` naming the file at once when it cannot be opened; nothing after that.
    """
    path = Path(path)
    if start < 0 or (stop is not None and stop < start):
        raise ValueError(f"invalid row range [{start}, {stop}) for {path}")
    stats = stats if stats is not None else ReadStats()
    limits = limits or ReaderConfig()
    reader = _Rows(path, name or path.name, text_column, limits.max_payload_bytes)
    if path.name.endswith(".parquet"):
        _open(path).close()  # a missing file fails here, where the caller asked for it
        rows = reader.parquet(start, stop)
    else:
        fh = _open(path)
        rows = reader.plain_text(fh) if path.name.endswith(".txt") else reader.json_lines(fh)
    return _in_range(rows, start, stop, stats)


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as err:
        raise type(err)(err.errno, f"cannot open text file: {err.strerror}", str(path)) from err


def _in_range(
    rows: Iterator[tuple[int, TextDocument | SkippedRecord]], start: int, stop: int | None, stats: ReadStats
) -> Iterator[TextDocument | SkippedRecord]:
    for index, item in rows:
        if stop is not None and index >= stop:
            return
        if index < start:
            continue
        if isinstance(item, SkippedRecord) and item.reason == "damaged_file":
            stats.damaged = stats.damaged or item.detail
        else:
            stats.records += 1
            stats.responses += 1
            stats.by_type["text"] = stats.by_type.get("text", 0) + 1
        if isinstance(item, TextDocument):
            stats.html += 1
        else:
            stats.skipped[item.reason] = stats.skipped.get(item.reason, 0) + 1
        yield item


class _Rows:
    """The rows of one file as (index, document or skip), for each kind of file."""

    def __init__(self, path: Path, name: str, text_column: str, max_bytes: int):
        self.path, self.name, self.column, self.max_bytes = path, name, text_column, max_bytes
        self.missing_column = ""  # Parquet: why no row has a text (the column is not in the file)

    def plain_text(self, fh: BinaryIO) -> Iterator[tuple[int, TextDocument | SkippedRecord]]:
        with fh:
            try:
                data = fh.read(self.max_bytes + 1)
            except OSError as err:
                yield 0, self._damaged(0, f"read_error: {err}")
                return
        if len(data) > self.max_bytes:
            yield 0, self._skip(0, None, None, "too_large", f"over {self.max_bytes} bytes")
            return
        text, replaced = _decode(data)
        # Line ends as Python's text mode reads them: a file written on Windows is the same text.
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        yield 0, self._document(0, {self.column: text}, replaced)

    def json_lines(self, fh: BinaryIO) -> Iterator[tuple[int, TextDocument | SkippedRecord]]:
        index = 0
        stream: Any = gzip.GzipFile(fileobj=fh) if self.path.name.endswith(".gz") else fh
        with fh, stream:
            while True:
                try:
                    line = stream.readline(self.max_bytes + 1)
                    if len(line) > self.max_bytes and not line.endswith(b"\n"):
                        _pass_over_line(stream)
                        yield index, self._skip(index, None, None, "too_large", f"a line over {self.max_bytes} bytes")
                        index += 1
                        continue
                except (OSError, EOFError, zlib.error) as err:
                    yield index, self._damaged(index, f"{type(err).__name__}: {err}")
                    return
                if not line:
                    return
                if not line.strip():
                    index += 1  # a blank line is not a row, but rows keep their line numbers
                    continue
                text, replaced = _decode(line)
                try:
                    row = json.loads(text)
                except (ValueError, RecursionError) as err:  # also: integers too long to convert, deep nesting
                    yield index, self._skip(index, None, None, "bad_json", f"{type(err).__name__}: {err}")
                else:
                    if isinstance(row, dict):
                        yield index, self._document(index, row, replaced)
                    else:
                        yield index, self._skip(index, None, None, "bad_json", f"a JSON {type(row).__name__}, not an object")
                index += 1

    def parquet(self, start: int, stop: int | None) -> Iterator[tuple[int, TextDocument | SkippedRecord]]:
        """The rows of the row groups that overlap [start, stop): a shard of a large file reads its own part only."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        unreadable = (OSError, ValueError, TypeError, NotImplementedError, pa.ArrowException)
        try:
            parquet = pq.ParquetFile(self.path)
            sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)]
        except unreadable as err:
            yield 0, self._damaged(0, f"not_parquet: {err}")
            return
        present = parquet.schema_arrow.names
        if self.column not in present:
            self.missing_column = f"no column {self.column!r} in the file (its columns: {', '.join(present)})"
            log.warning("%s: %s; set data.text_column", self.name, self.missing_column)
        columns = [c for c in dict.fromkeys((self.column, "id", "url", "date")) if c in present]
        first = [sum(sizes[:i]) for i in range(len(sizes))]
        groups = [i for i, (at, n) in enumerate(zip(first, sizes)) if at + n > start and (stop is None or at < stop)]
        index = first[groups[0]] if groups else 0
        try:
            for batch in parquet.iter_batches(batch_size=256, columns=columns, row_groups=groups):
                for row in batch.to_pylist():
                    yield index, self._document(index, row, 0)
                    index += 1
        except unreadable as err:
            yield index, self._damaged(index, f"unreadable_row_group: {err}")

    def _document(self, index: int, row: dict[str, Any], replaced: int) -> TextDocument | SkippedRecord:
        doc_id = _field(row, "id") or f"{self.name}#{index}"
        url = _field(row, "url")
        text = row.get(self.column)
        if text is None:
            return self._skip(index, doc_id, url, "missing_text", self.missing_column or f"no {self.column!r} in the row")
        if not isinstance(text, str):
            return self._skip(index, doc_id, url, "not_text", f"{self.column!r} is a {type(text).__name__}")
        if not text.strip():
            return self._skip(index, doc_id, url, "empty_text", "")
        clean, surrogates = to_encodable(text)  # JSON may hold lone surrogates
        return TextDocument(doc_id, url or "", _field(row, "date") or "", clean, index, replaced + surrogates)

    def _skip(self, index: int, doc_id: str | None, url: str | None, reason: str, detail: str) -> SkippedRecord:
        return SkippedRecord(doc_id, url, reason, printable(detail)[:200], index)

    def _damaged(self, index: int, detail: str) -> SkippedRecord:
        return SkippedRecord(None, None, "damaged_file", printable(detail)[:200], index)


def _field(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    return None if value is None or value == "" else str(value)


def _decode(data: bytes) -> tuple[str, int]:
    """UTF-8 text (a BOM dropped) and how many characters had to be replaced."""
    text = data.decode("utf-8", errors="replace")
    replaced = text.count("\ufffd") - data.decode("utf-8", errors="ignore").count("\ufffd")
    return text.removeprefix("\ufeff"), replaced


def _pass_over_line(stream: Any) -> None:
    while True:
        chunk = stream.readline(_CHUNK)
        if not chunk or chunk.endswith(b"\n"):
            return


def count_rows(path: str | Path) -> int | None:
    """Rows in a Parquet file (from its footer, without reading them); None for other kinds,
    which are read whole by one shard (counting a JSON Lines file means reading it)."""
    path = Path(path)
    if not path.name.endswith(".parquet"):
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    _open(path).close()
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, ValueError, TypeError, NotImplementedError, pa.ArrowException):  # damaged: one shard reports it
        return None
