"""Fast paths: trafilatura's XPath filters evaluated over one Python walk of the tree.

lxml runs EXSLT ``re:test(...)`` as a callback into Python, about 2 µs per call (argument
conversion, an element proxy with a Python class lookup, a regex search), 3 to 8 calls per
element, on every element, several times per page. A ``FastXPath`` stands in for one such
expression (``fast(tree) == original(tree)``): it walks the candidate elements with
``iterdescendants``, reads each element's attributes once with ``items()``, decides the
attribute predicate of its ``Plan`` from a memo per attribute value, and hands the elements
whose other predicates (``not(.//h1)``, ...) must be evaluated to lxml in one call, as the
original predicate text on a node-set variable: ``$candidates[P1][P2]...``.

A ``FastGroup`` serves every fast expression of one ``prune_unwanted_nodes`` list from one
walk: the walk, not the tests, is the cost.

Why the result is identical: the tests are XPath's own (``xpath_plan``); ``.//`` yields the
descendants in document order, as ``iterdescendants`` does; a tag filter
``[self::a or self::b]`` becomes ``iterdescendants("{}a", "{}b")`` (no namespace, as in
XPath); predicates hold nothing position-dependent, so an element's outcome depends on the
element alone, and ``[1]``/``(...)[1]`` are evaluated over the results in document order (per
parent for a step's ``[1]``); a union ``@a|@b`` is read from the attribute written first in
the tag, which is what lxml passes (the ``lxml_union_order`` guard checks it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from lxml import etree
from lxml.etree import XPath

from tasks.data.accel.xpath_plan import REGEXP_NS, Plan, ValueTest, plan_for

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


def _any_of(tests: tuple[ValueTest, ...]) -> ValueTest:
    if len(tests) == 1:
        return tests[0]
    return lambda value: any(test(value) for test in tests)


class FastXPath:
    """A drop-in for one trafilatura XPath object: ``fast(tree)`` returns the same
    list as ``original(tree)``."""

    def __init__(self, original: XPath, plan: Plan):
        self.original = original
        self.path = original.path
        self.plan = plan
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
        self._memo: dict[tuple[str, ...], bool] = {}

    def _single(self, name: str, value: str) -> bool:
        memo = self._single_memo[name]
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        result = memo[value] = self._single_tests[name](value)
        return result

    def _decide(self, pairs: list[str]) -> bool:
        """The decided predicate on an element's relevant (name, value) pairs, flattened
        and in the order of the tag."""
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
        for (names, test), memo in zip(self.plan.unions, self._union_memo, strict=True):
            first = next((i for i in range(0, len(pairs), 2) if pairs[i] in names), None)
            # the string value of a union of attributes: the first in the tag (document order)
            if first is not None and _memoised(memo, pairs[first + 1], test):
                return True
        return False

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
            result = memo.get(key)
            if result is None:
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()
                result = memo[key] = decide(pairs)
            if result:
                yield element, final

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
    predicates see, which lxml evaluates at the member's turn, on the tree as it is then."""

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


def build_fast_paths(expressions: Iterable[XPath]) -> dict[int, FastXPath]:
    """A fast path for each expression, keyed by id() of the XPath object. Raises
    Unsupported for an expression of a form the planner does not handle (the ``xpath:``
    guards check the verified ones)."""
    return {id(expression): FastXPath(expression, plan_for(expression.path)) for expression in expressions}
