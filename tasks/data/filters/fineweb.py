"""FineWeb's own quality rules (Penedo et al. 2024), as datatrove 0.10.1's FineWebQualityFilter.

Runs after C4 on the C4-rewritten text. Every rule looks at the non-blank lines (split on
"\\n", kept unstripped), in this order, and drops the document when:

* fewer than ``line_punct_thr`` of them end in a sentence-final mark (datatrove's
  TERMINAL_PUNCTUATION: "." "!" "?" and their counterparts in other scripts; quotes do not
  count) - strictly fewer, and never when the ratio is 0 and ``line_punct_exclude_zero``;
* more than ``short_line_thr`` of them are at most ``short_line_length`` characters long;
* the characters in repeated lines (second and later copies) are more than
  ``char_duplicates_ratio`` of all characters except newlines;
* there are more than ``new_line_ratio`` newlines per word token.

Reasons are datatrove's with a ``fineweb_`` prefix: "fineweb_line_punct_ratio",
"fineweb_short_line_ratio", "fineweb_char_dup_ratio", "fineweb_list_ratio", and
"fineweb_empty" for a text with no non-blank line.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from llmforge.config import FineWebQualityConfig
from tasks.data.filters.gopher import find_duplicates
from tasks.data.filters.punctuation import TERMINAL_PUNCTUATION
from tasks.data.filters.text_view import TextView

_LINE_END_MARKS = tuple(TERMINAL_PUNCTUATION)


def _line_rules(view: TextView, cfg: FineWebQualityConfig) -> str | None:
    lines = view.non_empty_lines
    punct_ratio = sum(1 for line in lines if line.endswith(_LINE_END_MARKS)) / len(lines)
    if punct_ratio < cfg.line_punct_thr and not (punct_ratio == 0 and cfg.line_punct_exclude_zero):
        return "fineweb_line_punct_ratio"
    short_ratio = sum(1 for line in lines if len(line) <= cfg.short_line_length) / len(lines)
    if short_ratio > cfg.short_line_thr:
        return "fineweb_short_line_ratio"
    return None


def _duplicate_rule(view: TextView, cfg: FineWebQualityConfig) -> str | None:
    # Denominator: every character except newlines (never 0: there is a non-blank line).
    chars = len(view.text) - view.text.count("\n")
    duplicated = find_duplicates(view.non_empty_lines)[1]
    if chars and duplicated / chars > cfg.char_duplicates_ratio:
        return "fineweb_char_dup_ratio"
    return None


def _list_rule(view: TextView, cfg: FineWebQualityConfig) -> str | None:
    n_words = len(view.words)
    if n_words and view.text.count("\n") / n_words > cfg.new_line_ratio:
        return "fineweb_list_ratio"
    return None


def _check_fineweb(cfg: FineWebQualityConfig, view: TextView) -> str | None:
    if not view.non_empty_lines:
        return "fineweb_empty"
    return _line_rules(view, cfg) or _duplicate_rule(view, cfg) or _list_rule(view, cfg)


def fineweb_quality(cfg: FineWebQualityConfig) -> Callable[[TextView], str | None]:
    return partial(_check_fineweb, cfg)
