"""One document's text, split once; every quality filter reads from the same view.

datatrove's English filters each call NLTK's ``word_tokenize`` on the whole document
(Gopher repetition, Gopher quality and FineWeb quality: three full tokenisations, each
running the Punkt sentence splitter first and a cascade of about 25 regex substitutions
per sentence after it). Here the text is tokenised once, lazily, by one regex pass plus
a light fix-up loop, and every filter shares the result through ``TextView``.

The tokeniser reproduces what ``nltk.word_tokenize(text, "english")`` returns (that is
what datatrove's ``load_word_tokenizer("en")`` wraps, minus empty tokens). Its rules, as
read from NLTK's ``NLTKWordTokenizer`` and ``PunktSentenceTokenizer``:

* always split off: ``( ) [ ] { } < >``, ``; @ # $ % & * ? !``, the curly/angle quotes
  ``“ ” ‘ ’ „ « »``, the dashes U+2012..U+2015, runs of 2+ periods, ``--``, runs of backticks;
* ``,`` and ``:`` split off unless a digit follows ("3,000" and "10:30" stay whole);
* a double quote becomes two backticks when it opens (at a sentence start, or after a
  space or an opening bracket) and two apostrophes otherwise;
* clitics split at a word's end: ``'s 'm 'd`` (any case), ``'ll 're 've n't`` (all-lower
  or all-upper), a bare trailing ``'``; a leading ``'`` before a letter is its own token;
  ``cannot gimme gonna gotta lemme more'n d'ye wanna`` split in two;
* a period stays attached to its word (``U.S.``, ``3.5``, ``example.com``) EXCEPT the
  period that ends a sentence, which is its own token.

Where this differs from NLTK (deliberately, to stay one fast pass; all rare in web text):

* Sentence ends are decided locally, with Punkt's rules but without its trained
  orthographic statistics: a period before whitespace or one of ``?!)";}]*:@'({[``
  ends a sentence unless the word is one of Punkt's English abbreviations (then only
  before a capitalised frequent sentence starter), a single-letter initial (then only
  before a capitalised common word, not before a name), or a number followed by a
  lower-case word. Punkt's learned per-word capitalisation contexts and its WSJ
  collocations are approximated by the two small word lists below.
* ``"`` after a newline (not a space) counts as opening only after a sentence end.
* Runs such as ``,,`` or ``::`` are split into single marks (NLTK's regex leaves the
  second mark glued to the next word).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import cached_property
from itertools import accumulate

import numpy as np

# ----------------------------------------------------------------- punctuation

# The characters datatrove counts as punctuation (datatrove.utils.text.PUNCTUATION):
# all ASCII punctuation, a set of typographic and CJK marks (including the fullwidth
# digit one, a quirk kept for fidelity), and the C0/C1 control characters except \t, \n.
_TYPOGRAPHIC_MARKS = "—”％１〈、━【「」，】；“《„’∶´．（–？！：～«〉》）。…►»"
_CONTROL_CHARS = "".join(chr(c) for c in (*range(0, 9), *range(11, 32), *range(127, 160)))
PUNCTUATION_CHARS: frozenset[str] = frozenset(string.punctuation + _TYPOGRAPHIC_MARKS + _CONTROL_CHARS)

# ------------------------------------------------------------------ tokeniser

# Characters that are always a token of their own (see the module docstring).
_SOLO = "«“‘„»”’;@#$%&?!*()\\[\\]{}<>\u2012-\u2015"
_WORD_CHAR = r"[^\s" + _SOLO + r"\".:,`'-]"
# ".", "-", "'" inside a word (but not starting a run of themselves: those runs are
# tokens of their own) and ":"/"," before a digit ("3,000", "10:30").
_WORD_JOINER = r"(?:[:,](?=\d)|\.(?!\.)|-(?!-)|'(?!'))"
_TOKEN_RE = re.compile(
    # words come first as the most frequent case; possessive loops keep it one pass
    r"(" + _WORD_CHAR + r"++(?:" + _WORD_JOINER + _WORD_CHAR + r"*+)*+"
    r"|\.{2,}|--|`+|''|\"|[" + _SOLO + r"]|[:,](?!\d)"
    r"|" + _WORD_JOINER + r"(?:" + _WORD_CHAR + r"++|" + _WORD_JOINER + r")*+)"
    r"(\s*)"
)

# What may follow a sentence-final period before the sentence really ends (NLTK keeps
# these out of the period's token and lets the period split off).
_CLOSERS = frozenset({"]", ")", "}", ">", '"', "'", "»", "”", "’", "''"})
# Characters right after a period that make Punkt consider a boundary there
# (besides whitespace); a period before anything else (",", "”", a letter) is not.
_PUNKT_NONWORD_AFTER = frozenset("?!)\";}]*:@'({[")
_OPENING_BEFORE_QUOTE = frozenset({"(", "[", "{", "<", "«", "“", "‘", "„"})

# Punkt's English abbreviation types (nltk_data punkt_tab/english/abbrev_types.txt).
_ABBREVIATIONS = frozenset(
    """
    a.a a.c a.d a.g a.h a.m a.m.e a.s a.t adm ala ariz aug ave b.f b.v bros c c.i.t c.o.m.b
    c.v calif chg cie co col colo conn corp cos ct d d.c d.h d.w dec dr e e.f e.h e.l e.m f
    f.g f.j feb fla fri ft g g.d g.f g.k ga gen h h.c h.f h.m i.m.s ill inc j.b j.c j.j j.k
    j.p j.r jan jr k kan ky l l.a l.f l.p lt ltd m m.b.a m.d.c m.j maj messrs mg mich minn
    mr mrs ms n n.c n.d n.h n.j n.m n.v n.y nev nov oct ok okla ore p p.a.m p.m pa ph.d prof
    r r.a r.h r.i r.j r.k r.t rep reps s s.a s.a.y s.c s.g s.p.a s.s sen sep sept sr st sw
    t t.j tenn tues u.k u.n u.s u.s.a u.s.s.r v va vs vt w w.c w.r w.va w.w wash wed wis yr
    """.split()
)
# Punkt's English frequent sentence starters (punkt_tab/english/sent_starters.txt).
_SENT_STARTERS = frozenset(
    """
    according although among both but despite even he however i if in indeed instead it
    many meanwhile moreover most nevertheless nonetheless nor separately sales similarly
    since so some the there these they this though thus under when while yet
    """.split()
)
# Stand-in for Punkt's per-word "seen in lower case" statistics: capitalised, these
# common words start a sentence; any other capitalised word after an initial is
# taken for a name ("J. Smith").
_COMMON_LOWER_WORDS = _SENT_STARTERS | frozenset(
    """
    a after all also an and any are as at before by each every for from her his how is
    its my no not now of on one or our she that their then those to was we what where
    which who why with you your
    """.split()
)
_NUMERIC_RE = re.compile(r"-?[.,]?\d[\d,.-]*\.?\Z")
_INITIAL_RE = re.compile(r"[^\W\d]\.\Z")
_PUNKT_PUNCT = frozenset(";:,.!?")

# Clitic splits at a word's end, in NLTK's order (the first, then the second).
_CLITIC_1_RE = re.compile(r"(?<=[^' ])('[sSmMdD]|')\Z")
_CLITIC_2_RE = re.compile(r"(?<=[^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T)\Z")
# A quote that opens a word ("'tis", "'90s") but is not a clitic ("'s", "'re").
_LEADING_QUOTE_RE = re.compile(r"(?<!\w)(')(?!(?i:re|ve|ll|m|t|s|d|n)\b)(?=\w)")
_CONTRACTION_RE = re.compile(
    r"(?i)\b(can)(not)\b|\b(d)('ye)\b|\b(gim)(me)\b|\b(gon)(na)\b|\b(got)(ta)\b"
    r"|\b(lem)(me)\b|\b(more)('n)\b|\b(wan)(na)(?=\s|\Z)"
)
# The same over tokens joined by NUL: one pass over all tokens instead of one per token.
_TOKEN_SEP = "\x00"
_JOINED_CONTRACTION_RE = re.compile(_CONTRACTION_RE.pattern.replace(r"(?=\s|\Z)", r"(?=\x00|\Z)"))


def _ortho_says_start(next_token: str) -> bool | None:
    """Does the token after a period look like a sentence start? None: can't tell."""
    if next_token in _PUNKT_PUNCT:
        return False
    first = next_token[0]
    if first.isupper():
        return True if next_token.lower().rstrip(".") in _COMMON_LOWER_WORDS else None
    if first.islower():
        return False
    return None


def period_ends_sentence(word: str, next_token: str) -> bool:
    """Punkt's decision for a word ending in one period, given the token after it."""
    core = word.lstrip("-:,")  # Punkt never starts a word with these
    if len(core) < 2:
        return True
    stem = core[:-1].lower()
    is_initial = _INITIAL_RE.match(core) is not None
    if stem in _ABBREVIATIONS or stem.rsplit("-", 1)[-1] in _ABBREVIATIONS:
        # a listed one-letter abbreviation never ends a sentence in Punkt
        if is_initial:
            return False
        return next_token[0].isupper() and next_token.lower().rstrip(".") in _SENT_STARTERS
    if is_initial:
        says = _ortho_says_start(next_token)
        if says is False or (says is None and next_token[0].isupper()):
            return False
        return True
    if _NUMERIC_RE.match(core):
        return _ortho_says_start(next_token) is not False
    return True


def _split_apostrophes(token: str) -> list[str]:
    """Split leading quotes and trailing clitics off one word token."""
    pieces = [p for p in _LEADING_QUOTE_RE.split(token) if p]
    out: list[str] = []
    for piece in pieces:
        if piece == "'":
            out.append(piece)
            continue
        tail: list[str] = []
        for clitic_re in (_CLITIC_1_RE, _CLITIC_2_RE):
            match = clitic_re.search(piece)
            if match:
                tail.insert(0, match.group(1))
                piece = piece[: match.start(1)]
        out.append(piece)
        out.extend(tail)
    return out


def _split_contractions(tokens: list[str]) -> list[str]:
    joined = _TOKEN_SEP.join(tokens)
    split = _JOINED_CONTRACTION_RE.sub(lambda m: _TOKEN_SEP.join(g for g in m.groups() if g), joined)
    return split.split(_TOKEN_SEP)


def _last_content_index(pairs: list[tuple[str, str]]) -> int:
    """Index of the last token that is not a closing bracket/quote (-1 if none)."""
    for i in range(len(pairs) - 1, -1, -1):
        if pairs[i][0] not in _CLOSERS:
            return i
    return -1


def _period_splits(pairs: list[tuple[str, str]], i: int, last_content: int) -> bool:
    """Is the period ending token i the end of a sentence (and so a token of its own)?"""
    if i >= last_content:
        return True  # only closers follow: the text's last sentence ends here
    token, space_after = pairs[i]
    following = pairs[i + 1][0]
    if not space_after:
        if following[0] not in _PUNKT_NONWORD_AFTER:
            return False  # "etc.," or "end.”": Punkt sees no boundary here
        following = following[0]
    return period_ends_sentence(token, following)


def word_tokenize(text: str) -> list[str]:
    """English word tokens, as ``nltk.word_tokenize`` gives them (see the module docstring)."""
    pairs: list[tuple[str, str]] = _TOKEN_RE.findall(text)
    last_content = _last_content_index(pairs)
    out: list[str] = []
    after_sentence_end = True
    previous_space = ""
    previous = ""
    for i, (token, space) in enumerate(pairs):
        if token == '"' or token == "''":
            opening = (
                i == 0
                or previous_space.endswith(" ")
                or (not previous_space and previous in _OPENING_BEFORE_QUOTE)
                or (not previous_space and previous[:1] == "`")
                or (bool(previous_space) and after_sentence_end and token == '"')
            )
            out.append("``" if opening else "''")
            # a closing quote belongs to the sentence that just ended
            after_sentence_end = after_sentence_end and not opening
        elif token[-1] == "." and len(token) > 1 and token[-2] != "." and _period_splits(pairs, i, last_content):
            stem = token[:-1]
            out.extend(_split_apostrophes(stem) if "'" in stem else (stem,))
            out.append(".")
            after_sentence_end = True
        else:
            out.extend(_split_apostrophes(token) if "'" in token and len(token) > 1 else (token,))
            after_sentence_end = token in ("?", "!", ".") or (after_sentence_end and token in _CLOSERS)
        previous_space, previous = space, token
    if _CONTRACTION_RE.search(text):
        out = _split_contractions(out)
    return out


# ------------------------------------------------------------ sentence count

# Where Punkt considers a sentence boundary: the last ".", "?" or "!" of a run of
# non-space text that is followed by whitespace and another token, or by one of
# Punkt's non-word marks.
_BOUNDARY_RE = re.compile(r"\S*[.?!](?=(?P<mark>[?!)\";}\]*:@'({\[])|\s+(?P<next>\S+))")
_PUNKT_WORD_SPLIT_RE = re.compile(r"[?!)\";}\]*:@'({\[]")
_PUNKT_NO_WORD_START = frozenset("(\"`{[:;&#*@)}]-,")


def _punkt_first_token(chunk: str) -> str:
    """The first token Punkt's own word splitter would make of a non-space chunk."""
    if chunk[0] in _PUNKT_NO_WORD_START or chunk[0] in _PUNKT_NONWORD_AFTER:
        return chunk[0]
    return _PUNKT_WORD_SPLIT_RE.split(chunk, maxsplit=1)[0]


def _candidate_is_break(body: str, next_token: str) -> bool:
    if "?" in body or "!" in body:
        return True  # "?" and "!" always end a sentence when something follows
    word = _PUNKT_WORD_SPLIT_RE.split(body)[-1].lstrip("".join(_PUNKT_NO_WORD_START))
    if word.endswith(".."):
        # an ellipsis ends a sentence only before a capitalised sentence starter
        return next_token[0].isupper() and next_token.lower().rstrip(".") in _SENT_STARTERS
    return period_ends_sentence(word or ".", next_token)


def _break_spans(text: str) -> list[tuple[int, int]]:
    """(end of a sentence, start of the next) for every boundary Punkt would take."""
    spans: list[tuple[int, int]] = []
    for match in _BOUNDARY_RE.finditer(text):
        mark, chunk = match.group("mark"), match.group("next")
        next_token = mark if mark else _punkt_first_token(chunk)
        if _candidate_is_break(match.group(0), next_token):
            spans.append((match.end(), match.end() if mark else match.start("next")))
    return spans


_REALIGN_RE = re.compile(r"[\"')\]}]+?(?:\s+|(?=--)|\Z)")


def split_sentences(text: str) -> list[str]:
    """Punkt-style English sentences of ``text``, stripped, empty ones dropped.

    Same local approximation of Punkt as the word tokeniser (see module docstring).
    Closing quotes/brackets right after a boundary move to the sentence before it,
    as Punkt's boundary realignment does.
    """
    sentences: list[str] = []
    start = 0
    for end, next_start in _break_spans(text):
        if next_start < start:
            continue  # inside closers already moved to the previous sentence
        closers = _REALIGN_RE.match(text, next_start)
        if closers:
            end, next_start = next_start + len(closers.group(0).rstrip()), closers.end()
        sentences.append(text[start:end])
        start = next_start
    sentences.append(text[start:])
    return [s for s in (piece.strip() for piece in sentences) if s]


def count_sentences(text: str) -> int:
    """How many sentences Punkt's English ``sent_tokenize`` finds in ``text``."""
    return len(split_sentences(text))


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
        """``split("\\n")``, empty lines included: FineWeb quality."""
        return self.text.split("\n")

    @cached_property
    def non_empty_lines(self) -> list[str]:
        """``newline_lines`` without blank ones, NOT stripped: FineWeb's duplicate-char ratio."""
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
        """NLTK-style English word tokens (punctuation tokens included)."""
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
