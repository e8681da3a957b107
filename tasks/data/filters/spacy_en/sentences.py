"""spaCy's sentencizer over the tokenizer's tokens: the sentence splits C4 quality counts."""

from __future__ import annotations

import re
import unicodedata

from tasks.data.filters.punctuation import _chars_from_ranges
from tasks.data.filters.spacy_en.tokenizer import tokenize_chunk

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

