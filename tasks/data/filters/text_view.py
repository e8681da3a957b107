"""One document's text, split once; every quality filter reads from the same view.

The word tokens are datatrove's (spaCy's English tokenizer, reproduced in ``spacy_en``), the
line and paragraph splits are the ones each datatrove filter makes, and the n-gram texts and
hashes feed the Gopher repetition rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from itertools import accumulate, filterfalse

import numpy as np

from tasks.data.filters.punctuation import PUNCTUATION_CHARS
from tasks.data.filters.spacy_en import word_tokenize
from tasks.data.filters.substring_hashes import SubstringHashes


_PARAGRAPH_SPLIT = re.compile(r"\n{2,}")
_LINE_RUN_SPLIT = re.compile(r"\n+")


def has_alpha(word: str) -> bool:
    """True if any character is alphabetic (fast path: most words are all letters)."""
    return word.isalpha() or any(c.isalpha() for c in word)


@dataclass(eq=False)
class TextView:
    """One document's text, split once; every filter reads from here.

    Each split is computed on first use and cached. Several line splits exist because
    datatrove's filters each use a different one, and the counts they feed differ.
    """

    text: str

    @cached_property
    def lines(self) -> list[str]:
        """``str.splitlines()``: Gopher quality (bullets, ellipsis lines) and C4."""
        return self.text.splitlines()

    @cached_property
    def newline_lines(self) -> list[str]:
        """``split("\\n")``, empty lines included."""
        return self.text.split("\n")

    @cached_property
    def non_empty_lines(self) -> list[str]:
        """``newline_lines`` without blank ones, NOT stripped: every FineWeb quality rule."""
        return [line for line in self.newline_lines if line.strip()]

    @cached_property
    def stripped_lines(self) -> list[str]:
        """Non-empty lines, stripped (for callers that want clean lines)."""
        return [s for s in (line.strip() for line in self.lines) if s]

    @cached_property
    def line_runs(self) -> list[str]:
        """Split on runs of newlines: Gopher repetition's duplicate lines."""
        return _LINE_RUN_SPLIT.split(self.text)

    @cached_property
    def paragraphs(self) -> list[str]:
        """The stripped text split on 2+ newlines: Gopher repetition's paragraphs."""
        return _PARAGRAPH_SPLIT.split(self.text.strip())

    @cached_property
    def words(self) -> list[str]:
        """spaCy-style English word tokens, as datatrove gets them (punctuation tokens included)."""
        return word_tokenize(self.text)

    @cached_property
    def non_symbol_words(self) -> list[str]:
        """Words with at least one character outside datatrove's punctuation set."""
        return list(filterfalse(PUNCTUATION_CHARS.issuperset, self.words))  # C-level loop

    @cached_property
    def spaced_ngram_text(self) -> tuple[str, list[int]]:
        """Words joined by single spaces, and each word's start offset (plus the end).

        An n-gram "w_i ... w_{i+n-1}" is then a slice ``s[starts[i]:starts[i+n] - 1]``,
        far cheaper than joining lists of words for every n and i.
        """
        starts = list(accumulate(map((1).__add__, map(len, self.words)), initial=0))  # C-level loop
        return " ".join(self.words), starts

    @cached_property
    def packed_ngram_text(self) -> tuple[str, list[int]]:
        """Words joined with no separator, and each word's start offset (plus the end)."""
        return "".join(self.words), list(accumulate(map(len, self.words), initial=0))

    @cached_property
    def spaced_ngram_hashes(self) -> tuple[SubstringHashes, np.ndarray]:
        joined, starts = self.spaced_ngram_text
        return SubstringHashes(joined), np.asarray(starts, dtype=np.int64)

    @cached_property
    def packed_ngram_hashes(self) -> tuple[SubstringHashes, np.ndarray]:
        packed, offsets = self.packed_ngram_text
        return SubstringHashes(packed), np.asarray(offsets, dtype=np.int64)


def make_view(text: str) -> TextView:
    return TextView(text)
