"""Bounded memory: decompression bombs and records over the reader's byte limits.

A bomb is a small .warc.gz whose member inflates to hundreds of megabytes with no
newline, in a record's header or in its HTTP body. Each is read in a subprocess whose
peak RSS is compared with the same subprocess reading a small clean file; the records
are `decompression_limit` rows and the record after each bomb is read as usual.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from pydantic import ValidationError
from test_warc_damaged import (
    html_record,
    http_response,
    read_checked,
    reasons,
    warc_record,
    write,
)

from llmforge.config import DataConfig, ReaderConfig

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20
# What a worker may use beyond what reading a clean file takes: three times what the
# default limits let one record's bytes take (max_header_bytes + 2 x max_payload_bytes,
# 33 MB), for the copies warcio's HTTP parser makes and for the allocator. Measured:
# 25 MB for every bomb here; the reader before the limits took 150 MB more on the
# 52 MB bombs and 7 GB on a 420 MB one.
RSS_HEADROOM = 100 * MB


def deflated(prefix: bytes, filler: bytes, size: int, suffix: bytes = b"", wbits: int = 31) -> bytes:
    """`prefix`, `size` bytes of `filler` repeated, `suffix`: compressed in steps (never held whole)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    step = filler * (MB // len(filler))
    parts = [compressor.compress(prefix)]
    for _ in range(size // len(step)):
        parts.append(compressor.compress(step))
    parts += [compressor.compress(suffix), compressor.flush()]
    return b"".join(parts)


def http_bomb_block(size: int, *headers: str) -> bytes:
    """An HTTP response whose body is gzip of `size` bytes without a newline."""
    return http_response(deflated(b"<html><body>", b"A", size), "Content-Encoding: gzip", *headers)


def chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def write_bombs(directory: Path, size: int, kinds: tuple[str, ...] | None = None) -> dict[str, Path]:
    """One file per kind of bomb (all kinds, or those named), each followed by a normal record (index 1)."""
    after = gzip.compress(html_record(1), mtime=0)
    html = {"WARC-Identified-Payload-Type": "text/html"}
    stored_http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>"
    stored_head = warc_record(0, b"", extra=html, content_length=str(len(stored_http) + size)).removesuffix(b"\r\n\r\n")
    bombs = {
        # The reproduction: a header line that never ends.
        "header": lambda: deflated(b"WARC/1.0\r\nWARC-Type: response\r\nX-Bomb: ", b"A", size),
        # A header of endless short lines.
        "header_lines": lambda: deflated(b"WARC/1.0\r\nWARC-Type: response\r\n", b"X-Line: a\r\n", size),
        # Whitespace where the next record should start.
        "blank": lambda: deflated(b"", b"\r\n", size),
        # A body as stored, as long as its Content-Length says.
        "stored_body": lambda: deflated(stored_head + stored_http, b"A", size, b"\r\n\r\n"),
        # A small record whose gzip Content-Encoding inflates without end.
        "coded_body": lambda: gzip.compress(warc_record(0, http_bomb_block(size), extra=html), mtime=0),
        # The same, chunked, with no payload type declared (so the body is sniffed).
        "chunked_body": lambda: gzip.compress(
            warc_record(
                0,
                http_response(
                    chunked(deflated(b"<html><body>", b"A", size)), "Content-Encoding: gzip", "Transfer-Encoding: chunked"
                ),
            ),
            mtime=0,
        ),
    }
    return {
        name: write(directory / f"{name}.warc.gz", build() + after)
        for name, build in bombs.items()
        if kinds is None or name in kinds
    }


_READER_SCRIPT = """
import json, resource, sys
from tasks.data.warc_reader import ReadStats, count_records, iter_warc
out = {}
for path in sys.argv[1:]:
    stats = ReadStats()
    items = [getattr(item, "reason", "html") for item in iter_warc(path, stats=stats)]
    out[path] = {"items": items, "records": stats.records, "count": count_records(path)}
out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(out))
"""


def read_in_subprocess(*paths: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _READER_SCRIPT, *map(str, paths)],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )
    return json.loads(done.stdout)


def _check_bombs(tmp_path: Path, size: int, kinds: tuple[str, ...] | None = None) -> None:
    clean = write(tmp_path / "clean.warc.gz", gzip.compress(html_record(0) + html_record(1), mtime=0))
    baseline = read_in_subprocess(clean)["peak_rss_bytes"]
    for name, path in write_bombs(tmp_path, size, kinds).items():
        assert path.stat().st_size < size // 500, name  # a bomb indeed
        result = read_in_subprocess(path)
        read = result[str(path)]
        expected = ["decompression_limit", "html"] if name != "blank" else ["html"]
        assert read["items"] == expected, name
        assert read["count"] == read["records"] == (2 if name != "blank" else 1), name
        extra = result["peak_rss_bytes"] - baseline
        assert extra < RSS_HEADROOM, f"{name}: {extra / MB:.0f} MB over a clean read"


def test_decompression_bombs_stay_within_the_memory_budget(tmp_path: Path) -> None:
    # The size of the 51 KB reproduction, which took the reader to 0.9 GB; in a header and in a body.
    _check_bombs(tmp_path, 52 * MB, ("header", "coded_body"))


@pytest.mark.slow
def test_large_decompression_bombs_stay_within_the_memory_budget(tmp_path: Path) -> None:
    # The size of the 408 KB reproduction, which took the reader to 7.0 GB.
    _check_bombs(tmp_path, 420 * MB)


# ------------------------------------------------------------------ the limits, one by one (in process)

SMALL = ReaderConfig(max_header_bytes=4096, max_payload_bytes=65536)


def test_a_header_over_the_limit_is_passed_over(tmp_path: Path) -> None:
    long_header = html_record(1, extra={"X-Long": "x" * 5000})
    path = write(tmp_path / "long.warc.gz", gzip.compress(html_record(0) + long_header + html_record(2)))
    items, stats = read_checked(path, SMALL)
    assert reasons(items) == ["html", "decompression_limit", "html"]
    assert items[1].detail == "WARC header is over the 4096-byte limit" and items[1].id is None
    assert stats.by_type == {"response": 2, "unreadable": 1}
    # With the default limit the same header is fine: the limits decide the records' numbering.
    items, _ = read_checked(tmp_path / "long.warc.gz")
    assert reasons(items) == ["html", "html", "html"]


def test_bodies_over_the_limit_as_stored_or_once_decoded(tmp_path: Path) -> None:
    big_page = b"<html><body>" + b"<p>word</p>\n" * 6000 + b"</body></html>"  # 72 KB
    html = {"WARC-Identified-Payload-Type": "text/html"}
    records = [
        warc_record(0, http_response(big_page), extra=html),
        warc_record(1, http_response(gzip.compress(big_page), "Content-Encoding: gzip"), extra=html),
        warc_record(
            2, http_response(chunked(gzip.compress(big_page)), "Content-Encoding: gzip", "Transfer-Encoding: chunked")
        ),
        warc_record(3, http_response(b"GIF89a" + bytes(80_000), content_type="image/gif")),  # sniffed: not HTML
        warc_record(4, http_response(bytes(80_000)), extra={"WARC-Identified-Payload-Type": "image/png"}),
        warc_record(5, http_response(big_page[:60_000] + b"</p></body></html>"), extra=html),
    ]
    items, _ = read_checked(write(tmp_path / "big.warc.gz", b"".join(gzip.compress(r) for r in records)), SMALL)
    assert reasons(items) == ["decompression_limit"] * 3 + ["non_html", "non_html", "html"]
    assert items[0].detail == f"record block of {len(http_response(big_page))} bytes is over the 69632-byte limit"
    assert items[1].detail == "HTTP body is over the 65536-byte limit once decoded"
    assert items[3].detail == "mime image/gif (sniffed)"
    items, _ = read_checked(tmp_path / "big.warc.gz")
    assert reasons(items) == ["html", "html", "html", "non_html", "non_html", "html"]


def test_the_shared_warcs_are_far_below_the_default_limits(shared_data: Path) -> None:
    # The largest HTML body among the shared WARCs is 1.2 MB; the extraction step refuses
    # pages over max_html_bytes itself, so the reader's limit must lie above that one.
    config = DataConfig()
    assert config.reader.max_payload_bytes > (config.extraction.max_html_bytes or 0)
    for path in sorted((shared_data / "warc").glob("*.warc.gz")):
        _, stats = read_checked(path)
        assert "decompression_limit" not in stats.skipped, path.name


def test_reader_limits_are_ranged() -> None:
    with pytest.raises(ValidationError):
        ReaderConfig(max_payload_bytes=1000)
    with pytest.raises(ValidationError):
        ReaderConfig(max_header_bytes=1 << 30)
    assert DataConfig.model_validate({"reader": {"max_payload_bytes": 1 << 20}}).reader.max_payload_bytes == 1 << 20
