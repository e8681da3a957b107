"""lxml.html's element class lookup, answered in C for the usual tag names.

lxml.html's ``HtmlElementClassLookup.lookup`` is a Python method called for every element
proxy lxml creates: about 4 million per 1000 pages, from trafilatura's own iterations as much
as from XPath results. An ``ElementNamespaceClassLookup`` answers the names in
``FAST_LOOKUP_TAGS`` from a dict in C, with the class the Python lookup returns for the name
(asked from it when the lookup is built); any other name, any namespaced element and every
non-element falls back to the Python lookup itself, so every proxy gets exactly the class it
gets without us. That the class depends on the name only is what the source guard on
``HtmlElementClassLookup.lookup`` pins; ``parsers_problem`` checks the parsers.
"""

from __future__ import annotations

from typing import Any

import lxml.html
from lxml import etree

FAST_LOOKUP_TAGS = (
    # HTML
    "a abbr address area article aside audio b base bdi bdo blockquote body br button canvas caption "
    "center cite code col colgroup data datalist dd del details dfn dialog div dl dt em embed fieldset "
    "figcaption figure font footer form h1 h2 h3 h4 h5 h6 head header hgroup hr html i iframe img input "
    "ins kbd label legend li link main map mark menu meta meter nav nobr noscript object ol optgroup "
    "option output p param picture pre progress q rp rt ruby s samp script section select small source "
    "span strike strong style sub summary sup table tbody td template textarea tfoot th thead time title "
    "tr track tt u ul var video wbr "
    # trafilatura's own element names
    "cell done graphic hi item lb list quote ref row "
    # inline SVG
    "svg g path rect circle line polygon polyline defs use symbol clippath"
).split()

# elements whose classes differ in lxml.html (forms, inputs, labels) next to plain ones
_PROBE_HTML = "<p><form><input><select><textarea></textarea><label></label><b>x</b>"

_installed_on: list[Any] = []


def html_parsers() -> list[Any]:
    """The parsers trafilatura's trees come from: its own, and lxml.html's default (readability)."""
    from trafilatura import utils

    return [utils.HTML_PARSER, lxml.html.html_parser]


def fast_lookup() -> etree.ElementNamespaceClassLookup:
    python_lookup = lxml.html.HtmlElementClassLookup()
    fast = etree.ElementNamespaceClassLookup(python_lookup)
    registry = fast.get_namespace(None)
    for name in FAST_LOOKUP_TAGS:
        registry[name] = python_lookup.lookup("element", None, None, name)
    return fast


def _classes(parser: Any) -> list[type]:
    """The classes a parser gives a few elements."""
    return [type(element) for element in lxml.html.document_fromstring(_PROBE_HTML, parser=parser).iter()]


def parsers_problem() -> str | None:
    """Why the fast lookup may not replace the lookup of trafilatura's parsers, or None: each
    must be an lxml.html parser that still gives lxml.html's default classes (nobody set
    another lookup), and the fast lookup must give the same classes."""
    reference = _classes(lxml.html.HTMLParser())
    for parser in html_parsers():
        if not isinstance(parser, lxml.html.HTMLParser):
            return f"{type(parser).__name__} is not an lxml.html.HTMLParser"
        if _classes(parser) != reference:
            return "a parser has another element class lookup than lxml.html's default"
    probe = lxml.html.HTMLParser()
    probe.set_element_class_lookup(fast_lookup())
    if _classes(probe) != reference:
        return "the C-level lookup gives other classes than lxml.html's"
    return None


def install() -> None:
    """Use the C-level lookup on trafilatura's HTML parsers (idempotent)."""
    if _installed_on:
        return
    fast = fast_lookup()
    for parser in html_parsers():
        parser.set_element_class_lookup(fast)
        _installed_on.append(parser)


def uninstall() -> None:
    while _installed_on:
        _installed_on.pop().set_element_class_lookup(lxml.html.HtmlElementClassLookup())


def installed() -> bool:
    return bool(_installed_on)
