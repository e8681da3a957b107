"""The sample's WARC file: a warcinfo record, then a request and a response per page.

Record ids and dates come from the seed and gzip members carry mtime 0, so the same
plan gives byte-identical files on every machine.
"""

from __future__ import annotations

import io
import random
import uuid
import zlib
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from tasks.data.sample_corpus.plan import Page

_BASE_DATE = datetime(2024, 5, 6, 8, 0, 0, tzinfo=timezone.utc)


def _record_id(rng: random.Random) -> str:
    return f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}>"


def _warc_date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _http_date(moment: datetime) -> str:
    # Not strftime: day and month names would follow the locale.
    return format_datetime(moment, usegmt=True)


def _warcinfo(writer: WARCWriter, rng: random.Random, seed: int, pages: int, filename: str) -> ArcWarcRecord:
    info = (
        f"software: llmforge sample_corpus\r\nformat: WARC File Format 1.0\r\n"
        f"description: labelled sample, seed {seed}, {pages} pages\r\nrobots: classic\r\n"
    ).encode()
    return writer.create_warc_record(
        "",
        "warcinfo",
        payload=io.BytesIO(info),
        length=len(info),
        warc_content_type="application/warc-fields",
        warc_headers_dict={"WARC-Record-ID": _record_id(rng), "WARC-Date": _warc_date(_BASE_DATE), "WARC-Filename": filename},
    )


def _response(writer: WARCWriter, page: Page, moment: datetime) -> ArcWarcRecord:
    headers = StatusAndHeaders(
        "200 OK",
        [
            ("Date", _http_date(moment)),
            ("Server", "nginx"),
            ("Content-Type", page.content_type),
            ("Content-Length", str(len(page.body))),
        ],
        protocol="HTTP/1.1",
    )
    warc_headers = {"WARC-Record-ID": page.record_id, "WARC-Date": page.date}
    if page.payload_type is not None:
        warc_headers["WARC-Identified-Payload-Type"] = page.payload_type
    return writer.create_warc_record(
        page.url, "response", payload=io.BytesIO(page.body), length=len(page.body), http_headers=headers,
        warc_headers_dict=warc_headers,
    )


def _request(writer: WARCWriter, page: Page, request_id: str) -> ArcWarcRecord:
    host = page.url.split("/")[2]
    path = "/" + page.url.split("/", 3)[3] if page.url.count("/") >= 3 else "/"
    headers = StatusAndHeaders(
        f"GET {path} HTTP/1.1",
        [("Host", host), ("User-Agent", "llmforge-sample/1.0"), ("Accept", "text/html,*/*;q=0.8")],
        is_http_request=True,
    )
    return writer.create_warc_record(
        page.url, "request", http_headers=headers,
        warc_headers_dict={"WARC-Record-ID": request_id, "WARC-Date": page.date, "WARC-Concurrent-To": page.record_id},
    )


def write_warc(plan: list[Page], seed: int, filename: str) -> bytes:
    """The WARC of the plan; sets each page's record id and date."""
    rng = random.Random(f"llmforge-sample-ids:{seed}")
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    writer.write_record(_warcinfo(writer, rng, seed, len(plan), filename))
    moment = _BASE_DATE
    for n, page in enumerate(plan):
        moment += timedelta(seconds=rng.randint(1, 90))
        page.record_id = _record_id(rng)
        page.date = _warc_date(moment)
        request = _request(writer, page, _record_id(rng))
        response = _response(writer, page, moment)
        if page.label == "truncated":
            if n != len(plan) - 1:
                raise RuntimeError("the truncated record must be the last one")
            # No request record: the crawler died while writing the response.
            out.write(_truncated_member(response))
        else:
            writer.write_record(request)
            writer.write_record(response)
    return out.getvalue()


def _truncated_member(record: ArcWarcRecord) -> bytes:
    """The record as its own gzip member, its block cut to ~70% while the header keeps
    the full Content-Length: what a crawler that died mid-write leaves behind."""
    plain = io.BytesIO()
    WARCWriter(plain, gzip=False).write_record(record)
    data = plain.getvalue()
    head_end = data.index(b"\r\n\r\n") + 4
    block = data[head_end:-4]  # drop the two CRLFs that close a complete record
    kept = head_end + int(len(block) * 0.7)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing, mtime 0
    return compressor.compress(data[:kept]) + compressor.flush()
