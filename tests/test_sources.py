"""Resolving data sources, and clear errors when they cannot be read."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from llmforge.config import DataConfig
from tasks.data.sources import SourceError, fetch_common_crawl, resolve_local


def test_directory_glob_and_file_resolve_to_sorted_warcs(tmp_path: Path) -> None:
    for name in ("b.warc.gz", "a.warc", "notes.txt", "sub/c.warc.gz"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in resolve_local(str(tmp_path))] == ["a.warc", "b.warc.gz", "c.warc.gz"]
    assert [p.name for p in resolve_local(str(tmp_path / "*.warc.gz"))] == ["b.warc.gz"]
    assert resolve_local(str(tmp_path / "a.warc")) == [tmp_path / "a.warc"]


@pytest.mark.parametrize("source", ["missing.warc.gz", "empty-dir", "*.nothing.warc"])
def test_unreadable_sources_name_the_path(tmp_path: Path, source: str) -> None:
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(SourceError, match="missing.warc.gz|empty-dir|nothing"):
        resolve_local(str(tmp_path / source))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_common_crawl_host_is_a_clear_error(tmp_path: Path) -> None:
    config = DataConfig(
        source="cc:CC-MAIN-2024-22", cc_base_url=f"http://127.0.0.1:{_closed_port()}", cc_timeout_seconds=5,
        cc_max_retries=1,
    )
    with pytest.raises(SourceError, match="Common Crawl at http://127.0.0.1.*cannot reach"):
        fetch_common_crawl("CC-MAIN-2024-22", config, tmp_path)


def test_malformed_crawl_id_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a Common Crawl crawl id"):
        fetch_common_crawl("CC-2024", DataConfig(), tmp_path)


def test_a_crawl_id_of_the_right_shape_is_left_to_the_server() -> None:
    """Only the shape is checked before the run: whether CC-MAIN-9999-99 exists is the server's to say
    ("not found on the server", tests/test_common_crawl.py), never "expected CC-MAIN-YYYY-WW"."""
    from tasks.data.sources import check_source

    check_source(DataConfig(source="cc:CC-MAIN-9999-99"))
    with pytest.raises(SourceError, match=r"expected CC-MAIN-YYYY-WW"):
        check_source(DataConfig(source="cc:CC-2024"))
    check_source(DataConfig(source="cc:CC-MAIN-2024-22"))
