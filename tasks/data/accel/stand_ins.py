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
name, on every page and again on the fallback extractors' trees, although most names never
occur. The stand-in finds which of them occur in one walk for all names
and runs the stock per-name deletion loop, in the stock order, for those only. That is
the same work on the same elements: a name absent at the start stays absent (the
deletions only remove elements), so its loop would have deleted nothing. Every other
step calls the very same stock helpers in the same order.

Guards (``guards.py``): the sha256 of each stock function's source, and for the repair the
module-level patterns it relies on. ``tests/test_accel_stand_ins.py`` compares both with the
stock functions on real and crafted pages.
"""

from __future__ import annotations

from typing import Any

from tasks.data.accel.patching import rebind

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


# the modules that imported tree_cleaning by name and call it from there
_TREE_CLEANING_IMPORTERS = ("trafilatura.htmlprocessing", "trafilatura.core", "trafilatura.external")


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


_stock: dict[str, Any] = {}  # the stock functions replaced, by name, while installed


def install() -> None:
    """Put the stand-ins in place (idempotent)."""
    from trafilatura import htmlprocessing, utils

    if _stock:
        return
    _stock["repair_faulty_html"] = utils.repair_faulty_html
    utils.repair_faulty_html = repair_faulty_html  # load_html looks it up in its module
    _stock["tree_cleaning"] = htmlprocessing.tree_cleaning
    rebind(_TREE_CLEANING_IMPORTERS, "tree_cleaning", _stock["tree_cleaning"], tree_cleaning)


def uninstall() -> None:
    from trafilatura import utils

    if not _stock:
        return
    if utils.repair_faulty_html is repair_faulty_html:
        utils.repair_faulty_html = _stock["repair_faulty_html"]
    rebind(_TREE_CLEANING_IMPORTERS, "tree_cleaning", tree_cleaning, _stock["tree_cleaning"])
    _stock.clear()


def installed() -> bool:
    return bool(_stock)
