"""tasks/data/accel/ (xpath_plan, fast_paths, pruning): the fast paths select exactly what
trafilatura's XPaths select, and pruning from one walk leaves the same tree as stock pruning."""

from __future__ import annotations

import re
from typing import Any

import lxml.html
import pytest
from accel_support import accelerated, pages, require_accelerator, stock_after  # noqa: F401 - fixtures
from lxml import etree
from lxml.etree import XPath
from trafilatura import xpaths
from trafilatura.utils import load_html

from llmforge.config import ExtractionConfig
from tasks.data import accel
from tasks.data.accel import guards, pruning
from tasks.data.accel.fast_paths import FastGroup, FastXPath, _combined_screen, build_fast_paths
from tasks.data.accel.xpath_plan import REGEXP_NS, Unsupported, _translate_table, _translated_screen, plan_for
from tasks.data.extract import extract_main_text


@pytest.fixture(scope="module")
def fast_paths() -> dict[int, FastXPath]:
    return build_fast_paths(guards.verified_expressions())


def _name(expression: Any) -> str:
    names = {digest: name for name, digest in guards.VERIFIED_PATHS.items()}
    return names.get(guards.sha256(expression.path), expression.path[:60])


# ------------------------------------------------------------------ the expressions


def test_every_verified_expression_has_a_fast_path(fast_paths: dict[int, FastXPath]) -> None:
    assert len(fast_paths) == len(guards.VERIFIED_PATHS)
    for name in guards.VERIFIED_PATHS:
        expression = guards.verified_expression(name)
        assert fast_paths[id(expression)].original is expression, name


@pytest.mark.slow
def test_fast_paths_select_the_same_elements_on_raw_and_cleaned_trees(
    pages: list[bytes], fast_paths: dict[int, FastXPath]
) -> None:
    from trafilatura.htmlprocessing import tree_cleaning
    from trafilatura.settings import Extractor

    accel.configure("off")
    options = Extractor(output_format="txt", precision=True)
    compared = 0
    for page in pages:
        raw = load_html(page)
        if raw is None:
            continue
        for tree in (raw, tree_cleaning(lxml.html.fromstring(lxml.html.tostring(raw)), options)):
            for fast in fast_paths.values():
                assert fast(tree) == fast.original(tree), _name(fast)
                compared += 1
    assert compared > 1000


@pytest.mark.slow
def test_fast_paths_select_the_same_elements_where_trafilatura_prunes(
    pages: list[bytes], monkeypatch: pytest.MonkeyPatch, accelerated: accel.AcceleratorStatus
) -> None:
    """On the very trees trafilatura prunes (copies, cleaned, converted), at each expression's
    turn: after the deletions of the expressions before it in its list."""
    checked: dict[str, int] = {}
    original_evaluate = pruning._evaluate
    original_select = FastGroup.select

    def count(expression: Any) -> None:
        checked[_name(expression)] = checked.get(_name(expression), 0) + 1

    def checking(expression: Any, tree: Any) -> list[Any]:
        fast = pruning._fast_paths.get(id(expression))
        if fast is not None:
            assert fast(tree) == expression(tree), _name(expression)
            count(expression)
        return original_evaluate(expression, tree)

    def checking_select(group: FastGroup, index: int, tree: Any, found: Any, dead: Any) -> list[Any]:
        selected = original_select(group, index, tree, found, dead)
        expression = group.members[index].original
        assert selected == expression(tree), _name(expression)
        count(expression)
        return selected

    monkeypatch.setattr(pruning, "_evaluate", checking)
    monkeypatch.setattr(FastGroup, "select", checking_select)
    cfg = ExtractionConfig(accelerate="on")
    for page in pages[::2]:
        extract_main_text(page, cfg)
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


def _stock_prune() -> Any:
    """trafilatura's own prune_unwanted_nodes (it evaluates the XPath objects themselves,
    also while the accelerator is in place)."""
    accel.configure("off")
    from trafilatura.htmlprocessing import prune_unwanted_nodes

    return prune_unwanted_nodes


@pytest.mark.slow
@pytest.mark.parametrize("with_backup", [False, True])
def test_shared_walk_prunes_like_stock_on_real_pages(pages: list[bytes], with_backup: bool, stock_after: None) -> None:
    """Every list of trafilatura.xpaths: the same tree after pruning (stock evaluates each
    expression after the deletions of the ones before it)."""
    lists = [value for value in vars(xpaths).values() if isinstance(value, list) and all(isinstance(x, XPath) for x in value)]
    stock_prune = _stock_prune()
    require_accelerator()
    grouped = 0
    for page in pages[::3]:
        raw = load_html(page)
        if raw is None:
            continue
        text = lxml.html.tostring(raw)
        for nodelist in lists:
            expected = lxml.html.tostring(stock_prune(lxml.html.fromstring(text), nodelist, with_backup))
            grouped += pruning.group_for(nodelist) is not None
            assert lxml.html.tostring(pruning.prune_unwanted_nodes(lxml.html.fromstring(text), nodelist, with_backup)) == expected
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
    expressions = [XPath(path, namespaces={"re": REGEXP_NS}) for path in _SEQUENCE]
    fast = {id(x): FastXPath(x, plan_for(x.path)) for x in expressions if not x.path.startswith(".//h1")}
    assert len(fast) == 4
    expected = lxml.html.tostring(_stock_prune()(lxml.html.document_fromstring(_SEQUENCE_HTML), expressions, with_backup))
    monkeypatch.setattr(pruning, "_fast_paths", fast)
    shared = pruning.group_for(expressions)
    assert shared is not None and shared[1] == [0, 1, 2, None, 3]
    # each selection is what the expression itself selects at its turn (deleting an element
    # inside an already deleted one would not show in the tree)
    selections: list[list[Any]] = []
    original_select = FastGroup.select

    def checking_select(group: FastGroup, index: int, tree: Any, found: Any, dead: Any) -> list[Any]:
        selected = original_select(group, index, tree, found, dead)
        assert selected == group.members[index].original(tree), group.members[index].path
        selections.append(selected)
        return selected

    monkeypatch.setattr(FastGroup, "select", checking_select)
    tree = lxml.html.document_fromstring(_SEQUENCE_HTML)
    assert lxml.html.tostring(pruning.prune_unwanted_nodes(tree, expressions, with_backup)) == expected
    assert len(selections) == 4 and all(selections)
    if not with_backup:
        assert b"gone with the div" not in expected and b"inside a deleted div" not in expected
        assert b"stays: has an h1" not in expected  # the .//h1 after the groups' members


@pytest.mark.slow
def test_shared_walk_selects_like_each_expression(pages: list[bytes], fast_paths: dict[int, FastXPath]) -> None:
    """One walk for all fast paths of mode "all" at once, on unchanged trees."""
    members = [f for f in fast_paths.values() if f.plan.mode == "all"]
    group = FastGroup(members)
    for page in pages:
        tree = load_html(page)
        if tree is None:
            continue
        found = group.walk(tree)
        for index, member in enumerate(members):
            assert group.select(index, tree, found, set()) == member.original(tree), _name(member)


def test_union_tests_read_the_attribute_written_first() -> None:
    """re:test(@id|@class, ...) sees the attribute written first in the tag; the fast path too."""
    first, second = xpaths.OVERALL_DISCARD_XPATH[:2]
    fast = FastXPath(first, plan_for(first.path))
    html = (
        "<html><body>"
        '<div class="x-cookie" id="a">1</div><div id="a" class="x-cookie">2</div>'
        '<div id="cookie-bar" class="x">3</div><div class="x" id="cookie-bar">4</div>'
        '<p role="Navigation">5</p><span data-lp-replacement-content="">6</span>'
        '<section class="entry"><div class="ad-slot"><span class="meta">7</span></div></section>'
        "</body></html>"
    )
    tree = lxml.html.document_fromstring(html)
    expected = first(tree)
    # 1 and 3: the attribute written first holds "cookie"; 2 and 4: the other one does
    assert [e.text_content() for e in expected] == ["1", "3", "5", "6", "7", "7"]
    assert fast(tree) == expected
    group = FastGroup([fast, FastXPath(second, plan_for(second.path))])
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
            plan = plan_for(expression.path)
        except Unsupported:
            continue
        assert FastXPath(expression, plan)(tree) == expression(tree), expression.path
    first_child = FastXPath(xpaths.BODY_XPATH[0], plan_for(xpaths.BODY_XPATH[0].path))
    assert [e.text for e in first_child(tree)] == ["1", "3", "4"]


def test_translate_matches_xpath() -> None:
    tree = lxml.html.fragment_fromstring('<div><p id="TeaserBox">x</p><p id="NAV">y</p></div>')
    for source, target in (("T", "t"), ("TN", "t"), ("TTe", "xyz"), ("", "")):
        table = _translate_table(source, target)
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
    with pytest.raises(Unsupported):
        plan_for(path)


def test_an_expression_without_a_fast_path_is_evaluated_by_lxml(monkeypatch: pytest.MonkeyPatch) -> None:
    """An expression that is not a verified one (here: another text) runs as it is."""
    original = xpaths.OVERALL_DISCARD_XPATH[0]
    changed = XPath(original.path.replace("cookie", "cookies"), namespaces={"re": REGEXP_NS})
    monkeypatch.setattr(pruning, "_fast_paths", build_fast_paths([original]))
    calls: list[Any] = []

    class Spy:
        path = changed.path

        def __call__(self, tree: Any) -> list[Any]:
            calls.append(tree)
            return changed(tree)

    tree = lxml.html.document_fromstring('<html><body><div class="cookies">x</div><p>y</p></body></html>')
    pruning.prune_unwanted_nodes(tree, [Spy()])
    assert calls and tree.find(".//div") is None


def test_install_and_uninstall_swap_prune_and_body_xpath(stock_after: None) -> None:
    from trafilatura import core, htmlprocessing, main_extractor

    accel.configure("off")
    stock = htmlprocessing.prune_unwanted_nodes
    stock_body = main_extractor.BODY_XPATH
    require_accelerator()
    for module in (core, htmlprocessing, main_extractor):
        assert module.prune_unwanted_nodes is pruning.prune_unwanted_nodes
    assert main_extractor.BODY_XPATH is not stock_body
    assert xpaths.BODY_XPATH is stock_body  # the shared list itself is left alone
    assert isinstance(main_extractor.BODY_XPATH[0], FastXPath)
    accel.configure("off")
    for module in (core, htmlprocessing, main_extractor):
        assert module.prune_unwanted_nodes is stock
    assert main_extractor.BODY_XPATH is stock_body


# ------------------------------------------------------------------ screens


@pytest.mark.slow
def test_screens_find_every_value_a_test_holds_on(pages: list[bytes], fast_paths: dict[int, FastXPath]) -> None:
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
            screen = _combined_screen([fast], name)
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
    table = _translate_table("ABN", "abn")
    search = re.compile(_translated_screen(table, "nav")).search
    for value in ("nav", "NAV", "Nav", "xNaVy", "na", "n-a-v", "NAB"):
        assert (search(value) is not None) == ("nav" in value.translate(table))
    assert _translated_screen(_translate_table("ab", "a"), "a") is None  # b is deleted
    never = re.compile(_translated_screen(_translate_table("n", "m"), "n")).search
    assert never("n") is None and "n" not in "n".translate(_translate_table("n", "m"))
