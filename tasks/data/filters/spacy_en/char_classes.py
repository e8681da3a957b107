"""The letter and symbol classes of the tokenizer rules, as regex class bodies and per-character tests.

spaCy lists its letter classes by hand (``spacy.lang.char_classes``); these are built from
Python's ``str.isalpha/islower/isupper`` and ``unicodedata`` instead (see the package docstring
for where the two differ).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Every class is built from one pass of C-level string tests over all code points, not from
# a Python predicate per code point: the rules are compiled once in every worker process, and
# testing 196k code points one by one with lambdas cost ~0.3 s there.
_CLASS_LIMIT = 0x30000  # planes 0-2: every script and symbol English web text meets
_CLASS_END = chr(_CLASS_LIMIT)
_SURROGATES = slice(0xD800, 0xE000)  # not characters; never in any class
# A superset of the letters: \w is str.isalnum() or "_", and isalnum() is isalpha() or a
# numeric character; taking away decimal digits and "_" leaves letters and a few other
# numeric characters (superscripts, fractions, Roman numerals), which are weeded out after.
_LETTER_CANDIDATES = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class _CharClasses:
    """Regex character-class bodies ("a-z...") over the code points below ``_CLASS_LIMIT``."""

    alpha: str  # str.isalpha()
    lower: str  # letters that are not upper case (lower case or uncased)
    upper: str  # letters that are not lower case (upper case or uncased)
    icons: str  # Unicode category "So" (other symbols), with "°" moved to the end as spaCy has it


def _ranges_text(mask: np.ndarray) -> str:
    """The class body for the code points where ``mask`` is true, one range per run."""
    padded = np.zeros(len(mask) + 2, dtype=bool)
    padded[1:-1] = mask
    edges = np.flatnonzero(padded[1:] != padded[:-1]).tolist()  # run starts and stops, alternating
    escape = re.escape
    parts = []
    for start, stop in zip(edges[::2], edges[1::2]):
        end = stop - 1
        parts.append(escape(chr(start)) if start == end else f"{escape(chr(start))}-{escape(chr(end))}")
    return "".join(parts)


def _letter_masks(text: str, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(isalpha, alpha and not isupper, alpha and not islower) per code point of ``text``
    (the code points 0..limit-1 in order, so an index is a code point)."""
    alpha = np.zeros(limit, dtype=bool)
    cased_starts: list[int] = []  # runs of letters where some are cased, and where they start
    cased_runs: list[str] = []
    for match in _LETTER_CANDIDATES.finditer(text):
        run, first = match.group(), match.start()
        if run.isalpha():
            letters = [(first, run)]
        else:  # rare: a run with superscripts, fractions, ...; keep its letters one by one
            letters = [(first + i, c) for i, c in enumerate(run) if c.isalpha()]
        for start, piece in letters:
            alpha[start : start + len(piece)] = True
            # Whole-run case test: appending a cased letter makes str.islower() (isupper())
            # true exactly when no character of the run is upper or title (lower or title)
            # case. Most runs (CJK, Arabic, ...) are uncased: every letter in both classes.
            if not ((piece + "a").islower() and (piece + "A").isupper()):
                cased_starts.append(start)
                cased_runs.append(piece)
    lower = alpha.copy()
    upper = alpha.copy()
    if cased_runs:
        where = np.concatenate([np.arange(s, s + len(r)) for s, r in zip(cased_starts, cased_runs)])
        letters = "".join(cased_runs)
        lower[where] = ~np.fromiter(map(str.isupper, letters), dtype=bool, count=len(letters))
        upper[where] = ~np.fromiter(map(str.islower, letters), dtype=bool, count=len(letters))
    return alpha, lower, upper


@lru_cache(maxsize=1)
def _char_classes(limit: int = _CLASS_LIMIT) -> _CharClasses:
    codes = np.arange(limit, dtype=np.uint32)
    # Surrogates stand in as NUL (in no class), so that the text decodes without an error
    # handler called once per surrogate; an index in the text is still its code point.
    codes[_SURROGATES] = 0
    alpha, lower, upper = _letter_masks(codes.tobytes().decode("utf-32-le"), limit)
    # A symbol ("So") is neither a letter (the L* categories are exactly the isalpha ones) nor
    # unprintable (Python's isprintable is false for the C*, Z* categories but " "), so only
    # the printable other code points need their category; joined, the two-letter names read
    # as an array.
    others = np.flatnonzero(~alpha)
    other_text = codes[others].tobytes().decode("utf-32-le")
    printable = np.fromiter(map(str.isprintable, other_text), dtype=bool, count=len(other_text))
    candidates = others[printable]
    candidate_text = codes[candidates].tobytes().decode("utf-32-le")
    categories = np.frombuffer("".join(map(unicodedata.category, candidate_text)).encode("ascii"), dtype="S2")
    icons = np.zeros(limit, dtype=bool)
    icons[candidates[categories == b"So"]] = True
    icons[ord("°")] = False
    for mask in (alpha, lower, upper, icons):
        mask[_SURROGATES] = False
    return _CharClasses(
        alpha=_ranges_text(alpha),
        lower=_ranges_text(lower),
        upper=_ranges_text(upper),
        icons=_ranges_text(icons) + re.escape("°"),
    )


# Membership of one character in the letter classes of _char_classes (the same tests).
def _in_alpha_class(c: str) -> bool:
    return c.isalpha() and c < _CLASS_END


def _in_lower_class(c: str) -> bool:
    return c.isalpha() and not c.isupper() and c < _CLASS_END


def _in_upper_class(c: str) -> bool:
    return c.isalpha() and not c.islower() and c < _CLASS_END
