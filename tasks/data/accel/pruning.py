"""trafilatura's ``prune_unwanted_nodes`` and ``BODY_XPATH`` with the fast paths in place.

``prune_unwanted_nodes`` is replaced, step for step, by the same code evaluating the verified
expressions through one ``FastGroup`` walk per call (every fast expression of the list from
one walk); ``main_extractor`` gets a copy of ``BODY_XPATH`` with the fast paths in it (it
loops over its module's binding), the shared ``trafilatura.xpaths.BODY_XPATH`` stays as it is.

Why pruning from one walk is identical: the bits of an element depend on its attributes only,
which the deletions between the expressions of a list do not change (``delete_element``
moves tail text); candidates inside a deleted subtree are dropped (``alive``); other
predicates are evaluated by lxml at the expression's turn, on the tree as it is then.

One walk per call, not per run of calls: sharing one walk across the consecutive prune calls
of ``trafilatura_sequence`` and ``prune_unwanted_sections`` (telling them apart by the
caller's frame) saved a median 3.0-3.2% of extraction CPU time on the shared pages (two runs
of 5 and 7 alternating rounds), too little for frame inspection and a guard on two more
stock functions, so it was removed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lxml import etree
from lxml.etree import XPath

from tasks.data.accel.fast_paths import FastGroup, FastXPath
from tasks.data.accel.patching import rebind

# Modules that imported prune_unwanted_nodes by name: the replacement is set on each.
_PRUNE_IMPORTERS = (
    "trafilatura.htmlprocessing",
    "trafilatura.core",
    "trafilatura.main_extractor",
    "trafilatura.external",
    "trafilatura.metadata",
)

_fast_paths: dict[int, FastXPath] = {}  # id(XPath) -> its fast path, while installed
_stock: dict[str, Any] = {}  # prune_unwanted_nodes and main_extractor.BODY_XPATH, while installed
_groups: dict[tuple[int, ...], FastGroup] = {}


def fast_or_same(expression: Any) -> Any:
    """The fast path standing in for this very XPath object, or the object itself."""
    fast = _fast_paths.get(id(expression))
    return fast if fast is not None and fast.original is expression else expression


def _evaluate(expression: Any, tree: etree._Element) -> list[Any]:
    return fast_or_same(expression)(tree)


def group_for(nodelist: list[Any]) -> tuple[FastGroup, list[int | None]] | None:
    """One shared walk for the fast paths (mode "all") of a list, and per expression its
    index among the group's members (None: evaluated by itself); None without any."""
    members: list[FastXPath] = []
    indices: list[int | None] = []
    for expression in nodelist:
        fast = fast_or_same(expression)
        if isinstance(fast, FastXPath) and fast.plan.mode == "all":
            indices.append(len(members))
            members.append(fast)
        else:
            indices.append(None)
    if not members:
        return None
    key = tuple(id(member) for member in members)  # fast paths live as long as _fast_paths
    group = _groups.get(key)
    if group is None or group.members != members:
        group = _groups[key] = FastGroup(members)
    return group, indices


def prune_unwanted_nodes(tree: Any, nodelist: list[XPath], with_backup: bool = False) -> Any:
    """trafilatura.htmlprocessing.prune_unwanted_nodes, step for step, with the verified
    expressions evaluated from one walk of the tree."""
    from trafilatura.xml import delete_element

    if not isinstance(nodelist, (list, tuple)):  # read twice below; stock reads any iterable once
        nodelist = list(nodelist)
    shared = group_for(nodelist)
    dead: set[Any] = set()  # deleted so far, with their subtrees
    if shared is None:
        selections: Iterator[list[Any]] = (_evaluate(expression, tree) for expression in nodelist)
    else:
        group, indices = shared
        found = group.walk(tree)
        selections = (
            _evaluate(expression, tree) if index is None else group.select(index, tree, found, dead)
            for expression, index in zip(nodelist, indices, strict=True)
        )
    if not with_backup:
        # each expression sees the tree after the deletions of the ones before it
        for selection in selections:
            for subtree in selection:
                delete_element(subtree)  # the tail text is preserved
            dead.update(selection)
        return tree
    # guard: prune nothing if it would remove too much text, the tree keeps its elements
    matches = dict.fromkeys(elem for selection in selections for elem in selection)
    outer = [elem for elem in matches if not any(a in matches for a in elem.iterancestors())]
    old_len = len(tree.text_content())
    if old_len - sum(len(elem.text_content()) for elem in outer) > old_len / 7:
        for elem in outer:
            delete_element(elem)
    return tree


def install(fast_paths: dict[int, FastXPath]) -> None:
    """Put the fast prune_unwanted_nodes and BODY_XPATH in place (idempotent)."""
    from trafilatura import htmlprocessing, main_extractor

    if _stock:
        return
    _fast_paths.update(fast_paths)
    _stock["prune_unwanted_nodes"] = htmlprocessing.prune_unwanted_nodes
    _stock["BODY_XPATH"] = main_extractor.BODY_XPATH
    rebind(_PRUNE_IMPORTERS, "prune_unwanted_nodes", _stock["prune_unwanted_nodes"], prune_unwanted_nodes)
    main_extractor.BODY_XPATH = [fast_or_same(expression) for expression in _stock["BODY_XPATH"]]


def uninstall() -> None:
    """Restore trafilatura's own prune_unwanted_nodes and BODY_XPATH."""
    from trafilatura import main_extractor

    if not _stock:
        return
    rebind(_PRUNE_IMPORTERS, "prune_unwanted_nodes", prune_unwanted_nodes, _stock["prune_unwanted_nodes"])
    main_extractor.BODY_XPATH = _stock["BODY_XPATH"]
    _stock.clear()
    _fast_paths.clear()


def installed() -> bool:
    return bool(_stock)
