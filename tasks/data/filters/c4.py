"""C4's heuristics (Raffel et al. 2020) as datatrove's C4QualityFilter applies them in FineWeb.

Unlike the other filters this one rewrites the document: it removes lines (too-long
words, no terminal punctuation when enabled, too few words, "javascript", cookie and
terms-of-use boilerplate), strips Wikipedia-style citation marks, and then drops the
whole document if it mentions "lorem ipsum", contains "{", or keeps fewer than
``min_num_sentences`` sentences. The kept lines, joined by "\\n", become the new text
that later filters (FineWeb quality) and the output see.

Reasons are datatrove's with a ``c4_`` prefix ("c4_too_few_sentences",
"c4_lorem_ipsum", "c4_curly_bracket"): datatrove's bare names would be ambiguous in
a report that mixes filters.

Sentences are counted as datatrove counts them (spaCy's sentencizer on each kept line, see
``text_view.count_sentences``); counting stops once the minimum is reached, since the
count is only compared with it. ``split_paragraph=False`` (the text cut into sentences
instead of lines) uses the same sentence split.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial

from llmforge.config import C4QualityConfig
from tasks.data.filters.spacy_en import count_sentences, split_sentences
from tasks.data.filters.text_view import TextView, make_view

_CITATION_RE = re.compile(r"\[(?:\d*|edit|citation needed)\]")
_TERMINAL_PUNCTUATION = (".", "?", "!", '"', "'")
_POLICY_PHRASES = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


class _DropDocument(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _units(text: str, cfg: C4QualityConfig) -> list[str]:
    if cfg.split_paragraph:
        return text.splitlines()
    return split_sentences(text)


def _clean_line(raw: str, cfg: C4QualityConfig) -> str | None:
    """The line to keep (citations removed), None to drop it; raises to drop the document."""
    line = raw.strip()
    words = line.split()  # counted BEFORE citation removal, as in datatrove
    if cfg.max_word_length != -1 and any(len(w) > cfg.max_word_length for w in words):
        return None
    if cfg.remove_citations:
        line = _CITATION_RE.sub("", line)
    if cfg.filter_no_terminal_punct and (not line.endswith(_TERMINAL_PUNCTUATION) or line.endswith("...")):
        return None
    if len(words) < cfg.min_words_per_line:
        return None
    lowered = line.lower()
    if cfg.filter_lorem_ipsum and "lorem ipsum" in lowered:
        raise _DropDocument("c4_lorem_ipsum")
    if cfg.filter_javascript and "javascript" in lowered:
        return None
    if cfg.filter_curly_bracket and "{" in line:
        raise _DropDocument("c4_curly_bracket")
    if cfg.filter_policy and any(phrase in lowered for phrase in _POLICY_PHRASES):
        return None
    return line


def c4_rewrite(cfg: C4QualityConfig, view: TextView) -> tuple[str | None, TextView]:
    """(drop reason or None, the view of the rewritten text)."""
    kept: list[str] = []
    sentences = 0
    try:
        for raw in _units(view.text, cfg):
            line = _clean_line(raw, cfg)
            if line is None:
                continue
            kept.append(line)
            if sentences < cfg.min_num_sentences:
                sentences += count_sentences(line) if cfg.split_paragraph else 1
    except _DropDocument as drop:
        return drop.reason, view
    if sentences < cfg.min_num_sentences:
        return "c4_too_few_sentences", view
    new_text = ("\n" if cfg.split_paragraph else " ").join(kept).strip()
    # Unchanged text keeps its view, so the tokens already computed are reused.
    return None, view if new_text == view.text else make_view(new_text)


def c4_quality(cfg: C4QualityConfig) -> Callable[[TextView], tuple[str | None, TextView]]:
    return partial(c4_rewrite, cfg)
