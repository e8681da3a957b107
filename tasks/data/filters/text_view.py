"""One document's text, split once; every quality filter reads from the same view.

datatrove 0.10.1 splits English text into words with spaCy: ``load_word_tokenizer("en")``
resolves (via its ``tokenizer_assignment.csv``) to ``SpaCyTokenizer("en")``, a blank English
pipeline (rule-based tokenizer + sentencizer, no model), and keeps the stripped, non-empty token
texts. Gopher repetition, Gopher quality and FineWeb quality each ask for the words (datatrove
caches the last few texts, so Gopher quality reuses Gopher repetition's), and C4 runs the
pipeline once per kept line to count sentences. Here the text is tokenised once, per
whitespace-separated chunk with a memo of chunks already seen, and every filter shares the
result through ``TextView``.

The tokeniser follows spaCy's algorithm for one chunk (Tokenizer._split_affixes/_attach_tokens):

1. a chunk that is a special case (an exception such as "don't" -> "do" "n't", "Mr.", ":)")
   becomes its listed pieces;
2. otherwise prefixes (opening punctuation, quotes, currency, symbols) are split off the front and
   suffixes (closing punctuation, quotes, "'s", a period after a lower-case letter, digit or
   punctuation, units after a number, ...) off the back, one of each per round, until none is
   left or what is left is a special case;
3. what remains is one token if it is a special case or looks like a URL; else it is split at
   infixes (hyphens and "/" ":" "=" "<" ">" between letters, "," between letters, "." between a
   lower-case and an upper-case letter, "+-*^" between digits, ellipses, symbols).

The rule tables (which characters, which exceptions) are facts about spaCy 3.8's English
tokenizer, written out here. Where this differs from spaCy (all rare in English web text):

* letter classes come from Python's ``str.isalpha/islower/isupper`` and "other symbol" from
  ``unicodedata``; spaCy lists scripts by hand (its letters miss e.g. Armenian, Georgian and some
  Cyrillic/Greek extensions; its symbol list predates recent emoji);
* the URL test is a simplified version of spaCy's (scheme, optional credentials, a dotted host
  ending in a lower-case TLD or an IPv4 address, optional port and path);
* spaCy's second pass for special cases that span several tokens is left out.

The sentencizer (for C4's sentence count) is spaCy's: a sentence ends after a token that is one
of its sentence-final characters ("." "!" "?" and their counterparts in other scripts), and the
next one starts at the first following token that is neither such a character nor punctuation.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import accumulate, filterfalse

import numpy as np

# ----------------------------------------------------------------- punctuation


def _chars_from_ranges(spec: str) -> frozenset[str]:
    """Characters from "21 2E 3F 61D-61F ..." (hex code points and ranges)."""
    out: set[str] = set()
    for item in spec.split():
        low, _, high = item.partition("-")
        out.update(chr(c) for c in range(int(low, 16), int(high or low, 16) + 1))
    return frozenset(out)


# The characters datatrove counts as punctuation (datatrove.utils.text.PUNCTUATION):
# all ASCII punctuation, a set of typographic and CJK marks (including the fullwidth
# digit one, a quirk kept for fidelity), and the C0/C1 control characters except \t, \n.
_TYPOGRAPHIC_MARKS = "—”％１〈、━【「」，】；“《„’∶´．（–？！：～«〉》）。…►»"
_CONTROL_CHARS = "".join(chr(c) for c in (*range(0, 9), *range(11, 32), *range(127, 160)))
# datatrove's TERMINAL_PUNCTUATION: sentence-final marks of many scripts (close to Unicode's
# Sentence_Terminal property, as of an older Unicode version, plus three Khmer signs). FineWeb
# quality counts lines ending in one of these; Gopher quality adds them to the punctuation above.
TERMINAL_PUNCTUATION: frozenset[str] = _chars_from_ranges(
    "21 2E 3F 589 61D-61F 6D4 700-702 7F9 837 839 83D-83E 964-965 104A-104B 1362 1367-1368 166E "
    "1735-1736 17D4-17D6 17D9-17DA 1803 1809 1944-1945 1AA8-1AAB 1B5A-1B5B 1B5E-1B5F 1B7D-1B7E "
    "1C3B-1C3C 1C7E-1C7F 203C-203D 2047-2049 2E2E 2E3C 2E53-2E54 3002 A4FF A60E-A60F A6F3 A6F7 "
    "A876-A877 A8CE-A8CF A92F A9C8-A9C9 AA5D-AA5F AAF0-AAF1 ABEB FE52 FE56-FE57 FF01 FF0E FF1F FF61 "
    "10A56-10A57 10F55-10F59 10F86-10F89 11047-11048 110BE-110C1 11141-11143 111C5-111C6 111CD "
    "111DE-111DF 11238-11239 1123B-1123C 112A9 1144B-1144C 115C2-115C3 115C9-115D7 11641-11642 "
    "1173C-1173E 11944 11946 11A42-11A43 11A9B-11A9C 11C41-11C42 11EF7-11EF8 11F43-11F44 "
    "16A6E-16A6F 16AF5 16B37-16B38 16B44 16E98 1BC9F 1DA88"
)
# What Gopher quality treats as a symbol: a word made only of these is not a word
# (datatrove's PUNCTUATION_SET: the punctuation above plus the terminal marks).
PUNCTUATION_CHARS: frozenset[str] = (
    frozenset(string.punctuation + _TYPOGRAPHIC_MARKS + _CONTROL_CHARS) | TERMINAL_PUNCTUATION
)

# ------------------------------------------------------ character classes


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
    # spaCy's host characters [A-Za-z0-9\u00a1-\uffff] (and with "_-" added), written as the
    # negation of the rest: the same set, but compiling a class walks its BMP characters one
    # by one, and the rest has 160 of them instead of 65,000
    host = _HOST_CHAR
    host_inner = _HOST_INNER_CHAR
    url = (
        r"(?:[\w+\-.]{2,}://)?(?:\S+(?::\S*)?@)?"
        r"(?:(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}"
        r"(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4]))"
        rf"|(?:(?:{host}{host_inner}{{0,62}})?{host}\.)+[{lower}]{{2,63}})"
        r"(?::\d{2,5})?(?:[/?#]\S*)?"
    )
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
        url=re.compile(url + r"\Z"),
        suffix_reach=max(map(len, [*punct, *_QUOTE_CHARS, *_CURRENCY, *_UNITS, "'s"])),
        # the first characters the alternatives above can match, in the order listed
        prefix_start=re.compile(f"[{_first_chars(prefix_firsts)}{icons}]"),
        suffix_start=re.compile(f"[{_first_chars(suffix_firsts)}{icons}]|(?<=[0-9])"),
        infix_start=re.compile(f"[{_first_chars(infix_firsts)}{icons}]"),
    )


# ------------------------------------------------------------ special cases

# spaCy's English tokenizer exceptions (spacy/lang/en/tokenizer_exceptions.py and the shared
# base list), as (pieces after the base, also with a capitalised base?, bases).
_SPLIT_EXCEPTIONS: tuple[tuple[tuple[str, ...], bool, str], ...] = (
    (("n't",), True, "ai are ca could dare did do does had has have is may might must need ought sha should was were wo would"),
    (("nt",), True, "ai are ca could dare did do does had has have is may might must need ought sha should was were wo would"),
    (("n’t",), True, "ai are ca could dare did do does had has have is may might must need ought sha should was were wo would"),
    (("'ve",), True, "could how i might must not should there these they those we what when where who why would you"),
    (("ve",), True, "could how i might must not should there these they those we what when where who why would you"),
    (("’ve",), True, "could how i might must not should there these they those we what when where who why would you"),
    (("'d",), True, "he how i it she that there these they this those we what when where who why you"),
    (("'d", "'ve"), True, "he how i it she that there these they this those we what when where who why you"),
    (("'ll",), True, "he how i it she that there these they this those we what when where who why you"),
    (("'ll", "'ve"), True, "he how i it she that there these they this those we what when where who why you"),
    (("d", "ve"), True, "he how i it she that there these they this those we what when where who why you"),
    (("ll", "ve"), True, "he how i it she that there these they this those we what when where who why you"),
    (("’d",), True, "he how i it she that there these they this those we what when where who why you"),
    (("’d", "’ve"), True, "he how i it she that there these they this those we what when where who why you"),
    (("’ll",), True, "he how i it she that there these they this those we what when where who why you"),
    (("’ll", "’ve"), True, "he how i it she that there these they this those we what when where who why you"),
    (("d",), True, "he how i it that there these they this those we what when where who why you"),
    (("n't", "'ve"), True, "ca could did do does had may might must need ought sha should wo would"),
    (("nt", "ve"), True, "ca could did do does had may might must need ought sha should wo would"),
    (("n’t", "’ve"), True, "ca could did do does had may might must need ought sha should wo would"),
    (("ll",), True, "how it that there these they this those what when where who why you"),
    (("'s",), True, "he how it let she that there this what when where who why"),
    (("’s",), True, "he how it let she that there this what when where who why"),
    (("'re",), True, "how there these they those we what when where who why you"),
    (("’re",), True, "how there these they those we what when where who why you"),
    (("s",), True, "he how she that there this what when where who why"),
    (("re",), True, "how there these they those what when where why you"),
    (("a.m.",), False, "1 2 3 4 5 6 7 8 9 10 11 12"),
    (("am",), False, "1 2 3 4 5 6 7 8 9 10 11 12"),
    (("p.m.",), False, "1 2 3 4 5 6 7 8 9 10 11 12"),
    (("pm",), False, "1 2 3 4 5 6 7 8 9 10 11 12"),
    (("on",), True, "c'm c’m"),
    (("all",), False, "y y' y’"),
    (("'d", "'y"), True, "how"),
    (("’d", "’y"), True, "how"),
    (("'m",), True, "i"),
    (("'m", "a"), True, "i"),
    (("m",), True, "i"),
    (("m", "a"), True, "i"),
    (("’m",), True, "i"),
    (("’m", "a"), True, "i"),
    (("na",), True, "gon"),
    (("not",), True, "can"),
    (("ta",), True, "got"),
    (("C", "."), False, "°"),
    (("F", "."), False, "°"),
    (("K", "."), False, "°"),
    (("c", "."), False, "°"),
    (("f", "."), False, "°"),
    (("k", "."), False, "°"),
)
# Exceptions that stay one token (abbreviations, emoticons, clitics on their own, ...).
_WHOLE_EXCEPTIONS = (
    "' '' 'Cause 'Cos 'Coz 'Cuz 'S 'bout 'cause 'cos 'coz 'cuz 'd 'em 'll 'nuff 're 's (*_*) (-8 (-: "
    "(-; (-_-) (._.) (: (; (= (>_<) (^_^) (o: (¬_¬) (ಠ_ಠ) (╯°□°）╯︵┻━┻ )-: ): -_- -__- ._. 0.0 0.o "
    "0_0 0_o 8) 8-) 8-D 8D :'( :') :'-( :'-) :( :(( :((( :() :) :)) :))) :* :-( :-(( :-((( :-) :-)) "
    ":-))) :-* :-/ :-0 :-3 :-> :-D :-O :-P :-X :-] :-o :-p :-x :-| :-} :/ :0 :1 :3 :> :D :O :P :X :] "
    ":o :o) :p :x :| :} :’( :’) :’-( :’-) ;) ;-) ;-D ;D ;_; <.< </3 <3 <33 <333 <space> =( =) =/ =3 "
    "=D =[ =] =| >.< >.> >:( >:o ><(((*> @_@ Adm. Ak. Ala. Apr. Ariz. Ark. Aug. Bros. C++ Calif. Co. "
    "Colo. Conn. Corp. D.C. Dec. Del. Doin Doin' Doin’ Dr. E.G. E.g. Feb. Fla. Ga. Gen. Goin Goin' "
    "Goin’ Gov. Havin Havin' Havin’ I.E. I.e. Ia. Id. Ill. Inc. Ind. Jan. Jr. Jul. Jun. Kan. Kans. Ky. "
    "La. Lovin Lovin' Lovin’ Ltd. Ma'am Mar. Mass. Ma’am Md. Messrs. Mich. Minn. Miss. Mo. Mont. Mr. "
    "Mrs. Ms. Mt. N.C. N.D. N.H. N.J. N.M. N.Y. Neb. Nebr. Nev. Nothin Nothin' Nothin’ Nov. Nuthin "
    "Nuthin' Nuthin’ O'clock O.O O.o O_O O_o Oct. Okla. Ol Ol' Ol’ Ore. O’clock Pa. Ph.D. Prof. Rep. "
    "Rev. S.C. Sen. Sep. Sept. Somethin Somethin' Somethin’ St. Tenn. V.V V_V Va. Wash. Wis. XD XDD "
    "[-: [: [= \\\") \\n \\t ]= ^_^ ^__^ ^___^ a. a.m. and/or b. c. co. d. doin doin' doin’ e. e.g. em "
    "f. g. goin goin' goin’ h. havin havin' havin’ i. i.e. j. k. l. ll lovin lovin' lovin’ m. ma'am "
    "ma’am n. nothin nothin' nothin’ nuff nuthin nuthin' nuthin’ o'clock o. o.0 o.O o.o o_0 o_O o_o "
    "ol ol' ol’ o’clock p. p.m. q. r. s. somethin somethin' somethin’ t. u. v. v.s. v.v v_v vs. w. "
    "w/o x. xD xDD y. z. ¯\\(ツ)/¯ ä. ö. ü. ಠ_ಠ ಠ︵ಠ — ‘S ‘s ’ ’Cause ’Cos ’Coz ’Cuz ’S ’bout ’cause "
    "’cos ’coz ’cuz ’d ’em ’ll ’nuff ’re ’s ’’"
)


def _build_specials() -> dict[str, tuple[str, ...]]:
    specials: dict[str, tuple[str, ...]] = {word: (word,) for word in _WHOLE_EXCEPTIONS.split()}
    for tail, capitalised, bases in _SPLIT_EXCEPTIONS:
        for base in bases.split():
            variants = [base, base[:1].upper() + base[1:]] if capitalised else [base]
            for variant in variants:
                specials[variant + "".join(tail)] = (variant, *tail)
    return specials


SPECIAL_CASES: dict[str, tuple[str, ...]] = _build_specials()

# ---------------------------------------------------------------- tokeniser

_CHUNK_MEMO: dict[str, tuple[str, ...]] = {}
_CHUNK_MEMO_LIMIT = 200_000


_BEYOND_CLASSES = re.compile(f"[{re.escape(_CLASS_END)}-{re.escape(chr(0x10FFFF))}]")


def _is_plain(chunk: str) -> bool:
    """Letters only (of the letter class), or ASCII digits only: no rule can split such a
    chunk, while a mix can ("10km" -> "10" "km"). The fast path for most chunks."""
    if chunk.isascii():
        return chunk.isalpha() or chunk.isdigit()
    return chunk.isalpha() and _BEYOND_CLASSES.search(chunk) is None


# Membership of one character in the letter classes of _char_classes (the same tests).
def _in_alpha_class(c: str) -> bool:
    return c.isalpha() and c < _CLASS_END


def _in_lower_class(c: str) -> bool:
    return c.isalpha() and not c.isupper() and c < _CLASS_END


def _in_upper_class(c: str) -> bool:
    return c.isalpha() and not c.islower() and c < _CLASS_END


def _period_suffix_length(rest: str) -> int:
    """The suffix rules ending in "." for a ``rest`` ending in "." (the others cannot match)."""
    periods = len(rest) - len(rest.rstrip("."))
    if periods >= 2:
        return periods  # "\.\.+" from the first period: the leftmost match
    before = rest[-2:-1]
    if (
        rest[-3:-1] in _DEGREE_SCALES
        or before in _AFTER_PERIOD_MARKS
        or (before and _in_lower_class(before))
        or (len(rest) >= 3 and _in_upper_class(before) and _in_upper_class(rest[-3]))
    ):
        return 1
    return 0


def _suffix_length(rest: str, rules: _Rules) -> int:
    """Length of the suffix rule match that ends ``rest`` (the leftmost one, as spaCy's
    ``suffix_search`` finds it), 0 if none."""
    if rest.endswith("."):
        return _period_suffix_length(rest)
    candidate = rules.suffix_start.search(rest, max(len(rest) - rules.suffix_reach, 0))
    if candidate is None:
        return 0
    found = rules.suffix.search(rest, candidate.start())
    return len(rest) - found.start() if found else 0


def _split_affixes(
    chunk: str, rules: _Rules, specials: dict[str, tuple[str, ...]]
) -> tuple[list[str], str, list[str]]:
    """Peel prefixes and suffixes off ``chunk``: (prefixes, the core, suffixes in text order)."""
    prefixes: list[str] = []
    suffixes: list[str] = []
    core = chunk
    last = -1
    prefix_start, prefix_match = rules.prefix_start.match, rules.prefix.match
    while core and len(core) != last:
        if core in specials:
            break
        last = len(core)
        found = prefix_match(core) if prefix_start(core) else None
        pre_len = found.end() if found else 0
        if pre_len:
            minus_pre = core[pre_len:]
            if minus_pre and minus_pre in specials:
                prefixes.append(core[:pre_len])
                core = minus_pre
                break
            # spaCy searches the suffix in the string without its prefix: look-behinds must
            # not see the prefix
            suf_len = _suffix_length(minus_pre, rules)
        else:
            suf_len = _suffix_length(core, rules)
        if suf_len:
            minus_suf = core[:-suf_len]
            if minus_suf and minus_suf in specials:
                suffixes.append(core[-suf_len:])
                core = minus_suf
                break
        if pre_len and suf_len and pre_len + suf_len <= len(core):
            prefixes.append(core[:pre_len])
            suffixes.append(core[-suf_len:])
            core = core[pre_len:-suf_len]
        elif pre_len:
            prefixes.append(core[:pre_len])
            core = core[pre_len:]
        elif suf_len:
            suffixes.append(core[-suf_len:])
            core = core[:-suf_len]
        if _is_plain(core):
            break  # no affix rule matches a plain core: the next round would change nothing
    suffixes.reverse()
    return prefixes, core, suffixes


def _infix_end(core: str, at: int, rules: _Rules) -> int:
    r"""Where spaCy's infix regex, matched at ``at``, ends (0 if it does not match there).

    Its alternatives, in order (the first that matches wins): "\.\.+"; "…"; a symbol;
    "+-*^" after a digit, before a digit or "-"; "." after a lower-case letter or a quote,
    before an upper-case letter or a quote; then after a letter or a digit and before a
    letter: "," (after a letter only), the hyphens in _HYPHENS' order, one of ":<>=/".
    Look-arounds see only ``core`` (spaCy runs the regex on it alone).
    """
    char = core[at]
    if char == "." and core.startswith(".", at + 1):
        return len(core) - len(core[at:].lstrip("."))
    if char == "…" or rules.icon.match(char):
        return at + 1
    before = core[at - 1] if at else ""
    after = core[at + 1 : at + 2]
    if char in "+-*^" and before in _ASCII_DIGITS and (after in _ASCII_DIGITS or after == "-"):
        return at + 1
    if (
        char == "."
        and (before in _QUOTE_SET or (before != "" and _in_lower_class(before)))
        and (after in _QUOTE_SET or (after != "" and _in_upper_class(after)))
    ):
        return at + 1
    if before == "" or not (before in _ASCII_DIGITS or _in_alpha_class(before)):
        return 0
    if char == "," and before not in _ASCII_DIGITS and after != "" and _in_alpha_class(after):
        return at + 1
    for hyphen in _HYPHENS:
        end = at + len(hyphen)
        if core.startswith(hyphen, at) and end < len(core) and _in_alpha_class(core[end]):
            return end
    if char in ":<>=/" and after != "" and _in_alpha_class(after):
        return at + 1
    return 0


def _split_infixes(core: str, rules: _Rules) -> list[str]:
    # Most cores ("word" once "word," lost its comma) have no character an infix starts with
    # past the first one (an infix at the very start never splits): nothing to scan for.
    if rules.infix_start.search(core, 1) is None:
        return [core]
    # spaCy's finditer, trying only the positions where an infix can start ("10:30:45pm" has
    # two): the leftmost match at or after the end of the previous one is the first
    # candidate there that matches.
    pieces: list[str] = []
    start = 0  # where the next piece begins
    resume = 0  # where the previous match ended
    for candidate in rules.infix_start.finditer(core):
        begin = candidate.start()
        if begin < resume:
            continue
        end = _infix_end(core, begin, rules)
        if not end:
            continue
        resume = end
        if begin == 0:
            continue  # an infix at the very start never splits
        if begin != start:
            pieces.append(core[start:begin])
        pieces.append(core[begin:end])
        start = end
    if core[start:]:
        pieces.append(core[start:])
    return pieces


def _first_pass(chunk: str, rules: _Rules, specials: dict[str, tuple[str, ...]]) -> list[str]:
    """Affixes, then the core as a special case, a URL, or split at infixes."""
    prefixes, core, suffixes = _split_affixes(chunk, rules, specials)
    if not core:
        middle: list[str] | tuple[str, ...] = ()
    elif core in specials:
        middle = specials[core]
    elif _is_plain(core):  # no infix rule matches it, and it is no URL (it has no ".")
        middle = (core,)
    elif "." in core and rules.url.match(core):  # both URL forms (IPv4, host) hold a "."
        middle = (core,)
    else:
        middle = _split_infixes(core, rules)
    if prefixes or suffixes:
        return [*prefixes, *middle, *suffixes]
    return list(middle)


@lru_cache(maxsize=1)
def _special_patterns() -> tuple[dict[tuple[str, ...], tuple[str, ...]], dict[str, tuple[int, ...]]]:
    """Special cases that the first pass can cut apart, keyed by the tokens it cuts them into.

    spaCy re-joins such token runs inside a chunk in a second pass ("z.B." is first cut into
    "z" "." "B." and then "z" "." becomes the special "z."). Returns (patterns, lengths): the
    lengths of the patterns that begin with each token, so that only runs starting at one of
    those tokens are looked up.
    """
    rules = _rules()
    patterns: dict[tuple[str, ...], tuple[str, ...]] = {}
    for text, pieces in SPECIAL_CASES.items():
        if not text.strip():
            continue
        has_infix = any(_infix_end(text, m.start(), rules) for m in rules.infix_start.finditer(text))
        if rules.prefix.match(text) or _suffix_length(text, rules) or has_infix:
            tokens = tuple(_first_pass(text, rules, {}))
            if len(tokens) > 1:
                patterns[tokens] = pieces
    lengths: dict[str, set[int]] = {}
    for tokens in patterns:
        lengths.setdefault(tokens[0], set()).add(len(tokens))
    return patterns, {first: tuple(sorted(ns)) for first, ns in lengths.items()}


def _rejoin_specials(tokens: list[str]) -> list[str]:
    """spaCy's second pass: longest (then leftmost) runs first, none overlapping."""
    patterns, lengths = _special_patterns()
    if lengths.keys().isdisjoint(tokens):
        return tokens
    found = sorted(
        (
            (i, i + n)
            for i, token in enumerate(tokens)
            for n in lengths.get(token, ())
            if i + n <= len(tokens) and tuple(tokens[i : i + n]) in patterns
        ),
        key=lambda span: (span[0] - span[1], span[0]),  # longest first, leftmost among equals
    )
    if not found:
        return tokens
    seen: set[int] = set()
    accepted: list[tuple[int, int]] = []
    for start, end in found:
        if start not in seen and end - 1 not in seen:
            accepted.append((start, end))
        seen.update(range(start, end))
    out: list[str] = []
    position = 0
    for start, end in sorted(accepted):
        out.extend(tokens[position:start])
        out.extend(patterns[tuple(tokens[start:end])])
        position = end
    out.extend(tokens[position:])
    return out


def tokenize_chunk(chunk: str) -> tuple[str, ...]:
    """spaCy's English tokens of one whitespace-free chunk."""
    cached = _CHUNK_MEMO.get(chunk)
    if cached is not None:
        return cached
    special = SPECIAL_CASES.get(chunk)
    rules = _rules()
    if special is not None:
        tokens = special
    elif _is_plain(chunk):
        tokens = (chunk,)
    else:
        pieces = _first_pass(chunk, rules, SPECIAL_CASES)
        tokens = tuple(_rejoin_specials(pieces) if len(pieces) > 1 else pieces)
    if len(_CHUNK_MEMO) >= _CHUNK_MEMO_LIMIT:
        _CHUNK_MEMO.clear()
    _CHUNK_MEMO[chunk] = tokens
    return tokens


def word_tokenize(text: str) -> list[str]:
    """The English word tokens datatrove 0.10.1 gets from spaCy (stripped, none empty)."""
    memo = _CHUNK_MEMO
    out: list[str] = []
    for chunk in text.split():
        tokens = memo.get(chunk)
        out.extend(tokens if tokens is not None else tokenize_chunk(chunk))
    return out


# -------------------------------------------------------------- sentences

# spaCy's Sentencizer.default_punct_chars: a token equal to one of these ends a sentence.
SENTENCE_FINAL_CHARS: frozenset[str] = _chars_from_ranges(
    "21 2E 3F 589 61F 6D4 700-702 7F9 964-965 104A-104B 1362 1367-1368 166E 1735-1736 1803 1809 "
    "1944-1945 1AA8-1AAB 1B5A-1B5B 1B5E-1B5F 1C3B-1C3C 1C7E-1C7F 203C-203D 2047-2049 2E2E 2E3C 3002 "
    "A4FF A60E-A60F A6F3 A6F7 A876-A877 A8CE-A8CF A92F A9C8-A9C9 AA5D-AA5F AAF0-AAF1 ABEB FE52 "
    "FE56-FE57 FF01 FF0E FF1F FF61 10A56-10A57 11047-11048 110BE-110C1 11141-11143 111C5-111C6 "
    "111CD 111DE-111DF 11238-11239 1123B-1123C 112A9 1144B-1144C 115C2-115C3 115C9-115D7 "
    "11641-11642 1173C-1173E 11A42-11A43 11A9B-11A9C 11C41-11C42 16A6E-16A6F 16AF5 16B37-16B38 "
    "16B44 1BC9F 1DA88"
)
_WHITESPACE_RUN = re.compile(r"\s+")


def _is_punct(token: str) -> bool:
    """spaCy's IS_PUNCT: every character is Unicode punctuation (category P*)."""
    return all(unicodedata.category(c).startswith("P") for c in token)


def _token_spans(text: str) -> list[tuple[int, int, bool]]:
    """(start, end, is_whitespace) of each spaCy token, whitespace tokens included.

    Between two chunks, a whitespace run that is exactly one space is no token; a longer
    run is one (minus its first character when that is a space).
    """
    spans: list[tuple[int, int, bool]] = []
    position = 0
    for match in _WHITESPACE_RUN.finditer(text):
        begin, end = match.span()
        if begin > position:
            for token in tokenize_chunk(text[position:begin]):
                spans.append((position, position + len(token), False))
                position += len(token)
        ws_start = begin + 1 if text[begin] == " " and begin > 0 else begin
        if ws_start < end:
            spans.append((ws_start, end, True))
        position = end
    if position < len(text):
        for token in tokenize_chunk(text[position:]):
            spans.append((position, position + len(token), False))
            position += len(token)
    return spans


def _sentence_starts(text: str, spans: list[tuple[int, int, bool]]) -> list[int]:
    """Token indices where spaCy's sentencizer starts a sentence."""
    if not spans:
        return []
    starts = [0]
    seen_final = False
    for i, (begin, end, is_space) in enumerate(spans):
        token = text[begin:end]
        final = token in SENTENCE_FINAL_CHARS
        if seen_final and not final and (is_space or not _is_punct(token)):
            starts.append(i)
            seen_final = False
        elif final:
            seen_final = True
    return starts


def split_sentences(text: str) -> list[str]:
    """The text cut at spaCy's sentence ends, as datatrove's ``split_into_sentences`` does:
    each piece runs from the previous sentence's end to this one's, the last to the text's end."""
    spans = _token_spans(text)
    starts = _sentence_starts(text, spans)
    ends = [spans[j - 1][1] for j in starts[1:]] + ([spans[-1][1]] if spans else [])
    cuts = [0, *ends[:-1], len(text)]
    return [text[a:b] for a, b in zip(cuts, cuts[1:])] if ends else [text]


def count_sentences(text: str) -> int:
    """``len(split_sentences(text))``: spaCy's sentence count, and 1 for a text with no token
    (datatrove's split always returns at least one piece)."""
    # Fast path: no sentence-final character, so at most one sentence.
    if not SENTENCE_FINAL_CHARS.intersection(text):
        return 1
    return max(1, len(_sentence_starts(text, _token_spans(text))))


# -------------------------------------------------------- substring hashing

_HASH_BASE = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64
_HASH_LENGTH_MIX = np.uint64(0xC2B2AE3D27D4EB4F)


def _power_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(base**-t for t < n, base**t for t <= n), modulo 2**64."""
    inverse = np.uint64(pow(_HASH_BASE, -1, 1 << 64))
    with np.errstate(over="ignore"):
        weights = np.cumprod(np.concatenate(([np.uint64(1)], np.full(max(n - 1, 0), inverse, np.uint64))))
        scale = np.cumprod(np.concatenate(([np.uint64(1)], np.full(n, np.uint64(_HASH_BASE), np.uint64))))
    return weights, scale


_POWERS_KEPT = 1 << 20  # the longest power tables kept between texts (16 MiB)
_powers: tuple[np.ndarray, np.ndarray] = _power_tables(0)


def _hash_powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Power tables for a text of ``n`` characters (longer is fine: callers slice or index).

    The powers are the same for every text, so they are computed once, for the longest text
    so far (up to _POWERS_KEPT), rather than with two cumulative products per text.
    """
    global _powers
    if len(_powers[1]) > n:
        return _powers
    if n >= _POWERS_KEPT:
        return _power_tables(n)
    _powers = _power_tables(min(max(n + 1, 2 * len(_powers[1])), _POWERS_KEPT))
    return _powers


class SubstringHashes:
    """O(1) polynomial hashes of any substring of one string, after O(len) numpy setup.

    Equal substrings always get equal hashes, so "no two hashes equal" proves a set of
    substrings distinct without building them; the repetition filters use this to skip
    their exact (string-building) pass when nothing repeats. Arithmetic wraps modulo
    2**64, which keeps "equal strings, equal hashes" true.
    """

    def __init__(self, text: str):
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
        n = len(codes)
        # weight of character t is base**-t; a substring [a, b) is rescaled by base**a
        weights, self._scale = _hash_powers(n)
        with np.errstate(over="ignore"):
            self._prefix = np.concatenate(([np.uint64(0)], np.cumsum(codes * weights[:n], dtype=np.uint64)))

    def hashes(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Hash of text[starts[i]:ends[i]] for every i (length mixed in)."""
        with np.errstate(over="ignore"):
            body = (self._prefix[ends] - self._prefix[starts]) * self._scale[starts]
            return body ^ ((ends - starts).astype(np.uint64) * _HASH_LENGTH_MIX)


# ------------------------------------------------------------------ the view

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
