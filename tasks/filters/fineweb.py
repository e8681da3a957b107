"""FineWeb's own quality rules (Penedo et al. 2024), as datatrove's FineWebQualityFilter.

Runs after C4 on the C4-rewritten text. Reasons are datatrove's with a ``fineweb_``
prefix: "fineweb_line_punct_ratio", "fineweb_short_line_ratio",
"fineweb_char_dup_ratio", "fineweb_list_ratio".
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from llmforge.config import FineWebQualityConfig
from tasks.filters.gopher import find_duplicates
from tasks.filters.text_view import TextView

# Lines "ending a sentence" for FineWeb: note "'" and '"' count, and the line is not stripped.
_LINE_END_PUNCTUATION = (".", "'", '"', "!", "?")


def _line_rules(view: TextView, cfg: FineWebQualityConfig) -> str | None:
    lines = view.newline_lines
    punct_ratio = sum(1 for line in lines if line.endswith(_LINE_END_PUNCTUATION)) / len(lines)
    if punct_ratio <= cfg.line_punct_thr and not (punct_ratio == 0 and cfg.line_punct_exclude_zero):
        return "fineweb_line_punct_ratio"
    short_ratio = sum(1 for line in lines if len(line) <= cfg.short_line_length) / len(lines)
    if short_ratio >= cfg.short_line_thr:
        return "fineweb_short_line_ratio"
    return None


def _duplicate_rule(view: TextView, cfg: FineWebQualityConfig) -> str | None:
    # Denominator: every character except newlines.
    chars = len(view.text) - view.text.count("\n")
    duplicated = find_duplicates(view.non_empty_lines)[1]
    if chars and duplicated / chars >= cfg.char_duplicates_ratio:
        return "fineweb_char_dup_ratio"
    return None


def _list_rule(view: TextView, cfg: FineWebQualityConfig) -> str | None:
    n_words = len(view.words)
    if n_words and view.text.count("\n") / n_words > cfg.new_line_ratio:
        return "fineweb_list_ratio"
    return None


def _check_fineweb(cfg: FineWebQualityConfig, view: TextView) -> str | None:
    return _line_rules(view, cfg) or _duplicate_rule(view, cfg) or _list_rule(view, cfg)


def fineweb_quality(cfg: FineWebQualityConfig) -> Callable[[TextView], str | None]:
    return partial(_check_fineweb, cfg)
