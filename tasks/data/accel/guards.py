"""The guards: what must hold on the installed trafilatura and lxml for the accelerator to
stand in for stock code. Each has a name; ``failed_guard()`` returns the first that fails.

After a trafilatura or lxml upgrade, ``python -m tasks.data.accel`` lists every guard
with its state and, for the hash guards, the sha256 found now (the upgrade steps are in the
package docstring, ``tasks/data/accel/__init__.py``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lxml.etree import XPath

from tasks.data.accel.patching import sha256, source_sha256

# trafilatura versions on which every other guard below was checked and the output-identity
# tests and benchmark were run. Also what covers the callers of the replaced functions
# (main_extractor._extract's loop over BODY_XPATH, the modules that import
# prune_unwanted_nodes and tree_cleaning by name).
VERIFIED_TRAFILATURA_VERSIONS = frozenset({"2.3.1"})

# The expressions given a fast path, by their place in trafilatura.xpaths, with the sha256 of
# their exact text (XPath.path).
VERIFIED_PATHS: dict[str, str] = {
    "REMOVE_COMMENTS_XPATH[0]": "5d97216ca15d05582de538174e876b27626b7a166810320152081c7e26bb5ca2",
    "REMOVE_COMMENTS_AND_LISTS_XPATH[0]": "9cc18d34e6e2d258172b5df02bc44e578c95ef709b8e06722846c7a410c3a46f",
    "RAW_TREE_PRUNE_XPATH[0]": "01e7c660fd6406f29932819d2dbd7530e2f3bdac11dde83565e977e391303444",
    "RAW_TREE_PRUNE_XPATH[1]": "3c7afe92279543d5530365aa7b921c6e5b51243033e5622cae1dc85e08976f87",
    "OVERALL_DISCARD_XPATH[0]": "a837e58a1b1ea116ce1dada53d856dec093fe9f64b37dc503698e30f96a87dd3",
    "OVERALL_DISCARD_XPATH[1]": "c1d5b70b8cd03783545d6b715c69062ae6967c222b2d8f4e2399762362d426c0",
    "PRECISION_DISCARD_XPATH[1]": "53d31ea1df47920acee695b26b87b1ce36f16913686e547edc2ae0ba6efab5f7",
    "COMMENTS_DISCARD_XPATH[0]": "70d0ca82ad61e2368dae4743eeb45e0dfe8ac27798b8da6afa66aa67429026f2",
    "COMMENTS_DISCARD_XPATH[2]": "4df53845e992d9c20b35fcf63fcafc96b165a21a73d596a1b9f26ac47545c648",
    "AUTHOR_DISCARD_XPATHS[0]": "82f43e48c571d06b5e8f72043c2295e4342ed07ddec04f10b5836b84c3d98a35",
    "TEASER_DISCARD_XPATH[0]": "ebb02f066626551dbb0222a6cb631691f6ccacf0477c1381263f112b0bc9cdfa",
    "DISCARD_IMAGE_ELEMENTS[0]": "cb1ab981e44913f706048bad10e9f027314ffccb36c56ffc66c8ff5e1e340c58",
    # called directly by main_extractor._extract, one after the other, to find the main body
    "BODY_XPATH[0]": "caaa561ceca17064773e97bf7c610f55e6c6a64a2477328c060642912d489b3b",
    "BODY_XPATH[2]": "6c9b5e1fdc092943ebdd87206a2e8a8b4c4666497fb00e6661d2a519d00f37f9",
    "BODY_XPATH[3]": "10a7ceacc0ff8cdfd8c58a575b5197b5d07ba24000f072101735478c2c585978",
}

# sha256 of the source of each stock function a part of the accelerator mirrors, by
# (module, qualified name): pruning.py, stand_ins.py, class_lookup.py.
STOCK_SOURCES: dict[tuple[str, str], str] = {
    ("trafilatura.htmlprocessing", "prune_unwanted_nodes"): "4731f8e24ef86449c2714a6257d2ff892ff12a6a3d544d7ca87d6536fab29915",
    ("trafilatura.htmlprocessing", "tree_cleaning"): "828e83a7393082def65c10022aa7cf43d0debfb0039e1de8ee8c9ecb2d23b903",
    ("trafilatura.utils", "repair_faulty_html"): "7e68c7a3cb24910c519778bfa3b7132efbdb6e650e79f1fe66905e962d6e1d69",
    # the class depends on the tag name only
    ("lxml.html", "HtmlElementClassLookup.lookup"): "fedd067d0a879035cefe28ba9bab2a52ddafef0086f696572f750addfee30f85",
}

# the patterns of trafilatura.utils the repair_faulty_html stand-in relies on, with their flags
EXPECTED_PATTERNS: dict[str, tuple[str, int]] = {
    "INVALID_XML_CHARS": ("[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\ufffe\\uffff]", re.UNICODE),
    "DOCTYPE_TAG": ("^< ?! ?DOCTYPE[^>]*/[^<>]*>", re.UNICODE | re.IGNORECASE),
    "FAULTY_HTML": ("(<html.*?)\\s*/>", re.UNICODE | re.IGNORECASE),
}


@dataclass(frozen=True)
class GuardFailure:
    guard: str  # e.g. "trafilatura_version", "xpath:OVERALL_DISCARD_XPATH[0]"
    detail: str  # what was found instead, in a sentence


def trafilatura_version() -> str:
    import trafilatura

    return str(getattr(trafilatura, "__version__", ""))


def verified_expression(name: str) -> Any:
    """The object at ``name`` ("LIST[index]") in trafilatura.xpaths, None if there is none."""
    from trafilatura import xpaths

    list_name, _, index = name[:-1].partition("[")
    expressions = getattr(xpaths, list_name, None)
    if not isinstance(expressions, list) or not int(index) < len(expressions):
        return None
    return expressions[int(index)]


def verified_expressions() -> list[XPath]:
    return [verified_expression(name) for name in VERIFIED_PATHS]


def _resolve(module: str, qualname: str) -> Any:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return target


# ------------------------------------------------------------------ the checks, in order
# Each yields (guard name, None when it holds, else what was found).


def _version() -> Iterator[tuple[str, str | None]]:
    version = trafilatura_version()
    verified = ", ".join(sorted(VERIFIED_TRAFILATURA_VERSIONS))
    yield "trafilatura_version", None if version in VERIFIED_TRAFILATURA_VERSIONS else f"trafilatura {version} is installed; verified: {verified}"


def _expressions() -> Iterator[tuple[str, str | None]]:
    from tasks.data.accel.xpath_plan import Unsupported, plan_for

    for name, digest in VERIFIED_PATHS.items():
        expression = verified_expression(name)
        problem: str | None = None
        if not isinstance(expression, XPath):
            problem = f"trafilatura.xpaths.{name} is no longer an XPath expression"
        elif sha256(expression.path) != digest:
            problem = f"the text of trafilatura.xpaths.{name} changed (sha256 {sha256(expression.path)})"
        else:
            try:
                plan_for(expression.path)
            except Unsupported as err:  # the planner changed, not trafilatura
                problem = f"the planner refuses trafilatura.xpaths.{name}: {err}"
        yield f"xpath:{name}", problem


def _sources() -> Iterator[tuple[str, str | None]]:
    for (module, qualname), digest in STOCK_SOURCES.items():
        found = source_sha256(_resolve(module, qualname))
        problem = None if found == digest else f"the source of {module}.{qualname} changed (sha256 {found})"
        yield f"source:{module}.{qualname}", problem


def _patterns() -> Iterator[tuple[str, str | None]]:
    from trafilatura import utils

    for name, (pattern, flags) in EXPECTED_PATTERNS.items():
        compiled = getattr(utils, name, None)
        same = isinstance(compiled, re.Pattern) and (compiled.pattern, compiled.flags) == (pattern, flags)
        yield f"pattern:trafilatura.utils.{name}", None if same else f"trafilatura.utils.{name} is now {compiled!r}"


def _lxml_behaviour() -> Iterator[tuple[str, str | None]]:
    from tasks.data.accel import class_lookup
    from tasks.data.accel.xpath_plan import union_follows_attribute_order

    yield "lxml_union_order", None if union_follows_attribute_order() else "lxml does not read @a|@b from the attribute written first"
    yield "html_parser_classes", class_lookup.parsers_problem()


CHECKS: tuple[Callable[[], Iterator[tuple[str, str | None]]], ...] = (
    _version,
    _expressions,
    _sources,
    _patterns,
    _lxml_behaviour,
)


def evaluate() -> list[tuple[str, str | None]]:
    """Every guard, in order: (name, None when it holds, else what was found)."""
    return [result for check in CHECKS for result in check()]


def failed_guard() -> GuardFailure | None:
    """The first guard that fails, None when all hold. Evaluate it before anything is
    installed: the source guards read the functions the modules hold now."""
    for check in CHECKS:
        for name, problem in check():
            if problem is not None:
                return GuardFailure(name, problem)
    return None


def main() -> int:
    """Print every guard and its state (exit status 1 when one fails)."""
    from tasks.data.accel import control

    control.configure("off")  # the source guards must see the stock functions
    results = evaluate()
    for name, problem in results:
        print(f"{'ok  ' if problem is None else 'FAIL'} {name}" + ("" if problem is None else f": {problem}"))
    return 0 if all(problem is None for _, problem in results) else 1
