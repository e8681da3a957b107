"""The prose of the sample's good pages: paragraphs of the Python reference documentation.

The text is the standard library's `pydoc_data.topics`, so it is always available and
its licence is the PSF licence of the interpreter itself. Only prose is taken: no code,
grammar, headings or markup, and nothing the C4 and FineWeb rules act on.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache

from tasks.data.filters.text_view import has_alpha, make_view

# The Gopher quality filter wants 80% of a text's words to hold a letter; so must each paragraph.
_MIN_ALPHA_WORDS = 0.8
# A line that looks like code or grammar rather than prose.
_CODE_LINE = re.compile(
    r"[{}#]|>>>|\.\.\.|…|::=|\s=\s|;\s*$|^\s*[@]"
    r"|^\s*(def|class|import|from|return|for|while|if|elif|else|try|except|with|async|await|raise|print)\b.*[:)]\s*$"
)
# Words C4/FineWeb filters react to; good pages must not trip them by accident.
# Words the C4 rules act on, and dunder names ("__slots__"), which word tokenizers split
# into runs of "_" tokens that the Gopher alpha-word rule counts against the page.
_AVOID = re.compile(r"javascript|lorem|ipsum|cookie|privacy|terms of|__", re.IGNORECASE)
_RST_EMPHASIS = re.compile(r"\*(\S[^*]*?)\*")
_CALL_PARENS = re.compile(r"(?<=\w)\(\)")
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)\"”’][.!?])\s+(?=[A-Z“\"(])")


@dataclass(frozen=True)
class Paragraph:
    topic: str  # the heading of the documentation topic it came from
    text: str


def _topic_title(raw: str) -> str:
    first = raw.strip().split("\n", 1)[0].strip()
    return first if first and len(first) < 80 else "Python reference notes"


@cache
def prose_paragraphs() -> tuple[Paragraph, ...]:
    """Prose paragraphs of the Python reference: no code, grammar, headings or markup.
    (Computed once per process: every sample of every seed starts from them.)"""
    from pydoc_data.topics import topics

    seen: set[str] = set()
    found: list[Paragraph] = []
    for key in sorted(topics):
        raw = topics[key]
        title = _topic_title(raw)
        for block in re.split(r"\n\s*\n", raw):
            text = _prose_block(block)
            if text is not None and text not in seen:
                seen.add(text)
                found.append(Paragraph(title, text))
    return tuple(found)


def _prose_block(block: str) -> str | None:
    lines = [line for line in block.split("\n") if line.strip()]
    if not lines:
        return None
    # Indented text is code, grammar or a definition list unless it is a bullet whose
    # continuation lines line up with the bullet text.
    first = re.match(r"^(\s*)(\* |\d+\. )?", lines[0])
    indent, bullet = len(first.group(1)), first.group(2)
    if indent and not bullet:
        return None
    continuation = indent + (len(bullet) if bullet else 0)
    if any(len(line) - len(line.lstrip()) != continuation for line in lines[1:]):
        return None
    if any(set(line.strip()) <= set("*=-^~") for line in lines):  # heading underlines
        return None
    if any(_CODE_LINE.search(line) for line in lines):
        return None
    text = " ".join(line.strip() for line in lines)
    if bullet:
        text = text[len(bullet.strip()) :].strip()
    text = _RST_EMPHASIS.sub(r"\1", text)
    # pydoc renders inline code as "name()"; as plain prose it reads "name". Every quote
    # and bracket is a non-word token to the Gopher filters, which want 80% real words.
    text = _CALL_PARENS.sub("", text).replace('"', "")
    words = text.split()
    if _AVOID.search(text) or len(words) < 15 or not re.search(r"[a-z0-9)”’][.!?]$", text):
        return None
    if _alpha_word_ratio(text) < _MIN_ALPHA_WORDS:
        return None
    return text


def _alpha_word_ratio(text: str) -> float:
    """The share of words with a letter, counted on the data stage's own word tokens."""
    words = make_view(text).words
    return sum(map(has_alpha, words)) / max(len(words), 1)


def sentences_of(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def paragraph_stream(paragraphs: Sequence[Paragraph], rng: random.Random) -> Iterator[Paragraph]:
    """Original paragraphs first (topics in random order, each topic's text in its own
    order so pages read coherently); then, when those run out, new paragraphs made
    of the same topic's sentences in a new order. Every paragraph string is new, so
    trafilatura's cross-document duplicate cache never drops one."""
    by_topic: dict[str, list[Paragraph]] = {}
    for para in paragraphs:
        by_topic.setdefault(para.topic, []).append(para)
    topics = sorted(by_topic)
    emitted: set[str] = set()
    rng.shuffle(topics)
    for topic in topics:
        for para in by_topic[topic]:
            emitted.add(para.text)
            yield para
    while True:
        rng.shuffle(topics)
        produced = False
        for topic in topics:
            sentences = [s for p in by_topic[topic] for s in sentences_of(p.text) if len(s.split()) >= 5]
            rng.shuffle(sentences)
            pos = 0
            while len(sentences) - pos >= 3:
                size = min(rng.randint(3, 5), len(sentences) - pos)
                text = " ".join(sentences[pos : pos + size])
                pos += size
                if text not in emitted:
                    emitted.add(text)
                    produced = True
                    yield Paragraph(topic, text)
        if not produced:
            raise RuntimeError("pydoc_data has too little prose to build the sample")


@dataclass
class Prose:
    """The text of one page: its title and paragraphs, one line each."""

    title: str
    paragraphs: list[str]

    @property
    def text(self) -> str:
        return "\n".join([self.title, *self.paragraphs])

    @property
    def words(self) -> int:
        return sum(len(p.split()) for p in self.paragraphs)
