"""Main-text extraction on real pages from trafilatura's own evaluation set."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from llmforge.config import ExtractionConfig
from tasks.data.extract import extract_main_text

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


# ------------------------------------------------- the isolated extractor


import multiprocessing
import os
import textwrap
from concurrent.futures import ProcessPoolExecutor

from tasks.data.extract import (
    Extraction,
    ExtractionError,
    ExtractionFailed,
    ExtractionTimeout,
    ExtractorStartupError,
    IsolatedExtractor,
    RejectedHtml,
    check_html,
    control_char_ratio,
    extract_isolated,
)

# A stand-in for extract_main_text that the child imports by name: it sleeps, raises
# or dies on request, and echoes anything else. Written to a temporary folder that
# the test puts on sys.path (the child inherits the parent's sys.path).
FAKE_MODULE = textwrap.dedent(
    """
    import os, time

    def extract(html, cfg):
        if isinstance(html, bytes):
            html = "bytes:" + html.decode("utf-8")
        if html.startswith("sleep:"):
            time.sleep(float(html[len("sleep:"):]))
            return "woke up"
        if html == "raise":
            raise ValueError("this page is cursed")
        if html == "die":
            os._exit(3)
        if html == "none":
            return None
        return "echo:" + html

    def refuse_everything(html, cfg):
        raise AssertionError("the guard should have stopped this page before the child")
    """
)


@pytest.fixture()
def fake_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "llmforge_fake_extract.py").write_text(FAKE_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "llmforge_fake_extract"


def flat_article(n_bytes: int) -> str:
    """A plain article of many paragraphs: real trafilatura slows down faster than its size grows."""
    paragraph = "<p>Paragraph {} has some ordinary words in it, like a real article would.</p>"
    count = n_bytes // len(paragraph.format(0))
    return "<html><body><article>" + "".join(paragraph.format(i) for i in range(count)) + "</article></body></html>"


def test_isolated_extraction_equals_in_process(pages_dir: Path) -> None:
    cfg = ExtractionConfig()
    with IsolatedExtractor(cfg) as extractor:
        for name in PAGES[:3]:
            raw = load_page(pages_dir, name)
            assert extractor.extract(raw) == extract_main_text(raw, cfg)
            assert extractor.extract(raw.decode("utf-8")) == extract_main_text(raw.decode("utf-8"), cfg)
        assert extractor.run("<html><body><script>var a;</script></body></html>") == Extraction(None, "no_main_text")
        assert extractor.restarts == 0


def test_slow_document_is_timed_out_and_the_next_one_works(fake_module: str) -> None:
    with IsolatedExtractor(ExtractionConfig(timeout_seconds=0.5), function=f"{fake_module}:extract") as extractor:
        assert extractor.extract("hello") == "echo:hello"
        first_pid = extractor.pid
        with pytest.raises(ExtractionTimeout) as caught:
            extractor.extract("sleep:120")  # would block this test for two minutes without the kill
        assert caught.value.reason == "extraction_timeout"
        assert extractor.restarts == 1 and extractor.pid != first_pid
        assert extractor.extract("next page") == "echo:next page"
        assert extractor.extract(b"raw") == "echo:bytes:raw"
        outcome = extractor.run("sleep:120")
        assert (outcome.text, outcome.reason) == (None, "extraction_timeout")
        assert extractor.run("after") == Extraction("echo:after")


def test_errors_in_the_child_are_reported_and_the_child_survives(fake_module: str) -> None:
    with IsolatedExtractor(ExtractionConfig(), function=f"{fake_module}:extract") as extractor:
        pid = extractor.pid
        with pytest.raises(ExtractionError, match="ValueError: this page is cursed") as caught:
            extractor.extract("raise")
        assert caught.value.reason == "extraction_error"
        assert "this page is cursed" in caught.value.child_traceback
        assert extractor.pid == pid and extractor.restarts == 0
        assert extractor.run("none") == Extraction(None, "no_main_text")
        assert extractor.run("raise").reason == "extraction_error"
        assert extractor.extract("still here") == "echo:still here"


def test_a_dead_child_is_replaced(fake_module: str) -> None:
    with IsolatedExtractor(ExtractionConfig(), function=f"{fake_module}:extract") as extractor:
        with pytest.raises(ExtractionError) as caught:
            extractor.extract("die")
        assert caught.value.reason == "extraction_crash" and "exit code 3" in str(caught.value)
        assert extractor.extract("again") == "echo:again"


def test_closing_stops_the_child(fake_module: str) -> None:
    extractor = IsolatedExtractor(ExtractionConfig(), function=f"{fake_module}:extract")
    assert extractor.extract("x") == "echo:x"
    pid = extractor.pid
    assert pid is not None
    extractor.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(RuntimeError, match="closed"):
        extractor.extract("y")
    extractor.close()  # idempotent


def test_a_child_that_cannot_start_is_not_a_page_failure() -> None:
    extractor = IsolatedExtractor(ExtractionConfig(), function="llmforge_no_such_module:extract")
    with pytest.raises(ExtractorStartupError, match="ModuleNotFoundError"):
        extractor.run("<html></html>")  # run() turns page failures into reasons, never this
    assert not issubclass(ExtractorStartupError, ExtractionFailed)
    extractor.close()


def test_too_large_pages_are_skipped_unparsed(fake_module: str) -> None:
    page = flat_article(20_000_000)  # ~20 MB; trafilatura would need minutes
    cfg = ExtractionConfig()
    assert check_html(page, cfg)[0] == "html_too_large"
    with IsolatedExtractor(cfg, function=f"{fake_module}:refuse_everything") as extractor:
        with pytest.raises(RejectedHtml) as caught:
            extractor.extract(page)
        assert caught.value.reason == "html_too_large"
        assert extractor.run(page.encode()).reason == "html_too_large"
        # Multi-byte characters count as bytes, not characters.
        small = ExtractionConfig(max_html_bytes=1000)
        assert check_html("é" * 600, small)[0] == "html_too_large"
        assert check_html("e" * 600, small) is None


def test_input_guard_limits_are_validated() -> None:
    assert (ExtractionConfig().max_html_bytes, ExtractionConfig().max_control_char_ratio) == (10_000_000, 0.01)
    for bad in ({"max_html_bytes": 0}, {"max_control_char_ratio": -0.1}, {"max_control_char_ratio": 1.5}):
        with pytest.raises(ValueError):
            ExtractionConfig(**bad)
    assert ExtractionConfig(max_html_bytes=None, max_control_char_ratio=None).max_html_bytes is None


def test_huge_pages_without_the_size_guard_are_stopped_by_the_timeout() -> None:
    cfg = ExtractionConfig(max_html_bytes=None, timeout_seconds=1.0)
    nested = "<html><body>" + "<div>" * 1_800_000 + "<p>deep</p>" + "</div>" * 1_800_000 + "</body></html>"
    assert len(nested) > 19_000_000
    with IsolatedExtractor(cfg) as extractor:
        # lxml stops at its depth limit, so this one comes back quickly; either outcome is a bound.
        assert extractor.run(nested).reason in ("no_main_text", "extraction_timeout")
        assert extractor.run(flat_article(20_000_000)).reason == "extraction_timeout"
        assert extractor.run("<html><body><p>" + "A normal page again. " * 20 + "</p></body></html>").ok


def test_binary_content_labelled_as_html_gets_a_reason(shared_data: Path, pages_dir: Path) -> None:
    binary = (shared_data / "models" / "lid.176.ftz").read_bytes()
    as_read = binary.decode("utf-8", "replace")  # what a reader that trusts the label would hand over
    cfg = ExtractionConfig()
    assert check_html(binary, cfg)[0] == "binary_content"
    assert check_html(as_read, cfg)[0] == "binary_content"
    for name in PAGES:  # real pages are far below the limit
        assert control_char_ratio(load_page(pages_dir, name)) < 0.001
    with IsolatedExtractor(cfg) as extractor:
        outcome = extractor.run(as_read)
        assert (outcome.text, outcome.reason) == (None, "binary_content")
        assert "control characters" in outcome.detail
        assert extractor.run(binary).reason == "binary_content"
    assert check_html(as_read, ExtractionConfig(max_control_char_ratio=None)) is None


def test_works_inside_a_spawned_process_pool_worker(pages_dir: Path, shared_data: Path) -> None:
    # Prefect's ProcessPoolTaskRunner runs tasks in ProcessPoolExecutor workers started with spawn.
    page = load_page(pages_dir, PAGES[0]).decode("utf-8")
    binary = (shared_data / "models" / "lid.176.ftz").read_bytes()[:100_000]
    cfg = ExtractionConfig()
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = pool.submit(extract_isolated, [page, binary], cfg).result()
    assert results[0] == Extraction(extract_main_text(page, cfg))
    assert results[0].text and results[1].reason == "binary_content"
