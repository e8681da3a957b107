"""spaCy 3.8's English prefix, suffix, infix and URL rules: the tables, and the compiled patterns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from tasks.data.filters.spacy_en.char_classes import _char_classes

# spaCy's punctuation, quote and currency lists (spacy.lang.char_classes), as characters.
_PUNCT_MARKS = ",:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪"
_QUOTE_CHARS = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉\u2329\u232a⟦⟧"
_CURRENCY = ["$", "£", "€", "¥", "฿", "US$", "C$", "A$", "₽", "﷼", *(chr(c) for c in range(0x20A0, 0x20C0))]
_UNITS = (
    "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s "
    "km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K % км км² км³ м м² м³ дм дм² дм³ см "
    "см² см³ мм мм² мм³ нм кг г мг м/с км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ тбكم كم² "
    "كم³ م م² م³ سم سم² سم³ مم مم² مم³ كم غرام جرام جم كغ ملغ كوب اكواب"
).split()
_HYPHENS = ["-", "–", "—", "--", "---", "——", "~"]
_PUNCT = ["…", "……", *_PUNCT_MARKS]
# What a "." after which is a suffix may follow, besides a lower-case letter: spaCy's class
# for it also takes in the characters of its punctuation alternation ("|" included) and of
# "(?:" ")".
_AFTER_PERIOD_MARKS = frozenset("0123456789%²-+" + "".join(_PUNCT) + "|(?:)" + _QUOTE_CHARS)
_ASCII_DIGITS = frozenset("0123456789")
_QUOTE_SET = frozenset(_QUOTE_CHARS)
_DEGREE_SCALES = frozenset(f"°{scale}" for scale in "FfCcKk")  # "°F." -> "°F" "."


def _alternation(items) -> str:
    return "|".join(re.escape(item) for item in items)


def _first_chars(items: list[str]) -> str:
    """A character-class body of the first characters of ``items``."""
    return "".join(re.escape(c) for c in sorted({item[0] for item in items}))


_HOST_CHAR = r"[^\x00-/:-@\[-`{-\xa0\U00010000-\U0010ffff]"
_HOST_INNER_CHAR = r"[^\x00-,./:-@\[-^`{-\xa0\U00010000-\U0010ffff]"


@dataclass(frozen=True)
class _Rules:
    prefix: re.Pattern
    suffix: re.Pattern
    icon: re.Pattern  # one "other symbol" character: spaCy's icons
    url: re.Pattern
    # Every suffix rule matches at most this many characters, so a suffix starts in the last
    # ``suffix_reach`` characters; searching from there (look-behinds still see what is
    # before) finds the same leftmost match without trying every alternative at every
    # position of the chunk.
    suffix_reach: int
    # Where a match can begin, checked with one character class before the alternatives
    # are tried (the re module tries every alternative at every position otherwise): a
    # prefix starts with one of ``prefix_start``; a suffix at one of ``suffix_start`` or
    # after a digit (currency and units); an infix at one of ``infix_start``.
    prefix_start: re.Pattern
    suffix_start: re.Pattern
    infix_start: re.Pattern


def _url_pattern(lower: str) -> str:
    """spaCy's URL_MATCH, simplified (see the package docstring); ``lower`` is the class of
    the letters a top-level domain is made of."""
    # spaCy's host characters [A-Za-z0-9\u00a1-\uffff] (and with "_-" added), written as the
    # negation of the rest: the same set, but compiling a class walks its BMP characters one
    # by one, and the rest has 160 of them instead of 65,000
    host = _HOST_CHAR
    host_inner = _HOST_INNER_CHAR
    return (
        r"(?:[\w+\-.]{2,}://)?(?:\S+(?::\S*)?@)?"
        r"(?:(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}"
        r"(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4]))"
        rf"|(?:(?:{host}{host_inner}{{0,62}})?{host}\.)+[{lower}]{{2,63}})"
        r"(?::\d{2,5})?(?:[/?#]\S*)?"
    )


@lru_cache(maxsize=1)
def _rules() -> _Rules:
    """spaCy's English prefix/suffix/URL rules, compiled once (first use costs ~0.04 s)."""
    classes = _char_classes()
    lower, icons = classes.lower, classes.icons
    punct = _PUNCT
    prefixes = [
        "§", "%", "=", "—", "–", r"\+(?![0-9])", _alternation(punct), r"\.\.+", "…",
        _alternation(_QUOTE_CHARS), _alternation(_CURRENCY), f"[{icons}]",
    ]
    # spaCy's suffixes but those ending in "." ("\.\.+", and "." after "°F" and the like,
    # after _AFTER_PERIOD_MARKS or a lower-case letter, after two upper-case letters), which
    # _period_suffix_length applies: no other suffix ends in ".", and leaving them out spares
    # compiling the large letter classes they look behind for.
    suffixes = [
        _alternation(punct), "…", _alternation(_QUOTE_CHARS), f"[{icons}]",
        "'s", "'S", "’s", "’S", "—", "–",
        r"(?<=[0-9])\+", rf"(?<=[0-9])(?:{_alternation(_CURRENCY)})", rf"(?<=[0-9])(?:{_alternation(_UNITS)})",
    ]
    # What the non-class alternatives above can match first, in their order (the suffixes
    # behind a digit left out: suffix_start admits any position after a digit).
    prefix_firsts = ["§", "%", "=", "—", "–", "+", *punct, ".", "…", *_QUOTE_CHARS, *_CURRENCY]
    suffix_firsts = [*punct, "…", *_QUOTE_CHARS, "'", "’", "—", "–"]
    # (the infixes are _infix_end's, in Python: as regexes they would look behind and ahead
    # for the large letter classes, whose compiling costs more than all the rest)
    infix_firsts = [".", "…", "+", "-", "*", "^", ".", ",", *_HYPHENS, *":<>=/"]
    return _Rules(
        prefix=re.compile("|".join(f"(?:{p})" for p in prefixes)),
        suffix=re.compile("(?:" + "|".join(f"(?:{s})" for s in suffixes) + r")\Z"),
        icon=re.compile(f"[{icons}]"),
        url=re.compile(_url_pattern(lower) + r"\Z"),
        suffix_reach=max(map(len, [*punct, *_QUOTE_CHARS, *_CURRENCY, *_UNITS, "'s"])),
        # the first characters the alternatives above can match, in the order listed
        prefix_start=re.compile(f"[{_first_chars(prefix_firsts)}{icons}]"),
        suffix_start=re.compile(f"[{_first_chars(suffix_firsts)}{icons}]|(?<=[0-9])"),
        infix_start=re.compile(f"[{_first_chars(infix_firsts)}{icons}]"),
    )

