"""Fetching a Common Crawl crawl: resumable, verified downloads against a local server that misbehaves on purpose.

The "crawl" is a directory tree laid out like data.commoncrawl.org, holding real WARC files from
../shared/data; tests/http_fault_server.py serves it on 127.0.0.1 with scripted faults.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tasks.data.common_crawl import (
    CrawlFetchError,
    FetchPolicy,
    HTTPStatusError,
    InvalidCrawlIdError,
    UnknownCrawlError,
    backoff_delay,
    crawl_paths,
    download,
    fetch_crawl,
    file_url,
    verify_warc_gz,
)
from http_fault_server import serve

CRAWL = "CC-MAIN-2099-01"
WARCS = [  # each larger than the 25,000 bytes the fault plans below cut into
    "dolma-sample-0000-wget-2024.warc.gz",
    "CC-MAIN-2020-34-sample-resiliparse.warc.gz",
    "ukwa-data.gov.uk-2014-crawl-a.warc.gz",
]
# A small chunk size makes every download span many reads, as a real 1 GB file does.
POLICY = FetchPolicy(timeout_seconds=5.0, max_retries=5, backoff_seconds=1.0, backoff_max_seconds=8.0, chunk_bytes=4096)


def no_sleep(seconds: float) -> None:
    pass


@dataclass
class FakeCrawl:
    root: Path  # the served tree
    paths: list[str]  # relative paths, in listing order
    originals: list[Path]  # the shared files they are copies of

    @property
    def listing(self) -> str:
        return f"crawl-data/{CRAWL}/warc.paths.gz"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_listing(root: Path, crawl_id: str, paths: list[str]) -> None:
    listing = root / "crawl-data" / crawl_id / "warc.paths.gz"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_bytes(gzip.compress("".join(p + "\n" for p in paths).encode()))


@pytest.fixture
def crawl(tmp_path: Path, shared_data: Path) -> FakeCrawl:
    root = tmp_path / "server"
    paths, originals = [], []
    for index, name in enumerate(WARCS):
        relative = f"crawl-data/{CRAWL}/segments/1700000000000.{index}/warc/{name}"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "warc" / name, root / relative)
        paths.append(relative)
        originals.append(shared_data / "warc" / name)
    write_listing(root, CRAWL, paths)
    return FakeCrawl(root, paths, originals)


def assert_identical(files: list[Path], crawl: FakeCrawl) -> None:
    assert [f.name for f in files] == WARCS
    for fetched, original in zip(files, crawl.originals):
        assert sha256(fetched) == sha256(original), fetched.name
    assert not list(files[0].parent.glob("*.part"))


def test_clean_fetch_gives_byte_identical_files(crawl: FakeCrawl, tmp_path: Path) -> None:
    with serve(crawl.root) as server:
        files = fetch_crawl(CRAWL, server.base_url, tmp_path / "cache", max_files=3, policy=POLICY, sleep=no_sleep)
    assert files == [tmp_path / "cache" / CRAWL / name for name in WARCS]
    assert_identical(files, crawl)
    assert [(r.path, r.range) for r in server.gets()] == [(crawl.listing, None)] + [(p, None) for p in crawl.paths]


def test_crawl_paths_lists_every_file_in_order(crawl: FakeCrawl) -> None:
    with serve(crawl.root) as server:
        assert crawl_paths(CRAWL, server.base_url + "/", POLICY) == crawl.paths


def test_faults_on_every_file_are_retried_and_resumed_at_the_right_offsets(crawl: FakeCrawl, tmp_path: Path) -> None:
    plan = ["503", "drop_after:5000", "short:20000", "ok"]
    sleeps: list[float] = []
    with serve(crawl.root, faults={path: plan for path in crawl.paths}) as server:
        files = fetch_crawl(CRAWL, server.base_url, tmp_path / "cache", 3, POLICY, sleep=sleeps.append)
    assert_identical(files, crawl)
    for path in crawl.paths:
        gets = server.gets(path)
        assert [g.fault for g in gets] == plan
        # The 503 wrote nothing and the reset kept its 5000 bytes; the clean short read added 20000 more.
        assert [g.range for g in gets] == [None, None, "bytes=5000-", "bytes=25000-"]
        assert [g.status for g in gets] == [503, 200, 206, 206]
    assert len(sleeps) == 3 * 3


def test_a_stalled_connection_times_out_and_is_resumed(crawl: FakeCrawl, tmp_path: Path) -> None:
    policy = FetchPolicy(timeout_seconds=0.3, max_retries=3, chunk_bytes=4096)
    with serve(crawl.root, faults={crawl.paths[0]: ["stall:3000"]}) as server:
        target = download(file_url(crawl.paths[0], server.base_url), tmp_path / WARCS[0], policy, no_sleep)
    assert sha256(target) == sha256(crawl.originals[0])
    assert [g.range for g in server.gets()] == [None, "bytes=3000-"]


def test_a_part_file_left_by_a_killed_run_is_resumed(crawl: FakeCrawl, tmp_path: Path) -> None:
    target = tmp_path / "cache" / CRAWL / WARCS[1]
    target.parent.mkdir(parents=True)
    (target.parent / (target.name + ".part")).write_bytes(crawl.originals[1].read_bytes()[:12345])
    with serve(crawl.root) as server:
        files = fetch_crawl(CRAWL, server.base_url, tmp_path / "cache", 3, POLICY, sleep=no_sleep)
    assert_identical(files, crawl)
    assert [(g.range, g.status) for g in server.gets(crawl.paths[1])] == [("bytes=12345-", 206)]


def test_a_complete_part_file_is_verified_and_kept_without_downloading_again(crawl: FakeCrawl, tmp_path: Path) -> None:
    target = tmp_path / WARCS[0]
    data = crawl.originals[0].read_bytes()
    (tmp_path / (target.name + ".part")).write_bytes(data)
    with serve(crawl.root) as server:
        download(file_url(crawl.paths[0], server.base_url), target, POLICY, no_sleep)
    assert target.read_bytes() == data
    assert [(g.range, g.status) for g in server.gets()] == [(f"bytes={len(data)}-", 416)]


@pytest.mark.parametrize("stale_part", [False, True])
def test_a_server_that_ignores_range_still_gives_a_correct_file(
    crawl: FakeCrawl, tmp_path: Path, stale_part: bool
) -> None:
    target = tmp_path / WARCS[2]
    if stale_part:  # bytes that are not even a prefix of the file: only a restart from 0 can fix them
        (tmp_path / (target.name + ".part")).write_bytes(b"\0" * 1000)
    with serve(crawl.root, faults={crawl.paths[2]: ["short:5000"]}, ranges=False) as server:
        download(file_url(crawl.paths[2], server.base_url), target, POLICY, no_sleep)
    assert sha256(target) == sha256(crawl.originals[2])
    first_range = "bytes=1000-" if stale_part else None
    assert [(g.range, g.status) for g in server.gets()] == [(first_range, 200), ("bytes=5000-", 200)]


def test_a_corrupt_file_fails_verification_after_one_fresh_download(crawl: FakeCrawl, tmp_path: Path) -> None:
    served = crawl.root / crawl.paths[0]
    data = bytearray(served.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    served.write_bytes(bytes(data))
    target = tmp_path / WARCS[0]
    with serve(crawl.root) as server:
        with pytest.raises(CrawlFetchError, match=f"{WARCS[0]}.*damaged.*fresh download"):
            download(file_url(crawl.paths[0], server.base_url), target, POLICY, no_sleep)
    assert [g.range for g in server.gets()] == [None, None]  # the second download started from scratch
    assert not target.exists() and not (tmp_path / (target.name + ".part")).exists()


def test_unknown_crawl_id_is_reported_as_such(crawl: FakeCrawl, tmp_path: Path) -> None:
    with serve(crawl.root) as server:
        with pytest.raises(UnknownCrawlError, match="crawl CC-MAIN-2099-02 not found on the server: .*HTTP 404"):
            crawl_paths("CC-MAIN-2099-02", server.base_url, POLICY, sleep=no_sleep)
    assert len(server.gets()) == 1  # a 404 is final: no retries


def test_forbidden_listing_means_unknown_crawl_too(crawl: FakeCrawl, tmp_path: Path) -> None:
    with serve(crawl.root, faults={crawl.listing: ["403"]}) as server:
        with pytest.raises(UnknownCrawlError, match="not found on the server: .*HTTP 403"):
            fetch_crawl(CRAWL, server.base_url, tmp_path / "cache", 1, POLICY, sleep=no_sleep)
    assert not (tmp_path / "cache" / CRAWL / "warc.paths.gz").exists()


@pytest.mark.parametrize("crawl_id", ["CC-MAIN-2024-2", "cc-main-2024-22", "CC-MAIN-2024-223", "CC-MAIN-2024-22/..", ""])
def test_malformed_crawl_ids_are_rejected_before_any_request(crawl: FakeCrawl, tmp_path: Path, crawl_id: str) -> None:
    with serve(crawl.root) as server:
        with pytest.raises(InvalidCrawlIdError, match="not a Common Crawl crawl id") as raised:
            fetch_crawl(crawl_id, server.base_url, tmp_path / "cache", 1, POLICY, sleep=no_sleep)
        with pytest.raises(ValueError):
            crawl_paths(crawl_id, server.base_url, POLICY)
    assert isinstance(raised.value, CrawlFetchError)
    assert server.requests == []


def test_a_well_formed_crawl_id_the_server_lacks_is_not_called_malformed(crawl: FakeCrawl, tmp_path: Path) -> None:
    with serve(crawl.root) as server:
        with pytest.raises(UnknownCrawlError) as raised:
            fetch_crawl("CC-MAIN-9999-99", server.base_url, tmp_path / "cache", 1, POLICY, sleep=no_sleep)
    message = str(raised.value)
    assert f"not found on the server: {server.base_url}/crawl-data/CC-MAIN-9999-99/warc.paths.gz answered HTTP 404" in message
    assert "expected CC-MAIN-YYYY-WW" not in message and not isinstance(raised.value, InvalidCrawlIdError)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_closed_port_is_reported_as_unreachable() -> None:
    base = f"http://127.0.0.1:{closed_port()}"
    once = FetchPolicy(timeout_seconds=2.0, max_retries=1)
    with pytest.raises(CrawlFetchError, match=f"cannot reach 127.0.0.1:\\d+: {base}/crawl-data/{CRAWL}/warc.paths.gz"):
        crawl_paths(CRAWL, base, once, sleep=no_sleep)
    sleeps: list[float] = []
    with pytest.raises(CrawlFetchError, match="cannot reach .* 3 attempts"):
        crawl_paths(CRAWL, base, FetchPolicy(timeout_seconds=2.0, max_retries=3), sleep=sleeps.append)
    assert len(sleeps) == 2


def test_exhausted_retries_name_the_url_and_back_off_exponentially_up_to_the_cap(
    crawl: FakeCrawl, tmp_path: Path
) -> None:
    policy = FetchPolicy(max_retries=7, backoff_seconds=0.5, backoff_max_seconds=3.0)
    sleeps: list[float] = []
    with serve(crawl.root, faults={crawl.paths[0]: ["503"] * 20}) as server:
        url = file_url(crawl.paths[0], server.base_url)
        with pytest.raises(CrawlFetchError) as raised:
            download(url, tmp_path / WARCS[0], policy, sleeps.append)
    message = str(raised.value)
    assert url in message and "7 failed attempts" in message and "HTTP 503" in message
    assert len(server.gets()) == 7
    nominal = [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert len(sleeps) == len(nominal)
    for slept, expected in zip(sleeps, nominal):
        assert 0.9 * expected <= slept <= expected  # jitter only ever shortens the delay
    assert sleeps[0] < sleeps[1] < sleeps[2] < sleeps[3]


@pytest.mark.parametrize("status", ["408", "429", "500", "502", "504"])
def test_transient_statuses_are_retried(crawl: FakeCrawl, tmp_path: Path, status: str) -> None:
    with serve(crawl.root, faults={crawl.paths[1]: [status, status]}) as server:
        target = download(file_url(crawl.paths[1], server.base_url), tmp_path / WARCS[1], POLICY, no_sleep)
    assert sha256(target) == sha256(crawl.originals[1])
    assert [g.status for g in server.gets()] == [int(status), int(status), 200]


@pytest.mark.parametrize("status", ["400", "401", "404", "410"])
def test_other_client_errors_are_final(crawl: FakeCrawl, tmp_path: Path, status: str) -> None:
    sleeps: list[float] = []
    with serve(crawl.root, faults={crawl.paths[1]: [status]}) as server:
        url = file_url(crawl.paths[1], server.base_url)
        with pytest.raises(HTTPStatusError, match=f"{url}: HTTP {status}") as raised:
            download(url, tmp_path / WARCS[1], POLICY, sleeps.append)
    assert raised.value.status == int(status)
    assert len(server.gets()) == 1 and sleeps == []


def test_retry_after_is_honoured_up_to_the_cap(crawl: FakeCrawl, tmp_path: Path) -> None:
    sleeps: list[float] = []
    faults = {crawl.paths[1]: ["503:retry-after=5", "429:retry-after=600"]}
    with serve(crawl.root, faults=faults) as server:
        download(file_url(crawl.paths[1], server.base_url), tmp_path / WARCS[1], POLICY, sleeps.append)
    assert sleeps == [5.0, POLICY.backoff_max_seconds]


def test_second_fetch_uses_the_cache_and_only_fills_gaps(crawl: FakeCrawl, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with serve(crawl.root) as server:
        first = fetch_crawl(CRAWL, server.base_url, cache, 3, POLICY, sleep=no_sleep)
        before = len(server.requests)
        assert fetch_crawl(CRAWL, server.base_url, cache, 3, POLICY, sleep=no_sleep) == first
        assert server.requests[before:] == []  # the listing is cached too
        first[1].unlink()
        fetch_crawl(CRAWL, server.base_url, cache, 3, POLICY, sleep=no_sleep)
        assert [r.path for r in server.requests[before:]] == [crawl.paths[1]]
    assert_identical(first, crawl)


def test_max_files_takes_the_first_files_of_the_listing(crawl: FakeCrawl, tmp_path: Path) -> None:
    with serve(crawl.root) as server:
        files = fetch_crawl(CRAWL, server.base_url, tmp_path / "cache", 2, POLICY, sleep=no_sleep)
    assert [f.name for f in files] == WARCS[:2]
    assert server.gets(crawl.paths[2]) == []


@pytest.mark.parametrize(
    ("listing", "message"),
    [
        (b"this is not gzip", "not a gzip-compressed list"),
        (gzip.compress(b"crawl-data/../../../etc/passwd\n"), "unexpected path"),
        (gzip.compress(b"\n\n"), "lists no WARC files"),
    ],
)
def test_a_bad_listing_is_an_error_and_is_not_cached(
    crawl: FakeCrawl, tmp_path: Path, listing: bytes, message: str
) -> None:
    (crawl.root / crawl.listing).write_bytes(listing)
    with serve(crawl.root) as server:
        with pytest.raises(CrawlFetchError, match=message):
            fetch_crawl(CRAWL, server.base_url, tmp_path / "cache", 1, POLICY, sleep=no_sleep)
    assert list((tmp_path / "cache" / CRAWL).iterdir()) == []


# Record counts as documented in ../shared/data/SOURCES.md.
@pytest.mark.parametrize(
    ("name", "records"),
    [
        ("aut-archive.org-2008-heritrix.warc.gz", 822),
        ("ukwa-data.gov.uk-2014-crawl-a.warc.gz", 190),
        ("dolma-sample-0000-wget-2024.warc.gz", 48),
        ("CC-MAIN-2020-34-sample-resiliparse.warc.gz", 50),
        ("CC-MAIN-2024-22-whirlwind-an.wikipedia.warc.gz", 4),
        ("jwarc-commoncrawl.org-single-response.warc.gz", 1),
        ("pywb-example.com.warc.gz", 6),
    ],
)
def test_verify_counts_the_records_of_real_warcs(shared_data: Path, name: str, records: int) -> None:
    assert verify_warc_gz(shared_data / "warc" / name) == records


def test_verify_rejects_a_real_file_whose_gzip_stream_is_cut_off(shared_data: Path) -> None:
    clipped = shared_data / "warc" / "resiliparse-clipped-record.warc.gz"
    with pytest.raises(CrawlFetchError, match="resiliparse-clipped-record.warc.gz.*EOFError"):
        verify_warc_gz(clipped)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"<html>Service Unavailable</html>",
        gzip.compress(b"<html>a gzip-compressed error page</html>"),
        "truncated",
    ],
)
def test_verify_rejects_what_is_not_a_complete_warc_gz(shared_data: Path, tmp_path: Path, content: object) -> None:
    if content == "truncated":
        content = (shared_data / "warc" / WARCS[0]).read_bytes()[:-100]
    bad = tmp_path / "bad.warc.gz"
    bad.write_bytes(content)
    with pytest.raises(CrawlFetchError, match="bad.warc.gz: not a valid WARC.gz file"):
        verify_warc_gz(bad)


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        FetchPolicy(max_retries=0)
    with pytest.raises(ValueError, match="timeout"):
        FetchPolicy(timeout_seconds=0)


def test_backoff_grows_exponentially_and_stays_under_the_cap() -> None:
    policy = FetchPolicy(backoff_seconds=1.0, backoff_max_seconds=60.0)
    delays = [backoff_delay(policy, n) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        nominal = min(60.0, 2.0 ** (n - 1))
        assert 0.9 * nominal <= delay <= nominal
    assert backoff_delay(policy, 10_000) <= 60.0  # no float overflow for absurd attempt counts


def test_fault_server_speaks_range_and_head(crawl: FakeCrawl) -> None:
    data = (crawl.root / crawl.paths[0]).read_bytes()
    with serve(crawl.root) as server:
        url = f"{server.base_url}/{crawl.paths[0]}"
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5) as head:
            assert head.headers["Content-Length"] == str(len(data)) and head.read() == b""
        request = urllib.request.Request(url, headers={"Range": "bytes=10-19"})
        with urllib.request.urlopen(request, timeout=5) as part:
            assert part.status == 206 and part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
            assert part.read() == data[10:20]
    assert [(r.method, r.range) for r in server.requests] == [("HEAD", None), ("GET", "bytes=10-19")]
