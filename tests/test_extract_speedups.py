"""tasks/data/accel/fast_paths.py: the fast paths select exactly what trafilatura's XPaths select,
extraction output is unchanged, and anything unverified runs the stock code."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from lxml import etree
from lxml.etree import XPath

from llmforge.config import ExtractionConfig
from tasks.data.accel import fast_paths as es
from tasks.data.extract import extract_main_text

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
    """On the very trees trafilatura prunes (copies, cleaned, converted), at each expression's
    turn: after the deletions of the expressions before it in its list."""
    checked: dict[str, int] = {}
    original_evaluate = es._evaluate
    original_select = es.FastGroup.select

    def count(expression: Any) -> None:
        checked[_name(expression)] = checked.get(_name(expression), 0) + 1

    def checking(expression: Any, tree: Any) -> list[Any]:
        fast = fast_paths.get(id(expression))
        if fast is not None:
            expected = expression(tree)
            assert fast(tree) == expected, _name(expression)
            count(expression)
        return original_evaluate(expression, tree)

    def checking_select(group: es.FastGroup, index: int, tree: Any, found: Any, dead: Any) -> list[Any]:
        selected = original_select(group, index, tree, found, dead)
        expression = group.members[index].original
        assert selected == expression(tree), _name(expression)
        count(expression)
        return selected

    monkeypatch.setattr(es, "_evaluate", checking)
    monkeypatch.setattr(es.FastGroup, "select", checking_select)
    cfg = ExtractionConfig(fast_pruning=True)
    for page in pages[::2]:
        extract_main_text(page, cfg)
    assert es.installed()
    for name in (
        "OVERALL_DISCARD_XPATH[0]",
        "OVERALL_DISCARD_XPATH[1]",
        "REMOVE_COMMENTS_AND_LISTS_XPATH[0]",
        "RAW_TREE_PRUNE_XPATH[0]",
        "RAW_TREE_PRUNE_XPATH[1]",
        "TEASER_DISCARD_XPATH[0]",
        "DISCARD_IMAGE_ELEMENTS[0]",
    ):
        assert checked.get(name, 0) > 20, checked


def _stock_prune(tree: Any, nodelist: list[Any], with_backup: bool = False) -> Any:
    """trafilatura's own prune_unwanted_nodes, whatever is installed."""
    es.ensure(False)
    from trafilatura.htmlprocessing import prune_unwanted_nodes

    return prune_unwanted_nodes(tree, nodelist, with_backup)


@pytest.mark.parametrize("with_backup", [False, True])
def test_shared_walk_prunes_like_stock_on_real_pages(pages: list[bytes], with_backup: bool, stock_after: None) -> None:
    """Every list of trafilatura.xpaths: the same tree after pruning (stock evaluates each
    expression after the deletions of the ones before it)."""
    lists = [value for value in vars(xpaths).values() if isinstance(value, list) and all(isinstance(x, XPath) for x in value)]
    grouped = 0
    for page in pages[::3]:
        raw = load_html(page)
        if raw is None:
            continue
        text = lxml.html.tostring(raw)
        for nodelist in lists:
            expected = lxml.html.tostring(_stock_prune(lxml.html.fromstring(text), nodelist, with_backup))
            es.ensure(True)
            grouped += es._group_for(nodelist) is not None
            assert lxml.html.tostring(es.prune_unwanted_nodes(lxml.html.fromstring(text), nodelist, with_backup)) == expected
    assert grouped > 100


# expressions with predicates that read the tree (lxml's part), in an order where the
# deletions of one change what the next selects
_SEQUENCE = [
    ".//*[self::div][contains(@class, 'kill')]",
    ".//*[self::div or self::section][contains(@class, 'box') or @id='b'][not(.//h1) or contains(@id, 'keep')]",
    ".//*[re:test(@id|@class, '^z')]",
    ".//h1",
    ".//*[self::p or self::span][@data-x or starts-with(@class, 'z')]",
]
_SEQUENCE_HTML = (
    "<html><body>"
    '<section class="box"><div class="kill"><h1>gone with the div</h1></div>a</section>tail1'
    '<section class="box"><h1>stays: has an h1</h1><div class="box" id="keep">b</div></section>'
    '<div class="kill">c<div class="box">inside a deleted div</div><p class="zz">d</p></div>tail2'
    '<div id="zap" class="x">e</div><div class="zap" id="x">f</div><span data-x="">g</span>'
    '<div class="box"><section class="box"><p class="z">h</p></section></div>'
    "</body></html>"
)


@pytest.mark.parametrize("with_backup", [False, True])
def test_shared_walk_follows_the_deletions_in_between(monkeypatch: pytest.MonkeyPatch, with_backup: bool, stock_after: None) -> None:
    expressions = [XPath(path, namespaces={"re": es.REGEXP_NS}) for path in _SEQUENCE]
    fast = {id(x): es.FastXPath(x, es.plan_for(x.path)) for x in expressions if not x.path.startswith(".//h1")}
    assert len(fast) == 4
    expected = lxml.html.tostring(_stock_prune(lxml.html.document_fromstring(_SEQUENCE_HTML), expressions, with_backup))
    es.ensure(True)
    monkeypatch.setattr(es, "_fast_paths", fast)
    shared = es._group_for(expressions)
    assert shared is not None and shared[1] == [0, 1, 2, None, 3]
    # each selection is what the expression itself selects at its turn (deleting an element
    # inside an already deleted one would not show in the tree)
    selections: list[list[Any]] = []
    original_select = es.FastGroup.select

    def checking_select(group: es.FastGroup, index: int, tree: Any, found: Any, dead: Any) -> list[Any]:
        selected = original_select(group, index, tree, found, dead)
        assert selected == group.members[index].original(tree), group.members[index].path
        selections.append(selected)
        return selected

    monkeypatch.setattr(es.FastGroup, "select", checking_select)
    tree = lxml.html.document_fromstring(_SEQUENCE_HTML)
    assert lxml.html.tostring(es.prune_unwanted_nodes(tree, expressions, with_backup)) == expected
    assert len(selections) == 4 and all(selections)
    if not with_backup:
        assert b"gone with the div" not in expected and b"inside a deleted div" not in expected
        assert b"stays: has an h1" not in expected  # the .//h1 after the groups' members


def test_shared_walk_selects_like_each_expression(pages: list[bytes], fast_paths: dict[int, es.FastXPath]) -> None:
    """One walk for all fast paths of mode "all" at once, on unchanged trees."""
    members = [f for f in fast_paths.values() if f.plan.mode == "all"]
    group = es.FastGroup(members)
    for page in pages:
        tree = load_html(page)
        if tree is None:
            continue
        found = group.walk(tree)
        for index, member in enumerate(members):
            assert group.select(index, tree, found, set()) == member.original(tree), _name(member)


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
    group = es.FastGroup([fast, es.FastXPath(xpaths.OVERALL_DISCARD_XPATH[1], es.plan_for(xpaths.OVERALL_DISCARD_XPATH[1].path))])
    assert group.select(0, tree, group.walk(tree), set()) == expected


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
    from tasks.data.warc_reader import HtmlDocument, iter_warc

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


# ------------------------------------------------------------------ stock stand-ins

_REPAIR_CASES = [
    "",
    "\n",
    "<html><body><p>x</p></body></html>",
    "<!DOCTYPE html>\n<html><body>x</body></html>",
    "<!DOCTYPE html><html><body>no newline</body></html>",
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN" "http://www.w3.org/TR/xhtml1/DTD/x.dtd">\n<html><body>x</body></html>',
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN" "http://www.w3.org/x.dtd"><html/>',
    "< ! doctype html / >\r\n<html>\x00\x01 bad \x0b\x0c\x1f\x7f ok \t\n\r</html>",
    "<html lang='en'/>\n<body>x</body>",
    "<!doctype html>\n<html\n/>\n<body>\ufffe\uffff\ufeff é € 😀 \ud800 lone</body>",
    "<p>\x08</p>" * 3,
]


@pytest.mark.parametrize("html", _REPAIR_CASES)
def test_repair_faulty_html_is_the_stock_one(html: str) -> None:
    from tasks.data.accel import stock as st
    from trafilatura import utils

    stock = st._stock_repair or utils.repair_faulty_html
    beginning = html[:50].lower()
    assert st.has_invalid_chars(html) == (utils.INVALID_XML_CHARS.search(html) is not None)
    assert st.repair_faulty_html(html, beginning) == stock(html, beginning)
    for other in ("", "doctype"):  # whatever the caller's beginning says
        assert st.repair_faulty_html(html, other) == stock(html, other)


def test_repair_faulty_html_on_real_pages(pages: list[bytes]) -> None:
    from tasks.data.accel import stock as st
    from trafilatura import utils

    stock = st._stock_repair or utils.repair_faulty_html
    for page in pages:
        text = utils.decode_file(page)
        assert isinstance(text, str)
        beginning = text[:50].lower()
        assert st.repair_faulty_html(text, beginning) == stock(text, beginning)
        with_chars = "\x01" + text[:1000] + "\x1f\ufffe" + text[1000:]
        assert st.repair_faulty_html(with_chars, beginning) == stock(with_chars, beginning)


def test_repair_stand_in_is_installed_with_the_fast_paths(stock_after: None) -> None:
    from tasks.data.accel import stock as st
    from trafilatura import utils

    es.ensure(False)
    stock = utils.repair_faulty_html
    assert es.ensure(True)
    assert utils.repair_faulty_html is st.repair_faulty_html
    es.ensure(False)
    assert utils.repair_faulty_html is stock


def test_a_changed_stock_repair_is_not_replaced(monkeypatch: pytest.MonkeyPatch, stock_after: None) -> None:
    from tasks.data.accel import stock as st
    from trafilatura import utils

    es.ensure(False)
    monkeypatch.setattr(st, "STOCK_REPAIR_SOURCE_SHA256", "0" * 64)
    st.install()
    assert utils.repair_faulty_html is not st.repair_faulty_html
    st.uninstall()
    monkeypatch.undo()
    import re

    monkeypatch.setattr(utils, "INVALID_XML_CHARS", re.compile(r"[\x00-\x08]"))
    st.install()
    assert utils.repair_faulty_html is not st.repair_faulty_html
    st.uninstall()


@pytest.mark.parametrize(
    "settings",
    [{"precision": True}, {"recall": True}, {"images": True, "tables": False}, {}],
    ids=["precision", "recall", "images-no-tables", "balanced"],
)
def test_tree_cleaning_stand_in_cleans_like_stock(pages: list[bytes], settings: dict[str, bool]) -> None:
    from copy import copy

    from lxml.etree import tostring
    from trafilatura import htmlprocessing
    from trafilatura.settings import Extractor

    from tasks.data.accel import stock as st

    stock = st._stock_tree_cleaning or htmlprocessing.tree_cleaning
    options = Extractor(**settings)
    trees = [tree for tree in map(load_html, pages) if tree is not None]
    # and a page where every cleaned name occurs, nested in each other
    nested = "".join(f"<{name} class='x'>in {name} <p>text</p>" for name in htmlprocessing.MANUALLY_CLEANED)
    trees.append(load_html(f"<html><body><div><p>lead</p>{nested}</div><p>tail</p></body></html>"))
    for tree in trees:
        assert tostring(st.tree_cleaning(copy(tree), options)) == tostring(stock(copy(tree), options))


def test_tree_cleaning_stand_in_is_installed_only_over_the_mirrored_stock(
    monkeypatch: pytest.MonkeyPatch, stock_after: None
) -> None:
    from trafilatura import core, external, htmlprocessing

    from tasks.data.accel import stock as st

    es.ensure(False)
    st.uninstall()
    stock = htmlprocessing.tree_cleaning
    assert es.ensure(True)
    assert core.tree_cleaning is external.tree_cleaning is htmlprocessing.tree_cleaning is st.tree_cleaning
    es.ensure(False)
    assert core.tree_cleaning is external.tree_cleaning is htmlprocessing.tree_cleaning is stock
    monkeypatch.setattr(st, "STOCK_TREE_CLEANING_SOURCE_SHA256", "0" * 64)
    st.install()
    assert htmlprocessing.tree_cleaning is stock and core.tree_cleaning is stock
    st.uninstall()


# ------------------------------------------------------------------ sequences of prune calls


def _prune_in_sequence(tree: Any, nodelists: list[list[Any]], skip: tuple[int, ...] = ()) -> Any:
    """A caller that prunes one tree with several lists in a row, like trafilatura's."""
    for index, nodelist in enumerate(nodelists):
        if index not in skip:
            tree = es.prune_unwanted_nodes(tree, nodelist)
    return tree


def _continuations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the position of each prune call in the walk it uses (0: a new walk)."""
    positions: list[int] = []
    original = es._walked_for

    def spy(tree: Any, nodelist: Any, caller: Any) -> Any:
        at = original(tree, nodelist, caller)
        positions.append(-1 if at is None else at[1])
        return at

    monkeypatch.setattr(es, "_walked_for", spy)
    return positions


def test_the_verified_sequences_are_registered(stock_after: None) -> None:
    from trafilatura import core, main_extractor

    assert es.ensure(True)
    sequences = {s.caller: s.nodelists for s in es._sequences.values()}
    assert sequences[core.trafilatura_sequence.__code__] == (xpaths.RAW_TREE_PRUNE_XPATH, xpaths.REMOVE_COMMENTS_AND_LISTS_XPATH)
    assert sequences[main_extractor.prune_unwanted_sections.__code__][0] is xpaths.OVERALL_DISCARD_XPATH


@pytest.mark.parametrize("skip", [(), (1,), (0,), (1, 2)])
def test_a_sequence_prunes_like_stock(
    pages: list[bytes], skip: tuple[int, ...], monkeypatch: pytest.MonkeyPatch, stock_after: None
) -> None:
    nodelists = [xpaths.RAW_TREE_PRUNE_XPATH, xpaths.TEASER_DISCARD_XPATH, xpaths.OVERALL_DISCARD_XPATH, xpaths.REMOVE_COMMENTS_XPATH]
    texts = [lxml.html.tostring(tree) for tree in (load_html(page) for page in pages[::4]) if tree is not None]
    es.ensure(False)
    expected = [lxml.html.tostring(_prune_in_sequence(lxml.html.fromstring(text), nodelists, skip)) for text in texts]
    es.ensure(True)
    monkeypatch.setattr(es, "_sequences", {id(nodelists[0]): es.Sequence(_prune_in_sequence.__code__, tuple(nodelists))})
    positions = _continuations(monkeypatch)
    assert [lxml.html.tostring(_prune_in_sequence(lxml.html.fromstring(text), nodelists, skip)) for text in texts] == expected
    wanted = [i for i in range(len(nodelists)) if i not in skip]
    assert positions == ([0] + wanted[1:] if 0 not in skip else [0] * len(wanted)) * len(texts)


def test_a_sequence_is_only_continued_by_its_own_caller(monkeypatch: pytest.MonkeyPatch, stock_after: None) -> None:
    """A call from elsewhere (here: after the tree changed) walks the tree anew."""
    nodelists = [[XPath(".//*[self::div][contains(@class, 'a')]")], [XPath(".//*[self::div][contains(@class, 'b')]")]]
    es.ensure(True)
    fast = {id(n[0]): es.FastXPath(n[0], es.plan_for(n[0].path)) for n in nodelists}
    monkeypatch.setattr(es, "_fast_paths", fast)
    monkeypatch.setattr(es, "_sequences", {id(nodelists[0]): es.Sequence(_prune_in_sequence.__code__, tuple(nodelists))})
    positions = _continuations(monkeypatch)
    tree = lxml.html.document_fromstring('<html><body><div class="a">1</div><p>2</p></body></html>')
    _prune_in_sequence(tree, nodelists, skip=(1,))  # the sequence stays pending after list 0
    assert positions == [0]
    tree.find(".//p").set("class", "b")
    tree.find(".//p").tag = "div"  # not seen by the pending walk
    es.prune_unwanted_nodes(tree, nodelists[1])
    assert positions == [0, 0]
    assert lxml.html.tostring(tree) == b"<html><body></body></html>"
    # and the same caller on another tree starts anew too
    other = lxml.html.document_fromstring('<html><body><div class="b">3</div></body></html>')
    _prune_in_sequence(other, nodelists, skip=(0,))
    assert positions == [0, 0, 0]


def test_no_group_reads_unions_unless_lxml_reads_the_first_attribute(stock_after: None) -> None:
    es.ensure(True)
    fast = es._fast_or_same(xpaths.OVERALL_DISCARD_XPATH[1])
    assert isinstance(fast, es.FastXPath) and fast.plan.unions
    shared = es._group_for(xpaths.OVERALL_DISCARD_XPATH)
    assert shared is not None and shared[1] == [0, 1]
    unordered = es.FastXPath(fast.original, fast.plan, union_order=False)
    try:
        es._fast_paths[id(fast.original)] = unordered
        shared = es._group_for(xpaths.OVERALL_DISCARD_XPATH)
        assert shared is not None and shared[1] == [0, None]
    finally:
        es._fast_paths[id(fast.original)] = fast


# ------------------------------------------------------------------ screens


def test_screens_find_every_value_a_test_holds_on(pages: list[bytes], fast_paths: dict[int, es.FastXPath]) -> None:
    """A screen may let through values no test holds on, never the reverse."""
    values: dict[str, set[str]] = {}
    for tree in map(load_html, pages):
        if tree is None:
            continue
        for element in tree.iter(etree.Element):
            for name, value in element.items():
                values.setdefault(name, set()).add(value)
    held = 0
    for fast in fast_paths.values():
        plan = fast.plan
        for name in plan.names:
            screen = es._combined_screen([fast], name)
            if screen is None:
                continue
            tests = list(plan.singles.get(name, ())) + [test for names, test in plan.unions if name in names]
            # values of the pages, and crafted ones built from the literals of the expression
            literals = [lit[1:-1] for lit in re.findall(r"'[^']*'", fast.path) if len(lit) > 2]
            crafted = {f"x {lit} y" for lit in literals} | set(literals) | {lit.upper() for lit in literals}
            for value in values.get(name, set()) | crafted:
                if any(test(value) for test in tests):
                    held += 1
                    assert screen(value) is not None, (fast.path[:80], name, value)
    assert held > 100


def test_translated_screens_are_exact() -> None:
    table = es._translate_table("ABN", "abn")
    search = re.compile(es._translated_screen(table, "nav")).search
    for value in ("nav", "NAV", "Nav", "xNaVy", "na", "n-a-v", "NAB"):
        assert (search(value) is not None) == ("nav" in value.translate(table))
    assert es._translated_screen(es._translate_table("ab", "a"), "a") is None  # b is deleted
    never = re.compile(es._translated_screen(es._translate_table("n", "m"), "n")).search
    assert never("n") is None and "n" not in "n".translate(es._translate_table("n", "m"))
