"""FineWeb's text quality filters, sharing one tokenisation per document.

Contract:

* A pure filter is ``check(view) -> reason | None`` (None keeps the document).
* A rewriting filter (C4) also has ``rewrite(view) -> (reason | None, new_view)``;
  its ``check`` gives the same decision and discards the new text.
* ``NamedFilter.apply(view) -> (reason | None, view)`` treats both alike: for pure
  filters the view comes back unchanged.

The data path runs them as steps (``tasks.data.recipe.text_filter_steps``): in order,
each on the view the one before it left, through the one step runner
(``tasks.data.steps``), which also stores the last view's text.

``build_text_filters`` returns the filters in FineWeb's order: Gopher repetition,
Gopher quality, C4 (rewrites), FineWeb quality (sees the rewritten text).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from llmforge.config import C4QualityConfig, FineWebQualityConfig, GopherQualityConfig, GopherRepetitionConfig
from tasks.data.filters.c4 import c4_quality
from tasks.data.filters.fineweb import fineweb_quality
from tasks.data.filters.gopher import gopher_quality, gopher_repetition
from tasks.data.filters.text_view import TextView, make_view

Filter = Callable[[TextView], str | None]
Rewrite = Callable[[TextView], tuple[str | None, TextView]]


@dataclass(frozen=True)
class NamedFilter:
    name: str
    check: Filter
    rewrite: Rewrite | None = None

    @property
    def rewrites(self) -> bool:
        return self.rewrite is not None

    def apply(self, view: TextView) -> tuple[str | None, TextView]:
        """(drop reason or None, the view later filters and the output should use)."""
        if self.rewrite is not None:
            return self.rewrite(view)
        return self.check(view), view


def _reason_only(rewrite: Rewrite, view: TextView) -> str | None:
    return rewrite(view)[0]


def _rewriting(name: str, rewrite: Rewrite) -> NamedFilter:
    return NamedFilter(name=name, check=partial(_reason_only, rewrite), rewrite=rewrite)


def build_text_filters(
    gopher_rep: GopherRepetitionConfig,
    gopher_q: GopherQualityConfig,
    c4: C4QualityConfig,
    fineweb: FineWebQualityConfig,
) -> list[NamedFilter]:
    """The enabled filters, in FineWeb's order."""
    filters: list[NamedFilter] = []
    if gopher_rep.enabled:
        filters.append(NamedFilter("gopher_repetition", gopher_repetition(gopher_rep)))
    if gopher_q.enabled:
        filters.append(NamedFilter("gopher_quality", gopher_quality(gopher_q)))
    if c4.enabled:
        filters.append(_rewriting("c4_quality", c4_quality(c4)))
    if fineweb.enabled:
        filters.append(NamedFilter("fineweb_quality", fineweb_quality(fineweb)))
    return filters


__all__ = [
    "Filter",
    "NamedFilter",
    "Rewrite",
    "TextView",
    "build_text_filters",
    "make_view",
]
