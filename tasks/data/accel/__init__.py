"""An optional, output-identical accelerator for trafilatura's extraction.

What it does
------------
It replaces, inside the running process, parts of trafilatura (and of lxml.html's set-up)
with code that gives byte-identical results faster: 1.75x (43% less extraction CPU time,
best of 3 rounds; 1.73-1.82x per round) on the 943 shared pages and WARC records, the same text
on every document (``benchmarks/extraction_speed.py``).

1. trafilatura's XPath filters (``xpath_plan.py``, ``fast_paths.py``). Expressions such as
   ``OVERALL_DISCARD_XPATH`` test every element with several EXSLT ``re:test(...)`` calls,
   which lxml runs as callbacks into Python (~2 µs each). For each verified expression of
   the form ``.//NODETEST[P1][P2]...`` the predicate made of attribute tests is evaluated in
   Python over one walk of the tree, memoised per attribute value; other predicates
   (``not(.//h1)``, ...) still go to lxml, as the original predicate text.
2. ``prune_unwanted_nodes`` and ``main_extractor.BODY_XPATH`` (``pruning.py``): the stock
   code step for step, with every fast expression of a list evaluated from one shared walk.
3. lxml.html's element class lookup (``class_lookup.py``), a Python method called for each
   of ~4 million element proxies per 1000 pages, answered from a dict in C for the usual tag
   names, with the very classes the Python lookup gives.
4. Stand-ins for two stock functions (``stand_ins.py``): ``repair_faulty_html`` and
   ``tree_cleaning`` (see the upstream notes below).

Each module's docstring says why its part gives the same result; ``tests/test_accel*.py``
compare every part with stock trafilatura on real pages.

Modes and status
----------------
``configure(mode)`` (``control.py``) is called by ``extract_main_text`` with
``data.extraction.accelerate`` (an execution-only setting: fingerprints do not depend on it):

* ``auto`` (default): used when every guard holds; otherwise nothing is installed, one
  warning per process (logger ``llmforge.accel``) names the failed guard, and extraction runs
  on stock trafilatura.
* ``on``: a failed guard raises ``AcceleratorGuardFailed``, a one-line error naming it.
* ``off``: stock trafilatura, nothing installed, no warning.

``status()`` is this process's ``AcceleratorStatus`` (mode, active, failed_guard, detail,
trafilatura_version; ``as_dict()`` for records). The data stage extracts in a child process:
``IsolatedExtractor.accelerator`` is the status that child reported at start-up (a failed guard
in ``on`` mode is raised in the parent as ``AcceleratorGuardFailed``).

Guards (``guards.py``)
----------------------
All or nothing: the accelerator is installed only when every guard holds, in this order:

* ``trafilatura_version``: the installed version is in ``VERIFIED_TRAFILATURA_VERSIONS``. It
  also stands for what no hash covers: the callers of the replaced functions
  (``main_extractor._extract`` loops over its module's ``BODY_XPATH``; the modules that import
  ``prune_unwanted_nodes`` and ``tree_cleaning`` by name, listed in ``pruning.py`` and
  ``stand_ins.py``).
* ``xpath:LIST[i]``: the expression at that place in ``trafilatura.xpaths`` has exactly the
  text (sha256 of ``XPath.path``) in ``VERIFIED_PATHS``.
* ``source:MODULE.FUNCTION``: the source of each mirrored stock function has the sha256 in
  ``STOCK_SOURCES``: ``prune_unwanted_nodes``, ``tree_cleaning``, ``repair_faulty_html``, and
  lxml.html's ``HtmlElementClassLookup.lookup``.
* ``pattern:trafilatura.utils.NAME``: the regexes the ``repair_faulty_html`` stand-in relies
  on are the ones in ``EXPECTED_PATTERNS`` (text and flags).
* ``lxml_union_order``: lxml passes ``@a|@b`` to a function as the attribute written first in
  the tag (what the fast paths read for a union).
* ``html_parser_classes``: trafilatura's parsers are lxml.html parsers with lxml.html's
  default classes, and the C-level lookup gives the same classes.

Upgrading trafilatura (or lxml)
-------------------------------
A new version fails ``trafilatura_version`` at least, so ``auto`` falls back to stock
trafilatura with a warning until the accelerator is re-verified:

1. ``python -m tasks.data.accel`` lists every guard with its state, and for a failed
   hash guard the sha256 found now.
2. ``xpath:LIST[i]``: read the new expression. If it still has a fast path (``plan_for``
   accepts it; ``tests/test_accel_paths.py`` compares it with lxml on real pages), put the new
   sha256 in ``VERIFIED_PATHS`` (or its new place, if it moved); if not, remove the entry
   (that expression then runs in lxml, only slower).
3. ``source:...``: diff the stock function with the previous release and port the change to
   its mirror (``pruning.prune_unwanted_nodes``, ``stand_ins.repair_faulty_html`` or
   ``stand_ins.tree_cleaning``; for lxml's lookup, check the class still depends on the tag
   name only), then put the new sha256 in ``STOCK_SOURCES``. ``pattern:...``: check
   ``stand_ins.has_invalid_chars`` still finds exactly what ``INVALID_XML_CHARS`` finds, then
   update ``EXPECTED_PATTERNS``.
4. Check the callers (``main_extractor._extract``, the importer lists), then add the version
   to ``VERIFIED_TRAFILATURA_VERSIONS``.
5. Re-run ``pytest -m "slow or not slow" tests/test_accel.py tests/test_accel_paths.py
   tests/test_accel_stand_ins.py`` and ``python benchmarks/extraction_speed.py`` (every
   output must be identical), then the data stage's output-identity check.

Upstream notes
--------------
Two of the changes are self-contained and could be proposed to trafilatura as they are.

**repair_faulty_html without a regex pass or page copies when nothing needs repair.** Stock,
it runs ``INVALID_XML_CHARS.sub("", page)`` over the whole page (~3 ns per character,
although almost no page holds such a character), and when the first 50 characters mention a
doctype it rebuilds the page as ``DOCTYPE_TAG.sub("", firstline) + "\\n" + rest`` (two copies
of the page) even when the doctype needs no repair. Proposed: (a) test for the characters
first with one C-level pass, ``len(data.translate(None, INVALID_ASCII_BYTES)) != len(data)``
on ``data = page.encode("utf-8", "surrogatepass")`` plus ``"\\ufffe" in page or "\\uffff" in
page``, and substitute only when it is true; (b) split off the first line only when
``DOCTYPE_TAG.search(firstline)`` matches, and otherwise append ``"\\n"`` only when the page
has no newline at all. Why identical: the characters below U+0080 that the pattern deletes are
encoded in UTF-8 as those very bytes, and no byte below 0x80 occurs inside the encoding of any
other code point (lone surrogates included, with "surrogatepass"), so the test is true exactly
when the pattern finds something, and ``sub`` on a page without a match returns the page;
``DOCTYPE_TAG`` starts with ``^`` and has no MULTILINE flag, so when it does not match the
first line ``sub`` leaves it unchanged and ``firstline + "\\n" + rest`` is the page itself,
except that ``partition`` without a newline yields ``rest == ""`` and the join appends one.
Measured on the 730 shared HTML pages (CPU time, a shared 2-core machine): the function
itself 0.77 → 0.24 ms per page (best of 3); whole extraction with stock trafilatura 1.4% less
(median of 5 rounds, the sides alternating per page: 21.71 → 21.41 s).

**tree_cleaning without deletion walks for tag names absent from the page.** Stock, it runs
``for element in tree.iter(name): delete_element(element)`` for each of the ~50 names of
``MANUALLY_CLEANED`` (plus the table names when tables are off), one walk of the whole tree
per name, on every page and again on the trees the fallback extractors return. Proposed: after
``strip_tags`` and the recall back-up (both unchanged), collect the names that occur with one
walk, ``present = {e.tag for e in tree.iter(*cleaning_list)}``, and run the same per-name loop,
in the same order, for those names only. Why identical: the deletions only remove elements
and never rename one, so a name absent before the first deletion is absent at its turn, and
its loop would have deleted nothing; every other step is unchanged and runs in the same
order. Measured on the 730 shared HTML pages (CPU time, a shared 2-core machine): 755 calls during
their extraction, on copies of the very arguments, 1.85 → 1.67 ms per page (-10%, best of 3
per call); in whole extraction with stock trafilatura that is ~1%, below the noise of the
5-round median (21.71 → 21.79 s).
"""

from tasks.data.accel.control import (
    MODES,
    AcceleratorGuardFailed,
    AcceleratorStatus,
    Mode,
    configure,
    installed,
    status,
    warn_inactive,
)

__all__ = [
    "MODES",
    "AcceleratorGuardFailed",
    "AcceleratorStatus",
    "Mode",
    "configure",
    "installed",
    "status",
    "warn_inactive",
]
