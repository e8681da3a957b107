"""A seeded generator of damaged WARC files, made from real ones, for the data stage's fuzz suite.

Each batch is a folder holding the real WARCs unchanged (``0-intact/``), mutated copies of
them and files that only pretend to be WARCs (``1-fuzz/``), and byte-for-byte copies of
earlier files (``2-copies/``). The intact files sort first, so the data stage reads them
before anything derived from them: their documents are the ones a clean run keeps.

The damage (`KINDS`, taken in turn): truncation; bit flips in the compressed bytes and in
the inflated records; garbled, repeated and missing WARC headers (WARC-Type,
WARC-Target-URI, WARC-Record-ID); header values that are not UTF-8, hold a NUL or run to
200 KB; Content-Length lies; binary payloads; HTTP headers that do not fit the body;
HTML that is hard to parse; decompression bombs (a few hundred KB on disk, 96-320 MB
inflated, without a newline); junk between gzip members; records repeated within a file
or copied from another; text, JSONL, HTML, binary and empty files named .warc(.gz); and
copies of whole files. A quarter of the record-level edits are written as plain .warc.

Every mutated file has its own random generator, seeded with ``"<seed>:<batch>:<index>"``,
so one file can be rewritten alone, and the same seed always writes the same bytes:

    python tests/fuzz_warc.py --seed 20240601 --batch 2 --files 70 OUT_DIR   # rewrite batch 2

Bombs are built without inflating them: a deflate stream flushed with Z_FULL_FLUSH can
be cut and joined at the flush points, so one compressed megabyte of filler is repeated.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

MB = 1 << 20
INTACT_DIR = "0-intact"
FUZZ_DIR = "1-fuzz"
COPIES_DIR = "2-copies"

# The real WARCs every batch holds unchanged. The 2.5 MB Heritrix crawl is left out:
# it would add its 137 HTML pages to every batch; it is only a source of mutations.
LARGE_WARC = "aut-archive.org-2008-heritrix.warc.gz"
INTACT_WARCS: tuple[str, ...] = (
    "CC-MAIN-2020-34-sample-resiliparse.warc.gz",
    "CC-MAIN-2024-22-whirlwind-an.wikipedia.warc.gz",
    "dolma-sample-0000-wget-2024.warc.gz",
    "jwarc-commoncrawl.org-single-response.warc.gz",
    "pywb-example.com.warc.gz",
    "resiliparse-clipped-record.warc.gz",
    "ukwa-data.gov.uk-2014-crawl-a.warc.gz",
)
# How often each real WARC is picked as the base of a mutation (the large one rarely: its pages cost time).
SOURCE_WEIGHTS: dict[str, int] = {**{name: 3 for name in INTACT_WARCS}, LARGE_WARC: 1}


# ------------------------------------------------------------------ gzip members and records


@dataclass
class Members:
    """A .warc.gz split into its gzip members (inflated), and what follows the last complete one."""

    plain: list[bytes]
    tail: bytes  # compressed bytes that do not make a complete member (a file cut off), as found
    tail_plain: bytes  # what of the tail inflates

    @classmethod
    def split(cls, data: bytes) -> Members:
        plain: list[bytes] = []
        while data:
            inflater = zlib.decompressobj(31)
            try:
                inflated = inflater.decompress(data)
            except zlib.error:
                return cls(plain, data, b"")
            if not inflater.eof:
                return cls(plain, data, inflated)
            plain.append(inflated)
            data = inflater.unused_data
        return cls(plain, b"", b"")

    def gzipped(self) -> bytes:
        return b"".join(gzip.compress(member, mtime=0) for member in self.plain) + self.tail

    def plain_warc(self) -> bytes:
        return b"".join(self.plain) + self.tail_plain


@dataclass
class Record:
    """One member's WARC record: header lines (without the version line's CRLF) and the rest."""

    lines: list[bytes]
    rest: bytes  # the block and the two CRLFs that end the record

    @classmethod
    def parse(cls, member: bytes) -> Record | None:
        end = member.find(b"\r\n\r\n")
        if end < 0:
            return None
        return cls(member[:end].split(b"\r\n"), member[end + 4 :])

    def to_bytes(self) -> bytes:
        return b"\r\n".join(self.lines) + b"\r\n\r\n" + self.rest

    def find(self, name: bytes) -> int | None:
        for i, line in enumerate(self.lines):
            if line.split(b":", 1)[0].strip().lower() == name.lower():
                return i
        return None

    def value(self, name: bytes) -> bytes | None:
        at = self.find(name)
        return None if at is None else self.lines[at].split(b":", 1)[1].strip()

    def set(self, name: bytes, value: bytes) -> None:
        at = self.find(name)
        line = name + b": " + value
        if at is None:
            self.lines.append(line)
        else:
            self.lines[at] = line

    @property
    def is_response(self) -> bool:
        return self.value(b"WARC-Type") == b"response"


def _record_members(members: Members, rng: random.Random, responses_only: bool) -> list[int]:
    """Up to three members holding a parsable record (responses, where asked and there are any)."""
    records = [Record.parse(member) for member in members.plain]
    parsed = [i for i, r in enumerate(records) if r is not None and (r.is_response or not responses_only)]
    if not parsed and responses_only:
        return _record_members(members, rng, False)
    return sorted(rng.sample(parsed, min(len(parsed), rng.randint(1, 3))))


RecordEdit = Callable[[Record, random.Random], None]


def _edit_records(members: Members, rng: random.Random, edit: RecordEdit, responses_only: bool = True) -> None:
    for i in _record_members(members, rng, responses_only):
        record = Record.parse(members.plain[i])
        assert record is not None
        edit(record, rng)
        members.plain[i] = record.to_bytes()


# ------------------------------------------------------------------ decompression bombs


def _flushed(data: bytes, final: bool = False) -> bytes:
    """`data` as raw deflate, ending at a byte-aligned point where the next segment can start."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)


def bomb_member(prefix: bytes, filler: bytes, size: int, suffix: bytes = b"") -> bytes:
    """A gzip member of `prefix`, `size` bytes of `filler` (whole megabytes of it) and `suffix`:
    about 1 KB on disk per inflated megabyte, built in a fraction of a second."""
    block = filler * (MB // len(filler))
    megabytes = max(1, size // len(block))
    crc = zlib.crc32(prefix)
    for _ in range(megabytes):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(suffix, crc)
    total = len(prefix) + megabytes * len(block) + len(suffix)
    deflated = _flushed(prefix) + _flushed(block) * megabytes + _flushed(suffix, final=True)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + deflated + struct.pack("<II", crc, total & 0xFFFFFFFF)


def _warc_head(headers: list[tuple[str, str]]) -> bytes:
    return ("WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode()


def _bomb(kind: str, size: int, rng: random.Random) -> bytes:
    """One bomb record (or non-record) as a gzip member; every kind inflates to `size` bytes without a newline."""
    rid = f"<urn:uuid:b0b0b0b0-0000-4000-8000-{rng.randrange(16**12):012x}>"
    base = [("WARC-Type", "response"), ("WARC-Record-ID", rid), ("WARC-Date", "2024-06-01T00:00:00Z"),
            ("WARC-Target-URI", f"https://bomb.example/{rid[-13:-1]}")]
    html_type = [("WARC-Identified-Payload-Type", "text/html")]
    http_head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
    if kind == "header_line":  # a header line that never ends
        return bomb_member(b"WARC/1.0\r\nWARC-Type: response\r\nX-Bomb: ", b"A", size)
    if kind == "stored_body":  # a body as long as its honest Content-Length says
        http = http_head + b"\r\n<html><body>"
        head = _warc_head([*base, *html_type, ("Content-Length", str(len(http) + size))])
        return bomb_member(head + http, b"A", size, b"\r\n\r\n")
    if kind == "coded_body":  # a small block whose gzip Content-Encoding inflates without end
        body = bomb_member(b"<html><body>", b"A", size)
        http = http_head + f"Content-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        head = _warc_head([*base, *html_type, ("Content-Length", str(len(http)))])
        return gzip.compress(head + http + b"\r\n\r\n", mtime=0)
    if kind == "junk":  # no record at all: one endless word where a record should start
        return bomb_member(b"", b"\x00", size)
    raise ValueError(f"unknown bomb kind {kind!r}")


BOMB_KINDS = ("header_line", "stored_body", "coded_body", "junk")
BOMB_SIZES = (96 * MB, 192 * MB, 320 * MB)


# ------------------------------------------------------------------ the mutations


def _flip_bits(data: bytes, rng: random.Random, count: int) -> bytes:
    raw = bytearray(data)
    for _ in range(count):
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    return bytes(raw)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, len(data))]


def flip_compressed(data: bytes, rng: random.Random) -> bytes:
    return _flip_bits(data, rng, rng.randint(1, 8))


def flip_decompressed(members: Members, rng: random.Random) -> None:
    for i in sorted(rng.sample(range(len(members.plain)), min(len(members.plain), rng.randint(1, 3)))):
        members.plain[i] = _flip_bits(members.plain[i], rng, rng.randint(1, 8))


def _garble_line(record: Record, rng: random.Random) -> None:
    at = rng.randrange(len(record.lines))
    line = record.lines[at]
    how = rng.randrange(5)
    if how == 0:
        record.lines[at] = rng.randbytes(rng.randint(0, 120))
    elif how == 1:
        record.lines[at] = line.replace(b":", b"", 1)
    elif how == 2:
        record.lines[at] = line[: rng.randrange(len(line) + 1)]
    elif how == 3:
        record.lines[at] = line + b"\x00\xff\xfe" + rng.randbytes(8)
    else:  # a value longer than any real header (but within the reader's 256 KB header limit)
        record.lines[at] = line + b"x" * rng.randint(10_000, 100_000)


def garble_header(members: Members, rng: random.Random) -> None:
    _edit_records(members, rng, _garble_line)


def _duplicate_line(record: Record, rng: random.Random) -> None:
    name = rng.choice([b"WARC-Type", b"Content-Length", b"WARC-Target-URI", b"WARC-Record-ID", b"WARC-Date"])
    value = record.value(name) or b""
    other = {
        b"WARC-Type": rng.choice([b"request", b"metadata", b"response"]),
        b"Content-Length": str(rng.randint(0, 5000)).encode(),
        b"WARC-Target-URI": b"https://other.example/page",
        b"WARC-Record-ID": b"<urn:uuid:d0d0d0d0-0000-4000-8000-000000000000>",
        b"WARC-Date": b"1999-12-31T23:59:59Z",
    }[name]
    line = name + b": " + (value if rng.random() < 0.5 else other)
    record.lines.insert(rng.randint(1, len(record.lines)), line)


def duplicate_header(members: Members, rng: random.Random) -> None:
    _edit_records(members, rng, _duplicate_line)


def _lie_about_length(record: Record, rng: random.Random) -> None:
    true = int(record.value(b"Content-Length") or b"0")
    lie = rng.choice([
        str(true + rng.randint(1, 10_000)), str(max(0, true - rng.randint(1, true + 1))), "0", "-5",
        "abc", "", str(10**15), f"  {true}  ", f"{true}0",
    ])  # fmt: skip
    record.set(b"Content-Length", lie.encode())


def content_length_lie(members: Members, rng: random.Random) -> None:
    _edit_records(members, rng, _lie_about_length, responses_only=rng.random() < 0.8)


def _binary_body(record: Record, rng: random.Random) -> None:
    length = int(record.value(b"Content-Length") or b"0")
    block, after = record.rest[:length], record.rest[length:]
    end = block.find(b"\r\n\r\n")
    http_head = block[: end + 4] if end >= 0 else b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
    block = http_head + rng.randbytes(rng.randint(1, 64 * 1024))
    record.set(b"Content-Length", str(len(block)).encode())
    if rng.random() < 0.5:  # claim the bytes are HTML, so the page is decoded rather than sniffed
        record.set(b"WARC-Identified-Payload-Type", b"text/html")
    record.rest = block + after


def binary_payload(members: Members, rng: random.Random) -> None:
    _edit_records(members, rng, _binary_body)


def _drop_header(record: Record, rng: random.Random) -> None:
    name = rng.choice([b"WARC-Type", b"WARC-Target-URI", b"WARC-Record-ID"])
    at = record.find(name)
    if at is not None:
        del record.lines[at]


def missing_header(members: Members, rng: random.Random) -> None:
    _edit_records(members, rng, _drop_header)


def _odd_value(record: Record, rng: random.Random) -> None:
    """A WARC header value no crawler should write: bytes that are not UTF-8, a NUL, a line
    separator, nothing at all, or 200 KB of it."""
    name = rng.choice([b"WARC-Target-URI", b"WARC-Record-ID", b"WARC-Date"])
    odd = rng.choice([
        b"\xff\xfe", b"\xed\xa0\x80", b"\x00", b"\xe2\x80\xa8", b"\x85", b"\\u0000",
        b"a" * rng.randint(10_000, 200_000),
    ])  # fmt: skip
    how = rng.randrange(3)
    value = record.value(name) or b""
    record.set(name, odd if how == 0 else value + odd if how == 1 else b"")


def odd_header_values(members: Members, rng: random.Random) -> None:
    _edit_records(members, rng, _odd_value)


def _http_lie(record: Record, rng: random.Random) -> None:
    """An HTTP header that does not fit the body: a coding it does not have, a charset that
    does not exist or is not the body's, a length it does not have, or a line of 200 KB."""
    length = int(record.value(b"Content-Length") or b"0")
    block, after = record.rest[:length], record.rest[length:]
    end = block.find(b"\r\n\r\n")
    if end < 0:
        return
    line = rng.choice([
        b"Content-Encoding: gzip", b"Content-Encoding: deflate", b"Content-Encoding: br",
        b"Content-Encoding: gzip, gzip",
        b"Transfer-Encoding: chunked", b"Content-Type: text/html; charset=x-no-such-charset",
        b"Content-Type: text/html; charset=utf-16", b"Content-Length: 99999999999",
        b"X-Long: " + b"h" * rng.randint(70_000, 200_000),
    ])  # fmt: skip
    block = block[:end] + b"\r\n" + line + block[end:]
    record.set(b"Content-Length", str(len(block)).encode())
    record.rest = block + after


def http_header_lie(members: Members, rng: random.Random) -> None:
    _edit_records(members, rng, _http_lie)


def _odd_page(rng: random.Random) -> bytes:
    """HTML that parsers and text filters find hard: deep nesting, NULs and control characters,
    a huge attribute, a comment or script that never ends, UTF-16, one endless word."""
    n = rng.randint(1_000, 50_000)
    return rng.choice([
        b"<html><body>" + b"<div>" * n + b"deep text " * 50 + b"</div>" * n + b"</body></html>",
        b"<html><body><p>" + b"\x00" * n + b"</p></body></html>",
        b"<html><body><p>" + bytes(range(1, 32)) * (n // 10) + b"</p></body></html>",
        b"<html><body><p title='" + b"x" * n * 20 + b"'>a short paragraph</p></body></html>",
        b"<html><body><!--" + b"a b c " * n,
        b"<html><script>" + b"var a=1;" * n + b"</script></html>",
        "\ufeff<html><body><p>UTF-16 with a byte order mark</p></body></html>".encode("utf-16"),
        b"<html><body><p>" + b"a" * n * 20 + b"</p></body></html>",
    ])  # fmt: skip


def _odd_body(record: Record, rng: random.Random) -> None:
    length = int(record.value(b"Content-Length") or b"0")
    after = record.rest[length:]
    block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + _odd_page(rng)
    record.set(b"Content-Length", str(len(block)).encode())
    record.set(b"WARC-Identified-Payload-Type", b"text/html")
    record.rest = block + after


def odd_html(members: Members, rng: random.Random) -> None:
    _edit_records(members, rng, _odd_body)


def duplicate_records(members: Members, rng: random.Random, other: Members) -> None:
    """Records repeated in the file (the same record ids), or records of another real WARC appended."""
    if rng.random() < 0.5 or not other.plain:
        count = min(len(members.plain), rng.randint(1, 4))
        for i in sorted(rng.sample(range(len(members.plain)), count), reverse=True):
            members.plain.insert(rng.randint(i, len(members.plain)), members.plain[i])
    else:
        members.plain.extend(other.plain[: rng.randint(1, len(other.plain))])


def junk_between_members(data: bytes, rng: random.Random) -> bytes:
    members = Members.split(data)
    if not members.plain:
        return data + rng.randbytes(rng.randint(1, 300))
    parts = [gzip.compress(m, mtime=0) for m in members.plain]
    for _ in range(rng.randint(1, 3)):
        parts.insert(rng.randint(0, len(parts)), rng.randbytes(rng.randint(1, 300)))
    return b"".join(parts) + members.tail


def insert_bomb(members: Members, rng: random.Random) -> bytes:
    bomb = _bomb(rng.choice(BOMB_KINDS), rng.choice(BOMB_SIZES), rng)
    parts = [gzip.compress(m, mtime=0) for m in members.plain]
    parts.insert(rng.randint(0, len(parts)), bomb)
    return b"".join(parts) + members.tail


def not_warc(rng: random.Random) -> tuple[bytes, str]:
    """Content that is no WARC at all, and the file name suffix it gets."""
    lines = [
        json.dumps({"url": f"https://example.org/{i}", "text": f"line {i} of a JSONL export"})
        for i in range(rng.randint(1, 200))
    ]
    contents = {
        "text": b"This is a plain text file, not a WARC.\nIt has a few lines.\n" * rng.randint(1, 50),
        "jsonl": ("\n".join(lines) + "\n").encode(),
        "html": b"<!DOCTYPE html><html><head><title>Saved page</title></head><body><p>Hello</p></body></html>\n",
        "binary": rng.randbytes(rng.randint(1, 20_000)),
        "empty": b"",
        "gzip_text": gzip.compress(b"not a warc, but gzipped\n" * 100, mtime=0),
        "gzip_jsonl": gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0),
    }
    kind = rng.choice(sorted(contents))
    return contents[kind], rng.choice([".warc.gz", ".warc.gz", ".warc"])


# Each kind is one entry of the round-robin, so every batch of len(KINDS) or more files holds all of them.
KINDS: tuple[str, ...] = (
    "truncate", "flip_compressed", "flip_decompressed", "garble_header", "duplicate_header",
    "content_length_lie", "binary_payload", "bomb", "missing_header", "odd_header_values", "http_header_lie",
    "odd_html", "not_warc", "duplicate_records", "junk_between_members", "duplicate_file",
)  # fmt: skip
_RECORD_EDITS: dict[str, Callable[[Members, random.Random], None]] = {
    "flip_decompressed": flip_decompressed,
    "garble_header": garble_header,
    "duplicate_header": duplicate_header,
    "content_length_lie": content_length_lie,
    "binary_payload": binary_payload,
    "missing_header": missing_header,
    "odd_header_values": odd_header_values,
    "http_header_lie": http_header_lie,
    "odd_html": odd_html,
}
_BYTE_EDITS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncate": truncate,
    "flip_compressed": flip_compressed,
    "junk_between_members": junk_between_members,
}


# ------------------------------------------------------------------ batches


@dataclass(frozen=True)
class FuzzFile:
    name: str  # path relative to the batch folder (what the data stage calls `source_file`)
    kind: str  # "intact" or one of KINDS
    source: str  # the real WARC it was made from ("" for made-up content)
    seed: str  # seeds this file's random generator: "<seed>:<batch>:<index>"


def _pick_source(rng: random.Random, with_records: bool) -> str:
    names = [n for n in sorted(SOURCE_WEIGHTS) if not with_records or n != "resiliparse-clipped-record.warc.gz"]
    return rng.choices(names, weights=[SOURCE_WEIGHTS[n] for n in names])[0]


def _mutated(kind: str, rng: random.Random, sources: Path) -> tuple[bytes, str, str]:
    """(bytes, file name suffix, source name) of one mutated file."""
    if kind == "not_warc":
        data, suffix = not_warc(rng)
        return data, suffix, ""
    source = _pick_source(rng, with_records=kind not in _BYTE_EDITS)
    data = (sources / source).read_bytes()
    if kind in _BYTE_EDITS:
        return _BYTE_EDITS[kind](data, rng), ".warc.gz", source
    members = Members.split(data)
    if kind == "bomb":
        return insert_bomb(members, rng), ".warc.gz", source
    if kind == "duplicate_records":
        duplicate_records(members, rng, Members.split((sources / _pick_source(rng, with_records=True)).read_bytes()))
    else:
        _RECORD_EDITS[kind](members, rng)
    # A quarter of the record edits are written as plain .warc, which the reader re-synchronises differently.
    if rng.random() < 0.25:
        return members.plain_warc(), ".warc", source
    return members.gzipped(), ".warc.gz", source


def _stem(name: str) -> str:
    return name.removesuffix(".gz").removesuffix(".warc")


def write_batch(sources: Path, out_dir: Path, seed: int, batch: int, files: int) -> list[FuzzFile]:
    """Write one batch: the intact WARCs, then `files` mutated files and copies. Returns what was written."""
    written: list[FuzzFile] = []
    contents: dict[str, bytes] = {}

    def put(entry: FuzzFile, data: bytes) -> None:
        path = out_dir / entry.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(entry)
        contents[entry.name] = data

    for name in INTACT_WARCS:
        put(FuzzFile(f"{INTACT_DIR}/{name}", "intact", name, ""), (sources / name).read_bytes())
    for index in range(files):
        kind = KINDS[(batch * files + index) % len(KINDS)]
        file_seed = f"{seed}:{batch}:{index}"
        rng = random.Random(file_seed)
        if kind == "duplicate_file":
            # Same content, and for half of them the same base name, in a folder that sorts after the original.
            original = rng.choice(sorted(contents))
            base = Path(original).name if rng.random() < 0.5 else f"copy-of-{Path(original).name}"
            put(FuzzFile(f"{COPIES_DIR}/{index:03d}/{base}", kind, original, file_seed), contents[original])
            continue
        data, suffix, source = _mutated(kind, rng, sources)
        name = f"{FUZZ_DIR}/{index:03d}-{kind}-{_stem(source) or 'made-up'}{suffix}"
        put(FuzzFile(name, kind, source, file_seed), data)
    return written


def _shared_warcs() -> Path:
    """Where tests/conftest.py finds the shared data: LLMFORGE_SHARED_DATA, else beside the checkout."""
    configured = os.environ.get("LLMFORGE_SHARED_DATA")
    return (Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data") / "warc"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write one batch of damaged WARC files (what the fuzz suite reads).")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--files", type=int, default=70, help="mutated files in the batch (besides the intact ones)")
    parser.add_argument("--sources", type=Path, default=_shared_warcs(), help="the real WARCs (default: %(default)s)")
    args = parser.parse_args(argv)
    for entry in write_batch(args.sources, args.out_dir, args.seed, args.batch, args.files):
        print(json.dumps(asdict(entry)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
