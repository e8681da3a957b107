"""Good pages (prose that every filter keeps) and their near-duplicate copies.

Closeness is measured as the dedup step measures it: the exact Jaccard similarity of
the texts' shingle sets (``tasks.data.dedup.shingle_set``), the quantity MinHash estimates.
"""

from __future__ import annotations

import random
from collections import Counter

from tasks.data.dedup import shingle_jaccard, shingle_set
from tasks.data.sample_corpus.judge import MIN_PAGE_WORDS, passes_with_margin
from tasks.data.sample_corpus.prose import Paragraph, Prose, paragraph_stream, prose_paragraphs, sentences_of

MIN_NEAR_DUP_JACCARD = 0.9  # the minhash stage removes pairs at >= 0.85 almost surely
MAX_GOOD_PAGE_OVERLAP = 0.3  # between any two good pages


def good_pages(count: int, rng: random.Random) -> list[Prose]:
    """`count` pages of prose, each passing every text filter with a margin, no two alike."""
    stream = paragraph_stream(prose_paragraphs(), rng)
    pages: list[Prose] = []
    titles: Counter[str] = Counter()
    pending: Paragraph | None = None
    similar = SimilarityIndex()
    while len(pages) < count:
        target = rng.randint(170, 320)
        first = pending or next(stream)
        pending = None
        chosen = [first.text]
        page_sentences = set(sentences_of(first.text))
        while len(chosen) < 8 and sum(len(p.split()) for p in chosen) < target:
            para = next(stream)
            words = sum(len(p.split()) for p in chosen)
            if para.topic != first.topic and len(chosen) >= 3 and words >= MIN_PAGE_WORDS + 20:
                pending = para  # start the next page with the next topic
                break
            sentences = set(sentences_of(para.text))
            if sentences & page_sentences:  # a repeated sentence would be a duplicated line
                continue
            chosen.append(para.text)
            page_sentences |= sentences
        titles[first.topic] += 1
        title = first.topic if titles[first.topic] == 1 else f"{first.topic} (part {titles[first.topic]})"
        page = Prose(title, chosen)
        # Later passes reuse sentences; a page too close to an earlier one would be a
        # near-duplicate that the minhash stage rightly removes, so it cannot be "kept".
        if similar.max_overlap(page.text) < MAX_GOOD_PAGE_OVERLAP and _passes_quality(page):
            similar.add(page.text)
            pages.append(page)
    return pages


def _passes_quality(page: Prose) -> bool:
    return page.words >= MIN_PAGE_WORDS and len(page.paragraphs) >= 3 and passes_with_margin(page.text)


class SimilarityIndex:
    """Shingle -> pages index, to find the most similar earlier page quickly."""

    def __init__(self) -> None:
        self._pages: list[int] = []  # shingle count per page
        self._index: dict[int, list[int]] = {}

    def max_overlap(self, text: str) -> float:
        """Largest Jaccard similarity between `text` and any page added so far."""
        own = shingle_set(text).tolist()
        shared: Counter[int] = Counter()
        for gram in own:
            shared.update(self._index.get(gram, ()))
        return max((n / (len(own) + self._pages[page] - n) for page, n in shared.items()), default=0.0)

    def add(self, text: str) -> None:
        own = shingle_set(text).tolist()
        number = len(self._pages)
        self._pages.append(len(own))
        for gram in own:
            self._index.setdefault(gram, []).append(number)


_SWAP_WORDS = (
    "value", "object", "method", "result", "module", "program", "function", "instance", "argument", "variable",
)


def _swap_words(page: Prose, changes: int, rng: random.Random) -> tuple[Prose, int]:
    """A copy of `page` with up to `changes` words swapped, far apart; (copy, words changed)."""
    paragraphs = [p.split(" ") for p in page.paragraphs]
    spots = [
        (pi, wi)
        for pi, para in enumerate(paragraphs)
        for wi, word in enumerate(para)
        if word.isalpha() and word.islower() and len(word) >= 4 and 5 <= wi < len(para) - 5
    ]
    rng.shuffle(spots)
    picked: list[tuple[int, int]] = []
    for spot in spots:
        if all(spot[0] != p[0] or abs(spot[1] - p[1]) > 12 for p in picked):
            picked.append(spot)
        if len(picked) == changes:
            break
    for pi, wi in picked:
        paragraphs[pi][wi] = rng.choice([w for w in _SWAP_WORDS if w != paragraphs[pi][wi]])
    return Prose(page.title, [" ".join(p) for p in paragraphs]), len(picked)


def near_duplicate(page: Prose, rng: random.Random) -> tuple[Prose, int, float]:
    """A copy of `page` with a few words swapped, as close as a scraped mirror that
    edited a word or two; returns (copy, words changed, Jaccard to the original)."""
    for changes in (3, 2, 1):
        copy, changed = _swap_words(page, changes, rng)
        similarity = shingle_jaccard(page.text, copy.text)
        if copy.text != page.text and similarity >= MIN_NEAR_DUP_JACCARD:
            return copy, changed, similarity
    raise RuntimeError(f"cannot make a near duplicate of {page.title!r}")
