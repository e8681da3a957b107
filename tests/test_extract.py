"""Main-text extraction on real pages from trafilatura's own evaluation set."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from llmforge.config import ExtractionConfig
from tasks.extract import extract_main_text

# English pages with gold snippets (evaldata.json) that FineWeb's settings extract
# correctly with the pinned trafilatura: regression guards for our call, not a
# benchmark of trafilatura.
PAGES = [
    "aclu.org-grades.html",
    "abc7news.com-Napa.html",
    "harpers.org.justice.html",
    "nationalgeographic.co.uk.goats.html",
    "nature.com.telescope.html",
    "latimes.com.bloomberg.html",
]


@pytest.fixture(scope="module")
def pages_dir(shared_data: Path) -> Path:
    return shared_data / "html" / "trafilatura"


@pytest.fixture(scope="module")
def gold(pages_dir: Path) -> dict[str, dict]:
    entries = json.loads((pages_dir / "evaldata.json").read_text(encoding="utf-8"))
    return {entry["file"]: entry for entry in entries.values()}


def load_page(pages_dir: Path, name: str) -> bytes:
    return gzip.decompress((pages_dir / "pages" / f"{name}.gz").read_bytes())


@pytest.mark.parametrize("name", PAGES)
def test_gold_snippets(pages_dir: Path, gold: dict[str, dict], name: str) -> None:
    text = extract_main_text(load_page(pages_dir, name), ExtractionConfig())
    assert text
    for snippet in gold[name]["with"]:
        assert snippet in text, f"main text lost: {snippet!r}"
    for snippet in gold[name]["without"]:
        assert snippet not in text, f"boilerplate kept: {snippet!r}"


def test_str_input_gives_the_same_text(pages_dir: Path) -> None:
    raw = load_page(pages_dir, PAGES[0])
    assert extract_main_text(raw.decode("utf-8"), ExtractionConfig()) == extract_main_text(raw, ExtractionConfig())


def test_extraction_is_pure(pages_dir: Path) -> None:
    # With trafilatura's process-wide dedup cache, a page seen three times comes back
    # emptied; ours deduplicates within one page only.
    html = load_page(pages_dir, PAGES[1])
    results = [extract_main_text(html, ExtractionConfig()) for _ in range(4)]
    assert results[0] and all(r == results[0] for r in results)


@pytest.mark.parametrize("name", ["blog.wordpress.com.diverse.html", "stackoverflow.com.rust.html"])
def test_comments_follow_the_config(pages_dir: Path, gold: dict[str, dict], name: str) -> None:
    comments = gold[name]["comments"]
    html = load_page(pages_dir, name)
    without = extract_main_text(html, ExtractionConfig())  # FineWeb: no comments
    with_comments = extract_main_text(html, ExtractionConfig(include_comments=True))
    assert without and not any(c in without for c in comments)
    assert with_comments and all(c in with_comments for c in comments)


def test_no_main_text_gives_none() -> None:
    assert extract_main_text("<html><body><script>var a = 1;</script><div></div></body></html>", ExtractionConfig()) is None
    assert extract_main_text("", ExtractionConfig()) is None
