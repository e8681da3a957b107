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
from itertools import accumulate

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


def _class_ranges(test, limit: int = 0x30000) -> str:
    """A regex character-class body ("a-z...") of the code points below ``limit`` passing ``test``."""
    parts: list[str] = []
    start = None
    for cp in range(limit + 1):
        ok = cp < limit and not 0xD800 <= cp < 0xE000 and test(chr(cp))
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            end = cp - 1
            parts.append(re.escape(chr(start)) if start == end else f"{re.escape(chr(start))}-{re.escape(chr(end))}")
            start = None
    return "".join(parts)


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


def _alternation(items) -> str:
    return "|".join(re.escape(item) for item in items)


@dataclass(frozen=True)
class _Rules:
    prefix: re.Pattern
    suffix: re.Pattern
    infix: re.Pattern
    url: re.Pattern
    # letters only, or digits only: no rule can split such a chunk (the fast path); a
    # mix can ("10km" -> "10" "km")
    plain: re.Pattern


@lru_cache(maxsize=1)
def _rules() -> _Rules:
    """spaCy's English prefix/suffix/infix/URL rules, compiled once (first use costs ~0.1 s)."""
    alpha = _class_ranges(str.isalpha)
    lower = _class_ranges(lambda c: c.isalpha() and not c.isupper())  # lower case or uncased
    upper = _class_ranges(lambda c: c.isalpha() and not c.islower())  # upper case or uncased
    icons = _class_ranges(lambda c: unicodedata.category(c) == "So" and c != "°") + re.escape("°")
    quotes = re.escape(_QUOTE_CHARS)
    punct = ["…", "……", *_PUNCT_MARKS]
    prefixes = [
        "§", "%", "=", "—", "–", r"\+(?![0-9])", _alternation(punct), r"\.\.+", "…",
        _alternation(_QUOTE_CHARS), _alternation(_CURRENCY), f"[{icons}]",
    ]
    # The class spaCy builds for "a period after ..." also takes in the characters of its
    # punctuation alternation ("|" included) and of "(?:" ")".
    after_period = "0-9" + lower + re.escape("%²-+" + "".join(punct) + "|(?:)") + quotes
    suffixes = [
        _alternation(punct), r"\.\.+", "…", _alternation(_QUOTE_CHARS), f"[{icons}]",
        "'s", "'S", "’s", "’S", "—", "–",
        r"(?<=[0-9])\+", r"(?<=°[FfCcKk])\.", rf"(?<=[0-9])(?:{_alternation(_CURRENCY)})",
        rf"(?<=[0-9])(?:{_alternation(_UNITS)})", rf"(?<=[{after_period}])\.", rf"(?<=[{upper}][{upper}])\.",
    ]
    infixes = [
        r"\.\.+", "…", f"[{icons}]",
        r"(?<=[0-9])[+\-\*^](?=[0-9-])",
        rf"(?<=[{lower}{quotes}])\.(?=[{upper}{quotes}])",
        rf"(?<=[{alpha}]),(?=[{alpha}])",
        rf"(?<=[{alpha}0-9])(?:{_alternation(_HYPHENS)})(?=[{alpha}])",
        rf"(?<=[{alpha}0-9])[:<>=/](?=[{alpha}])",
    ]
    host = r"[A-Za-z0-9\u00a1-\uffff]"
    url = (
        r"(?:[\w+\-.]{2,}://)?(?:\S+(?::\S*)?@)?"
        r"(?:(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}"
        r"(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4]))"
        rf"|(?:(?:{host}[A-Za-z0-9\u00a1-\uffff_-]{{0,62}})?{host}\.)+[{lower}]{{2,63}})"
        r"(?::\d{2,5})?(?:[/?#]\S*)?"
    )
    return _Rules(
        prefix=re.compile("|".join(f"(?:{p})" for p in prefixes)),
        suffix=re.compile("(?:" + "|".join(f"(?:{s})" for s in suffixes) + r")\Z"),
        infix=re.compile("|".join(f"(?:{i})" for i in infixes)),
        url=re.compile(url + r"\Z"),
        plain=re.compile(rf"[{alpha}]+|[0-9]+"),
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


def _split_affixes(
    chunk: str, rules: _Rules, specials: dict[str, tuple[str, ...]]
) -> tuple[list[str], str, list[str]]:
    """Peel prefixes and suffixes off ``chunk``: (prefixes, the core, suffixes in text order)."""
    prefixes: list[str] = []
    suffixes: list[str] = []
    core = chunk
    last = -1
    while core and len(core) != last:
        if core in specials:
            break
        last = len(core)
        found = rules.prefix.match(core)
        pre_len = found.end() if found else 0
        if pre_len:
            minus_pre = core[pre_len:]
            if minus_pre and minus_pre in specials:
                prefixes.append(core[:pre_len])
                core = minus_pre
                break
        # spaCy searches the suffix in the string without its prefix: look-behinds must not
        # see the prefix
        rest = core[pre_len:] if pre_len else core
        found = rules.suffix.search(rest)
        suf_len = len(rest) - found.start() if found else 0
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
    suffixes.reverse()
    return prefixes, core, suffixes


def _split_infixes(core: str, rules: _Rules) -> list[str]:
    pieces: list[str] = []
    start = 0
    for match in rules.infix.finditer(core):
        begin, end = match.span()
        if begin == 0:
            continue  # an infix at the very start never splits
        if begin != start:
            pieces.append(core[start:begin])
        if begin != end:
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
    elif rules.url.match(core):
        middle = (core,)
    else:
        middle = _split_infixes(core, rules)
    return [*prefixes, *middle, *suffixes]


@lru_cache(maxsize=1)
def _special_patterns() -> tuple[dict[tuple[str, ...], tuple[str, ...]], int]:
    """Special cases that the first pass can cut apart, keyed by the tokens it cuts them into.

    spaCy re-joins such token runs inside a chunk in a second pass ("z.B." is first cut into
    "z" "." "B." and then "z" "." becomes the special "z."). Returns (patterns, longest).
    """
    rules = _rules()
    patterns: dict[tuple[str, ...], tuple[str, ...]] = {}
    for text, pieces in SPECIAL_CASES.items():
        if not text.strip():
            continue
        if rules.prefix.match(text) or rules.suffix.search(text) or rules.infix.search(text):
            tokens = tuple(_first_pass(text, rules, {}))
            if len(tokens) > 1:
                patterns[tokens] = pieces
    return patterns, max(map(len, patterns), default=0)


def _rejoin_specials(tokens: list[str]) -> list[str]:
    """spaCy's second pass: longest (then leftmost) runs first, none overlapping."""
    patterns, longest = _special_patterns()
    found = [
        (i, i + n)
        for n in range(min(longest, len(tokens)), 1, -1)
        for i in range(len(tokens) - n + 1)
        if tuple(tokens[i : i + n]) in patterns
    ]
    if not found:
        return tokens
    seen: set[int] = set()
    accepted: list[tuple[int, int]] = []
    for start, end in found:  # already longest first, leftmost first among equals
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
    elif rules.plain.fullmatch(chunk):
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
        inverse = np.uint64(pow(_HASH_BASE, -1, 1 << 64))
        with np.errstate(over="ignore"):
            # weight of character t is base**-t; a substring [a, b) is rescaled by base**a
            weights = np.cumprod(np.concatenate(([np.uint64(1)], np.full(max(n - 1, 0), inverse, np.uint64))))
            self._prefix = np.concatenate(([np.uint64(0)], np.cumsum(codes * weights[:n], dtype=np.uint64)))
            self._scale = np.cumprod(np.concatenate(([np.uint64(1)], np.full(n, np.uint64(_HASH_BASE), np.uint64))))

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
        return [w for w in self.words if not PUNCTUATION_CHARS.issuperset(w)]

    @cached_property
    def spaced_ngram_text(self) -> tuple[str, list[int]]:
        """Words joined by single spaces, and each word's start offset (plus the end).

        An n-gram "w_i ... w_{i+n-1}" is then a slice ``s[starts[i]:starts[i+n] - 1]``,
        far cheaper than joining lists of words for every n and i.
        """
        starts = [0, *accumulate(len(w) + 1 for w in self.words)]
        return " ".join(self.words), starts

    @cached_property
    def packed_ngram_text(self) -> tuple[str, list[int]]:
        """Words joined with no separator, and each word's start offset (plus the end)."""
        return "".join(self.words), [0, *accumulate(len(w) for w in self.words)]

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
