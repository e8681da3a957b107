"""Faster, output-identical evaluation of trafilatura's XPath filters.

Why
---
About 40% of trafilatura's time on a typical page went to ``prune_unwanted_nodes``:
expressions such as ``OVERALL_DISCARD_XPATH`` test every ``div``/``p``/``span`` (or
every element) with several EXSLT ``re:test(...)`` calls. lxml implements those in
Python, so each call is a round trip from libxml2 into Python (argument conversion,
an element proxy with a Python class lookup, a regex search), about 2 µs, 3 to 8
calls per element, on every element, several times per page (trafilatura prunes
several copies of the tree). The ``BODY_XPATH`` searches for the main content
have the same shape.

What
----
1. For each expression of the form ``.//NODETEST[P1][P2]...`` (optionally
   ``(...)[1]`` or a final ``[1]``), the predicate that is an ``or`` of simple
   attribute tests is evaluated here, in Python, over ``iterdescendants``: one
   proxy and one ``items()`` per element instead of the callbacks, with the verdict
   memoised per attribute value (class and id values repeat within and across
   pages). Elements we cannot decide, and every other predicate (``not(.//h1)``,
   ...), go to lxml: the original predicate text runs as a filter on a node-set
   variable, ``$candidates[P1][P2]...``, in one call.
2. ``prune_unwanted_nodes`` is replaced, step for step, by the same code that
   evaluates the verified expressions this way; ``main_extractor`` gets a copy of
   ``BODY_XPATH`` with the fast paths in it. The walk, not the tests, is the cost
   (a proxy and an ``items()`` per element), so the expressions of a list share one
   walk (``FastGroup``: a bit set per element, from a memo per attribute value), and
   so do the lists of a verified sequence of prune calls on one tree (``Sequence``:
   trafilatura's ``trafilatura_sequence`` and ``prune_unwanted_sections`` prune one
   tree with several lists in a row, with only conditions in between). Each
   expression still gets what it selects on the tree at its turn: the walk's
   candidates that earlier deletions did not remove, the other predicates evaluated
   by lxml then.
3. ``tasks/data/accel/stock.py`` stands in for stock functions outside XPath
   (``repair_faulty_html``), installed and removed with the rest.
4. lxml.html's element class lookup (a Python method, called for every proxy lxml
   creates, about 4 million per 1000 pages) is answered from a dict in C for the
   usual tag names, with the very classes the Python lookup gives them.

Why the result is identical
---------------------------
* The tests evaluated here are exactly what XPath computes: ``@a``, ``@a='s'``,
  ``contains``/``starts-with`` of ``@a`` or ``@a|@b``, ``contains(translate(@a, ..),
  's')`` (XPath 1.0 translate), and ``re:test(@a|@b, 'pattern'[, 'flags'])``, which
  lxml implements as ``re.compile(pattern, re.UNICODE [| re.IGNORECASE if 'i' in
  flags]).search(value)`` on the string value of the first node of the union (''
  when empty). The first attribute of ``@a|@b`` in document order is the one
  written first in the tag: ``union_follows_attribute_order`` checks this on the
  installed lxml/libxml2 at install time, else such elements go to lxml.
* Each test is False when its attributes are all absent (an empty literal or a
  pattern that matches '' is refused), so elements without them are skipped.
* A tag filter ``[self::a or self::b]`` becomes ``iterdescendants("{}a", "{}b")``
  (no namespace, as in XPath); ``.//`` yields the descendants in document order.
* Predicates hold no position-dependent parts (``position()``, ``last()``, or a
  predicate that might be a number are refused), so each element's outcome depends
  on the element alone, and ``[1]``/``(...)[1]`` are evaluated over the results
  in document order (per parent for a step's ``[1]``).
* Guards: a fast path exists only for an XPath object of ``trafilatura.xpaths``
  whose exact text (``XPath.path``) is listed in ``VERIFIED_PATHS``, on a trafilatura
  version in ``VERIFIED_TRAFILATURA_VERSIONS``; the replacement prune is installed
  only when the stock function's source is the one it mirrors, the class lookup
  only when lxml.html's lookup method is the one it mirrors and the parser still
  gives the default classes. Anything else runs stock code unchanged.
* A shared walk: the bits of an element depend on its attributes only, which the
  deletions (``delete_element`` moves tail text) do not change; candidates inside a
  deleted subtree are dropped (``alive``); other predicates run on the live tree.
* A sequence of calls: continued only by the next call of the same invocation of the
  verified caller (its frame), on the same tree object, with a later list of the
  sequence; any other prune call ends it. The caller's source must have the sha256
  in ``SEQUENCE_CALLERS`` (nothing but conditions between its prune calls).

``tests/test_extract_speedups.py`` compares every fast path with its expression on
real pages (also on the trees trafilatura actually prunes), and
``benchmarks/extraction_speed.py`` compares the extracted text of every shared page
and WARC HTML record with stock trafilatura.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lxml import etree
from lxml.etree import XPath

from tasks.data.accel import stock as extract_speedups_stock

REGEXP_NS = "http://exslt.org/regular-expressions"

# trafilatura versions whose expressions were checked against the fast paths.
VERIFIED_TRAFILATURA_VERSIONS = frozenset({"2.3.1"})

# sha256 of the exact source text of each expression given a fast path, with the
# name it has in trafilatura.xpaths (for error messages and the benchmark). An
# expression whose text changes in any way gets no fast path.
VERIFIED_PATHS: dict[str, str] = {
    "5d97216ca15d05582de538174e876b27626b7a166810320152081c7e26bb5ca2": "REMOVE_COMMENTS_XPATH[0]",
    "9cc18d34e6e2d258172b5df02bc44e578c95ef709b8e06722846c7a410c3a46f": "REMOVE_COMMENTS_AND_LISTS_XPATH[0]",
    "01e7c660fd6406f29932819d2dbd7530e2f3bdac11dde83565e977e391303444": "RAW_TREE_PRUNE_XPATH[0]",
    "a837e58a1b1ea116ce1dada53d856dec093fe9f64b37dc503698e30f96a87dd3": "OVERALL_DISCARD_XPATH[0]",
    "c1d5b70b8cd03783545d6b715c69062ae6967c222b2d8f4e2399762362d426c0": "OVERALL_DISCARD_XPATH[1]",
    "53d31ea1df47920acee695b26b87b1ce36f16913686e547edc2ae0ba6efab5f7": "PRECISION_DISCARD_XPATH[1]",
    "4df53845e992d9c20b35fcf63fcafc96b165a21a73d596a1b9f26ac47545c648": "COMMENTS_DISCARD_XPATH[2]",
    "82f43e48c571d06b5e8f72043c2295e4342ed07ddec04f10b5836b84c3d98a35": "AUTHOR_DISCARD_XPATHS[0]",
    "3c7afe92279543d5530365aa7b921c6e5b51243033e5622cae1dc85e08976f87": "RAW_TREE_PRUNE_XPATH[1]",
    "ebb02f066626551dbb0222a6cb631691f6ccacf0477c1381263f112b0bc9cdfa": "TEASER_DISCARD_XPATH[0]",
    "cb1ab981e44913f706048bad10e9f027314ffccb36c56ffc66c8ff5e1e340c58": "DISCARD_IMAGE_ELEMENTS[0]",
    "70d0ca82ad61e2368dae4743eeb45e0dfe8ac27798b8da6afa66aa67429026f2": "COMMENTS_DISCARD_XPATH[0]",
    # called directly by main_extractor._extract, one after the other, to find the main body
    "caaa561ceca17064773e97bf7c610f55e6c6a64a2477328c060642912d489b3b": "BODY_XPATH[0]",
    "6c9b5e1fdc092943ebdd87206a2e8a8b4c4666497fb00e6661d2a519d00f37f9": "BODY_XPATH[2]",
    "10a7ceacc0ff8cdfd8c58a575b5197b5d07ba24000f072101735478c2c585978": "BODY_XPATH[3]",
}

# sha256 of the source of trafilatura.htmlprocessing.prune_unwanted_nodes that
# our replacement mirrors.
STOCK_PRUNE_SOURCE_SHA256 = "4731f8e24ef86449c2714a6257d2ff892ff12a6a3d544d7ca87d6536fab29915"

# Modules that imported prune_unwanted_nodes by name: the replacement is set on each.
_PRUNE_IMPORTERS = (
    "trafilatura.htmlprocessing",
    "trafilatura.core",
    "trafilatura.main_extractor",
    "trafilatura.external",
    "trafilatura.metadata",
)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------ XPath text


class Unsupported(ValueError):
    """The expression is not of a form the fast path handles; the stock XPath is used."""


_STRING = r"(?:'[^']*'|\"[^\"]*\")"
_NAME = r"[A-Za-z_][\w.-]*"
_ATTRS = rf"@{_NAME}(?:\s*\|\s*@{_NAME})*"
_PRESENT = re.compile(rf"@({_NAME})")
_EQUALS = re.compile(rf"@({_NAME})\s*=\s*({_STRING})")
_CONTAINS = re.compile(rf"(contains|starts-with)\(\s*({_ATTRS})\s*,\s*({_STRING})\s*\)")
_TRANSLATED = re.compile(rf"contains\(\s*translate\(\s*@({_NAME})\s*,\s*({_STRING})\s*,\s*({_STRING})\s*\)\s*,\s*({_STRING})\s*\)")
_RE_TEST = re.compile(rf"re:test\(\s*({_ATTRS})\s*,\s*({_STRING})\s*(?:,\s*({_STRING})\s*)?\)")
_SELF = re.compile(rf"self::({_NAME})")
_HEAD = re.compile(rf"\.//(\*|{_NAME})")
_PREFIX = re.compile(rf"({_NAME}):(?!:)")


def _unquote(literal: str) -> str:
    return literal[1:-1]  # XPath 1.0 string literals have no escapes


def _attr_names(attrs: str) -> tuple[str, ...]:
    return tuple(part.strip()[1:] for part in attrs.split("|"))


def _scan(text: str) -> Iterator[tuple[int, bool]]:
    """(depth, inside a string literal) per character; depth counts the () and []
    around the character (an opening or closing bracket itself counts as outside)."""
    depth = 0
    quote = ""
    for char in text:
        if quote:
            if char == quote:
                quote = ""
            yield depth, True
        elif char in "'\"":
            quote = char
            yield depth, True
        elif char in "([":
            yield depth, False
            depth += 1
        elif char in ")]":
            depth -= 1
            yield depth, False
        else:
            yield depth, False


def _split_predicates(text: str) -> list[str]:
    """The bracketed predicates of ``[..][..]...``, with nothing else around them."""
    predicates: list[str] = []
    start = -1
    for i, (depth, quoted) in enumerate(_scan(text)):
        char = text[i]
        if depth > 0 or (quoted and start >= 0):
            continue
        if char == "[" and not quoted:
            start = i + 1
        elif char == "]" and not quoted:
            predicates.append(text[start:i].strip())
            start = -1
        elif not char.isspace():
            raise Unsupported(f"unexpected {char!r} outside the predicates")
    if start >= 0:
        raise Unsupported("unbalanced brackets")
    return predicates


def _split_top(text: str, keyword: str) -> list[str]:
    """Split at a top-level ``or``/``and`` (outside strings, parentheses, brackets)."""
    parts: list[str] = []
    start = 0
    scanned = list(_scan(text))
    i = 0
    while i < len(text):
        depth, quoted = scanned[i]
        end = i + len(keyword)
        if (
            depth == 0
            and not quoted
            and text.startswith(keyword, i)
            and (i == 0 or text[i - 1].isspace())
            and (end == len(text) or text[end].isspace())
        ):
            parts.append(text[start:i].strip())
            start = i = end
            continue
        i += 1
    parts.append(text[start:].strip())
    return parts


# A recognised test, as a function of the string value XPath gives it: for ``@a`` the
# attribute's value, for a union ``@a|@b`` the value of the first of them in document
# order, which for attributes of one element is their order in the tag. Every recognised
# test is False when none of its attributes is present (checked or guaranteed below),
# so only the present attributes need looking at.
ValueTest = Callable[[str], bool]


def _translate_table(source: str, target: str) -> dict[int, str | None]:
    """XPath 1.0 translate(): each character of ``source`` becomes the character at the
    same position in ``target``, or is removed when ``target`` is shorter; for a
    character listed twice the first position counts."""
    table: dict[int, str | None] = {}
    for i, char in enumerate(source):
        table.setdefault(ord(char), target[i] if i < len(target) else None)
    return table


# A screen of a test: regex source that re.search finds in every value the test is True
# on (it may find more). None: no such pattern is known (the test may hold on anything).
Screen = str | None
_NEVER = "(?!)"
# What keeps a re:test pattern from being one alternative among others: group names or
# numeric back-references (groups are renumbered) and global inline flags.
_UNSCREENABLE_PATTERN = re.compile(r"\(\?P|\\[1-9]|\(\?[aiLmsux]+\)")


def _translated_screen(table: dict[int, str | None], literal: str) -> Screen:
    """The exact regex for ``literal in value.translate(table)`` when translate maps
    characters one to one (no deletions): each character of the literal, or any
    character translated into it."""
    if any(target is None for target in table.values()):
        return None
    classes = []
    for char in literal:
        sources = {chr(code) for code, target in table.items() if target == char}
        if ord(char) not in table:
            sources.add(char)
        if not sources:
            return _NEVER
        classes.append("[" + "".join(re.escape(c) for c in sorted(sources)) + "]")
    return "".join(classes)


def _disjunct(disjunct: str) -> tuple[tuple[str, ...], ValueTest, Screen]:
    """(the attribute names the test reads, the test, its screen)."""
    if match := _RE_TEST.fullmatch(disjunct):
        names, pattern = _attr_names(match.group(1)), _unquote(match.group(2))
        flags = _unquote(match.group(3)) if match.group(3) else ""
        # lxml's EXSLT re:test(s, pattern, flags) is re.compile(pattern, re.UNICODE, plus
        # re.IGNORECASE when flags contains 'i').search(s) is not None
        try:
            regex = re.compile(pattern, re.UNICODE | (re.IGNORECASE if "i" in flags else 0))
        except re.error as err:
            raise Unsupported(f"bad pattern in {disjunct!r}") from err
        if regex.search("") is not None:  # no attribute means '': it would be True
            raise Unsupported(f"{disjunct!r} is true without the attribute")
        search = regex.search
        screen = None if _UNSCREENABLE_PATTERN.search(pattern) else f"(?{'i' if 'i' in flags else ''}:{pattern})"
        return names, lambda value: search(value) is not None, screen
    if match := _CONTAINS.fullmatch(disjunct):
        function, names, literal = match.group(1), _attr_names(match.group(2)), _unquote(match.group(3))
        if not literal:  # contains(x, '') is true even without the attribute
            raise Unsupported(f"empty literal in {disjunct!r}")
        if function == "starts-with":
            return names, lambda value: value.startswith(literal), "^" + re.escape(literal)
        return names, lambda value: literal in value, re.escape(literal)
    if match := _TRANSLATED.fullmatch(disjunct):
        name, literal = match.group(1), _unquote(match.group(4))
        if not literal:
            raise Unsupported(f"empty literal in {disjunct!r}")
        table = _translate_table(_unquote(match.group(2)), _unquote(match.group(3)))
        return (name,), lambda value: literal in value.translate(table), _translated_screen(table, literal)
    if match := _EQUALS.fullmatch(disjunct):
        name, literal = match.group(1), _unquote(match.group(2))
        return (name,), lambda value: value == literal, "^" + re.escape(literal) + r"\Z"
    if match := _PRESENT.fullmatch(disjunct):
        return (match.group(1),), lambda value: True, None
    raise Unsupported(f"unrecognised test {disjunct!r}")


@dataclass(frozen=True)
class Plan:
    """The fast path of one expression ``.//NODETEST[P1][P2]...``.

    ``mode``: "all" for the expression itself, "first" for ``(expression)[1]``,
    "first_child" for ``.//NODETEST[P1]...[1]`` (per parent, the first child that
    passes the other predicates). ``tags``: the element names it can select (None:
    any). The first predicate that is an ``or`` of recognised tests is decided here:
    ``singles`` holds its tests of one attribute, per attribute, ``unions`` its tests of
    a union ``@a|@b``. ``rest``: whether other predicates remain (lxml evaluates them).
    ``predicates``: all predicates but a final ``[1]``."""

    mode: str
    tags: tuple[str, ...] | None
    names: frozenset[str]
    singles: dict[str, tuple[ValueTest, ...]]
    unions: tuple[tuple[frozenset[str], ValueTest], ...]
    rest: bool
    predicates: str
    # per attribute name, the screens of every test reading it (its own and the unions')
    screens: dict[str, tuple[Screen, ...]]


_FIRST = re.compile(r"\(\s*(.*)\s*\)\s*\[\s*1\s*\]", re.DOTALL)
_POSITION_FUNCTIONS = re.compile(r"position\s*\(|last\s*\(")


def plan_for(path: str) -> Plan:
    """Derive the fast path of an expression; raises Unsupported when it has another form."""
    text = path.strip()
    mode = "all"
    if first := _FIRST.fullmatch(text):
        mode, text = "first", first.group(1).strip()
    head = _HEAD.match(text)
    if head is None:
        raise Unsupported("not of the form .//NODETEST[...]")
    if _POSITION_FUNCTIONS.search(text):
        raise Unsupported("position-dependent predicate")
    for match in _PREFIX.finditer(re.sub(_STRING, "''", text)):
        if match.group(1) != "re":
            raise Unsupported(f"namespace prefix {match.group(1)!r}")
    predicates = _split_predicates(text[head.end() :])
    if mode == "all" and predicates and predicates[-1] == "1":
        mode, predicates = "first_child", predicates[:-1]
    tags: set[str] | None = None if head.group(1) == "*" else {head.group(1)}
    decided: list[tuple[tuple[str, ...], ValueTest, Screen]] | None = None
    rest = False
    for predicate in predicates:
        disjuncts = _split_top(predicate, "or")
        selves = [_SELF.fullmatch(d) for d in disjuncts]
        if all(selves):  # [self::a or self::b]: a tag filter, applied by the iteration
            names = {m.group(1) for m in selves if m}
            tags = names if tags is None else tags & names
            continue
        if decided is None:
            try:
                decided = [_disjunct(d) for d in disjuncts]
                continue
            except Unsupported:
                pass
        # Left to lxml, as a filter on the candidates: it must be a boolean (an "or"),
        # since a number would be a position among the candidates instead.
        if len(disjuncts) < 2:
            raise Unsupported(f"predicate [{predicate}] may not be a boolean")
        rest = True
    if decided is None:
        raise Unsupported("no predicate of recognised tests")
    singles: dict[str, list[ValueTest]] = {}
    unions: list[tuple[frozenset[str], ValueTest]] = []
    screens: dict[str, list[Screen]] = {}
    for names, test, screen in decided:
        if len(set(names)) == 1:
            singles.setdefault(names[0], []).append(test)
        else:
            unions.append((frozenset(names), test))
        for name in set(names):
            screens.setdefault(name, []).append(screen)
    return Plan(
        mode=mode,
        tags=tuple(sorted(tags)) if tags is not None else None,
        names=frozenset(name for names, _, _ in decided for name in names),
        singles={name: tuple(tests) for name, tests in singles.items()},
        unions=tuple(unions),
        rest=rest,
        predicates="".join(f"[{p}]" for p in predicates),
        screens={name: tuple(found) for name, found in screens.items()},
    )


_UNION_PROBES = (
    ('<div class="k" id="x"></div>', True),
    ('<div id="x" class="k"></div>', False),
    ('<div id="k" class="x"></div>', True),
    ('<div class="x" id="k"></div>', False),
)


def union_follows_attribute_order() -> bool:
    """Whether this lxml/libxml2 passes ``@id|@class`` to a function as the attribute
    written first in the tag (what the union tests assume); if not, elements with more
    than one attribute of a union are left to lxml."""
    import lxml.html

    probes = [
        XPath("re:test(@id|@class, '^k$')", namespaces={"re": REGEXP_NS}),
        XPath("contains(@id|@class, 'k')"),
        XPath("starts-with(@id|@class, 'k')"),
    ]
    for html, expected in _UNION_PROBES:
        element = lxml.html.fragment_fromstring(html)
        if any(probe(element) is not expected for probe in probes):
            return False
    return True


# ------------------------------------------------------------------ evaluation

_MEMO_LIMIT = 50_000  # entries per memo; cleared when full


def _memoised(memo: dict[str, bool], value: str, test: ValueTest) -> bool:
    """test(value), remembered in ``memo`` (cleared when full)."""
    result = memo.get(value)
    if result is None:
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        result = memo[value] = test(value)
    return result
_VALUE_MEMO_LIMIT = 100_000  # per attribute name of a FastGroup: (value -> bits)
_UNKNOWN = object()


def _any_of(tests: tuple[ValueTest, ...]) -> ValueTest:
    if len(tests) == 1:
        return tests[0]
    return lambda value: any(test(value) for test in tests)


class FastXPath:
    """A drop-in for one trafilatura XPath object: ``fast(tree)`` returns the same
    list as ``original(tree)``."""

    def __init__(self, original: XPath, plan: Plan, union_order: bool = True):
        self.original = original
        self.path = original.path
        self.plan = plan
        self.union_order = union_order
        # the original predicates (without a final [1]) over the elements left to lxml
        self._exact = XPath(f"$candidates{plan.predicates}", namespaces={"re": REGEXP_NS})
        # "{}div", not "div": lxml's plain name matches any namespace, XPath's self::div none
        self._tags = tuple("{}" + tag for tag in plan.tags) if plan.tags else None
        # per attribute: value -> any of its single-attribute tests is True. Values repeat
        # a lot (class names within and across pages), so most lookups are hits.
        self._single_memo: dict[str, dict[str, bool]] = {name: {} for name in plan.singles}
        # per attribute, its tests as one function: most attributes have one test, called
        # directly (half a million misses over 1000 pages, an any() over a generator each)
        self._single_tests: dict[str, ValueTest] = {name: _any_of(tests) for name, tests in plan.singles.items()}
        self._union_memo: list[dict[str, bool]] = [{} for _ in plan.unions]
        # and per whole tuple of relevant pairs (elements of one page share them)
        self._memo: dict[tuple[str, ...], bool | None] = {}

    def _single(self, name: str, value: str) -> bool:
        memo = self._single_memo[name]
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        result = memo[value] = self._single_tests[name](value)
        return result

    def _decide(self, pairs: list[str]) -> bool | None:
        """The decided predicate on an element's relevant (name, value) pairs, flattened
        and in the order of the tag: True, False, or None (left to lxml)."""
        single_memo = self._single_memo
        for i in range(0, len(pairs), 2):
            name, value = pairs[i], pairs[i + 1]
            memo = single_memo.get(name)
            if memo is not None:
                result = memo.get(value)
                if result is None:
                    result = self._single(name, value)
                if result:
                    return True
        undecided = False
        for (names, test), memo in zip(self.plan.unions, self._union_memo, strict=True):
            present = [i for i in range(0, len(pairs), 2) if pairs[i] in names]
            if not present:
                continue
            if len(present) > 1 and not self.union_order:
                undecided = True
                continue
            value = pairs[present[0] + 1]  # the first in the tag: document order
            if _memoised(memo, value, test):
                return True
        return None if undecided else False

    def _candidates(self, tree: etree._Element) -> Iterator[tuple[etree._Element, bool]]:
        """(element, decided) for the elements that may be selected, in document order:
        decided True means selected, False means lxml decides."""
        names = self.plan.names
        decide = self._decide
        memo = self._memo
        final = not self.plan.rest
        tags = self._tags
        # .// selects the descendants of the context node, in document order
        for element in tree.iterdescendants(*tags) if tags else tree.iterdescendants(etree.Element):
            pairs: list[str] | None = None
            for name, value in element.items():
                if name in names:
                    if pairs is None:
                        pairs = [name, value]
                    else:
                        pairs += (name, value)
            if pairs is None:  # none of the attributes: every test is False
                continue
            key = tuple(pairs)
            result = memo.get(key, _UNKNOWN)
            if result is _UNKNOWN:
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()
                result = memo[key] = decide(pairs)
            if result is not False:
                yield element, final and result is True

    def __call__(self, tree: etree._Element) -> list[etree._Element]:
        if self.plan.mode == "first":
            for element, decided in self._candidates(tree):
                if decided or self._exact(tree, candidates=[element]):
                    return [element]
            return []
        found = list(self._candidates(tree))
        asked = [element for element, decided in found if not decided]
        if asked:  # one lxml call for the rest; live proxies keep their identity
            confirmed = set(self._exact(tree, candidates=asked))
            selected = [element for element, decided in found if decided or element in confirmed]
        else:
            selected = [element for element, _ in found]
        if self.plan.mode == "first_child":
            # [1] on the child step: of the selected children of one parent, the first
            parents: set[etree._Element] = set()
            firsts = []
            for element in selected:
                parent = element.getparent()
                if parent not in parents:
                    parents.add(parent)
                    firsts.append(element)
            return firsts
        return selected

    def select(self, tree: etree._Element, found: list[tuple[etree._Element, bool | None]]) -> list[etree._Element]:
        """The selection (mode "all") among candidates with their verdicts, in document
        order; the ones left to lxml are tested in one call on the tree as it is now."""
        asked = [element for element, decided in found if decided is None]
        if not asked:
            return [element for element, _ in found]
        confirmed = set(self._exact(tree, candidates=asked))
        return [element for element, decided in found if decided or element in confirmed]


def _combined_screen(members: list[FastXPath], name: str) -> Callable[[str], Any] | None:
    """One regex search that finds something in every value of attribute ``name`` on
    which any test of any member reading it holds (the alternation of their screens);
    None when some test has no screen."""
    screens = [screen for member in members for screen in member.plan.screens.get(name, ())]
    if not screens or any(screen is None for screen in screens):
        return None
    try:
        return re.compile("|".join(f"(?:{screen})" for screen in dict.fromkeys(screens))).search
    except re.error:
        return None


class FastGroup:
    """Several expressions (mode "all") of one ``prune_unwanted_nodes`` list from one walk.

    Why: each expression walked the whole tree in Python, and memoised its verdict per
    whole tuple of an element's attribute pairs, which misses on most elements (ids and
    styles are unique); a miss then re-tested every pair. Here one walk over the union
    of the members' element names reads each element's attributes once, and each
    attribute value is looked up once in a memo of (name, value) -> bit set: bit m when
    a single-attribute test of member m is True on it, bit ``len(members) + u`` when
    union ``u`` (``@a|@b``) is True on it. A union's bit counts only from the first of
    its attributes in the tag (the string value XPath gives the union); later ones are
    masked out. An element is a candidate of member m when its bits meet the member's mask.

    The attributes of an element are not changed by the deletions between expressions
    (``delete_element`` moves tail text only), so the bits hold for the later members
    too; deletions change which elements are still in the tree (``alive``) and what other
    predicates see, which lxml evaluates at the member's turn, on the tree as it is then.
    Members with unions only where ``union_follows_attribute_order()`` (else those are
    evaluated alone, where elements with two attributes of a union go to lxml)."""

    def __init__(self, members: list[FastXPath]):
        self.members = members
        if any(m.plan.tags is None for m in members):
            walk_tags: set[str] | None = None
        else:
            walk_tags = {tag for m in members for tag in m.plan.tags or ()}
        self._walk_tags = tuple("{}" + tag for tag in sorted(walk_tags)) if walk_tags is not None else None
        # per member, the element names it selects where the walk visits more, else None
        self._member_tags: tuple[frozenset[str] | None, ...] = tuple(
            None if m.plan.tags is None or (walk_tags is not None and set(m.plan.tags) == walk_tags) else frozenset(m.plan.tags)
            for m in members
        )
        self._with_tag = any(tags is not None for tags in self._member_tags)
        # every union of every member: (its names, the member's memo of its verdicts)
        self._unions: list[tuple[frozenset[str], dict[str, bool], ValueTest]] = []
        masks = []
        for index, member in enumerate(members):
            mask = 1 << index
            for (names, test), memo in zip(member.plan.unions, member._union_memo, strict=True):
                mask |= 1 << (len(members) + len(self._unions))
                self._unions.append((names, memo, test))
            masks.append(mask)
        self._masks = tuple(masks)
        names = frozenset().union(*(m.plan.names for m in members))
        self._screens = {name: _combined_screen(members, name) for name in names}
        # name -> (value -> bits, the bits of the unions reading this name)
        self._memos: dict[str, tuple[dict[str, int], int]] = {
            name: (
                {},
                sum(1 << (len(members) + u) for u, (union_names, _, _) in enumerate(self._unions) if name in union_names),
            )
            for name in names
        }

    def _bits(self, name: str, value: str) -> int:
        memo = self._memos[name][0]
        if len(memo) >= _VALUE_MEMO_LIMIT:
            memo.clear()
        screen = self._screens[name]
        if screen is not None and screen(value) is None:
            # most values (unique ids and styles) pass no test: one regex search says so
            memo[value] = 0
            return 0
        memo[value] = bits = self._tested_bits(name, value)
        return bits

    def _tested_bits(self, name: str, value: str) -> int:
        # the members' own memos: an expression's verdicts on a value are shared by every
        # group it is in (OVERALL_DISCARD_XPATH prunes the raw tree and the cleaned one)
        bits = 0
        for index, member in enumerate(self.members):
            single_memo = member._single_memo.get(name)
            if single_memo is not None:
                result = single_memo.get(value)
                if result is None:
                    result = member._single(name, value)
                if result:
                    bits |= 1 << index
        for u, (names, memo, test) in enumerate(self._unions):
            if name in names and _memoised(memo, value, test):
                bits |= 1 << (len(self.members) + u)
        return bits

    def walk(self, tree: etree._Element) -> list[tuple[etree._Element, int, str | None]]:
        """(element, bits, tag if needed) for the descendants some member may select, in
        document order."""
        memos = self._memos
        bits_of = self._bits
        with_tag = self._with_tag
        tags = self._walk_tags
        found: list[tuple[etree._Element, int, str | None]] = []
        append = found.append
        for element in tree.iterdescendants(*tags) if tags else tree.iterdescendants(etree.Element):
            bits = 0
            seen = 0  # unions whose first attribute came already
            for name, value in element.items():
                entry = memos.get(name)
                if entry is None:
                    continue
                value_bits = entry[0].get(value)
                if value_bits is None:
                    value_bits = bits_of(name, value)
                unions = entry[1]
                if unions:
                    bits |= value_bits & ~(unions & seen)
                    seen |= unions
                else:
                    bits |= value_bits
            if bits:
                append((element, bits, element.tag if with_tag else None))
        return found

    def select(
        self,
        index: int,
        tree: etree._Element,
        found: list[tuple[etree._Element, int, str | None]],
        dead: set[etree._Element],
    ) -> list[etree._Element]:
        """What member ``index`` selects in ``tree`` now, given the walk's ``found`` made
        before the deletions of the elements in ``dead`` (with their subtrees)."""
        mask = self._masks[index]
        tags = self._member_tags[index]
        member = self.members[index]
        decided = None if member.plan.rest else True  # other predicates: lxml decides
        candidates = [
            (element, decided) for element, bits, tag in found if bits & mask and (tags is None or tag in tags)
        ]
        if dead and candidates:
            candidates = [item for item in candidates if alive(item[0], dead)]
        return member.select(tree, candidates)


def alive(element: etree._Element, dead: set[etree._Element]) -> bool:
    """Whether neither the element nor any of its ancestors was deleted."""
    if element in dead:
        return False
    return not any(ancestor in dead for ancestor in element.iterancestors())


# ------------------------------------------------------------------ installation


def trafilatura_version() -> str:
    import trafilatura

    return getattr(trafilatura, "__version__", "")


def build_fast_paths(strict: bool = True) -> dict[int, FastXPath]:
    """Fast paths for trafilatura.xpaths' expressions, keyed by id() of the XPath object.

    ``strict``: only expressions listed in VERIFIED_PATHS, and only on a verified
    trafilatura version (False: every supported expression, for auditing)."""
    from trafilatura import xpaths

    if strict and trafilatura_version() not in VERIFIED_TRAFILATURA_VERSIONS:
        return {}
    fast: dict[int, FastXPath] = {}
    union_order = union_follows_attribute_order()
    for value in vars(xpaths).values():
        if not isinstance(value, list):
            continue
        for expression in value:
            if not isinstance(expression, XPath):
                continue
            if strict and _sha256(expression.path) not in VERIFIED_PATHS:
                continue
            try:
                fast[id(expression)] = FastXPath(expression, plan_for(expression.path), union_order)
            except Unsupported:
                continue
    return fast


_built: tuple[tuple[Any, ...], dict[int, FastXPath]] | None = None


def _cached_fast_paths() -> dict[int, FastXPath]:
    """build_fast_paths(strict=True), built once per process (and again only if the
    version or any expression object of trafilatura.xpaths is not the same)."""
    global _built
    from trafilatura import xpaths

    key = (
        trafilatura_version(),
        *(id(x) for value in vars(xpaths).values() if isinstance(value, list) for x in value),
    )
    if _built is None or _built[0] != key:
        _built = (key, build_fast_paths(strict=True))
    return _built[1]


_state_lock = threading.Lock()
_fast_paths: dict[int, FastXPath] = {}
_stock_prune: Callable[..., Any] | None = None
_stock_body_xpath: list[Any] | None = None


def _fast_or_same(expression: Any) -> Any:
    """The fast path standing in for this very XPath object, or the object itself."""
    fast = _fast_paths.get(id(expression))
    return fast if fast is not None and fast.original is expression else expression


def _evaluate(expression: Any, tree: etree._Element) -> list[Any]:
    return _fast_or_same(expression)(tree)


_groups: dict[tuple[int, ...], FastGroup] = {}


def _group_for_lists(nodelists: tuple[list[Any], ...]) -> tuple[FastGroup, list[list[int | None]]] | None:
    """One shared walk for the fast paths (mode "all") of these lists, and per list, per
    expression, its index among the group's members (None: evaluated by itself)."""
    members: list[FastXPath] = []
    indices: list[list[int | None]] = []
    for nodelist in nodelists:
        list_indices: list[int | None] = []
        for expression in nodelist:
            fast = _fast_or_same(expression)
            # a group reads a union from the attribute written first: only where lxml does
            if isinstance(fast, FastXPath) and fast.plan.mode == "all" and (fast.union_order or not fast.plan.unions):
                list_indices.append(len(members))
                members.append(fast)
            else:
                list_indices.append(None)
        indices.append(list_indices)
    if not members:
        return None
    key = tuple(id(member) for member in members)  # fast paths live as long as _fast_paths
    group = _groups.get(key)
    if group is None or group.members != members:
        group = _groups[key] = FastGroup(members)
    return group, indices


def _group_for(nodelist: list[Any]) -> tuple[FastGroup, list[int | None]] | None:
    shared = _group_for_lists((nodelist,))
    return None if shared is None else (shared[0], shared[1][0])


# Consecutive prune calls on one tree, each list walked once for all: the lists trafilatura
# prunes one after the other, in one function, with nothing but conditions on its
# arguments in between (some calls may be skipped): the attributes the walk read stay as
# they are, only the deletions made by the calls change the tree. Keyed by the function's
# name in its module; valid only while its source has this sha256 (else no sequence).
SEQUENCE_CALLERS: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("trafilatura.core", "trafilatura_sequence"): (
        "f03dc4d2946dacbd0e023ca1c51fdf329e0fdc0be342fd0f14924396ec646e05",
        ("RAW_TREE_PRUNE_XPATH", "REMOVE_COMMENTS_AND_LISTS_XPATH"),
    ),
    ("trafilatura.main_extractor", "prune_unwanted_sections"): (
        "e6eb7afcc64d3f3792b8584d742acd9dc6eee5700aa822e23960f688f7b8e283",
        ("OVERALL_DISCARD_XPATH", "DISCARD_IMAGE_ELEMENTS", "TEASER_DISCARD_XPATH", "PRECISION_DISCARD_XPATH"),
    ),
}


@dataclass(frozen=True)
class Sequence:
    caller: Any  # the code object of the calling function
    nodelists: tuple[list[Any], ...]


# id(first list) -> the sequence it starts (the list objects are held, ids stay valid)
_sequences: dict[int, Sequence] = {}


def _verified_sequences() -> dict[int, Sequence]:
    sequences: dict[int, Sequence] = {}
    for (module_name, function_name), (digest, list_names) in SEQUENCE_CALLERS.items():
        module = sys.modules.get(module_name) or __import__(module_name, fromlist=["_"])
        function = getattr(module, function_name, None)
        try:
            source = inspect.getsource(function)  # type: ignore[arg-type]
        except (OSError, TypeError):
            continue
        nodelists = tuple(getattr(module, name, None) for name in list_names)
        if _sha256(source) != digest or not all(isinstance(n, list) for n in nodelists):
            continue
        sequences[id(nodelists[0])] = Sequence(function.__code__, nodelists)  # type: ignore[union-attr]
    return sequences


@dataclass
class _Walked:
    """A walk in progress over the lists of a sequence, kept between its prune calls."""

    tree: Any
    caller: Any  # the frame of the calling function's invocation
    nodelists: tuple[list[Any], ...]
    position: int  # of the last list pruned
    group: FastGroup
    indices: list[list[int | None]]
    found: list[tuple[etree._Element, int, str | None]]
    dead: set[Any]


_pending = threading.local()  # .walked: _Walked | None


def _walked_for(tree: Any, nodelist: list[Any], caller: Any) -> tuple[_Walked, int] | None:
    """The walk to prune ``nodelist`` from, and the list's position in it: the walk of the
    sequence in progress when this call is its next one (same tree, same invocation of the
    verified caller, a later list of the sequence), else a new one."""
    pending: _Walked | None = getattr(_pending, "walked", None)
    _pending.walked = None  # any other call in between ends the sequence
    if pending is not None and pending.tree is tree and pending.caller is caller:
        for position in range(pending.position + 1, len(pending.nodelists)):
            if pending.nodelists[position] is nodelist:
                pending.position = position
                return pending, position
    sequence = _sequences.get(id(nodelist))
    if sequence is not None and sequence.nodelists[0] is nodelist and caller.f_code is sequence.caller:
        nodelists = sequence.nodelists
    else:
        nodelists = (nodelist,)
    shared = _group_for_lists(nodelists)
    if shared is None:
        return None
    group, indices = shared
    walked = _Walked(tree, caller, nodelists, 0, group, indices, group.walk(tree), set())
    return walked, 0


def prune_unwanted_nodes(tree: Any, nodelist: list[XPath], with_backup: bool = False) -> Any:
    """trafilatura.htmlprocessing.prune_unwanted_nodes, step for step, with fast
    evaluation of the verified expressions: from one walk for all of them, for all the
    lists of a verified sequence of calls."""
    from trafilatura.xml import delete_element

    if not isinstance(nodelist, (list, tuple)):  # read twice below; stock reads any iterable once
        nodelist = list(nodelist)
    at = _walked_for(tree, nodelist, sys._getframe(1))
    if at is None:
        selections: Iterator[list[Any]] = (_evaluate(expression, tree) for expression in nodelist)
    else:
        walked, position = at
        group, found, dead = walked.group, walked.found, walked.dead  # dead: deleted so far, with subtrees

        def in_turn() -> Iterator[list[Any]]:
            for expression, index in zip(nodelist, walked.indices[position], strict=True):
                yield _evaluate(expression, tree) if index is None else group.select(index, tree, found, dead)

        selections = in_turn()
    if not with_backup:
        # each expression sees the tree after the deletions of the ones before it
        for selection in selections:
            for subtree in selection:
                delete_element(subtree)  # the tail text is preserved
            if at is not None:
                dead.update(selection)
    else:
        # guard: prune nothing if it would remove too much text, the tree keeps its elements
        matches = dict.fromkeys(elem for selection in selections for elem in selection)
        outer = [elem for elem in matches if not any(a in matches for a in elem.iterancestors())]
        old_len = len(tree.text_content())
        if old_len - sum(len(elem.text_content()) for elem in outer) > old_len / 7:
            for elem in outer:
                delete_element(elem)
            if at is not None:
                dead.update(outer)
    if at is not None and position + 1 < len(walked.nodelists):
        _pending.walked = walked  # for the next call of the sequence, if it comes next
    return tree


def stock_prune_matches() -> bool:
    """Whether the installed stock prune_unwanted_nodes is the code mirrored above."""
    from trafilatura import htmlprocessing

    stock = _stock_prune or htmlprocessing.prune_unwanted_nodes
    try:
        source = inspect.getsource(stock)
    except (OSError, TypeError):
        return False
    return _sha256(source) == STOCK_PRUNE_SOURCE_SHA256


def install() -> bool:
    """Put the fast prune_unwanted_nodes in place; True if it is active.

    Idempotent. Does nothing (returns False) unless the trafilatura version, the
    stock function and at least one expression are the verified ones."""
    global _stock_prune, _fast_paths, _stock_body_xpath
    with _state_lock:
        if _stock_prune is not None:
            return True
        if not stock_prune_matches():
            return False
        fast = _cached_fast_paths()
        if not fast:
            return False
        from trafilatura import htmlprocessing

        _stock_prune = htmlprocessing.prune_unwanted_nodes
        _fast_paths = fast
        _sequences.update(_verified_sequences())
        extract_speedups_stock.rebind(_PRUNE_IMPORTERS, "prune_unwanted_nodes", _stock_prune, prune_unwanted_nodes)
        # _extract loops over its module's BODY_XPATH: give it a list (a new one, the
        # shared xpaths.BODY_XPATH stays as it is) with the fast paths in place
        from trafilatura import main_extractor

        _stock_body_xpath = main_extractor.BODY_XPATH
        main_extractor.BODY_XPATH = [_fast_or_same(expression) for expression in _stock_body_xpath]
        install_lookup()
        extract_speedups_stock.install()  # guarded on its own: may stay stock
        return True


def uninstall() -> None:
    """Restore trafilatura's own prune_unwanted_nodes, BODY_XPATH and class lookup."""
    global _stock_prune, _fast_paths, _stock_body_xpath
    with _state_lock:
        if _stock_prune is None:
            return
        extract_speedups_stock.rebind(_PRUNE_IMPORTERS, "prune_unwanted_nodes", prune_unwanted_nodes, _stock_prune)
        _stock_prune = None
        _fast_paths = {}
        _sequences.clear()
        _pending.walked = None
        if _stock_body_xpath is not None:
            from trafilatura import main_extractor

            main_extractor.BODY_XPATH = _stock_body_xpath
            _stock_body_xpath = None
        uninstall_lookup()
        extract_speedups_stock.uninstall()


# ------------------------------------------------------------------ element class lookup

# Tag names whose element class is looked up in C. lxml.html's HtmlElementClassLookup is a
# Python method called for every element proxy lxml creates (about 4 million per 1000 pages,
# from trafilatura's own iterations as much as from XPath results). An
# ElementNamespaceClassLookup answers these names from a dict in C, with the class the Python
# lookup returns for the name (asked from it at install time); any other name, any namespaced
# element and every non-element falls back to the Python lookup itself, so every proxy gets
# exactly the class it gets without us.
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

# sha256 of lxml.html.HtmlElementClassLookup.lookup: the class depends on the name only.
HTML_LOOKUP_SOURCE_SHA256 = "fedd067d0a879035cefe28ba9bab2a52ddafef0086f696572f750addfee30f85"

_lookup_parsers: list[Any] = []


def _html_parsers() -> list[Any]:
    """The parsers trafilatura's trees come from: its own, and lxml.html's default (readability)."""
    import lxml.html
    from trafilatura import utils

    return [utils.HTML_PARSER, lxml.html.html_parser]


def _fast_lookup() -> etree.ElementNamespaceClassLookup | None:
    import lxml.html

    try:
        source = inspect.getsource(lxml.html.HtmlElementClassLookup.lookup)
    except (OSError, TypeError):
        return None
    if _sha256(source) != HTML_LOOKUP_SOURCE_SHA256:
        return None
    python_lookup = lxml.html.HtmlElementClassLookup()
    fast = etree.ElementNamespaceClassLookup(python_lookup)
    registry = fast.get_namespace(None)
    for name in FAST_LOOKUP_TAGS:
        registry[name] = python_lookup.lookup("element", None, None, name)
    return fast


def _parser_classes(parser: Any) -> list[type]:
    """The classes a parser's lookup gives a few elements, to check it is lxml.html's default."""
    import lxml.html

    doc = lxml.html.document_fromstring("<p><form><input><select><textarea></textarea><label></label><b>x</b>", parser=parser)
    return [type(el) for el in doc.iter()]


def install_lookup() -> bool:
    """Use the C-level element class lookup on trafilatura's HTML parsers (same classes)."""
    import lxml.html

    if _lookup_parsers:
        return True
    fast = _fast_lookup()
    if fast is None:
        return False
    reference = _parser_classes(lxml.html.HTMLParser())
    parsers = [p for p in _html_parsers() if isinstance(p, lxml.html.HTMLParser)]
    # only a parser that still has lxml.html's own lookup (nobody set another one)
    parsers = [p for p in parsers if _parser_classes(p) == reference]
    for parser in parsers:
        parser.set_element_class_lookup(fast)
        if _parser_classes(parser) != reference:  # cannot happen; never keep a difference
            parser.set_element_class_lookup(lxml.html.HtmlElementClassLookup())
            continue
        _lookup_parsers.append(parser)
    return bool(_lookup_parsers)


def uninstall_lookup() -> None:
    import lxml.html

    while _lookup_parsers:
        _lookup_parsers.pop().set_element_class_lookup(lxml.html.HtmlElementClassLookup())


_requested: bool | None = None


def ensure(enabled: bool) -> bool:
    """install() or uninstall() when ``enabled`` differs from the last request; the
    per-document call is then one comparison (a refused install is not retried)."""
    global _requested
    if enabled != _requested:
        if enabled:
            install()
        else:
            uninstall()
        _requested = enabled
    return installed()


def installed() -> bool:
    return _stock_prune is not None
