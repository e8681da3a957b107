"""Test helper: WARC files whose documents repeat those of a real WARC, as a growing crawl brings them.

`copy_responses` writes a new WARC with the HTML responses of a source file under new record ids,
each page either as it was (an exact duplicate once extracted) or with a short edit near its
end (a near duplicate). Only the response records are kept; the payload is stored decoded.
"""

from __future__ import annotations

import io
import random
import uuid
from collections.abc import Callable
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

PageEdit = Callable[[bytes, random.Random], bytes]

_DROPPED_HTTP_HEADERS = {"content-length", "transfer-encoding", "content-encoding"}


def unchanged(body: bytes, rng: random.Random) -> bytes:
    return body


def near_copy(body: bytes, rng: random.Random) -> bytes:
    """The page with one short sentence added before </body>: a few shingles of many change."""
    words = ["harbour", "lantern", "meadow", "orchard", "pebble", "quarry", "saddle", "thimble"]
    sentence = " ".join(rng.choice(words) for _ in range(4)).encode()
    marker = body.lower().rfind(b"</body>")
    at = marker if marker >= 0 else len(body)
    return body[:at] + b"<p>" + sentence + b".</p>" + body[at:]


def copy_responses(source: Path, destination: Path, seed: int, edit: PageEdit = unchanged) -> int:
    """Write the HTML responses of `source` to `destination` under new record ids; returns how many."""
    rng = random.Random(seed)
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    written = 0
    with open(source, "rb") as stream:
        for record in ArchiveIterator(stream):
            if record.rec_type != "response" or record.http_headers is None:
                continue
            content_type = record.http_headers.get_header("Content-Type") or ""
            if "html" not in content_type.lower():
                continue
            body = edit(record.content_stream().read(), rng)
            headers = [(k, v) for k, v in record.http_headers.headers if k.lower() not in _DROPPED_HTTP_HEADERS]
            http = StatusAndHeaders(record.http_headers.statusline, headers, protocol=record.http_headers.protocol)
            warc_headers = {
                "WARC-Record-ID": f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}>",
                "WARC-Date": record.rec_headers.get_header("WARC-Date") or "2024-01-02T03:04:05Z",
            }
            writer.write_record(writer.create_warc_record(
                record.rec_headers.get_header("WARC-Target-URI"), "response", payload=io.BytesIO(body),
                length=len(body), http_headers=http, warc_headers_dict=warc_headers,
            ))
            written += 1
    destination.write_bytes(out.getvalue())
    return written
