"""Reading trafilatura's XPath filters: which expressions have a fast path, and what it tests.

``plan_for(path)`` turns an expression of the form ``.//NODETEST[P1][P2]...`` (optionally
``(...)[1]`` or a final ``[1]``) into a ``Plan``: the element names it can select, the
predicate that is an ``or`` of simple attribute tests as Python functions of the attribute
value (with a regex "screen" each, see ``Screen``), and whether other predicates remain for
lxml. Anything of another form raises ``Unsupported``.

The tests computed here are exactly what XPath 1.0 computes on the attribute's string value
(``@a``, ``@a='s'``, ``contains``/``starts-with`` of ``@a`` or ``@a|@b``,
``contains(translate(@a, ..), 's')``, EXSLT ``re:test(@a|@b, 'pattern'[, 'flags'])``); each is
False when its attributes are all absent (an empty literal, or a pattern that matches '', is
refused), so elements without them can be skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lxml.etree import XPath

REGEXP_NS = "http://exslt.org/regular-expressions"


class Unsupported(ValueError):
    """The expression is not of a form the fast path handles."""


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

