"""spaCy's tokenizer algorithm for one whitespace-free chunk, and a text's word tokens."""

from __future__ import annotations

import re
from functools import lru_cache

from tasks.data.filters.spacy_en.char_classes import (
    _CLASS_END,
    _in_alpha_class,
    _in_lower_class,
    _in_upper_class,
)
from tasks.data.filters.spacy_en.exceptions import SPECIAL_CASES
from tasks.data.filters.spacy_en.rules import (
    _AFTER_PERIOD_MARKS,
    _ASCII_DIGITS,
    _DEGREE_SCALES,
    _HYPHENS,
    _QUOTE_SET,
    _Rules,
    _rules,
)

_CHUNK_MEMO: dict[str, tuple[str, ...]] = {}
_CHUNK_MEMO_LIMIT = 200_000


_BEYOND_CLASSES = re.compile(f"[{re.escape(_CLASS_END)}-{re.escape(chr(0x10FFFF))}]")


def _is_plain(chunk: str) -> bool:
    """Letters only (of the letter class), or ASCII digits only: no rule can split such a
    chunk, while a mix can ("10km" -> "10" "km"). The fast path for most chunks."""
    if chunk.isascii():
        return chunk.isalpha() or chunk.isdigit()
    return chunk.isalpha() and _BEYOND_CLASSES.search(chunk) is None


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

