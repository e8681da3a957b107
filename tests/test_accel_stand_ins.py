"""tasks/data/accel/stand_ins.py: repair_faulty_html and tree_cleaning give what the stock
functions give, on crafted and real pages."""

from __future__ import annotations

from copy import copy
from typing import Any

import pytest
from accel_support import pages, require_accelerator, stock_after  # noqa: F401 - fixtures
from lxml.etree import tostring
from trafilatura import htmlprocessing, utils
from trafilatura.settings import Extractor
from trafilatura.utils import load_html

from tasks.data import accel
from tasks.data.accel import stand_ins


def _stock(name: str) -> Any:
    """The stock function of trafilatura (the accelerator is switched off for it)."""
    accel.configure("off")
    module = utils if name == "repair_faulty_html" else htmlprocessing
    return getattr(module, name)


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
def test_repair_faulty_html_is_the_stock_one(html: str, stock_after: None) -> None:
    stock = _stock("repair_faulty_html")
    beginning = html[:50].lower()
    assert stand_ins.has_invalid_chars(html) == (utils.INVALID_XML_CHARS.search(html) is not None)
    assert stand_ins.repair_faulty_html(html, beginning) == stock(html, beginning)
    for other in ("", "doctype"):  # whatever the caller's beginning says
        assert stand_ins.repair_faulty_html(html, other) == stock(html, other)


def test_repair_faulty_html_on_real_pages(pages: list[bytes], stock_after: None) -> None:
    stock = _stock("repair_faulty_html")
    for page in pages:
        text = utils.decode_file(page)
        assert isinstance(text, str)
        beginning = text[:50].lower()
        assert stand_ins.repair_faulty_html(text, beginning) == stock(text, beginning)
        with_chars = "\x01" + text[:1000] + "\x1f\ufffe" + text[1000:]
        assert stand_ins.repair_faulty_html(with_chars, beginning) == stock(with_chars, beginning)


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings",
    [{"precision": True}, {"recall": True}, {"images": True, "tables": False}, {}],
    ids=["precision", "recall", "images-no-tables", "balanced"],
)
def test_tree_cleaning_stand_in_cleans_like_stock(pages: list[bytes], settings: dict[str, bool], stock_after: None) -> None:
    stock = _stock("tree_cleaning")
    options = Extractor(**settings)
    trees = [tree for tree in map(load_html, pages) if tree is not None]
    # and a page where every cleaned name occurs, nested in each other
    nested = "".join(f"<{name} class='x'>in {name} <p>text</p>" for name in htmlprocessing.MANUALLY_CLEANED)
    trees.append(load_html(f"<html><body><div><p>lead</p>{nested}</div><p>tail</p></body></html>"))
    for tree in trees:
        assert tostring(stand_ins.tree_cleaning(copy(tree), options)) == tostring(stock(copy(tree), options))


def test_tree_cleaning_stand_in_on_a_page_with_every_cleaned_name(stock_after: None) -> None:
    stock = _stock("tree_cleaning")
    nested = "".join(f"<{name} class='x'>in {name} <p>text</p>" for name in htmlprocessing.MANUALLY_CLEANED)
    tree = load_html(f"<html><body><div><p>lead</p>{nested}</div><p>tail</p><form><p>f</p></form></body></html>")
    for settings in ({"precision": True}, {"recall": True}, {"images": True, "tables": False}):
        options = Extractor(**settings)
        assert tostring(stand_ins.tree_cleaning(copy(tree), options)) == tostring(stock(copy(tree), options))


def test_stand_ins_are_installed_and_removed_with_the_accelerator(stock_after: None) -> None:
    from trafilatura import core, external

    stock_repair, stock_cleaning = _stock("repair_faulty_html"), _stock("tree_cleaning")
    require_accelerator()
    assert utils.repair_faulty_html is stand_ins.repair_faulty_html
    assert core.tree_cleaning is external.tree_cleaning is htmlprocessing.tree_cleaning is stand_ins.tree_cleaning
    accel.configure("off")
    assert utils.repair_faulty_html is stock_repair
    assert core.tree_cleaning is external.tree_cleaning is htmlprocessing.tree_cleaning is stock_cleaning
