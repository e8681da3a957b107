"""The Common Crawl downloader (tasks.data.common_crawl.download) against urllib3 doing the same
job, on the same scripted faults of tests/http_fault_server.py: both must end with the original
bytes, after the same requests (the same Range headers, the same answers).

urllib3 does what it is built for: status retries (408, 429, 5xx) with Retry-After, timeouts,
and refusing a body shorter than its Content-Length. It does not resume a body that broke off;
for that the reference adds what any resuming client does (RFC 9110): ask again with
``Range: bytes=<what we have>-``, append a 206, start over on a 200, stop on a 416 whose
``Content-Range: bytes */N`` says there is nothing more.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest
from conftest import require_module
from http_fault_server import Server, serve

from tasks.data.common_crawl import (
    CrawlFetchError,
    FetchPolicy,
    HTTPStatusError,
    download,
)

WARC = "CC-MAIN-2020-34-sample-resiliparse.warc.gz"  # 135,896 bytes: every plan below cuts into it
PATH = f"crawl-data/CC-MAIN-2099-01/segments/0/warc/{WARC}"
ATTEMPTS = 5
POLICY = FetchPolicy(timeout_seconds=0.5, max_retries=ATTEMPTS, backoff_seconds=0.0, chunk_bytes=4096)
_UNSATISFIED = re.compile(r"^bytes \*/(\d+)$")


class ReferenceGaveUp(Exception):
    pass


def urllib3_download(url: str, target: Path, attempts: int = ATTEMPTS, timeout: float = 0.5) -> None:
    urllib3 = require_module("urllib3")
    from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError
    from urllib3.util.retry import Retry

    retry = Retry(
        total=attempts - 1,
        status_forcelist=(408, 429, 500, 502, 503, 504),
        backoff_factor=0,
        respect_retry_after_header=True,
        raise_on_status=True,
    )
    pool = urllib3.PoolManager(retries=retry, timeout=urllib3.Timeout(connect=timeout, read=timeout))
    broken_bodies = 0
    while True:
        have = target.stat().st_size if target.exists() else 0
        try:
            response = pool.request(
                "GET", url, headers={"Range": f"bytes={have}-"} if have else {}, preload_content=False
            )
        except MaxRetryError as err:
            raise ReferenceGaveUp(str(err)) from err
        try:
            if response.status == 416:
                unsatisfied = _UNSATISFIED.match(response.headers.get("Content-Range", ""))
                if unsatisfied and int(unsatisfied.group(1)) == have:
                    return  # the file was complete already
                target.unlink()
                continue
            if response.status not in (200, 206):
                raise ReferenceGaveUp(f"HTTP {response.status}")
            with target.open("ab" if response.status == 206 else "wb") as out:
                # read1, not stream(): stream(n) drops a partly filled chunk when the body breaks off
                while chunk := response.read1(4096):
                    out.write(chunk)
            return
        except (ProtocolError, ReadTimeoutError) as err:  # the body broke off or stalled: resume
            broken_bodies += 1
            if broken_bodies >= attempts:
                raise ReferenceGaveUp(str(err)) from err
        finally:
            response.release_conn()


@pytest.fixture
def served_root(tmp_path: Path, shared_data: Path) -> Path:
    root = tmp_path / "server"
    (root / PATH).parent.mkdir(parents=True)
    shutil.copyfile(shared_data / "warc" / WARC, root / PATH)
    return root


def requests_made(server: Server) -> list[tuple[str | None, int]]:
    return [(g.range, g.status) for g in server.gets(PATH)]


def both_download(root: Path, tmp_path: Path, plan: list[str], part: bytes = b"") -> tuple[list, list, Path, Path]:
    """Run each downloader against a fresh server with `plan`, starting from the same `part`."""
    ours, reference = tmp_path / "ours" / WARC, tmp_path / "urllib3" / WARC
    for target in (ours, reference):
        target.parent.mkdir(parents=True)
    if part:
        (ours.parent / (WARC + ".part")).write_bytes(part)
        reference.write_bytes(part)
    with serve(root, faults={PATH: list(plan)}) as server:
        download(f"{server.base_url}/{PATH}", ours, POLICY, sleep=lambda _: None)
        our_requests = requests_made(server)
    with serve(root, faults={PATH: list(plan)}) as server:
        urllib3_download(f"{server.base_url}/{PATH}", reference)
        reference_requests = requests_made(server)
    return our_requests, reference_requests, ours, reference


PLANS = {
    "statuses then cuts": ["503", "drop_after:5000", "short:20000", "ok"],
    "every retried status": ["408", "429:retry-after=0", "500", "502", "ok"],
    "cuts that make progress": ["drop_after:100", "short:100", "drop_after:100", "short:100", "ok"],
    "a stall": ["stall:3000", "ok"],
    "range ignored after a cut": ["drop_after:7000", "ignore_range"],
    "a cut, then a busy server, then a cut": ["short:1000", "503", "504", "drop_after:50000", "ok"],
}


@pytest.mark.parametrize("plan", PLANS.values(), ids=PLANS.keys())
def test_same_bytes_after_the_same_requests(plan: list[str], served_root: Path, tmp_path: Path) -> None:
    our_requests, reference_requests, ours, reference = both_download(served_root, tmp_path, plan)
    original = hashlib.sha256((served_root / PATH).read_bytes()).hexdigest()
    assert hashlib.sha256(ours.read_bytes()).hexdigest() == original
    assert hashlib.sha256(reference.read_bytes()).hexdigest() == original
    assert our_requests == reference_requests
    assert len(our_requests) == len(plan)


def test_a_left_over_part_is_resumed_alike(served_root: Path, tmp_path: Path) -> None:
    data = (served_root / PATH).read_bytes()
    for part in (data[:12345], data):  # a prefix, and everything (answered 416)
        shutil.rmtree(tmp_path / "ours", ignore_errors=True)
        shutil.rmtree(tmp_path / "urllib3", ignore_errors=True)
        our_requests, reference_requests, ours, reference = both_download(served_root, tmp_path, ["ok"], part)
        assert ours.read_bytes() == reference.read_bytes() == data
        assert our_requests == reference_requests == [(f"bytes={len(part)}-", 206 if len(part) < len(data) else 416)]


@pytest.mark.parametrize(
    ("plan", "ours_raises"),
    [(["503"] * ATTEMPTS, CrawlFetchError), (["404"], HTTPStatusError), (["410"], HTTPStatusError)],
    ids=["retries exhausted", "404 is final", "410 is final"],
)
def test_both_give_up_after_the_same_requests(
    plan: list[str], ours_raises: type, served_root: Path, tmp_path: Path
) -> None:
    target = tmp_path / "out" / WARC
    target.parent.mkdir()
    with serve(served_root, faults={PATH: list(plan)}) as server:
        with pytest.raises(ours_raises):
            download(f"{server.base_url}/{PATH}", target, POLICY, sleep=lambda _: None)
        our_requests = requests_made(server)
    with serve(served_root, faults={PATH: list(plan)}) as server:
        with pytest.raises(ReferenceGaveUp):
            urllib3_download(f"{server.base_url}/{PATH}", tmp_path / "reference")
        reference_requests = requests_made(server)
    assert our_requests == reference_requests == [(None, int(plan[0]))] * len(plan)
