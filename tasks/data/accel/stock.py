"""Output-identical, faster stand-ins for stock trafilatura functions (outside XPath).

``trafilatura.utils.repair_faulty_html`` runs on every page before parsing. Stock, it
(1) deletes XML-invalid characters with a regex substitution over the whole page,
about 3 ns per character although almost no page has any, and (2) when the page
starts with a doctype, splits off the first line and joins the page again (two copies
of the page) even when the doctype needs no repair. The stand-in
* proves the absence of invalid characters with one C-level pass (below) and runs
  the substitution only when the proof fails;
* copies the page for the doctype repair only when the repair pattern matches the
  first line; otherwise the result of split-and-join is the page itself, plus a
  newline when the page has none (the join always inserts one);
* checks the first lines for a self-closing ``<html .../>`` the way the stock code does.

``trafilatura.htmlprocessing.tree_cleaning`` deletes the elements of some 50 tag names
(script, aside, footer, ...) with one ``tree.iter(tag)`` walk of the whole tree per
name, on every page and again on readability's output: ~0.6 ms per page although most
names never occur. The stand-in finds which of them occur in one walk for all names
and runs the stock per-name deletion loop, in the stock order, for those only. That is
the same work on the same elements: a name absent at the start stays absent (the
deletions only remove elements), so its loop would have deleted nothing. Every other
step calls the very same stock helpers in the same order.

Guards: each stand-in is installed only when the stock function's source has the sha256
it mirrors (and, for the repair, the module-level patterns it relies on are the expected
ones); else stock code runs.
``tests/test_extract_speedups.py`` compares both on real and crafted pages.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import threading
from collections.abc import Callable
from typing import Any

# sha256 of trafilatura.utils.repair_faulty_html's source (trafilatura 2.3.1) mirrored here
STOCK_REPAIR_SOURCE_SHA256 = "7e68c7a3cb24910c519778bfa3b7132efbdb6e650e79f1fe66905e962d6e1d69"

# the patterns of trafilatura.utils the stand-in relies on, with their flags
EXPECTED_PATTERNS = {
    "INVALID_XML_CHARS": ("[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\ufffe\\uffff]", re.UNICODE),
    "DOCTYPE_TAG": ("^< ?! ?DOCTYPE[^>]*/[^<>]*>", re.UNICODE | re.IGNORECASE),
    "FAULTY_HTML": ("(<html.*?)\\s*/>", re.UNICODE | re.IGNORECASE),
}

# The characters INVALID_XML_CHARS deletes below U+0080, as UTF-8 bytes: a code point
# below 0x80 is encoded as that very byte, and no byte below 0x80 occurs inside the
# encoding of any other code point (lone surrogates included, with "surrogatepass").
_INVALID_ASCII_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])


def has_invalid_chars(text: str) -> bool:
    """Whether INVALID_XML_CHARS would find anything in ``text`` (same set of characters)."""
    data = text.encode("utf-8", "surrogatepass")
    return len(data.translate(None, _INVALID_ASCII_BYTES)) != len(data) or "\ufffe" in text or "\uffff" in text


def repair_faulty_html(htmlstring: str, beginning: str) -> str:
    """trafilatura.utils.repair_faulty_html, same result, without copying a page that
    needs no repair."""
    from trafilatura import utils

    if has_invalid_chars(htmlstring):
        htmlstring = utils.INVALID_XML_CHARS.sub("", htmlstring)
    if "doctype" in beginning:
        newline = htmlstring.find("\n")
        firstline = htmlstring if newline < 0 else htmlstring[:newline]
        # the pattern starts with "^" (no MULTILINE): it can only match at the start
        if utils.DOCTYPE_TAG.search(firstline) is not None:
            rest = "" if newline < 0 else htmlstring[newline + 1 :]
            htmlstring = utils.DOCTYPE_TAG.sub("", firstline, count=1) + "\n" + rest
        elif newline < 0:
            htmlstring += "\n"  # the stock split-and-join adds it
    # a self-closing <html .../> on one of the first four lines of the first 4 KiB
    for line in htmlstring[:4096].splitlines()[:4]:
        if "<html" in line and line.endswith("/>"):
            htmlstring = utils.FAULTY_HTML.sub(r"\1>", htmlstring, count=1)
            break
    return htmlstring


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stock_repair_matches(stock: Callable[..., Any]) -> bool:
    """Whether ``stock`` and the patterns it uses are the ones mirrored above."""
    from trafilatura import utils

    try:
        source = inspect.getsource(stock)
    except (OSError, TypeError):
        return False
    if _sha256(source) != STOCK_REPAIR_SOURCE_SHA256:
        return False
    for name, (pattern, flags) in EXPECTED_PATTERNS.items():
        compiled = getattr(utils, name, None)
        if not isinstance(compiled, re.Pattern) or compiled.pattern != pattern or compiled.flags != flags:
            return False
    return True


# sha256 of trafilatura.htmlprocessing.tree_cleaning's source (trafilatura 2.3.1) mirrored below
STOCK_TREE_CLEANING_SOURCE_SHA256 = "828e83a7393082def65c10022aa7cf43d0debfb0039e1de8ee8c9ecb2d23b903"
# the modules that imported tree_cleaning by name and call it from there
_TREE_CLEANING_IMPORTERS = ("trafilatura.htmlprocessing", "trafilatura.core", "trafilatura.external")


def rebind(module_names: tuple[str, ...], attribute: str, current: Any, replacement: Any) -> None:
    """Point ``attribute`` at ``replacement`` in each named module where it is ``current``:
    trafilatura's modules import these functions by name and call their own binding."""
    for name in module_names:
        module = importlib.import_module(name)
        if getattr(module, attribute, None) is current:
            setattr(module, attribute, replacement)


def tree_cleaning(tree: Any, options: Any) -> Any:
    """trafilatura.htmlprocessing.tree_cleaning, step for step, with the per-name
    deletion walks skipped for names that do not occur in the tree."""
    from copy import deepcopy

    from lxml.etree import strip_tags
    from trafilatura import htmlprocessing as stock

    stock.recover_math(tree)
    cleaning, stripping = stock.MANUALLY_CLEANED.copy(), stock.MANUALLY_STRIPPED.copy()
    clean_forms = "form" in cleaning  # forms go last, by their own rule
    if clean_forms:
        cleaning.remove("form")
    if not options.tables:
        cleaning.extend(["table", "td", "th", "tr"])
    else:
        # a figure around a table, and ARIA layout tables, become plain containers
        for element in tree.iter("figure", "table"):
            if element.tag == "figure":
                relabel = element.find(".//table") is not None
            else:
                relabel = element.get("role") in ("presentation", "none")
            if relabel:
                element.tag = "div"
    if options.images:
        cleaning = [name for name in cleaning if name not in stock.PRESERVE_IMG_CLEANING]
        stripping.remove("img")
    strip_tags(tree, stripping)

    backup = None
    if (
        options.focus == "recall"
        and tree.find(".//p") is not None
        and ("p" in cleaning or not any(next(p.iterancestors(cleaning), tree) is tree for p in tree.iter("p")))
    ):
        backup = deepcopy(tree)
    present = {element.tag for element in tree.iter(*cleaning)} if cleaning else set()
    for name in cleaning:
        if name in present:
            for element in tree.iter(name):
                stock.delete_element(element)
    if backup is not None and tree.find(".//p") is None:
        tree = backup
    if clean_forms:
        stock._handle_forms(tree)
    return stock.prune_html(tree, options.focus)


def stock_tree_cleaning_matches(stock: Callable[..., Any]) -> bool:
    try:
        source = inspect.getsource(stock)
    except (OSError, TypeError):
        return False
    return _sha256(source) == STOCK_TREE_CLEANING_SOURCE_SHA256


_lock = threading.Lock()
_stock_repair: Callable[..., Any] | None = None
_stock_tree_cleaning: Callable[..., Any] | None = None


def _install_tree_cleaning() -> None:
    global _stock_tree_cleaning
    from trafilatura import htmlprocessing

    stock = htmlprocessing.tree_cleaning
    if _stock_tree_cleaning is not None or not stock_tree_cleaning_matches(stock):
        return
    _stock_tree_cleaning = stock
    rebind(_TREE_CLEANING_IMPORTERS, "tree_cleaning", stock, tree_cleaning)


def install() -> bool:
    """Put the stand-ins in place (idempotent; each one only where its guard holds); True
    if any is active."""
    global _stock_repair
    from trafilatura import utils

    with _lock:
        _install_tree_cleaning()
        if _stock_repair is None:
            stock = utils.repair_faulty_html
            if stock_repair_matches(stock):
                _stock_repair = stock
                utils.repair_faulty_html = repair_faulty_html  # load_html looks it up in its module
        return installed()


def uninstall() -> None:
    global _stock_repair, _stock_tree_cleaning
    from trafilatura import utils

    with _lock:
        if _stock_repair is not None:
            if utils.repair_faulty_html is repair_faulty_html:
                utils.repair_faulty_html = _stock_repair
            _stock_repair = None
        if _stock_tree_cleaning is not None:
            rebind(_TREE_CLEANING_IMPORTERS, "tree_cleaning", tree_cleaning, _stock_tree_cleaning)
            _stock_tree_cleaning = None


def installed() -> bool:
    return _stock_repair is not None or _stock_tree_cleaning is not None
