"""tasks/extract_speedups.py: the fast paths select exactly what trafilatura's XPaths select,
extraction output is unchanged, and anything unverified runs the stock code."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from lxml.etree import XPath

from llmforge.config import ExtractionConfig
from tasks import extract_speedups as es
from tasks.extract import extract_main_text

trafilatura = pytest.importorskip("trafilatura")
from trafilatura import xpaths  # noqa: E402
from trafilatura.utils import load_html  # noqa: E402

PAGE_STEP = 9  # every 9th shared page: about 80 pages, all sources and languages


def _pages(shared_data: Path, step: int = PAGE_STEP) -> list[bytes]:
    paths = sorted(shared_data.glob("html/*/*/*.html.gz"))
    if not paths:
        pytest.skip("no shared HTML pages")
    return [gzip.decompress(path.read_bytes()) for path in paths[::step]]


@pytest.fixture(scope="module")
def pages(shared_data: Path) -> list[bytes]:
    return _pages(shared_data)


@pytest.fixture(scope="module")
def fast_paths() -> dict[int, es.FastXPath]:
    fast = es.build_fast_paths(strict=True)
    if not fast:
        pytest.skip(f"trafilatura {es.trafilatura_version()} is not a verified version")
    return fast


@pytest.fixture()
def stock_after() -> Iterator[None]:
    """Leave the process as extract_main_text would find it after the test."""
    yield
    es.uninstall()
    es._requested = None


def _name(expression: Any) -> str:
    return es.VERIFIED_PATHS.get(es._sha256(expression.path), expression.path[:60])


# ------------------------------------------------------------------ the expressions


def test_every_verified_expression_has_a_fast_path(fast_paths: dict[int, es.FastXPath]) -> None:
    assert {es.VERIFIED_PATHS[es._sha256(f.path)] for f in fast_paths.values()} == set(es.VERIFIED_PATHS.values())
    for fast in fast_paths.values():
        name = es.VERIFIED_PATHS[es._sha256(fast.path)]
        listname, index = name[:-1].split("[")
        assert getattr(xpaths, listname)[int(index)] is fast.original


def test_fast_paths_select_the_same_elements_on_raw_and_cleaned_trees(
    pages: list[bytes], fast_paths: dict[int, es.FastXPath]
) -> None:
    from trafilatura.htmlprocessing import tree_cleaning
    from trafilatura.settings import Extractor

    options = Extractor(output_format="txt", precision=True)
    compared = 0
    for page in pages:
        raw = load_html(page)
        if raw is None:
            continue
        for tree in (raw, tree_cleaning(lxml.html.fromstring(lxml.html.tostring(raw)), options)):
            for fast in fast_paths.values():
                expected = fast.original(tree)
                assert fast(tree) == expected, _name(fast)
                compared += 1
    assert compared > 1000


def test_fast_paths_select_the_same_elements_where_trafilatura_prunes(
    pages: list[bytes], fast_paths: dict[int, es.FastXPath], monkeypatch: pytest.MonkeyPatch, stock_after: None
) -> None:
    """On the very trees trafilatura prunes (copies, cleaned, converted), before each prune."""
    checked: dict[str, int] = {}
    original_evaluate = es._evaluate

    def checking(expression: Any, tree: Any) -> list[Any]:
        fast = fast_paths.get(id(expression))
        if fast is not None:
            expected = expression(tree)
            assert fast(tree) == expected, _name(expression)
            checked[_name(expression)] = checked.get(_name(expression), 0) + 1
        return original_evaluate(expression, tree)

    monkeypatch.setattr(es, "_evaluate", checking)
    cfg = ExtractionConfig(fast_pruning=True)
    for page in pages[::2]:
        extract_main_text(page, cfg)
    assert es.installed()
    for name in ("OVERALL_DISCARD_XPATH[0]", "OVERALL_DISCARD_XPATH[1]", "REMOVE_COMMENTS_AND_LISTS_XPATH[0]"):
        assert checked.get(name, 0) > 20, checked


def test_union_tests_read_the_attribute_written_first() -> None:
    """re:test(@id|@class, ...) sees the attribute written first in the tag; the fast path too."""
    assert es.union_follows_attribute_order()
    fast = es.FastXPath(xpaths.OVERALL_DISCARD_XPATH[0], es.plan_for(xpaths.OVERALL_DISCARD_XPATH[0].path))
    html = (
        "<html><body>"
        '<div class="x-cookie" id="a">1</div><div id="a" class="x-cookie">2</div>'
        '<div id="cookie-bar" class="x">3</div><div class="x" id="cookie-bar">4</div>'
        '<p role="Navigation">5</p><span data-lp-replacement-content="">6</span>'
        '<section class="entry"><div class="ad-slot"><span class="meta">7</span></div></section>'
        "</body></html>"
    )
    tree = lxml.html.document_fromstring(html)
    expected = xpaths.OVERALL_DISCARD_XPATH[0](tree)
    # 1 and 3: the attribute written first holds "cookie"; 2 and 4: the other one does
    assert [e.text_content() for e in expected] == ["1", "3", "5", "6", "7", "7"]
    assert fast(tree) == expected


def test_positional_forms() -> None:
    """[1] on the step (first matching child per parent) and (...)[1] (first overall)."""
    html = (
        "<html><body>"
        '<div id="a"><div class="post">1</div><div class="post">2</div>'
        '<section><article class="entry">3</article></section></div>'
        '<main class="entry">4</main><div class="story-body">5</div><div class="story-body">6</div>'
        "</body></html>"
    )
    tree = lxml.html.document_fromstring(html)
    for expression in xpaths.BODY_XPATH:
        try:
            plan = es.plan_for(expression.path)
        except es.Unsupported:
            continue
        fast = es.FastXPath(expression, plan)
        assert fast(tree) == expression(tree), expression.path
    first_child = es.FastXPath(xpaths.BODY_XPATH[0], es.plan_for(xpaths.BODY_XPATH[0].path))
    assert [e.text for e in first_child(tree)] == ["1", "3", "4"]


def test_translate_matches_xpath() -> None:
    tree = lxml.html.fragment_fromstring('<div><p id="TeaserBox">x</p><p id="NAV">y</p></div>')
    for source, target in (("T", "t"), ("TN", "t"), ("TTe", "xyz"), ("", "")):
        table = es._translate_table(source, target)
        for element in tree:
            xpath = XPath(f"translate(@id, '{source}', '{target}')")(element)
            assert element.get("id").translate(table) == xpath


@pytest.mark.parametrize(
    "path",
    [
        ".//*[position() < 3][contains(@class, 'x')]",
        ".//*[contains(@class, '')]",
        ".//*[re:test(@class, 'x?')]",
        ".//*[string-length(@class)]",
        ".//a|.//b[@class]",
        "//div[@class]//a[@href]",
        ".//*[self::div][foo:bar(@class)]",
        ".//*[count(@*)]",
    ],
)
def test_unsupported_forms_are_refused(path: str) -> None:
    with pytest.raises(es.Unsupported):
        es.plan_for(path)


# ------------------------------------------------------------------ extraction output


def test_extraction_output_is_identical(pages: list[bytes], shared_data: Path, stock_after: None) -> None:
    from tasks.warc_reader import HtmlDocument, iter_warc

    docs: list[str | bytes] = list(pages)
    for path in sorted(shared_data.glob("warc/*.warc.gz"))[:4]:
        try:
            docs += [item.html for item in iter_warc(path) if isinstance(item, HtmlDocument)][:10]
        except Exception:  # noqa: BLE001 - a damaged file ends its own documents only
            pass
    stock = [extract_main_text(doc, ExtractionConfig(fast_pruning=False)) for doc in docs]
    assert not es.installed()
    fast = [extract_main_text(doc, ExtractionConfig(fast_pruning=True)) for doc in docs]
    assert es.installed()
    assert sum(text is not None for text in stock) > len(docs) // 2
    assert fast == stock


def test_install_and_uninstall_swap_the_functions(stock_after: None) -> None:
    from trafilatura import core, htmlprocessing, main_extractor

    es.ensure(False)
    stock = htmlprocessing.prune_unwanted_nodes
    stock_body = main_extractor.BODY_XPATH
    assert es.ensure(True)
    for module in (core, htmlprocessing, main_extractor):
        assert module.prune_unwanted_nodes is es.prune_unwanted_nodes
    assert main_extractor.BODY_XPATH is not stock_body
    assert xpaths.BODY_XPATH is stock_body  # the shared list itself is left alone
    assert isinstance(main_extractor.BODY_XPATH[0], es.FastXPath)
    es.ensure(False)
    for module in (core, htmlprocessing, main_extractor):
        assert module.prune_unwanted_nodes is stock
    assert main_extractor.BODY_XPATH is stock_body


# ------------------------------------------------------------------ guards


def test_an_expression_with_other_text_gets_no_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    original = xpaths.OVERALL_DISCARD_XPATH[0]
    changed = XPath(original.path.replace("cookie", "cookies"), namespaces={"re": es.REGEXP_NS})
    monkeypatch.setattr(xpaths, "OVERALL_DISCARD_XPATH", [changed, *xpaths.OVERALL_DISCARD_XPATH[1:]])
    fast = es.build_fast_paths(strict=True)
    assert id(changed) not in fast
    assert all(f.original is not changed for f in fast.values())
    # and prune_unwanted_nodes then evaluates it with lxml
    monkeypatch.setattr(es, "_fast_paths", fast)
    calls: list[Any] = []

    class Spy:
        path = changed.path

        def __call__(self, tree: Any) -> list[Any]:
            calls.append(tree)
            return changed(tree)

    tree = lxml.html.document_fromstring('<html><body><div class="cookies">x</div><p>y</p></body></html>')
    es.prune_unwanted_nodes(tree, [Spy()])
    assert calls and tree.find(".//div") is None


def test_an_unverified_trafilatura_version_gets_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trafilatura, "__version__", "99.0.0")
    assert es.build_fast_paths(strict=True) == {}


def test_a_changed_stock_prune_is_not_replaced(monkeypatch: pytest.MonkeyPatch, stock_after: None) -> None:
    from trafilatura import htmlprocessing

    es.ensure(False)
    monkeypatch.setattr(es, "STOCK_PRUNE_SOURCE_SHA256", "0" * 64)
    assert es.install() is False
    assert htmlprocessing.prune_unwanted_nodes is not es.prune_unwanted_nodes
    assert not es.installed()


def test_element_classes_are_unchanged_by_the_lookup(pages: list[bytes], stock_after: None) -> None:
    html = pages[0]
    es.ensure(False)
    before = [type(e) for e in load_html(html).iter()]
    es.ensure(True)
    assert es._lookup_parsers, "the C-level lookup was not installed"
    after = [type(e) for e in load_html(html).iter()]
    assert after == before
    form = lxml.html.fromstring("<form><input name='a'><select></select><textarea></textarea><label>x</label></form>")
    assert [type(e).__name__ for e in form.iter()] == [
        "FormElement",
        "InputElement",
        "SelectElement",
        "TextareaElement",
        "LabelElement",
    ]
