"""The plan of the sample: every page, its label, URL and body, in the order the WARC holds them.

Everything is derived from the seed. The good pages come first (their count is fixed
by the labels), then the pages for each removal label in pipeline order, then the
copies of kept pages for the two dedup labels; the truncated record goes last.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import magic

from tasks.data.sample_corpus.foreign import FOREIGN, foreign_page
from tasks.data.sample_corpus.good_pages import good_pages, near_duplicate
from tasks.data.sample_corpus.judge import fails_first
from tasks.data.sample_corpus.labels import label_counts
from tasks.data.sample_corpus.low_quality import low_quality_page, spam_page
from tasks.data.sample_corpus.payloads import non_html_payload, undecodable_payload
from tasks.data.sample_corpus.prose import Prose
from tasks.data.sample_corpus.templates import SKINS, Site, extraction_failure_page, html_page, slug
from tasks.data.warc_reader import HTML_MIME_TYPES, decode_payload

HTML_CONTENT_TYPE = "text/html; charset=utf-8"


@dataclass
class Page:
    label: str
    url: str
    body: bytes
    content_type: str  # HTTP Content-Type
    payload_type: str | None  # WARC-Identified-Payload-Type, None to make readers sniff
    note: str
    source: Page | None = None  # the page this one copies
    skin: int = 0  # which site template wraps the text
    record_id: str = ""  # set when the WARC is written
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

MakeProse = Callable[[random.Random, int], tuple[Prose, str]]


def _sites(rng: random.Random) -> list[Site]:
    sites = []
    for n in range(1, 9):
        name = f"{_SITE_NAMES[n % len(_SITE_NAMES)]} {n}"
        sites.append(Site(name, f"docs-mirror-{n}.example.org", "/topics/"))
    rng.shuffle(sites)
    return sites


class _Planner:
    """The pages of one sample as they are made, from one random stream (the order of the
    calls below is part of the sample: changing it changes every page after it)."""

    def __init__(self, seed: int, pages: int):
        self.counts = label_counts(pages)
        self.rng = random.Random(f"llmforge-sample:{seed}")
        self.sites = _sites(self.rng)
        counts = self.counts
        good = good_pages(counts["kept"] + counts["url"] + counts["decode_error"] + counts["truncated"], self.rng)
        self.kept_prose = good[: counts["kept"]]
        self.spare_prose = good[counts["kept"] :]  # good prose for pages removed before the text filters
        self.pages: list[Page] = []
        self._slugs: Counter[tuple[str, str]] = Counter()
        # trafilatura also drops a whole document whose text it has seen three times
        # before, so no two generated pages may carry the same text.
        self._seen_texts: set[str] = set()

    def url_for(self, site: Site, title: str) -> str:
        key = (site.host, slug(title))
        self._slugs[key] += 1
        suffix = f"-{self._slugs[key]}" if self._slugs[key] > 1 else ""
        return f"https://{site.host}{site.path_prefix}{key[1]}{suffix}/"

    def related_titles(self) -> list[str]:
        return [p.title for p in self.rng.sample(self.kept_prose, k=min(4, len(self.kept_prose)))]

    def html_page(self, label: str, prose: Prose, note: str, lang: str = "en", url: str | None = None) -> Page:
        site = self.rng.choice(self.sites)
        skin = self.rng.randrange(len(SKINS))
        body = html_page(prose, site, skin, lang, self.related_titles()).encode("utf-8")
        # Most crawlers record the detected payload type; leave it out on some pages so
        # that readers must sniff the body.
        payload_type = "text/html" if self.rng.random() < 0.8 else None
        return Page(label, url or self.url_for(site, prose.title), body, HTML_CONTENT_TYPE, payload_type, note, skin=skin)

    def add_kept(self) -> list[Page]:
        kept = [self.html_page("kept", prose, f"{prose.words} words of prose") for prose in self.kept_prose]
        self.pages += kept
        return kept

    def add_banned_urls(self) -> None:
        for i in range(self.counts["url"]):
            prose = self.spare_prose.pop()
            url = _BANNED_URLS[i % len(_BANNED_URLS)].format(slug=f"{slug(prose.title)}-{i + 1}")
            self.pages.append(self.html_page("url", prose, "good prose on a URL with a blocked word", url=url))

    def add_non_html(self) -> None:
        for i in range(self.counts["non_html"]):
            site = self.rng.choice(self.sites)
            body, content_type, mime, path = non_html_payload(self.rng, i)
            payload_type = mime if i % 3 != 2 else None
            self.pages.append(Page("non_html", f"https://{site.host}{path}", body, content_type, payload_type,
                                   f"{mime} response"))

    def add_undecodable(self) -> None:
        for i in range(self.counts["decode_error"]):
            site = self.rng.choice(self.sites)
            prose = self.spare_prose.pop()
            body, note = undecodable_payload(prose, self.rng, i, site)
            payload_type = "text/html" if i % 3 != 2 or body[:2] == b"\x1f\x8b" else None
            self.pages.append(Page("decode_error", self.url_for(site, prose.title), body, HTML_CONTENT_TYPE,
                                   payload_type, note))

    def add_extraction_failures(self) -> None:
        for i in range(self.counts["extraction"]):
            site = self.rng.choice(self.sites)
            page, note = extraction_failure_page(self.rng, i, site)
            url = f"https://{site.host}/gallery/{i + 1}/" if "gallery" in note else f"https://{site.host}/p/{i + 1}/"
            self.pages.append(Page("extraction", url, page.encode("utf-8"), HTML_CONTENT_TYPE, "text/html", note))

    def add_foreign(self) -> None:
        languages = sorted(FOREIGN)
        used: set[str] = set()
        for i in range(self.counts["language"]):
            lang = languages[i % len(languages)]
            prose = foreign_page(lang, self.rng, used)
            self.pages.append(self.html_page("language", prose, f"{FOREIGN[lang][0]} prose", lang=lang))

    def add_removed_by(self, step: str, make: MakeProse) -> None:
        """Pages whose text the text filter `step` is the first to remove (asked of the real filters)."""
        for i in range(self.counts[step]):
            for _attempt in range(100):
                prose, note = make(self.rng, i)
                if prose.text not in self._seen_texts and fails_first(prose.text, step):
                    break
            else:
                raise RuntimeError(f"cannot generate another distinct {make.__name__} page")
            self._seen_texts.add(prose.text)
            self.pages.append(self.html_page(step, prose, note))

    def add_copies(self, kept: list[Page]) -> None:
        """Exact and near copies of distinct kept pages; the longest make the closest near-duplicates."""
        by_length = sorted(range(len(kept)), key=lambda k: (-self.kept_prose[k].words, k))
        near_sources = by_length[: self.counts["minhash"]]
        exact_pool = [k for k in range(len(kept)) if k not in set(near_sources)]
        for k in self.rng.sample(exact_pool, k=self.counts["exact_dedup"]):
            site = self.rng.choice(self.sites)
            original = kept[k]
            # Same HTML, so the same extracted text; only the URL and the WARC headers differ.
            self.pages.append(Page("exact_dedup", self.url_for(site, self.kept_prose[k].title), original.body,
                                   original.content_type, original.payload_type, "exact copy", source=original))
        for k in near_sources:
            site = self.rng.choice(self.sites)
            variant, changed, similarity = near_duplicate(self.kept_prose[k], self.rng)
            body = html_page(variant, site, kept[k].skin, "en", self.related_titles()).encode("utf-8")
            self.pages.append(Page("minhash", self.url_for(site, variant.title), body, HTML_CONTENT_TYPE, "text/html",
                                   f"{changed} words changed, 5-gram Jaccard {similarity:.3f}", source=kept[k]))

    def truncated_page(self) -> Page:
        prose = self.spare_prose.pop()
        site = self.rng.choice(self.sites)
        truncated = self.html_page("truncated", prose, "block cut short of its Content-Length")
        truncated.url = self.url_for(site, prose.title)
        return truncated


def plan_pages(seed: int, pages: int) -> list[Page]:
    """Every page of the sample, in WARC order."""
    planner = _Planner(seed, pages)
    kept = planner.add_kept()
    planner.add_banned_urls()
    planner.add_non_html()
    planner.add_undecodable()
    planner.add_extraction_failures()
    planner.add_foreign()
    planner.add_removed_by("gopher_repetition", spam_page)
    planner.add_removed_by("gopher_quality", low_quality_page)
    planner.add_copies(kept)
    truncated = planner.truncated_page()
    _check_reader_view([*planner.pages, truncated])
    return _order(planner.pages, planner.rng) + [truncated]


def _check_reader_view(plan: list[Page]) -> None:
    """Make sure the reader will see each page as its label says (MIME and decoding)."""
    for page in plan:
        mime = page.payload_type or magic.from_buffer(page.body, mime=True)
        if page.label == "non_html":
            if mime in HTML_MIME_TYPES:
                raise RuntimeError(f"non_html sample page sniffs as {mime}: {page.url}")
            continue
        if mime not in HTML_MIME_TYPES:
            raise RuntimeError(f"{page.label} sample page would be read as {mime}: {page.url}")
        decodable = decode_payload(page.body)[0] is not None
        if decodable != (page.label != "decode_error"):
            raise RuntimeError(f"{page.label} sample page decodes={decodable}: {page.url}")


def _order(plan: list[Page], rng: random.Random) -> list[Page]:
    """Shuffle pages, then put each copy somewhere after the page it copies
    (dedup keeps the first occurrence, so the original must come first)."""
    order = [p for p in plan if p.source is None]
    rng.shuffle(order)
    for copy in (p for p in plan if p.source is not None):
        after = next(i for i, p in enumerate(order) if p is copy.source) + 1
        order.insert(rng.randint(after, len(order)), copy)
    return order
