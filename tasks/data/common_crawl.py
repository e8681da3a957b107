"""Fetch the WARC files of a Common Crawl crawl, robustly.

Common Crawl serves each crawl as tens of thousands of ~1 GB files from one HTTP
endpoint that throttles (503/429) and drops connections under load, and it
publishes no per-file checksums. So every download here

* streams into `<target>.part` and, after a failure, resumes it with a `Range`
  request, also when the `.part` was left behind by an earlier, killed run;
* retries transient failures (dropped connections, short reads, timeouts, 408,
  429, 5xx) with capped exponential backoff; other 4xx answers are final;
* checks the byte count against Content-Length / Content-Range, then decodes every
  gzip member (which checks its CRC-32 and length) and parses every WARC record;
* only then renames the `.part` onto the target, so a file under its final name
  is always complete and verified, and a cached file never needs downloading again.

Only the standard library's HTTP client is used (plus warcio for parsing), so the
`http_proxy`/`https_proxy` environment variables work as usual.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import random
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://data.commoncrawl.org"
USER_AGENT = "llmforge-common-crawl/0.1 (Python urllib)"

_CRAWL_ID = re.compile(r"^CC-MAIN-\d{4}-\d{2}$")
_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED_RANGE = re.compile(r"^bytes\s+\*/(\d+)$")
_RETRYABLE_4XX = frozenset({408, 429})
_UNKNOWN_CRAWL_STATUS = frozenset({403, 404})  # S3/CloudFront answer 403 for keys that do not exist
_VERIFY_CHUNK = 1 << 20
_JITTER = 0.1  # delays are shortened by up to 10%, so that throttled clients do not retry in lockstep
_MAX_EXPONENT = 62  # 2**attempt beyond this would overflow a float; the cap applies long before


class CrawlFetchError(RuntimeError):
    """A crawl listing or file could not be fetched or verified; the message names the URL, host or file."""


class InvalidCrawlIdError(CrawlFetchError, ValueError):
    """The crawl id is not of the form CC-MAIN-YYYY-WW (a ValueError too: it is bad input, not a fetch failure)."""


class UnknownCrawlError(CrawlFetchError):
    """A well-formed crawl id that the server does not have: the message names the listing URL tried."""


class HTTPStatusError(CrawlFetchError):
    """The server gave a final answer (a 4xx other than 408/429) that retrying cannot change."""

    def __init__(self, url: str, status: int, reason: str) -> None:
        super().__init__(f"{url}: HTTP {status} {reason}".rstrip())
        self.url = url
        self.status = status


@dataclass(frozen=True)
class FetchPolicy:
    timeout_seconds: float = 30.0  # per connect and per socket read, not per file
    max_retries: int = 5  # attempts per file; an attempt that moved the download forward starts a new count
    backoff_seconds: float = 1.0  # delay after the n-th consecutive failure: backoff * 2**(n-1), capped
    backoff_max_seconds: float = 60.0
    chunk_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be > 0, not {self.timeout_seconds}")
        if self.max_retries < 1:
            raise ValueError(f"max_retries must be >= 1, not {self.max_retries}")
        if self.backoff_seconds < 0 or self.backoff_max_seconds < 0:
            raise ValueError("backoff_seconds and backoff_max_seconds must be >= 0")
        if self.chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be >= 1, not {self.chunk_bytes}")


class _Transient(Exception):
    """One attempt failed in a way that a later attempt may not."""

    def __init__(self, message: str, *, answered: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.answered = answered  # False when no HTTP answer came back at all (refused, DNS, connect timeout)
        self.retry_after = retry_after


@dataclass
class _Transfer:
    """What one download learns across its attempts."""

    url: str
    part: Path
    policy: FetchPolicy
    total: int | None = None  # size announced by the first answer; a different one later means the file changed


# --- crawl ids and URLs -------------------------------------------------------------------------------------------


def check_crawl_id(crawl_id: str) -> str:
    """Return `crawl_id` if it has the shape of a crawl id (CC-MAIN-YYYY-WW), else raise InvalidCrawlIdError.

    Only the shape: whether such a crawl exists is the server's to say (UnknownCrawlError),
    so an id of the right shape is never told it is malformed.
    """
    if not isinstance(crawl_id, str) or not _CRAWL_ID.match(crawl_id):
        raise InvalidCrawlIdError(
            f"not a Common Crawl crawl id: {crawl_id!r} (expected CC-MAIN-YYYY-WW, e.g. CC-MAIN-2024-22)"
        )
    return crawl_id


def _base(base_url: str) -> str:
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CrawlFetchError(f"not an http(s) base URL for Common Crawl: {base_url!r}")
    return base_url.rstrip("/")


def listing_url(crawl_id: str, base_url: str = DEFAULT_BASE_URL) -> str:
    return f"{_base(base_url)}/crawl-data/{check_crawl_id(crawl_id)}/warc.paths.gz"


def file_url(relative_path: str, base_url: str = DEFAULT_BASE_URL) -> str:
    return f"{_base(base_url)}/{urllib.parse.quote(relative_path)}"


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


# --- the crawl listing --------------------------------------------------------------------------------------------


def _is_safe_relative(path: str) -> bool:
    # The listing decides which URLs we fetch and which local names we write: refuse anything but plain relative paths.
    segments = path.split("/")
    return not path.startswith("/") and "://" not in path and ".." not in segments and segments[-1] not in ("", ".")


def _read_listing(listing: Path, url: str) -> list[str]:
    try:
        text = gzip.decompress(listing.read_bytes()).decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as err:
        raise CrawlFetchError(f"{url}: not a gzip-compressed list of paths ({err})") from err
    paths = [line.strip() for line in text.splitlines() if line.strip()]
    if not paths:
        raise CrawlFetchError(f"{url}: the crawl lists no WARC files")
    unsafe = [p for p in paths if not _is_safe_relative(p)]
    if unsafe:
        raise CrawlFetchError(f"{url}: unexpected path in listing: {unsafe[0]!r}")
    return paths


def _download_listing(
    crawl_id: str, base_url: str, target: Path, policy: FetchPolicy, sleep: Callable[[float], None]
) -> list[str]:
    url = listing_url(crawl_id, base_url)
    try:
        download(url, target, policy, sleep)
    except HTTPStatusError as err:
        if err.status in _UNKNOWN_CRAWL_STATUS:
            raise UnknownCrawlError(
                f"crawl {crawl_id} not found on the server: {url} answered HTTP {err.status}; "
                "check the crawl id (Common Crawl lists its crawls at https://index.commoncrawl.org/collinfo.json)"
            ) from err
        raise
    try:
        return _read_listing(target, url)
    except CrawlFetchError:
        target.unlink(missing_ok=True)  # never leave a bad listing where fetch_crawl would trust it as cached
        raise


def crawl_paths(
    crawl_id: str, base_url: str, policy: FetchPolicy, *, sleep: Callable[[float], None] = time.sleep
) -> list[str]:
    """The relative paths of all WARC files of the crawl, in Common Crawl's order."""
    listing_url(crawl_id, base_url)  # validate before creating anything
    with tempfile.TemporaryDirectory(prefix="llmforge-cc-") as tmp:
        return _download_listing(crawl_id, base_url, Path(tmp) / "warc.paths.gz", policy, sleep)


# --- downloading one file -----------------------------------------------------------------------------------------


def backoff_delay(policy: FetchPolicy, failures: int, retry_after: float | None = None) -> float:
    """Seconds to wait after the `failures`-th consecutive failure (1-based), honouring a server's Retry-After."""
    exponent = min(max(failures - 1, 0), _MAX_EXPONENT)
    nominal = min(policy.backoff_max_seconds, policy.backoff_seconds * 2**exponent)
    delay = nominal * (1.0 - _JITTER * random.random())
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.backoff_max_seconds))
    return delay


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _retry_after(headers: Message) -> float | None:
    value = (headers.get("Retry-After") or "").strip()
    return float(value) if value.isdigit() else None  # the HTTP-date form is rare enough to ignore


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _on_error_status(transfer: _Transfer, offset: int, err: urllib.error.HTTPError) -> None:
    """Turn an error answer into the right exception; return only when the `.part` turns out complete."""
    if err.code == 416 and offset:
        match = _UNSATISFIED_RANGE.match((err.headers.get("Content-Range") or "").strip())
        if match and int(match.group(1)) == offset:
            transfer.total = offset  # an earlier run got every byte but stopped before verifying
            return
        # The .part is longer than the file (or the size is unknown): it cannot be a prefix of it.
        transfer.part.unlink(missing_ok=True)
        raise _Transient(f"HTTP 416 for a resume at byte {offset}; starting over")
    if err.code in _RETRYABLE_4XX or 500 <= err.code <= 599:
        raise _Transient(f"HTTP {err.code} {err.reason}", retry_after=_retry_after(err.headers))
    raise HTTPStatusError(transfer.url, err.code, str(err.reason))


def _start_and_total(response: http.client.HTTPResponse) -> tuple[int, int | None]:
    """Where the body starts in the file, and the file's size when the server says."""
    if response.status == 206:
        match = _CONTENT_RANGE.match((response.headers.get("Content-Range") or "").strip())
        if not match:
            raise _Transient(f"HTTP 206 without a usable Content-Range: {response.headers.get('Content-Range')!r}")
        total = match.group(3)
        return int(match.group(1)), None if total == "*" else int(total)
    # Any other success is the whole file, even if we asked for a range: the server ignored it.
    length = (response.headers.get("Content-Length") or "").strip()
    return 0, int(length) if length.isdigit() else None


def _append_body(response: http.client.HTTPResponse, part: Path, start: int, chunk_bytes: int) -> None:
    # read1 returns what has arrived, so bytes received before a dropped connection are kept for the resume.
    with open(part, "ab" if start else "wb") as out:
        while chunk := response.read1(chunk_bytes):
            out.write(chunk)


def _receive(transfer: _Transfer, response: http.client.HTTPResponse, offset: int) -> None:
    start, total = _start_and_total(response)
    if start not in (0, offset):
        transfer.part.unlink(missing_ok=True)
        raise _Transient(f"asked for bytes from {offset}, got a range starting at {start}; starting over")
    if total is not None and transfer.total is not None and total != transfer.total:
        # The bytes we have may belong to the old version of the file.
        transfer.part.unlink(missing_ok=True)
        previous, transfer.total = transfer.total, total
        raise _Transient(f"file size changed from {previous} to {total} between requests; starting over")
    transfer.total = total if total is not None else transfer.total
    if start == 0 and offset:
        log.info("%s ignored the Range request; downloading from byte 0", transfer.url)
    _append_body(response, transfer.part, start, transfer.policy.chunk_bytes)


def _attempt(transfer: _Transfer) -> None:
    """One request; returns when the `.part` holds the whole file, raises _Transient for anything retryable."""
    offset = _size(transfer.part)
    try:
        response = _open(transfer.url, offset, transfer.policy.timeout_seconds)
    except urllib.error.HTTPError as err:
        with err:
            _on_error_status(transfer, offset, err)
        return
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise _Transient(f"no answer: {getattr(err, 'reason', err)}", answered=False) from err
    try:
        with response:
            _receive(transfer, response, offset)
    except (OSError, http.client.HTTPException) as err:  # timeouts and resets are OSErrors
        raise _Transient(f"connection failed after {_size(transfer.part)} bytes: {err!r}") from err
    size = _size(transfer.part)
    if transfer.total is not None and size != transfer.total:
        if size > transfer.total:
            transfer.part.unlink(missing_ok=True)
        raise _Transient(f"short read: have {size} of {transfer.total} bytes")


def _gave_up(url: str, attempts: int, last: _Transient, answered: bool) -> CrawlFetchError:
    if not answered:
        host = urllib.parse.urlsplit(url).netloc
        return CrawlFetchError(f"cannot reach {host}: {url} got no answer in {attempts} attempts; last error: {last}")
    return CrawlFetchError(f"giving up on {url} after {attempts} failed attempts; last error: {last}")


def _fetch_part(transfer: _Transfer, sleep: Callable[[float], None]) -> None:
    """Bring the `.part` to the full file, retrying with backoff."""
    attempts = failures = 0
    answered = False
    while True:
        attempts += 1
        before = _size(transfer.part)
        try:
            _attempt(transfer)
            return
        except _Transient as err:
            last = err
        answered = answered or last.answered
        # A flaky link that still moves the download forward is not stuck: only stalls count against the limit.
        failures = 1 if _size(transfer.part) > before else failures + 1
        if failures >= transfer.policy.max_retries:
            raise _gave_up(transfer.url, attempts, last, answered)
        delay = backoff_delay(transfer.policy, failures, last.retry_after)
        log.warning("%s: attempt %d failed (%s); retrying in %.1f s", transfer.url, attempts, last, delay)
        sleep(delay)


def _commit(part: Path, target: Path) -> None:
    # fsync first: after a power loss the rename must not point at data that never reached the disk.
    with open(part, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(part, target)


def download(url: str, target: Path, policy: FetchPolicy, sleep: Callable[[float], None] = time.sleep) -> Path:
    """Download `url` to `target` (resuming any `.part`), verify it, and move it into place; return `target`.

    A `.warc.gz` target that fails verification is deleted and downloaded once more from scratch;
    a second failure is a CrawlFetchError naming the file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target)
    problem: CrawlFetchError | None = None
    for fresh in (False, True):
        if fresh:
            part.unlink(missing_ok=True)
        log.info("downloading %s to %s (resuming at byte %d)", url, target, _size(part))
        _fetch_part(_Transfer(url, part, policy), sleep)
        try:
            if target.name.endswith(".warc.gz"):
                verify_warc_gz(part)
        except CrawlFetchError as err:
            problem = err
            log.warning("%s failed verification (%s); downloading it again from scratch", target.name, err)
            continue
        _commit(part, target)
        return target
    part.unlink(missing_ok=True)
    raise CrawlFetchError(
        f"{target} downloaded from {url} is damaged, also after a fresh download; deleted it: {problem}"
    )


# --- verification -------------------------------------------------------------------------------------------------


def verify_warc_gz(path: Path) -> int:
    """Decode every gzip member (CRC and length checked) and parse every WARC record; return the record count."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as stream:
            records = sum(1 for _ in ArchiveIterator(stream))
            # Defensive: should warcio ever stop before the end, draining still makes gzip check every trailer.
            while stream.read(_VERIFY_CHUNK):
                pass
    except Exception as err:  # whatever fails while decoding or parsing, the file is unusable
        raise CrawlFetchError(f"{path}: not a valid WARC.gz file: {type(err).__name__}: {err}") from err
    if records == 0:
        raise CrawlFetchError(f"{path}: not a valid WARC.gz file: no WARC records")
    return records


# --- a crawl ------------------------------------------------------------------------------------------------------


def cached_listing(cache_dir: Path, crawl_id: str, base_url: str) -> list[str]:
    """The crawl-relative paths of the crawl's WARC files, from the listing `fetch_crawl` cached."""
    return _read_listing(Path(cache_dir) / crawl_id / "warc.paths.gz", listing_url(crawl_id, base_url))


def _local_names(paths: list[str], url: str) -> list[str]:
    names = [Path(p).name for p in paths]
    if len(set(names)) != len(names):
        raise CrawlFetchError(f"{url}: two listed files share a file name and would overwrite each other in the cache")
    return names


def fetch_crawl(
    crawl_id: str,
    base_url: str,
    cache_dir: Path,
    max_files: int,
    policy: FetchPolicy = FetchPolicy(),
    *,
    sleep: Callable[[float], None] = time.sleep,
    skip: Collection[str] = (),
) -> list[Path]:
    """The first `max_files` WARC files of the crawl that `skip` (crawl-relative paths) leaves out,
    downloaded into `cache_dir/crawl_id/` unless already there.

    The listing is cached beside them (crawls never change once published), so a fully
    cached crawl needs no network at all.
    """
    if max_files < 0:
        raise ValueError(f"max_files must be >= 0, not {max_files}")
    url = listing_url(crawl_id, base_url)
    crawl_dir = Path(cache_dir) / crawl_id
    listing = crawl_dir / "warc.paths.gz"
    if listing.is_file():
        paths = _read_listing(listing, url)
    else:
        paths = _download_listing(crawl_id, base_url, listing, policy, sleep)
    paths = [path for path in paths if path not in skip][:max_files]
    files = []
    for relative, name in zip(paths, _local_names(paths, url)):
        target = crawl_dir / name
        if not target.is_file():  # only verified files are ever renamed to their final name
            download(file_url(relative, base_url), target, policy, sleep)
        files.append(target)
    return files
