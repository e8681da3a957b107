"""The embedded labelled sample: a small, deterministic WARC with ground truth.

Real runs read Common Crawl. This generator writes a WARC of a few hundred web
pages whose fate in the data pipeline is known in advance, so every filter can
be scored (precision/recall per label) and the demo run has text to train on
without any download.

Good pages carry English prose taken from the standard library's
`pydoc_data.topics` (the Python reference documentation, so the text is always
available and its licence is the PSF licence of the interpreter itself),
wrapped in realistic boilerplate: navigation, a cookie banner, ads, a sidebar
and a footer that main-text extraction must drop. Bad pages are built to be
removed by one specific stage; their label is the FIRST stage, in pipeline
order, that must remove them (see `LABELS`).

Everything is derived from the seed: record ids, dates, page order and the
choice of text. gzip members carry mtime 0, so the same seed and page count
give byte-identical files on every machine with the same `pydoc_data`.
"""

from __future__ import annotations

import html as html_lib
import io
import json
import random
import re
import struct
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import magic
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from llmforge import atomic
from tasks.data.warc_reader import HTML_MIME_TYPES, decode_payload

# Pipeline order; the label of a page is the first stage that must remove it.
LABELS: tuple[str, ...] = (
    "non_html",
    "decode_error",
    "truncated",
    "url",
    "extraction",
    "language",
    "gopher_repetition",
    "gopher_quality",
    "exact_dedup",
    "minhash",
    "kept",
)
READER_LABELS: frozenset[str] = frozenset({"non_html", "decode_error", "truncated"})

# Pages per removal label in a 300-page sample; other sizes scale these.
_PER_300: dict[str, int] = {
    "non_html": 12,
    "decode_error": 10,
    "url": 12,
    "extraction": 12,
    "language": 15,
    "gopher_repetition": 12,
    "gopher_quality": 14,
    "exact_dedup": 12,
    "minhash": 12,
}
MIN_PAGES = 20
# Fixed names: the pipeline and its tests look for these in the sample directory.
WARC_NAME = "sample.warc.gz"
TRUTH_NAME = "sample.truth.jsonl"

# Good pages must pass FineWeb-style filters with a margin, whatever the
# Python version's documentation happens to contain.
_MIN_PAGE_WORDS = 150
_MIN_NEAR_DUP_JACCARD = 0.9  # the minhash stage removes pairs at >= 0.85 (5-gram shingles)
_MAX_GOOD_PAGE_OVERLAP = 0.3  # between any two good pages

_BASE_DATE = datetime(2024, 5, 6, 8, 0, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class SampleCorpus:
    warc_path: Path
    truth_path: Path  # JSONL: one object per response record: {"id", "url", "label", "note"}
    pages: int


def load_truth(path: Path) -> dict[str, str]:
    """Record id -> label, from a truth file written by `write_sample`."""
    truth: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                truth[row["id"]] = row["label"]
    return truth


def label_counts(pages: int) -> dict[str, int]:
    """How many pages of each label a sample of `pages` pages has."""
    if pages < MIN_PAGES:
        raise ValueError(f"the sample needs at least {MIN_PAGES} pages to hold every label, got {pages}")
    counts = {label: max(1, round(pages * n / 300)) for label, n in _PER_300.items()}
    counts["truncated"] = 1
    counts["kept"] = pages - sum(counts.values())
    return {label: counts[label] for label in LABELS}


# ----------------------------------------------------------------- prose source

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
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class _Paragraph:
    topic: str  # the heading of the documentation topic it came from
    text: str


def _topic_title(raw: str) -> str:
    first = raw.strip().split("\n", 1)[0].strip()
    return first if first and len(first) < 80 else "Python reference notes"


def _prose_paragraphs() -> list[_Paragraph]:
    """Prose paragraphs of the Python reference: no code, grammar, headings or markup."""
    from pydoc_data.topics import topics

    seen: set[str] = set()
    found: list[_Paragraph] = []
    for key in sorted(topics):
        raw = topics[key]
        title = _topic_title(raw)
        for block in re.split(r"\n\s*\n", raw):
            text = _prose_block(block)
            if text is not None and text not in seen:
                seen.add(text)
                found.append(_Paragraph(title, text))
    return found


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
    if _alpha_token_ratio(text) < 0.8:
        return None
    return text


def _alpha_token_ratio(text: str) -> float:
    tokens = _TOKEN.findall(text)
    return sum(1 for t in tokens if any(ch.isalpha() for ch in t)) / max(len(tokens), 1)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _paragraph_stream(paragraphs: list[_Paragraph], rng: random.Random) -> Iterator[_Paragraph]:
    """Original paragraphs first (topics in random order, each topic's text in its own
    order so pages read coherently); then, when those run out, new paragraphs made
    of the same topic's sentences in a new order. Every paragraph string is new, so
    trafilatura's cross-document duplicate cache never drops one."""
    by_topic: dict[str, list[_Paragraph]] = {}
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
            sentences = [s for p in by_topic[topic] for s in _sentences(p.text) if len(s.split()) >= 5]
            rng.shuffle(sentences)
            pos = 0
            while len(sentences) - pos >= 3:
                size = min(rng.randint(3, 5), len(sentences) - pos)
                text = " ".join(sentences[pos : pos + size])
                pos += size
                if text not in emitted:
                    emitted.add(text)
                    produced = True
                    yield _Paragraph(topic, text)
        if not produced:
            raise RuntimeError("pydoc_data has too little prose to build the sample")


@dataclass
class _Prose:
    title: str
    paragraphs: list[str]

    @property
    def text(self) -> str:
        return "\n".join([self.title, *self.paragraphs])

    @property
    def words(self) -> int:
        return sum(len(p.split()) for p in self.paragraphs)


def _good_pages(count: int, rng: random.Random) -> list[_Prose]:
    stream = _paragraph_stream(_prose_paragraphs(), rng)
    pages: list[_Prose] = []
    titles: Counter[str] = Counter()
    pending: _Paragraph | None = None
    similar = _SimilarityIndex()
    while len(pages) < count:
        target = rng.randint(170, 320)
        first = pending or next(stream)
        pending = None
        chosen = [first.text]
        page_sentences = set(_sentences(first.text))
        while len(chosen) < 8 and sum(len(p.split()) for p in chosen) < target:
            para = next(stream)
            words = sum(len(p.split()) for p in chosen)
            if para.topic != first.topic and len(chosen) >= 3 and words >= _MIN_PAGE_WORDS + 20:
                pending = para  # start the next page with the next topic
                break
            sentences = set(_sentences(para.text))
            if sentences & page_sentences:  # a repeated sentence would be a duplicated line
                continue
            chosen.append(para.text)
            page_sentences |= sentences
        titles[first.topic] += 1
        title = first.topic if titles[first.topic] == 1 else f"{first.topic} (part {titles[first.topic]})"
        page = _Prose(title, chosen)
        # Later passes reuse sentences; a page too close to an earlier one would be a
        # near-duplicate that the minhash stage rightly removes, so it cannot be "kept".
        if _passes_quality(page) and similar.max_overlap(page.text) < _MAX_GOOD_PAGE_OVERLAP:
            similar.add(page.text)
            pages.append(page)
    return pages


class _SimilarityIndex:
    """Shingle -> pages index, to find the most similar earlier page quickly."""

    def __init__(self) -> None:
        self._pages: list[int] = []  # shingle count per page
        self._index: dict[tuple[str, ...], list[int]] = {}

    def max_overlap(self, text: str) -> float:
        """Largest Jaccard similarity between `text` and any page added so far."""
        own = shingles(text)
        shared: Counter[int] = Counter()
        for gram in own:
            shared.update(self._index.get(gram, ()))
        return max((n / (len(own) + self._pages[page] - n) for page, n in shared.items()), default=0.0)

    def add(self, text: str) -> None:
        own = shingles(text)
        number = len(self._pages)
        self._pages.append(len(own))
        for gram in own:
            self._index.setdefault(gram, []).append(number)


def _passes_quality(page: _Prose) -> bool:
    """A good page must pass the text filters with room to spare, since the pipeline's
    tokeniser and sentence splitter differ a little from the approximation here."""
    return page.words >= _MIN_PAGE_WORDS and len(page.paragraphs) >= 3 and not text_checks(page.text, strict=True)


# ------------------------------------------------- text filters, approximately
# Independent, approximate versions of the FineWeb text filters (datatrove's
# definitions, the thresholds of llmforge.config), used to build pages that
# clearly pass or clearly fail them and to test the labels. They are not the
# pipeline's filters (those live in tasks/data/filters).

_TOKEN = re.compile(r"\.{2,}|…|\w+(?:[-.'’]\w+)*|[^\w\s]")
_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~“”‘’…–—«»")
_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_TERMINAL = (".", "!", "?", '"', "'", "”", "’")


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(repeated items, their characters), counting every occurrence after the first."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def _top_ngram_chars(tokens: list[str], n: int) -> int:
    grams = Counter(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    if not grams:
        return 0
    # As in datatrove: the most frequent n-gram counts even when it occurs only once.
    gram, count = grams.most_common(1)[0]
    return len(gram) * count


def _repeated_ngram_chars(tokens: list[str], n: int) -> int:
    """Characters inside n-grams seen before; a repeat is skipped over as a whole."""
    seen: set[str] = set()
    chars, i = 0, 0
    while i <= len(tokens) - n:
        gram = "".join(tokens[i : i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def text_checks(text: str, strict: bool = False) -> list[str]:
    """Names ("stage:check") of the FineWeb-recipe text checks that `text` fails.

    `strict` tightens every limit, for text that must pass with a margin.
    """
    tight = 0.7 if strict else 1.0  # scales the upper limits on ratios
    failed: list[str] = []
    tokens = _TOKEN.findall(text)
    n_tokens = max(len(tokens), 1)
    length = max(len(text), 1)

    paragraphs = [p for p in re.split(r"\n{2,}", text.strip()) if p]
    lines = [line for line in re.split(r"\n+", text.strip()) if line]
    dup_paras, dup_para_chars = _duplicates(paragraphs)
    dup_lines, dup_line_chars = _duplicates(lines)
    rep = "gopher_repetition:"
    if dup_paras / max(len(paragraphs), 1) > 0.3 * tight:
        failed.append(rep + "dup_para_frac")
    if dup_para_chars / length > 0.2 * tight:
        failed.append(rep + "dup_para_char_frac")
    if dup_lines / max(len(lines), 1) > 0.3 * tight:
        failed.append(rep + "dup_line_frac")
    if dup_line_chars / length > 0.2 * tight:
        failed.append(rep + "dup_line_char_frac")
    for n, limit in ((2, 0.2), (3, 0.18), (4, 0.16)):
        if _top_ngram_chars(tokens, n) / length > limit * tight:
            failed.append(f"{rep}top_{n}_gram")
    for n, limit in ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)):
        if _repeated_ngram_chars(tokens, n) / length > limit * tight:
            failed.append(f"{rep}dup_{n}_gram")

    quality = "gopher_quality:"
    words = [t for t in tokens if any(ch not in _PUNCT for ch in t)]
    if len(words) < (_MIN_PAGE_WORDS if strict else 50):
        failed.append(quality + "short_doc")
    low, high = (3.5, 9.0) if strict else (3.0, 10.0)
    if not low <= sum(len(w) for w in words) / max(len(words), 1) <= high:
        failed.append(quality + "avg_word_length")
    if text.count("#") / n_tokens > 0.1 * tight:
        failed.append(quality + "hash_ratio")
    if (text.count("...") + text.count("…")) / n_tokens > 0.1 * tight:
        failed.append(quality + "ellipsis_ratio")
    if sum(1 for line in lines if line.lstrip().startswith(("•", "-"))) / max(len(lines), 1) > 0.9 * tight:
        failed.append(quality + "bullet_lines")
    if sum(1 for line in lines if line.rstrip().endswith(("...", "…"))) / max(len(lines), 1) > 0.3 * tight:
        failed.append(quality + "ellipsis_lines")
    if sum(1 for t in tokens if any(ch.isalpha() for ch in t)) / n_tokens < (0.84 if strict else 0.8):
        failed.append(quality + "alpha_words")
    if sum(1 for t in tokens if t in _STOP_WORDS) < (4 if strict else 2):
        failed.append(quality + "stop_words")

    # C4 as FineWeb configures it: line-level removals first, then whole-document rules.
    c4_lines = [
        line
        for line in lines
        if len(line.split()) >= 3 and "javascript" not in line.lower() and not any(p in line.lower() for p in _POLICY)
    ]
    if "{" in text:
        failed.append("c4:curly_bracket")
    if "lorem ipsum" in text.lower():
        failed.append("c4:lorem_ipsum")
    sentences = sum(len(re.findall(r"[.!?](?=\s|$)", line)) or 1 for line in c4_lines)
    if sentences < (8 if strict else 5):
        failed.append("c4:too_few_sentences")

    fineweb = "fineweb_quality:"
    if sum(1 for line in lines if line.rstrip().endswith(_TERMINAL)) / max(len(lines), 1) < (0.3 if strict else 0.12):
        failed.append(fineweb + "line_punct_ratio")
    if sum(1 for line in lines if len(line) < 30) / max(len(lines), 1) > 0.67 * tight:
        failed.append(fineweb + "short_line_ratio")
    if dup_line_chars / length > 0.01 * tight:
        failed.append(fineweb + "char_dup_ratio")
    if text.count("\n") / n_tokens > 0.3 * tight:
        failed.append(fineweb + "list_ratio")
    return failed


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """Word n-gram shingles of lower-cased text, as near-duplicate detection compares them."""
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(max(len(words) - n + 1, 1))}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


_SWAP_WORDS = (
    "value", "object", "method", "result", "module", "program", "function", "instance", "argument", "variable",
)


def _near_duplicate(page: _Prose, rng: random.Random) -> tuple[_Prose, int, float]:
    """A copy of `page` with a few words swapped, as close as a scraped mirror that
    edited a word or two; returns (copy, words changed, Jaccard to the original)."""
    for changes in (3, 2, 1):
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
        copy = _Prose(page.title, [" ".join(p) for p in paragraphs])
        similarity = jaccard(page.text, copy.text)
        if copy.text != page.text and similarity >= _MIN_NEAR_DUP_JACCARD:
            return copy, len(picked), similarity
    raise RuntimeError(f"cannot make a near duplicate of {page.title!r}")


# ------------------------------------------------------------ non-English prose
# Original sentences written for this fixture (not taken from any corpus).

_FOREIGN: dict[str, tuple[str, list[str]]] = {
    "de": (
        "German",
        [
            "Am Samstag fährt der erste Zug schon um halb sechs vom Hauptbahnhof ab.",
            "Meine Nachbarin backt jeden Sonntag einen Apfelkuchen für die ganze Familie.",
            "Im Herbst färben sich die Blätter im Stadtpark gelb und rot.",
            "Die Bibliothek bleibt während der Ferien nur vormittags geöffnet.",
            "Wer mit dem Fahrrad zur Arbeit fährt, spart Geld und bleibt gesund.",
            "Der Wetterbericht kündigt für morgen kräftigen Regen und starken Wind an.",
            "Auf dem Wochenmarkt gibt es frisches Gemüse direkt vom Bauernhof.",
            "Unsere Schule hat in diesem Jahr einen neuen Garten angelegt.",
            "Nach dem Abendessen gehen wir oft noch eine Runde am Fluss spazieren.",
            "Das Museum zeigt eine Ausstellung über die Geschichte der Schifffahrt.",
            "Die Kinder haben im Sommer gelernt, wie man ein Zelt richtig aufbaut.",
            "Im Winter trinken viele Menschen gern einen heißen Tee mit Honig.",
            "Der Bäcker an der Ecke verkauft das beste Brot in der ganzen Straße.",
            "Für die Reise nach Hamburg haben wir die Fahrkarten früh gebucht.",
            "Mein Großvater erzählt gern Geschichten aus seiner Jugend auf dem Land.",
            "Die Stadt plant, im nächsten Frühjahr mehr Bäume an den Straßen zu pflanzen.",
            "Beim Umzug haben uns drei Freunde den ganzen Tag geholfen.",
            "Das Konzert im alten Theater war schon nach wenigen Stunden ausverkauft.",
            "In der Küche riecht es nach frischem Kaffee und warmen Brötchen.",
            "Am Wochenende besuchen wir die Großeltern, die am See wohnen.",
        ],
    ),
    "fr": (
        "French",
        [
            "Le marché du samedi matin attire beaucoup de monde sur la place du village.",
            "Ma sœur apprend à jouer du piano depuis le début de l'automne.",
            "Les trains régionaux sont souvent en retard quand il neige en montagne.",
            "Nous avons préparé une soupe de légumes avec les carottes du jardin.",
            "La bibliothèque municipale organise des lectures pour les enfants chaque mercredi.",
            "Après le travail, mon voisin promène son chien le long du canal.",
            "Le musée de la ville présente une exposition sur les anciens métiers.",
            "Il faut arroser les tomates tous les soirs pendant les semaines chaudes.",
            "Les étudiants se retrouvent à la cafétéria pour réviser ensemble.",
            "Cette boulangerie vend des croissants encore chauds dès six heures.",
            "Pendant les vacances, nous avons visité plusieurs châteaux au bord de la Loire.",
            "Le vent souffle fort sur la côte bretonne depuis trois jours.",
            "Mon grand-père répare lui-même les vieilles horloges de la maison.",
            "La mairie a décidé de construire une nouvelle piste cyclable près de l'école.",
            "Le dimanche, toute la famille se réunit autour d'un long repas.",
            "Les enfants ont construit une cabane en bois au fond du jardin.",
            "On annonce de la pluie pour demain, alors prenez un parapluie.",
            "Le petit cinéma du quartier projette surtout des films anciens.",
            "Elle écrit chaque soir quelques pages dans son carnet de voyage.",
            "Les pêcheurs rentrent au port tôt le matin avec leurs filets pleins.",
        ],
    ),
    "es": (
        "Spanish",
        [
            "Los domingos por la mañana el mercado del barrio se llena de gente.",
            "Mi abuela prepara una tortilla de patatas que nadie puede igualar.",
            "El autobús que va al centro pasa cada quince minutos por esta calle.",
            "En primavera los naranjos del parque llenan el aire de un olor muy dulce.",
            "La biblioteca pública ofrece talleres de lectura para niños y mayores.",
            "Después de cenar solemos dar un paseo tranquilo por la playa.",
            "El museo de la ciudad tiene una colección muy bonita de cerámica antigua.",
            "Este verano hemos aprendido a cultivar tomates y pimientos en el balcón.",
            "Mi hermano trabaja en un taller donde reparan bicicletas viejas.",
            "Cuando llueve mucho, el río que cruza el pueblo sube bastante.",
            "Los estudiantes se reúnen en la plaza para preparar los exámenes.",
            "La panadería de la esquina abre muy temprano y siempre huele a pan recién hecho.",
            "Durante las fiestas del pueblo hay música en la calle hasta muy tarde.",
            "Mi vecino colecciona sellos de todos los países que ha visitado.",
            "El tren de la costa ofrece unas vistas preciosas del mar.",
            "Para la cena de esta noche vamos a preparar una sopa de verduras.",
            "En invierno la sierra se cubre de nieve y muchas familias van a esquiar.",
            "El ayuntamiento quiere plantar más árboles en las avenidas principales.",
            "Mis amigos y yo jugamos al fútbol en el parque todos los sábados.",
            "La profesora nos recomendó leer una novela corta cada mes.",
        ],
    ),
}
_FOREIGN_TITLES = {
    "de": ["Neuigkeiten aus der Nachbarschaft", "Unser Alltag in der Stadt", "Notizen vom Wochenende"],
    "fr": ["Nouvelles du quartier", "La vie de tous les jours", "Carnet du week-end"],
    "es": ["Noticias del barrio", "La vida en la ciudad", "Notas del fin de semana"],
}


def _foreign_page(lang: str, rng: random.Random, used: set[str]) -> _Prose:
    _, pool = _FOREIGN[lang]
    for _attempt in range(100):
        sentences = rng.sample(pool, k=min(len(pool), rng.randint(12, 16)))
        paragraphs, pos = [], 0
        while pos < len(sentences):
            size = rng.randint(3, 4)
            paragraphs.append(" ".join(sentences[pos : pos + size]))
            pos += size
        if not used & set(paragraphs):  # each paragraph string once in the corpus
            used.update(paragraphs)
            return _Prose(rng.choice(_FOREIGN_TITLES[lang]), paragraphs)
    raise RuntimeError(f"cannot compose a new {lang} page")


# ---------------------------------------------------------- low-quality English

_SPAM_TOPICS = [
    ("cheap flights to Lisbon", "Book your"),
    ("best garden furniture deals", "Shop the"),
    ("discount running shoes online", "Order"),
    ("free phone case with every order", "Claim a"),
    ("cheap car insurance quotes", "Compare"),
    ("luxury watches at outlet prices", "Buy"),
    ("last minute hotel rooms in Prague", "Reserve"),
    ("wholesale coffee beans", "Get"),
    ("fast payday loans today", "Apply for"),
    ("organic dog food delivery", "Try"),
    ("used laptops with warranty", "Find"),
    ("bamboo bed sheets on sale", "See the"),
]

# Notices of 30-40 words: under the Gopher minimum of 50, but long enough in characters
# that no single n-gram covers a large share of the text (datatrove's top-n-gram rule
# counts the most frequent n-gram even when it occurs once, which trips tiny texts).
_SHORT_NOTICES = [
    "The north reading room will be closed on Monday for maintenance. Please use the south entrance "
    "until the work is finished. Borrowed books can still be returned through the letterbox beside the main door.",
    "Our office moves to the second floor next week. Telephone numbers stay the same, and the post room "
    "opens as usual. Visitors should report to reception, where someone will accompany them upstairs.",
    "The swimming pool opens an hour later on Friday because of a school competition. Evening sessions "
    "are not affected. Members who booked early lanes will receive an email offering another time slot.",
    "Registration for the spring pottery course ends on Thursday. A few places are still free in the "
    "evening group. Beginners are welcome, and clay, tools and aprons are provided by the studio.",
    "The bridge on Mill Road is closed to cars until the end of the month. Cyclists and walkers can still "
    "cross it. Delivery vans should follow the yellow diversion signs through Station Street.",
    "This week the farm shop sells fresh strawberries and early potatoes. Come early because they sell out "
    "quickly. Customers may bring their own baskets, which helps us reduce packaging waste.",
    "Choir rehearsal moves from Tuesday to Wednesday this week. We meet at seven in the church hall as "
    "usual. Please bring the new sheet music that was handed out during the last meeting.",
    "The museum cafe is closed today for a private event. Visitors can find drinks and snacks in the garden "
    "kiosk. Galleries, shop and cloakroom remain open during normal hours.",
    "Bus line twelve takes a short detour through Station Street while roadworks last. All other stops "
    "stay the same. Expect delays of around ten minutes during the morning rush hour.",
    "The library will accept donated books again from next month. Please bring them to the front desk in "
    "boxes. Damaged volumes, magazines and old encyclopedias cannot be accepted.",
]

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")

_HASHTAGS = [
    "#gardening", "#weekend", "#diy", "#family", "#homegrown", "#summer", "#sunshine", "#nofilter", "#bakingday",
    "#coffeetime", "#travelgram", "#hiking", "#mountains", "#beachlife", "#foodie", "#instagood", "#photooftheday",
    "#love", "#happy", "#motivation", "#fitness", "#runner", "#booklover", "#reading", "#cozy", "#autumnvibes",
    "#springtime", "#citylife", "#streetphotography", "#dogsofinstagram", "#catlover", "#vegan", "#healthyfood",
    "#musiclover", "#roadtrip", "#adventure", "#sunset", "#friends", "#goodvibes", "#blessed",
]
_POST_SENTENCES = [
    "Spent the whole weekend fixing the old fence behind the garden with the kids.",
    "We finally tried the new bakery near the station and the bread was worth the queue.",
    "Morning run along the river before work, the light was just beautiful today.",
    "Finished my third book this month and I already want to read it again.",
    "The tomatoes are growing faster than we can eat them, so expect some jars of sauce soon.",
    "A long walk in the hills with friends, a picnic on the top and rain on the way back.",
    "Our dog met the neighbours' new puppy and they played for an hour in the yard.",
    "Tried a new recipe for lentil soup tonight and everyone asked for a second bowl.",
    "The road trip took longer than planned but the views along the coast were amazing.",
    "First swim of the year in the lake and the water was colder than it looked.",
    "Rearranged the whole living room on a rainy Sunday and it feels like a new flat.",
    "Caught the last concert of the summer festival with my sister and her friends.",
]
_TEASERS = [
    "Ten ways to keep your garden green through the dry summer months",
    "What the new parking rules mean for people who live in the old town",
    "Local bakery wins a prize for the best rye bread in the region",
    "Why so many families are moving from the city to the small villages",
    "The surprising history of the lighthouse on the northern cliffs",
    "Five easy dinners you can cook in less than twenty minutes",
    "How the football club plans to rebuild its stadium next year",
    "A retired teacher walks the whole coast path for a good cause",
    "New cycle lanes divide opinion among shop owners and residents",
    "The best places to watch the autumn birds from the marshes",
    "Our reporter spends one night with the harbour rescue team",
    "Why the price of apples changed so much at the farmers market",
    "Three young musicians open a small studio in the former post office",
    "How to choose a good winter coat without spending too much money",
]


def _spam_page(rng: random.Random, index: int) -> tuple[_Prose, str]:
    phrase, verb = rng.choice(_SPAM_TOPICS)
    if index % 2 == 0:
        # One paragraph of keyword stuffing: the top n-grams dominate the text.
        times = rng.randint(25, 35)
        stuffed = " ".join(f"{phrase.capitalize()}, {verb.lower()} {phrase} now." for _ in range(times))
        intro = f"{verb} {phrase} here and save more than anywhere else this season."
        return _Prose(phrase.title(), [intro, stuffed]), f"keyword stuffing: '{phrase}' x{times} in one paragraph"
    # Many identical short lines: under trafilatura's 100-character duplicate check,
    # so they survive extraction and show up as duplicated lines.
    line = f"{verb} {phrase} today, limited offer!"
    times = rng.randint(15, 22)
    return _Prose(phrase.title(), [line] * times + [f"Questions about {phrase}? Our team answers every day."]), (
        f"the same line repeated x{times}"
    )


def _fails_first(text: str, stage: str) -> bool:
    """Does `text` fail `stage` while clearly passing the Gopher repetition stage before it?
    (Short texts trip the top-n-gram limits easily: a 3-gram said twice is enough.)"""
    if not any(f.startswith(stage + ":") for f in text_checks(text)):
        return False
    return stage == "gopher_repetition" or not any(
        f.startswith("gopher_repetition:") for f in text_checks(text, strict=True)
    )


def _low_quality_page(rng: random.Random, index: int) -> tuple[_Prose, str]:
    kind = index % 3
    if kind == 0:
        notice = rng.choice(_SHORT_NOTICES)
        posted = f"Posted on {rng.randint(1, 28)} {rng.choice(_MONTHS)}."
        # Several paragraphs: trafilatura's precision mode discards a lone short paragraph
        # on some layouts, and this page must reach the quality filter.
        paragraphs = [*_sentences(notice), posted]
        return _Prose("Notice", paragraphs), f"too short: {sum(len(p.split()) for p in paragraphs) + 1} words"
    if kind == 1:
        sentences = rng.sample(_POST_SENTENCES, k=5)
        tags = rng.sample(_HASHTAGS, k=len(_HASHTAGS))
        paragraphs = [f"{s} {' '.join(tags[i * 4 : i * 4 + 4])}" for i, s in enumerate(sentences)]
        words = sum(len(p.split()) for p in paragraphs)
        return _Prose("My week in pictures", paragraphs), f"symbol-heavy: 20 hashtags in {words} words"
    teasers = rng.sample(_TEASERS, k=9)
    return _Prose("More stories", [f"{t}..." for t in teasers]), "every line is a teaser ending in '...'"


# ---------------------------------------------------------------- HTML templates


@dataclass(frozen=True)
class _Site:
    name: str
    host: str
    path_prefix: str


def _html_page(prose: _Prose, site: _Site, skin: int, lang: str, related: list[str]) -> str:
    title = html_lib.escape(prose.title, quote=False)
    body = "\n".join(f"<p>{html_lib.escape(p, quote=False)}</p>" for p in prose.paragraphs)
    links = "".join(
        f'<li><a href="{site.path_prefix}{_slug(r)}/">{html_lib.escape(r, quote=False)}</a></li>' for r in related
    )
    return _SKINS[skin % len(_SKINS)].format(
        lang=lang, title=title, site=site.name, article=body, related=links, host=site.host
    )


_HEAD = (
    '<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    "<title>{title} | {site}</title>\n"
    '<link rel="stylesheet" href="/static/main.css">\n'
    "<script>window.dataLayer = window.dataLayer || []; window.dataLayer.push(['init']);</script>\n"
    "</head>\n"
)
# A consent-manager style banner: the text sits in an open <dialog>, which trafilatura
# discards even on pages where nothing else is left to extract.
_COOKIE_BANNER = (
    '<div id="cookie-banner" class="cookie-consent"><dialog open aria-label="Cookie consent">'
    "<p>This website uses cookies to give you the best experience. By continuing to browse you agree "
    'to our use of cookies. Read our <a href="/privacy/">Privacy Policy</a> and '
    '<a href="/cookies/">Cookie Policy</a>.</p><button type="button">Accept all cookies</button></dialog></div>\n'
)
_FOOTER = (
    '<footer class="site-footer">\n<p>Copyright © 2024 {site}. All rights reserved.</p>\n'
    '<ul><li><a href="/terms/">Terms of Use</a></li><li><a href="/privacy/">Privacy Policy</a></li>'
    '<li><a href="/contact/">Contact us</a></li></ul>\n</footer>\n</body>\n</html>\n'
)
_SKINS = [
    # A documentation mirror.
    _HEAD
    + "<body>\n"
    + '<header class="site-header"><a class="logo" href="/">{site}</a>'
    '<form action="/search" role="search">'
    '<input type="search" name="q" placeholder="Search the docs"></form></header>\n'
    '<nav class="main-nav"><ul><li><a href="/">Home</a></li><li><a href="/topics/">All topics</a></li>'
    '<li><a href="/downloads/">Downloads</a></li><li><a href="/community/">Community</a></li>'
    '<li><a href="/about/">About</a></li></ul></nav>\n'
    + _COOKIE_BANNER
    + '<div class="ad ad-leaderboard"><a href="https://ads.example.net/click?slot=top">'
    '<img src="https://ads.example.net/banner-728x90.png" alt="Advertisement"></a>'
    "<span>Sponsored: fast cloud hosting for your side projects</span></div>\n"
    '<div class="layout">\n<article class="doc">\n<h1>{title}</h1>\n{article}\n</article>\n'
    '<aside class="sidebar"><h2>Related topics</h2><ul>{related}</ul>'
    '<div class="ad ad-sidebar">Advertisement: learn a new language in thirty days</div></aside>\n</div>\n'
    + _FOOTER,
    # A personal blog.
    _HEAD
    + '<body class="blog">\n'
    + '<header><div class="brand"><a href="/">{site}</a>'
    '<span class="tagline">Notes on programming and tools</span></div>'
    '<nav><a href="/">Blog</a> | <a href="/archive/">Archive</a> | <a href="/tags/">Tags</a> | '
    '<a href="/feed.xml">RSS feed</a> | <a href="/about/">About me</a></nav></header>\n'
    + _COOKIE_BANNER
    + '<main>\n<article class="post">\n<header><h1>{title}</h1>'
    '<p class="byline">Posted in <a href="/tags/python/">Python</a></p></header>\n'
    '<div class="entry-content">\n{article}\n</div>\n</article>\n'
    '<aside class="newsletter"><h2>Subscribe</h2><p>Get new posts by email. No spam, unsubscribe at any time.</p>'
    '<form><input type="email" name="email"><button>Subscribe</button></form></aside>\n</main>\n'
    '<aside class="widgets"><h2>Recent posts</h2><ul>{related}</ul>'
    '<div class="sponsor">Sponsored: the keyboard our readers love</div></aside>\n'
    + _FOOTER,
    # A magazine-style site.
    _HEAD
    + "<body>\n"
    + '<div class="topbar"><a href="/login/">Sign in</a> <a href="/subscribe/">Subscribe</a></div>\n'
    '<header class="masthead"><a href="/" class="logo">{site}</a></header>\n'
    '<nav class="sections"><ul><li><a href="/news/">News</a></li><li><a href="/guides/">Guides</a></li>'
    '<li><a href="/reviews/">Reviews</a></li><li><a href="/events/">Events</a></li></ul></nav>\n'
    + _COOKIE_BANNER
    + '<div class="ad-slot" data-slot="header">Advertisement</div>\n'
    '<div class="page">\n<main id="content">\n<article>\n<h1 class="headline">{title}</h1>\n'
    '<div class="article-body">\n{article}\n</div>\n</article>\n</main>\n'
    '<aside class="rail"><h3>Most read</h3><ol>{related}</ol>'
    '<div class="ad-slot" data-slot="rail">Sponsored: compare broadband deals near you</div></aside>\n</div>\n'
    + _FOOTER,
]
# Boilerplate strings that must never reach the extracted main text of a kept page.
BOILERPLATE_MARKERS: tuple[str, ...] = (
    "uses cookies",
    "Accept all cookies",
    "Privacy Policy",
    "All rights reserved",
    "Sponsored",
    "Advertisement",
    "All topics",
    "Related topics",
    "Recent posts",
    "Most read",
    "Get new posts by email",
    "Search the docs",
    "Sign in",
)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "page"


def _extraction_failure_page(rng: random.Random, index: int, site: _Site) -> tuple[str, str]:
    """Pages with no main text at all: what is left after boilerplate removal is empty."""
    kind = index % 4
    head = _HEAD.format(lang="en", title=f"Page {index}", site=site.name)
    nav = (
        '<nav class="main-nav"><ul><li><a href="/">Home</a></li><li><a href="/topics/">All topics</a></li>'
        '<li><a href="/about/">About</a></li></ul></nav>\n'
    )
    if kind == 0:
        images = "".join(
            f'<figure><img src="/photos/{rng.randrange(10**6):06d}.jpg" alt=""></figure>'
            for _ in range(rng.randint(4, 9))
        )
        body, note = f'<div class="gallery">{images}</div>', "image gallery only"
    elif kind == 1:
        links = "".join(
            f'<li><a href="/section/{rng.randrange(10**5)}/">Section {i + 1}</a></li>'
            for i in range(rng.randint(8, 16))
        )
        body, note = f'<nav class="sitemap"><ul>{links}</ul></nav>', "navigation links only"
    elif kind == 2:
        body = (
            '<form class="login" action="/login" method="post"><label>User name <input name="user"></label>'
            '<label>Password <input type="password" name="pw"></label><button>Sign in</button></form>'
        )
        note = "login form only"
    else:
        body = (
            '<div id="app" data-build="' + f"{rng.randrange(16**8):08x}" + '"></div>'
            '<noscript>Please enable scripts.</noscript><script src="/static/app.bundle.js"></script>'
        )
        note = "empty single-page-app shell"
    page = head + "<body>\n" + nav + _COOKIE_BANNER + f"<main>{body}</main>\n" + _FOOTER.format(site=site.name)
    return page, note


# ------------------------------------------------------------- non-HTML payloads


def _png(width: int, height: int, rng: random.Random) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(width * 3)) for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def _non_html_payload(rng: random.Random, index: int) -> tuple[bytes, str, str, str]:
    """(body, HTTP Content-Type, true MIME type, path) of a response that is not a web page."""
    kind = index % 4
    if kind == 0:
        items = [{"id": rng.randrange(10**6), "score": round(rng.random(), 4)} for _ in range(rng.randint(2, 6))]
        body = json.dumps({"items": items, "page": index}, sort_keys=True).encode()
        return body, "application/json", "application/json", f"/api/v1/items?page={index}"
    if kind == 1:
        image = _png(rng.randint(4, 12), rng.randint(4, 12), rng)
        return image, "image/png", "image/png", f"/static/img/thumb-{index}.png"
    if kind == 2:
        body = f"User-agent: *\nDisallow: /private/\nDisallow: /tmp/{index}/\nCrawl-delay: {rng.randint(1, 9)}\n"
        return body.encode(), "text/plain", "text/plain", f"/robots-{index}.txt"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        + "".join(f"<url><loc>https://example.org/page/{rng.randrange(10**5)}</loc></url>" for _ in range(4))
        + "</urlset>\n"
    ).encode()
    return body, "application/xml", "text/xml", f"/sitemap-{index}.xml"


def _undecodable_payload(prose: _Prose, rng: random.Random, index: int, site: _Site) -> tuple[bytes, str]:
    """An HTML page with bytes that are neither UTF-8 nor anything cchardet can name."""
    page = _html_page(prose, site, index, "en", []).encode("utf-8")
    for _attempt in range(50):
        if index % 2 == 0:
            # A gzip-compressed body served without its Content-Encoding header.
            compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
            body = compressor.compress(page + bytes(rng.randrange(256) for _ in range(16))) + compressor.flush()
            note = "gzip-compressed body without Content-Encoding"
        else:
            # A page whose middle was overwritten by binary junk (a broken upstream cache).
            cut = len(page) // 2
            junk = bytes(rng.randrange(128, 256) for _ in range(rng.randint(200, 600)))
            body = page[:cut] + junk + page[cut:]
            note = "binary junk inside the HTML"
        if decode_payload(body)[0] is None:
            return body, note
    raise RuntimeError("cannot build an undecodable payload")


# ---------------------------------------------------------------- the writer


@dataclass
class _Page:
    label: str
    url: str
    body: bytes
    content_type: str  # HTTP Content-Type
    payload_type: str | None  # WARC-Identified-Payload-Type, None to make readers sniff
    note: str
    source: _Page | None = None  # the page this one copies
    skin: int = 0  # which site template wraps the text
    record_id: str = ""
    date: str = ""


_SITE_NAMES = ["PyDocs Mirror", "Reference Notes", "The Python Handbook", "Code Reading Club", "Interpreter Weekly"]
_BANNED_URLS = [
    "https://www.cialis-discount.example.com/guides/{slug}",
    "https://free-porn-videos.example.net/blog/{slug}",
    "https://xxx.example-media.com/articles/{slug}",
    "https://cheap-viagra-pills.example.org/info/{slug}",
    "https://www.example-tube.net/xxx/{slug}",
    "https://porn.example-reviews.com/{slug}",
    "https://www.example.org/porn/{slug}",
    "https://viagra-shop.example.net/notes/{slug}",
    "https://www.example.com/bdsm/read/{slug}",
]


def _sites(rng: random.Random) -> list[_Site]:
    sites = []
    for n in range(1, 9):
        name = f"{_SITE_NAMES[n % len(_SITE_NAMES)]} {n}"
        sites.append(_Site(name, f"docs-mirror-{n}.example.org", "/topics/"))
    rng.shuffle(sites)
    return sites


def _plan(seed: int, pages: int) -> list[_Page]:
    counts = label_counts(pages)
    rng = random.Random(f"llmforge-sample:{seed}")
    sites = _sites(rng)
    good = _good_pages(counts["kept"] + counts["url"] + counts["decode_error"] + counts["truncated"], rng)
    kept_prose = good[: counts["kept"]]
    rest = good[counts["kept"] :]
    used_foreign: set[str] = set()
    slugs: Counter[tuple[str, str]] = Counter()

    def url_for(site: _Site, title: str) -> str:
        slug = _slug(title)
        slugs[(site.host, slug)] += 1
        suffix = f"-{slugs[(site.host, slug)]}" if slugs[(site.host, slug)] > 1 else ""
        return f"https://{site.host}{site.path_prefix}{slug}{suffix}/"

    def html_page(label: str, prose: _Prose, note: str, lang: str = "en", url: str | None = None) -> _Page:
        site = rng.choice(sites)
        skin = rng.randrange(len(_SKINS))
        related = [p.title for p in rng.sample(kept_prose, k=min(4, len(kept_prose)))]
        body = _html_page(prose, site, skin, lang, related).encode("utf-8")
        # Most crawlers record the detected payload type; leave it out on some pages so
        # that readers must sniff the body.
        payload_type = "text/html" if rng.random() < 0.8 else None
        return _Page(
            label, url or url_for(site, prose.title), body, "text/html; charset=utf-8", payload_type, note, skin=skin
        )

    plan: list[_Page] = []
    kept_pages = [html_page("kept", prose, f"{prose.words} words of prose") for prose in kept_prose]
    plan.extend(kept_pages)

    for i in range(counts["url"]):
        prose = rest.pop()
        url = _BANNED_URLS[i % len(_BANNED_URLS)].format(slug=f"{_slug(prose.title)}-{i + 1}")
        plan.append(html_page("url", prose, "good prose on a URL with a blocked word", url=url))
    for i in range(counts["non_html"]):
        site = rng.choice(sites)
        body, content_type, mime, path = _non_html_payload(rng, i)
        payload_type = mime if i % 3 != 2 else None
        url = f"https://{site.host}{path}"
        plan.append(_Page("non_html", url, body, content_type, payload_type, f"{mime} response"))
    for i in range(counts["decode_error"]):
        site = rng.choice(sites)
        prose = rest.pop()
        body, note = _undecodable_payload(prose, rng, i, site)
        payload_type = "text/html" if i % 3 != 2 or body[:2] == b"\x1f\x8b" else None
        url = url_for(site, prose.title)
        plan.append(_Page("decode_error", url, body, "text/html; charset=utf-8", payload_type, note))
    for i in range(counts["extraction"]):
        site = rng.choice(sites)
        page, note = _extraction_failure_page(rng, i, site)
        url = f"https://{site.host}/gallery/{i + 1}/" if "gallery" in note else f"https://{site.host}/p/{i + 1}/"
        plan.append(_Page("extraction", url, page.encode("utf-8"), "text/html; charset=utf-8", "text/html", note))
    languages = sorted(_FOREIGN)
    for i in range(counts["language"]):
        lang = languages[i % len(languages)]
        prose = _foreign_page(lang, rng, used_foreign)
        plan.append(html_page("language", prose, f"{_FOREIGN[lang][0]} prose", lang=lang))
    # trafilatura also drops a whole document whose text it has seen three times
    # before, so no two generated pages may carry the same text.
    seen_texts: set[str] = set()

    def fresh(
        make: Callable[[random.Random, int], tuple[_Prose, str]], index: int, first_failure: str
    ) -> tuple[_Prose, str]:
        for _attempt in range(100):
            prose, note = make(rng, index)
            if prose.text not in seen_texts and _fails_first(prose.text, first_failure):
                seen_texts.add(prose.text)
                return prose, note
        raise RuntimeError(f"cannot generate another distinct {make.__name__} page")

    for i in range(counts["gopher_repetition"]):
        prose, note = fresh(_spam_page, i, "gopher_repetition")
        plan.append(html_page("gopher_repetition", prose, note))
    for i in range(counts["gopher_quality"]):
        prose, note = fresh(_low_quality_page, i, "gopher_quality")
        plan.append(html_page("gopher_quality", prose, note))

    # Duplicates copy distinct kept pages; the longest pages make the closest near-duplicates.
    by_length = sorted(range(len(kept_pages)), key=lambda k: (-kept_prose[k].words, k))
    near_sources = by_length[: counts["minhash"]]
    exact_pool = [k for k in range(len(kept_pages)) if k not in set(near_sources)]
    exact_sources = rng.sample(exact_pool, k=counts["exact_dedup"])
    for k in exact_sources:
        site = rng.choice(sites)
        original = kept_pages[k]
        # Same HTML, so the same extracted text; only the URL and the WARC headers differ.
        copy = _Page("exact_dedup", url_for(site, kept_prose[k].title), original.body, original.content_type,
                     original.payload_type, "exact copy", source=original)
        plan.append(copy)
    for k in near_sources:
        site = rng.choice(sites)
        variant, changed, similarity = _near_duplicate(kept_prose[k], rng)
        skin = kept_pages[k].skin
        related = [p.title for p in rng.sample(kept_prose, k=min(4, len(kept_prose)))]
        body = _html_page(variant, site, skin, "en", related).encode("utf-8")
        plan.append(_Page("minhash", url_for(site, variant.title), body, "text/html; charset=utf-8", "text/html",
                          f"{changed} words changed, 5-gram Jaccard {similarity:.3f}", source=kept_pages[k]))

    truncated_prose = rest.pop()
    site = rng.choice(sites)
    truncated = html_page("truncated", truncated_prose, "block cut short of its Content-Length")
    truncated.url = url_for(site, truncated_prose.title)
    _check_reader_view(plan + [truncated])
    return _order(plan, rng) + [truncated]


def _check_reader_view(plan: list[_Page]) -> None:
    """Make sure the reader will see each page as its label says (MIME and decoding)."""
    for page in plan:
        if page.label == "non_html":
            mime = page.payload_type or magic.from_buffer(page.body, mime=True)
            if mime in HTML_MIME_TYPES:
                raise RuntimeError(f"non_html sample page sniffs as {mime}: {page.url}")
            continue
        mime = page.payload_type or magic.from_buffer(page.body, mime=True)
        if mime not in HTML_MIME_TYPES:
            raise RuntimeError(f"{page.label} sample page would be read as {mime}: {page.url}")
        decodable = decode_payload(page.body)[0] is not None
        if decodable != (page.label != "decode_error"):
            raise RuntimeError(f"{page.label} sample page decodes={decodable}: {page.url}")


def _order(plan: list[_Page], rng: random.Random) -> list[_Page]:
    """Shuffle pages, then put each copy somewhere after the page it copies
    (dedup keeps the first occurrence, so the original must come first)."""
    order = [p for p in plan if p.source is None]
    rng.shuffle(order)
    for copy in (p for p in plan if p.source is not None):
        after = next(i for i, p in enumerate(order) if p is copy.source) + 1
        order.insert(rng.randint(after, len(order)), copy)
    return order


def _record_id(rng: random.Random) -> str:
    return f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}>"


def _warc_date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _http_date(moment: datetime) -> str:
    # Not strftime: day and month names would follow the locale.
    return format_datetime(moment, usegmt=True)


def _write_warc(plan: list[_Page], seed: int, filename: str) -> bytes:
    rng = random.Random(f"llmforge-sample-ids:{seed}")
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    info = (
        f"software: llmforge sample_corpus\r\nformat: WARC File Format 1.0\r\n"
        f"description: labelled sample, seed {seed}, {len(plan)} pages\r\nrobots: classic\r\n"
    ).encode()
    writer.write_record(
        writer.create_warc_record(
            "",
            "warcinfo",
            payload=io.BytesIO(info),
            length=len(info),
            warc_content_type="application/warc-fields",
            warc_headers_dict={
                "WARC-Record-ID": _record_id(rng),
                "WARC-Date": _warc_date(_BASE_DATE),
                "WARC-Filename": filename,
            },
        )
    )
    moment = _BASE_DATE
    for n, page in enumerate(plan):
        moment += timedelta(seconds=rng.randint(1, 90))
        page.record_id = _record_id(rng)
        page.date = _warc_date(moment)
        request_id = _record_id(rng)
        host = page.url.split("/")[2]
        path = "/" + page.url.split("/", 3)[3] if page.url.count("/") >= 3 else "/"
        request_headers = StatusAndHeaders(
            f"GET {path} HTTP/1.1",
            [("Host", host), ("User-Agent", "llmforge-sample/1.0"), ("Accept", "text/html,*/*;q=0.8")],
            is_http_request=True,
        )
        response_headers = StatusAndHeaders(
            "200 OK",
            [
                ("Date", _http_date(moment)),
                ("Server", "nginx"),
                ("Content-Type", page.content_type),
                ("Content-Length", str(len(page.body))),
            ],
            protocol="HTTP/1.1",
        )
        warc_headers = {"WARC-Record-ID": page.record_id, "WARC-Date": page.date}
        if page.payload_type is not None:
            warc_headers["WARC-Identified-Payload-Type"] = page.payload_type
        response = writer.create_warc_record(
            page.url,
            "response",
            payload=io.BytesIO(page.body),
            length=len(page.body),
            http_headers=response_headers,
            warc_headers_dict=warc_headers,
        )
        request = writer.create_warc_record(
            page.url,
            "request",
            http_headers=request_headers,
            warc_headers_dict={
                "WARC-Record-ID": request_id,
                "WARC-Date": page.date,
                "WARC-Concurrent-To": page.record_id,
            },
        )
        if page.label == "truncated":
            if n != len(plan) - 1:
                raise RuntimeError("the truncated record must be the last one")
            # No request record: the crawler died while writing the response.
            out.write(_truncated_member(response))
        else:
            writer.write_record(request)
            writer.write_record(response)
    return out.getvalue()


def _truncated_member(record: ArcWarcRecord) -> bytes:
    """The record as its own gzip member, its block cut to ~70% while the header keeps
    the full Content-Length: what a crawler that died mid-write leaves behind."""
    plain = io.BytesIO()
    WARCWriter(plain, gzip=False).write_record(record)
    data = plain.getvalue()
    head_end = data.index(b"\r\n\r\n") + 4
    block = data[head_end:-4]  # drop the two CRLFs that close a complete record
    kept = head_end + int(len(block) * 0.7)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing, mtime 0
    return compressor.compress(data[:kept]) + compressor.flush()


def write_sample(out_dir: Path, seed: int = 0, pages: int = 300) -> SampleCorpus:
    """Write the labelled sample WARC and its ground truth into `out_dir`.

    The same seed and page count give byte-identical files. Both files are written
    atomically, so a reader never sees half a sample.
    """
    out_dir = Path(out_dir)
    warc_path = out_dir / WARC_NAME
    truth_path = out_dir / TRUTH_NAME
    plan = _plan(seed, pages)
    warc = _write_warc(plan, seed, warc_path.name)
    lines = []
    for page in plan:
        note = page.note if page.source is None else f"{page.note} of {page.source.record_id}"
        row = {"id": page.record_id, "url": page.url, "label": page.label, "note": note}
        lines.append(json.dumps(row, ensure_ascii=False))
    atomic.write_bytes(warc_path, warc)
    atomic.write_text(truth_path, "\n".join(lines) + "\n")
    return SampleCorpus(warc_path=warc_path, truth_path=truth_path, pages=len(plan))

