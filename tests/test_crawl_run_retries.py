"""A crawl server that is down longer than a file's own retries: the data run tries the download again later
(`cc_run_retries`), and only for failures of the server, never for a crawl it lacks or a missing folder."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from http_fault_server import serve

from llmforge.config import DataConfig
from tasks.data.common_crawl import CrawlFetchError, HTTPStatusError, InvalidCrawlIdError, UnknownCrawlError
from tasks.data.sources import SourceError, worth_retrying

CRAWL = "CC-MAIN-2099-02"
WARC = "jwarc-commoncrawl.org-single-response.warc.gz"
LISTING = f"crawl-data/{CRAWL}/warc.paths.gz"


def _crawl_tree(root: Path, shared_data: Path) -> None:
    relative = f"crawl-data/{CRAWL}/segments/1.0/warc/{WARC}"
    (root / relative).parent.mkdir(parents=True)
    shutil.copyfile(shared_data / "warc" / WARC, root / relative)
    (root / LISTING).write_bytes(gzip.compress((relative + "\n").encode()))


def _caused(cause: BaseException) -> SourceError:
    try:
        raise SourceError("Common Crawl: failed") from cause
    except SourceError as err:
        return err


def test_only_failures_of_the_server_are_worth_retrying() -> None:
    assert worth_retrying(_caused(CrawlFetchError("http://x/f.warc.gz: 503 Service Unavailable, gave up after 5 tries")))
    assert not worth_retrying(_caused(HTTPStatusError("http://x/f.warc.gz", 403, "Forbidden")))
    assert not worth_retrying(_caused(UnknownCrawlError("not found on the server")))
    assert not worth_retrying(_caused(InvalidCrawlIdError("expected CC-MAIN-YYYY-WW")))
    assert not worth_retrying(SourceError("source not found: /nowhere"))
    assert not worth_retrying(ValueError("a bug"))


def _config(base_url: str, **overrides: object) -> DataConfig:
    return DataConfig(source=f"cc:{CRAWL}", cc_base_url=base_url, cc_max_retries=1, cc_backoff_seconds=0,
                      cc_run_retry_delay_seconds=0, **overrides)


@pytest.mark.integration
def test_a_server_down_for_two_tries_is_caught_by_the_run_retries(prefect_harness, shared_data: Path,
                                                                  tmp_path: Path) -> None:
    from flows.data import data_flow

    _crawl_tree(tmp_path / "server", shared_data)
    with serve(tmp_path / "server", faults={LISTING: ["503", "503"]}) as server:
        outcome = data_flow(workdir=str(tmp_path / "w"), config=_config(server.base_url, cc_run_retries=2))
        listing_requests = server.gets(LISTING)
    assert outcome["status"] == "ran" and outcome["metrics"]["responses"] == 1
    assert len(listing_requests) == 3  # two failed tries, then the one that worked


@pytest.mark.integration
def test_a_crawl_the_server_lacks_is_not_tried_again(prefect_harness, shared_data: Path, tmp_path: Path) -> None:
    from flows.data import data_flow

    _crawl_tree(tmp_path / "server", shared_data)
    (tmp_path / "server" / LISTING).unlink()  # 404: the server has no such crawl
    with serve(tmp_path / "server") as server:
        with pytest.raises(SourceError, match="not found on the server"):
            data_flow(workdir=str(tmp_path / "w"), config=_config(server.base_url, cc_run_retries=2))
        assert len(server.gets(LISTING)) == 1
