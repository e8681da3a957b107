"""The data path's per-document steps, in FineWeb's order, built from the config.

URL check and extraction read one raw page each and run per record as it is read;
language ID, the text filters and the dedup signatures run on batches of
``TEXT_FILTER_BATCH`` extracted texts. The loaded parts (the language model, the URL
lists, one extraction child per thread) are kept per worker process across shards.
"""

from __future__ import annotations

import atexit
import hashlib
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from llmforge.config import DataConfig, DedupConfig, ExtractionConfig
from tasks.data.filters import NamedFilter
from tasks.data.steps import Document, Step, Verdict

if TYPE_CHECKING:  # extract imports trafilatura: loaded where extraction runs, not where this is imported
    from tasks.data.extract import IsolatedExtractor

# Order of the funnel, as FineWeb applies its steps.
FILTER_ORDER = (
    "url",
    "extraction",
    "language",
    "gopher_repetition",
    "gopher_quality",
    "c4_quality",
    "fineweb_quality",
    "exact_dedup",
    "minhash",
)
# Every step in the order a document meets it: the filters, and the step that only signs
# documents for dedup (it removes none, but can fail on one).
FUNNEL_STEPS = (*FILTER_ORDER[:-2], "dedup_signatures", *FILTER_ORDER[-2:])
# The global dedup step's filters and the reason each records.
DEDUP_REASONS = {"exact_dedup": "exact_duplicate", "minhash": "near_duplicate"}
DEDUP_FILTERS = tuple(DEDUP_REASONS)

# Documents extracted before the language model and the text filters run on them, in turn:
# interleaved page by page with extraction, language ID took twice its CPU time (its model
# and the tokenizer's tables fall out of the CPU caches between pages).
TEXT_FILTER_BATCH = 64

LanguageCheck = Callable[[str], tuple[str | None, str, float]]
UrlCheck = Callable[[str], str | None]


# ------------------------------------------------------------------ the steps


def _check_urls(check: UrlCheck, batch: Sequence[Document]) -> list[Verdict]:
    return [Verdict(check(document.row["url"] or "")) for document in batch]


def url_step(check: UrlCheck) -> Step:
    return Step("url", partial(_check_urls, check))


def _extract(extractor: IsolatedExtractor, batch: Sequence[Document]) -> list[Verdict]:
    verdicts = []
    for document in batch:
        extraction = extractor.run(document.html)
        if extraction.reason or not extraction.text:
            verdicts.append(Verdict(extraction.reason or "no_main_text"))
        else:
            verdicts.append(Verdict(text=extraction.text))
    return verdicts


def extraction_step(extractor: IsolatedExtractor) -> Step:
    """Main text from the raw page (an ``IsolatedExtractor``); a child that cannot start fails the shard."""
    from tasks.data.extract import ExtractorStartupError

    return Step("extraction", partial(_extract, extractor), fatal=(ExtractorStartupError,))


def _identify_languages(check: LanguageCheck, batch: Sequence[Document]) -> list[Verdict]:
    verdicts = []
    for document in batch:
        reason, language, score = check(document.text)
        verdicts.append(Verdict(reason, fields={"language": language, "language_score": float(score)}))
    return verdicts


def language_step(check: LanguageCheck, batch_size: int = TEXT_FILTER_BATCH) -> Step:
    return Step("language", partial(_identify_languages, check), batch_size)


def _apply_filter(named: NamedFilter, batch: Sequence[Document]) -> list[Verdict]:
    verdicts = []
    for document in batch:
        reason, view = named.apply(document.view)
        verdicts.append(Verdict(reason, text=None if view is document.view else view))
    return verdicts


def text_filter_steps(filters: Sequence[NamedFilter], batch_size: int = TEXT_FILTER_BATCH) -> list[Step]:
    """One step per text filter; a rewriting filter (C4) hands its text on to the next."""
    return [Step(named.name, partial(_apply_filter, named), batch_size) for named in filters]


def _sign(config: DedupConfig, batch: Sequence[Document]) -> list[Verdict]:
    from tasks.data.dedup import band_hashes, minhash_signatures_batch, normalize_for_dedup

    texts = [document.text for document in batch]
    if config.minhash:
        signatures = minhash_signatures_batch(texts, config.n_grams, config.buckets, config.hashes_per_bucket, config.seed)
    else:
        signatures = [None] * len(texts)
    return [
        Verdict(fields={
            "dedup_key": hashlib.sha1(normalize_for_dedup(text).encode("utf-8")).hexdigest(),
            "minhash_bands": band_hashes(signature),
        })
        for text, signature in zip(texts, signatures)
    ]


def dedup_signature_step(config: DedupConfig, batch_size: int = TEXT_FILTER_BATCH) -> Step:
    """What the global dedup step needs of a document, computed here beside its text; never removes."""
    return Step("dedup_signatures", partial(_sign, config), batch_size)


# ------------------------------------------------------------ one shard's steps


class _LoadedFilters:
    """The per-document filters of one config, loaded once (the language model, the URL lists)."""

    def __init__(self, config: DataConfig):
        from tasks.data.filters import build_text_filters
        from tasks.data.filters.url import url_filter
        from tasks.data.langid import LanguageIdentifier, language_filter

        self.url_check = url_filter(config.url_filter) if config.url_filter.enabled else None
        self.language_check = (
            language_filter(LanguageIdentifier(config.language.model_path), config.language)
            if config.language.enabled and config.text_filters == "fineweb"
            else None
        )
        self.text_filters = build_text_filters(
            config.gopher_repetition, config.gopher_quality, config.c4_quality, config.fineweb_quality
        )


_LOADED: dict[str, _LoadedFilters] = {}


def _shared_filters(config: DataConfig) -> _LoadedFilters:
    """One set of loaded filters per worker process and config, kept across shards: the
    language model and the URL filter's suffix list load once per process, not per shard."""
    key = config.model_dump_json()
    loaded = _LOADED.get(key)
    if loaded is None:
        loaded = _LOADED[key] = _LoadedFilters(config)
    return loaded


_EXTRACTORS: dict[tuple[str, int], IsolatedExtractor] = {}


def shared_extractor(config: ExtractionConfig) -> IsolatedExtractor:
    """One extraction child process per worker thread and config, kept across shards
    (starting one costs most of a second); closed when the worker exits. Per thread: a
    Dask worker may run several shards at once in threads, and one child answers one
    request at a time."""
    from tasks.data.extract import IsolatedExtractor

    key = (config.model_dump_json(), threading.get_ident())
    if key not in _EXTRACTORS:
        if not _EXTRACTORS:
            atexit.register(close_shared_extractors)
        _EXTRACTORS[key] = IsolatedExtractor(config)
    return _EXTRACTORS[key]


def close_shared_extractors() -> None:
    """Stop this process's extraction children (their CPU time then shows in RUSAGE_CHILDREN)."""
    while _EXTRACTORS:
        _EXTRACTORS.popitem()[1].close()


def shard_steps(config: DataConfig, extract: bool = True) -> list[Step]:
    """Every per-document step of the data stage, in order, for the calling thread.
    `extract`: the documents are raw pages (WARC responses), not text-dataset rows."""
    loaded = _shared_filters(config)
    batch = TEXT_FILTER_BATCH
    steps = [url_step(loaded.url_check)] if loaded.url_check is not None else []
    if extract:
        steps.append(extraction_step(shared_extractor(config.extraction)))
    if config.text_filters == "fineweb":
        if loaded.language_check is not None:
            steps.append(language_step(loaded.language_check, batch))
        steps += text_filter_steps(loaded.text_filters, batch)
    steps.append(dedup_signature_step(config.dedup, batch))
    return steps


__all__ = [
    "DEDUP_FILTERS",
    "DEDUP_REASONS",
    "FILTER_ORDER",
    "FUNNEL_STEPS",
    "TEXT_FILTER_BATCH",
    "close_shared_extractors",
    "dedup_signature_step",
    "extraction_step",
    "language_step",
    "shard_steps",
    "shared_extractor",
    "text_filter_steps",
    "url_step",
]
