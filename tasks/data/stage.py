"""The data stage's logic: per-shard read → extract → filter, one global dedup, then the final shards.

Plain functions; `flows/data.py` wraps them in Prefect tasks. A shard is one WARC
file or a record range of one. Shard results are staged under `data/_work/`
with a completion marker carrying a fingerprint of the shard's input and the
config, so a stage killed half-way re-uses the shards it finished.
"""

from __future__ import annotations

import atexit
import gc
import hashlib
import json
import shutil
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from llmforge import atomic
from llmforge.config import DataConfig, ExtractionConfig
from llmforge.fingerprint import sha256_json

DOCUMENT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url", pa.string()),
        ("text", pa.string()),
        ("crawl_date", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float32()),
        ("source_file", pa.string()),
        ("record_index", pa.int64()),
    ]
)
CANDIDATE_SCHEMA = DOCUMENT_SCHEMA.append(pa.field("dedup_key", pa.string())).append(
    pa.field("minhash_bands", pa.list_(pa.uint64()))
)
REMOVED_SCHEMA = DOCUMENT_SCHEMA.append(pa.field("filter", pa.string())).append(pa.field("reason", pa.string())).append(
    pa.field("duplicate_of", pa.string())
)
ERROR_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("source_file", pa.string()),
        ("record_index", pa.int64()),
    ]
)

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
# The global dedup step's filters and the reason each records.
DEDUP_REASONS = {"exact_dedup": "exact_duplicate", "minhash": "near_duplicate"}
DEDUP_FILTERS = tuple(DEDUP_REASONS)


@dataclass(frozen=True)
class Shard:
    index: int
    path: str
    start: int = 0
    stop: int | None = None
    input_sha256: str = ""

    @property
    def key(self) -> str:
        return f"{self.index:05d}"


def file_digests(files: Iterable[Path]) -> dict[str, str]:
    from llmforge.fingerprint import sha256_file

    return {str(path): sha256_file(path) for path in files}


def plan_shards(
    files: list[Path], records_per_shard: int, fingerprints: dict[str, str], max_records_per_file: int | None = None
) -> list[Shard]:
    """One shard per file, or per `records_per_shard` records of a file; optionally only a file's first records.

    A file's last shard stays open-ended (stop=None) when it reads to the end, so
    damage at the end of the file is reported by exactly one shard.
    """
    from tasks.data.warc_reader import count_records

    shards: list[Shard] = []
    for path in files:
        digest = fingerprints[str(path)]
        if records_per_shard <= 0:
            shards.append(Shard(len(shards), str(path), 0, max_records_per_file, digest))
            continue
        total = count_records(path)
        end = total if max_records_per_file is None else min(total, max_records_per_file)
        for start in range(0, max(end, 1), records_per_shard):
            stop: int | None = start + records_per_shard
            if stop >= end:
                stop = None if end == total else end
            shards.append(Shard(len(shards), str(path), start, stop, digest))
    return shards


@dataclass
class FilterBook:
    """Counts and times every filter through one mechanism."""

    removed: Counter = field(default_factory=Counter)
    reasons: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    seconds: Counter = field(default_factory=Counter)

    def drop(self, name: str, reason: str) -> None:
        self.removed[name] += 1
        self.reasons[name][reason] += 1

    def timed(self, name: str, started: float) -> None:
        self.seconds[name] += time.perf_counter() - started

    def as_dict(self) -> dict[str, Any]:
        return {
            "removed": dict(self.removed),
            "reasons": {k: dict(v) for k, v in self.reasons.items()},
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
        }


def shard_fingerprint(shard: Shard, config: DataConfig, code_digest: str) -> str:
    """What a staged shard depends on. Settings used only by the global steps (which
    duplicates to drop, PII) are left out, so changing them re-uses every shard."""
    view = config.fingerprint_view()
    view.pop("pii")
    for global_only in ("exact", "verify", "verify_threshold"):
        view["dedup"].pop(global_only)
    return sha256_json({"shard": asdict(shard), "config": view, "code": code_digest})


def _staging(work_dir: Path, shard: Shard) -> dict[str, Path]:
    base = work_dir / "_work"
    return {
        "marker": base / f"{shard.key}.done.json",
        "candidates": base / f"{shard.key}.candidates.parquet",
        "removed": base / f"{shard.key}.removed.parquet",
        "errors": base / f"{shard.key}.errors.parquet",
    }


def _dedup_fields(text: str, config: DataConfig) -> dict[str, Any]:
    """What the global dedup step needs of a document, computed here beside its text."""
    from tasks.data.dedup import band_hashes, minhash_signatures, normalize_for_dedup

    d = config.dedup
    signature = minhash_signatures(text, d.n_grams, d.buckets, d.hashes_per_bucket, d.seed) if d.minhash else None
    return {
        "dedup_key": hashlib.sha1(normalize_for_dedup(text).encode("utf-8")).hexdigest(),
        "minhash_bands": band_hashes(signature),
    }


class _Pipeline:
    """The per-document filters, built once per shard (the language model loads once)."""

    def __init__(self, config: DataConfig):
        from tasks.data.filters import build_text_filters
        from tasks.data.filters.url import url_filter
        from tasks.data.langid import LanguageIdentifier, language_filter

        self.config = config
        self.url_check = url_filter(config.url_filter) if config.url_filter.enabled else None
        self.language_check = (
            language_filter(LanguageIdentifier(config.language.model_path), config.language)
            if config.language.enabled
            else None
        )
        self.text_filters = build_text_filters(
            config.gopher_repetition, config.gopher_quality, config.c4_quality, config.fineweb_quality
        )


_PIPELINES: dict[str, _Pipeline] = {}

# Documents extracted before the language model and the text filters run on them, in turn:
# interleaved page by page with extraction, language ID took twice its CPU time (its model
# and the tokenizer's tables fall out of the CPU caches between pages).
TEXT_FILTER_BATCH = 64


def _shared_pipeline(config: DataConfig) -> _Pipeline:
    """One set of loaded filters per worker process and config, kept across shards: the
    language model and the URL filter's suffix list load once per process, not per shard."""
    key = config.model_dump_json()
    pipeline = _PIPELINES.get(key)
    if pipeline is None:
        pipeline = _PIPELINES[key] = _Pipeline(config)
    return pipeline


_EXTRACTORS: dict[tuple[str, int], Any] = {}


def _shared_extractor(config: ExtractionConfig) -> Any:
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


def process_shard(shard: Shard, config: DataConfig, data_dir: str, code_digest: str) -> dict[str, Any]:
    """Read, extract and filter one shard; stage candidates, removals and errors as Parquet."""
    work_dir = Path(data_dir)
    paths = _staging(work_dir, shard)
    fingerprint = shard_fingerprint(shard, config, code_digest)
    if paths["marker"].is_file():
        marker = json.loads(paths["marker"].read_text(encoding="utf-8"))
        if marker.get("fingerprint") == fingerprint and all(paths[k].is_file() for k in ("candidates", "removed", "errors")):
            return {**marker["summary"], "reused": True}

    with _fewer_collections():
        return _process(shard, config, paths, fingerprint)


_gc_lock = threading.Lock()
_gc_state: dict[str, Any] = {"users": 0, "threshold": None}


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run with the objects that exist now (the loaded lists and models, the tokenizer's
    memo, ...) out of the garbage collector's sight, and with fewer collections: a shard
    makes few reference cycles, and the collector re-scanning those objects ~300 times
    per 1,000 pages cost ~0.25 CPU s. The settings are process-wide: shards running in
    threads share them, and the last one to finish puts the previous ones back."""
    with _gc_lock:
        if _gc_state["users"] == 0:
            threshold = _gc_state["threshold"] = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(threshold[0], 10_000), *threshold[1:])
        _gc_state["users"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state["users"] -= 1
            if _gc_state["users"] == 0:
                gc.set_threshold(*_gc_state["threshold"])
                gc.unfreeze()


def _process(shard: Shard, config: DataConfig, paths: dict[str, Path], fingerprint: str) -> dict[str, Any]:
    """process_shard's work once the shard is known to need it."""
    from tasks.data.filters.text_view import make_view
    from tasks.data.warc_reader import HtmlDocument, ReadStats, iter_warc

    started = time.perf_counter()
    pipeline = _shared_pipeline(config)
    book = FilterBook()
    stats = ReadStats()
    candidates: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    source_name = Path(shard.path).name
    extracted = replaced_chars = 0

    extractor = _shared_extractor(config.extraction)
    # (position in the shard, row): rows are dropped at different steps, and a batch's text
    # filters run after its extraction, so removals are put back in record order at the end
    dropped: list[tuple[int, dict[str, Any]]] = []
    waiting: list[tuple[int, dict[str, Any], str]] = []  # extracted, not yet through the text filters

    def drop(position: int, row: dict[str, Any], name: str, reason: str) -> None:
        book.drop(name, reason)
        dropped.append((position, {**row, "filter": name, "reason": reason, "duplicate_of": None}))

    def filter_waiting() -> None:
        for position, row, text in waiting:
            if pipeline.language_check is not None:
                t0 = time.perf_counter()
                reason, language, score = pipeline.language_check(text)
                book.timed("language", t0)
                row["language"], row["language_score"] = language, float(score)
                if reason:
                    drop(position, row, "language", reason)
                    continue
            view = make_view(text)
            for named in pipeline.text_filters:
                t0 = time.perf_counter()
                reason, view = named.apply(view)
                book.timed(named.name, t0)
                if reason:
                    row["text"] = view.text
                    drop(position, row, named.name, reason)
                    break
            else:
                row["text"] = view.text
                t0 = time.perf_counter()
                candidates.append({**row, **_dedup_fields(view.text, config)})
                book.timed("dedup_signatures", t0)
        waiting.clear()

    for position, item in enumerate(iter_warc(shard.path, shard.start, shard.stop, stats=stats)):
        if not isinstance(item, HtmlDocument):
            errors.append(
                {"id": item.id, "url": item.url, "reason": item.reason, "detail": item.detail,
                 "source_file": source_name, "record_index": item.record_index}
            )
            continue
        replaced_chars += item.replaced_chars
        row: dict[str, Any] = {
            "id": item.id, "url": item.url, "text": "", "crawl_date": item.crawl_date, "language": None,
            "language_score": None, "source_file": source_name, "record_index": item.record_index,
        }
        if pipeline.url_check is not None:
            t0 = time.perf_counter()
            reason = pipeline.url_check(item.url or "")
            book.timed("url", t0)
            if reason:
                drop(position, row, "url", reason)
                continue

        t0 = time.perf_counter()
        extraction = extractor.run(item.html)
        book.timed("extraction", t0)
        if extraction.reason or not extraction.text:
            drop(position, row, "extraction", extraction.reason or "no_main_text")
            continue
        extracted += 1
        row["text"] = extraction.text
        waiting.append((position, row, extraction.text))
        if len(waiting) >= TEXT_FILTER_BATCH:
            filter_waiting()
    filter_waiting()
    removed = [row for _, row in sorted(dropped, key=lambda entry: entry[0])]

    atomic.write_parquet(paths["candidates"], pa.Table.from_pylist(candidates, schema=CANDIDATE_SCHEMA))
    atomic.write_parquet(paths["removed"], pa.Table.from_pylist(removed, schema=REMOVED_SCHEMA))
    atomic.write_parquet(paths["errors"], pa.Table.from_pylist(errors, schema=ERROR_SCHEMA))
    summary = {
        "shard": shard.key,
        "source_file": source_name,
        "source_path": shard.path,
        "range": [shard.start, shard.stop],
        "records": stats.records,
        "records_by_type": dict(stats.by_type),
        "responses": stats.responses,
        "html": stats.html,
        "skipped": dict(stats.skipped),
        "damaged": stats.damaged,
        "extracted": extracted,
        "candidates": len(candidates),
        "filters": book.as_dict(),
        "replaced_chars": replaced_chars,
        "seconds": round(time.perf_counter() - started, 3),
    }
    atomic.write_json(paths["marker"], {"fingerprint": fingerprint, "summary": summary})
    return {**summary, "reused": False}


def find_duplicates(data_dir: str, shard_keys: list[str], config: DataConfig) -> dict[str, dict[str, str]]:
    """Global dedup over every shard's candidates, in shard order.

    Returns {filter: {duplicate id: kept id}}: exact duplicates first, then MinHash
    clusters among what is left. Documents are named by id, never by position.
    """
    from tasks.data.dedup import candidate_ids, cluster_by_bands, exact_dedup

    ids: list[str] = []
    keys: list[str] = []
    bands: list[list[int] | None] = []
    for key in shard_keys:
        table = pq.read_table(
            Path(data_dir) / "_work" / f"{key}.candidates.parquet", columns=["id", "dedup_key", "minhash_bands"]
        )
        ids += table.column("id").to_pylist()
        keys += table.column("dedup_key").to_pylist()
        bands += table.column("minhash_bands").to_pylist()
    exact = exact_dedup(zip(ids, keys)) if config.dedup.exact else {}
    near: dict[str, str] = {}
    if config.dedup.minhash:
        remaining = [(i, b) for i, b in zip(ids, bands) if i not in exact]
        verify = _verifier(data_dir, shard_keys, candidate_ids(remaining), config) if config.dedup.verify else None
        near = cluster_by_bands(remaining, verify=verify)
    return {"exact_dedup": exact, "minhash": near}


def _verifier(data_dir: str, shard_keys: list[str], wanted: set[str], config: DataConfig) -> Callable[[str, str], bool]:
    """Exact-Jaccard check of candidate pairs; reads the texts of candidate documents only."""
    from tasks.data.dedup import jaccard_verifier

    texts: dict[str, str] = {}
    for key in shard_keys:
        table = pq.read_table(Path(data_dir) / "_work" / f"{key}.candidates.parquet", columns=["id", "text"])
        texts.update((i, t) for i, t in zip(table.column("id").to_pylist(), table.column("text").to_pylist()) if i in wanted)
    return jaccard_verifier(texts, config.dedup.verify_threshold, config.dedup.n_grams)


def finalize_shard(
    data_dir: str, shard_key: str, duplicates: dict[str, dict[str, str]], config: DataConfig, out_dirs: dict[str, str]
) -> dict[str, int]:
    """Write one shard's final documents (duplicates removed, PII anonymised), removals and errors."""
    from tasks.data.pii import anonymize_pii

    staging = Path(data_dir) / "_work"
    candidates = pq.read_table(staging / f"{shard_key}.candidates.parquet").to_pylist()
    removed = pq.read_table(staging / f"{shard_key}.removed.parquet").to_pylist()
    kept: list[dict[str, Any]] = []
    dropped: Counter = Counter()
    pii_replacements = 0
    for row in candidates:
        row.pop("dedup_key")
        row.pop("minhash_bands")
        found = next(((name, dups[row["id"]]) for name, dups in duplicates.items() if row["id"] in dups), None)
        if found:
            name, original = found
            dropped[name] += 1
            removed.append({**row, "filter": name, "reason": DEDUP_REASONS[name], "duplicate_of": original})
            continue
        if config.pii.enabled:
            row["text"], count = anonymize_pii(row["text"], config.pii)
            pii_replacements += count
        kept.append(row)
    name = f"part-{shard_key}.parquet"
    atomic.write_parquet(Path(out_dirs["documents"]) / name, pa.Table.from_pylist(kept, schema=DOCUMENT_SCHEMA))
    atomic.write_parquet(Path(out_dirs["removed"]) / name, pa.Table.from_pylist(removed, schema=REMOVED_SCHEMA))
    shutil.copyfile(staging / f"{shard_key}.errors.parquet", Path(out_dirs["errors"]) / name)
    return {"kept": len(kept), "pii_replacements": pii_replacements, **{name: dropped[name] for name in DEDUP_FILTERS}}


def fresh_output_dirs(data_dir: Path, names: Iterable[str]) -> dict[str, str]:
    """Empty staging directories beside the final ones; swapped in by `publish_outputs`."""
    dirs = {}
    for name in names:
        dirs[name] = str(atomic.temp_dir_beside(data_dir / name))
    return dirs


def publish_outputs(data_dir: Path, staged: dict[str, str]) -> None:
    for name, tmp in staged.items():
        atomic.replace_directory(Path(tmp), data_dir / name)


def build_stats(summaries: list[dict[str, Any]], finals: list[dict[str, int]]) -> dict[str, Any]:
    """The funnel: records → HTML → extracted → each filter's removals → dedup → kept, per file and in total."""
    per_file: dict[str, dict[str, Any]] = {}
    total: Counter = Counter()
    removed_by_filter: Counter = Counter()
    reasons: dict[str, Counter] = defaultdict(Counter)
    errors: Counter = Counter()
    filter_seconds: Counter = Counter()
    for summary, final in zip(summaries, finals):
        entry = per_file.setdefault(
            summary["source_file"],
            {"records": 0, "responses": 0, "html": 0, "errors": Counter(), "removed": Counter(), "kept": 0, "damaged": None},
        )
        entry["records"] += summary["records"]
        entry["responses"] += summary["responses"]
        entry["html"] += summary["html"]
        entry["errors"].update(summary["skipped"])
        entry["removed"].update(summary["filters"]["removed"])
        entry["removed"].update({name: final[name] for name in DEDUP_FILTERS})
        entry["kept"] += final["kept"]
        entry["damaged"] = entry["damaged"] or summary["damaged"]
        for key in ("records", "responses", "html", "extracted", "replaced_chars"):
            total[key] += summary[key]
        total["kept"] += final["kept"]
        total["pii_replacements"] += final["pii_replacements"]
        errors.update(summary["skipped"])
        removed_by_filter.update(summary["filters"]["removed"])
        removed_by_filter.update({name: final[name] for name in DEDUP_FILTERS})
        for name, counter in summary["filters"]["reasons"].items():
            reasons[name].update(counter)
        for name, reason in DEDUP_REASONS.items():
            if final[name]:
                reasons[name][reason] += final[name]
        filter_seconds.update(summary["filters"]["seconds"])
    # Damaged-file entries are reported but are not response records.
    record_errors = {k: v for k, v in errors.items() if k != "damaged_file"}
    funnel = [{"step": "html documents", "count": total["html"]}]
    remaining = total["html"]
    for name in FILTER_ORDER:
        remaining -= removed_by_filter.get(name, 0)
        funnel.append({"step": f"after {name}", "removed": removed_by_filter.get(name, 0), "count": remaining})
    return {
        "records": total["records"],
        "responses": total["responses"],
        "html": total["html"],
        "errors": record_errors,
        "damaged_files": {f: e["damaged"] for f, e in per_file.items() if e["damaged"]},
        "extracted": total["extracted"],
        "removed": {name: removed_by_filter.get(name, 0) for name in FILTER_ORDER},
        "removed_reasons": {k: dict(v) for k, v in reasons.items()},
        "kept": total["kept"],
        "replaced_chars": total["replaced_chars"],
        "pii_replacements": total["pii_replacements"],
        "accounted": total["kept"] + sum(removed_by_filter.values()) + sum(record_errors.values()),
        "funnel": funnel,
        "filter_seconds": {k: round(v, 3) for k, v in filter_seconds.items()},
        "per_file": {
            f: {**e, "errors": dict(e["errors"]), "removed": dict(e["removed"])} for f, e in sorted(per_file.items())
        },
    }
