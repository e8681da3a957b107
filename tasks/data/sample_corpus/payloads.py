"""Response bodies the reader must skip: other media types, and HTML no decoder can read."""

from __future__ import annotations

import json
import random
import struct
import zlib

from tasks.data.sample_corpus.prose import Prose
from tasks.data.sample_corpus.templates import Site, html_page
from tasks.data.warc_reader import decode_payload

def _png(width: int, height: int, rng: random.Random) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(width * 3)) for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def non_html_payload(rng: random.Random, index: int) -> tuple[bytes, str, str, str]:
    """(body, HTTP Content-Type, true MIME type, path) of a response that is not a web page."""
    kind = index % 4
    if kind == 0:
        items = [{"id": rng.randrange(10**6), "score": round(rng.random(), 4)} for _ in range(rng.randint(2, 6))]
        body = json.dumps({"items": items, "page": index}, sort_keys=True).encode()
        return body, "application/json", "application/json", f"/api/v1/items?page={index}"
    if kind == 1:
        image = _png(rng.randint(4, 12), rng.randint(4, 12), rng)
        return image, "image/png", "image/png", f"/static/img/thumb-{index}.png"
    if kind == 2:
        body = f"User-agent: *\nDisallow: /private/\nDisallow: /tmp/{index}/\nCrawl-delay: {rng.randint(1, 9)}\n"
        return body.encode(), "text/plain", "text/plain", f"/robots-{index}.txt"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        + "".join(f"<url><loc>https://example.org/page/{rng.randrange(10**5)}</loc></url>" for _ in range(4))
        + "</urlset>\n"
    ).encode()
    return body, "application/xml", "text/xml", f"/sitemap-{index}.xml"


def undecodable_payload(prose: Prose, rng: random.Random, index: int, site: Site) -> tuple[bytes, str]:
    """An HTML page with bytes that are neither UTF-8 nor anything cchardet can name."""
    page = html_page(prose, site, index, "en", []).encode("utf-8")
    for _attempt in range(50):
        if index % 2 == 0:
            # A gzip-compressed body served without its Content-Encoding header.
            compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
            body = compressor.compress(page + bytes(rng.randrange(256) for _ in range(16))) + compressor.flush()
            note = "gzip-compressed body without Content-Encoding"
        else:
            # A page whose middle was overwritten by binary junk (a broken upstream cache).
            cut = len(page) // 2
            junk = bytes(rng.randrange(128, 256) for _ in range(rng.randint(200, 600)))
            body = page[:cut] + junk + page[cut:]
            note = "binary junk inside the HTML"
        if decode_payload(body)[0] is None:
            return body, note
    raise RuntimeError("cannot build an undecodable payload")

