"""The data stage's logic: per-shard read → steps → staged tables, one global dedup, then the final shards.

Plain functions; `flows/data.py` wraps them in Prefect tasks. A shard is one WARC or
text-dataset file, or a record range of one (`tasks.data.shards`). Shard results are staged under
`data/_work/` with a completion marker carrying a fingerprint of the shard's input
and the config, so a stage killed half-way re-uses the shards it finished, and a
shard that crashed (`tasks.data.shard_failure`) is the only one the next run redoes.
The global dedup step is `tasks.data.duplicates`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from llmforge import atomic
from llmforge.config import DataConfig
from tasks.data import recipe
from tasks.data.duplicates import DUPLICATE_RECORD, Duplicates
from tasks.data.recipe import DEDUP_FILTERS
from tasks.data.schemas import DOCUMENT_SCHEMA, REMOVED_SCHEMA
from tasks.data.shard_failure import failure_detail, record_failed_shard
from tasks.data.shards import (
    STAGED_KINDS,
    Shard,
    read_shard,
    read_summary,
    shard_fingerprint,
    staging_paths,
    write_staged_tables,
)
from tasks.data.steps import Document, FilterBook, Outcome, run_steps

if TYPE_CHECKING:
    from tasks.data.warc_reader import ReadStats

log = logging.getLogger(__name__)


def run_shard(shard: Shard, config: DataConfig, data_dir: str, code_digest: str) -> dict[str, Any]:
    """process_shard, with a shard that crashes recorded as failed (`tasks.data.shard_failure`)
    so that the other shards still make it to the outputs."""
    try:
        return process_shard(shard, config, data_dir, code_digest)
    except Exception as err:  # anything that escapes the per-document isolation fails this shard only
        # One line on the console (this runs in a pool worker, out of the CLI's reach); the
        # traceback is kept in stats.json's failed_shards for whoever debugs it.
        log.error("shard %s (%s) failed: %s", shard.key, shard.name, failure_detail(err))
        return record_failed_shard(shard, err, data_dir, config.reader, config.text_column)


def process_shard(shard: Shard, config: DataConfig, data_dir: str, code_digest: str) -> dict[str, Any]:
    """Read, extract and filter one shard; stage candidates, removals and errors as Parquet."""
    paths = staging_paths(Path(data_dir), shard.key)
    fingerprint = shard_fingerprint(shard, config, code_digest)
    if paths["marker"].is_file():
        marker = json.loads(paths["marker"].read_text(encoding="utf-8"))
        if marker.get("fingerprint") == fingerprint and all(paths[kind].is_file() for kind in STAGED_KINDS):
            return {**marker["summary"], "reused": True}
    return _process(shard, config, paths, fingerprint)


@dataclass
class _ShardRows:
    """What one shard stages, with each removal and error at its position in the shard."""

    candidates: list[dict[str, Any]] = field(default_factory=list)
    removed: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    replaced_chars: int = 0

    def add(self, outcome: Outcome) -> None:
        document = outcome.document
        if outcome.kept:
            self.candidates.append(document.row)
        elif outcome.failed:
            row = {key: document.row[key] for key in ("id", "url", "source_file", "record_index")}
            self.errors.append((document.position, {**row, "reason": outcome.reason, "detail": outcome.detail}))
        else:
            row = {**document.row, "filter": outcome.step, "reason": outcome.reason, "duplicate_of": None}
            self.removed.append((document.position, row))

    @staticmethod
    def in_record_order(rows: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        return [row for _, row in sorted(rows, key=lambda entry: entry[0])]


def _documents(shard: Shard, stats: ReadStats, rows: _ShardRows, config: DataConfig) -> Iterator[Document]:
    """The shard's documents, one at a time: HTML responses (extracted by the first steps) or
    text-dataset rows (their text as it is); the reader's skips go to the errors."""
    from tasks.data.text_reader import TextDocument
    from tasks.data.warc_reader import HtmlDocument

    for position, item in enumerate(read_shard(shard, stats, config.reader, config.text_column)):
        if not isinstance(item, HtmlDocument | TextDocument):
            rows.errors.append((position, {
                "id": item.id, "url": item.url, "reason": item.reason, "detail": item.detail,
                "source_file": shard.name, "record_index": item.record_index,
            }))
            continue
        rows.replaced_chars += item.replaced_chars
        is_text = isinstance(item, TextDocument)
        row = {
            "id": item.id, "url": item.url, "text": item.text if is_text else "", "crawl_date": item.crawl_date,
            "language": None, "language_score": None, "source_file": shard.name, "record_index": item.record_index,
        }
        yield Document(position, row, None if is_text else item.html)


def _process(shard: Shard, config: DataConfig, paths: dict[str, Path], fingerprint: str) -> dict[str, Any]:
    """process_shard's work once the shard is known to need it: records in, steps, tables out."""
    from tasks.data.warc_reader import ReadStats

    started = time.perf_counter()
    book = FilterBook()
    stats = ReadStats()
    rows = _ShardRows()
    from tasks.data.text_reader import is_text_file

    has_html = not is_text_file(shard.path)
    steps = recipe.shard_steps(config, extract=has_html)
    for outcome in run_steps(_documents(shard, stats, rows, config), steps, book):
        rows.add(outcome)

    write_staged_tables(paths, rows.candidates, rows.in_record_order(rows.removed), rows.in_record_order(rows.errors))
    summary = {
        **read_summary(shard, stats),
        "html": stats.html,
        "skipped": dict(stats.skipped),
        "damaged": stats.damaged,
        # Text-dataset rows come extracted: every document the reader handed on counts.
        "extracted": book.kept["extraction"] if has_html else stats.html,
        "candidates": len(rows.candidates),
        "filters": book.as_dict(),
        "replaced_chars": rows.replaced_chars,
        # None when the shard had no HTML to extract (no extraction child needed).
        "accelerator": recipe.shared_extractor(config.extraction).accelerator.as_dict() if has_html and stats.html else None,
        "seconds": round(time.perf_counter() - started, 3),
    }
    atomic.write_json(paths["marker"], {"fingerprint": fingerprint, "summary": summary})
    return {**summary, "reused": False}


def accelerator_use(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """How the shards of a run extracted: each distinct accelerator status with its shard count
    (one entry when every shard ran alike, which is the normal case)."""
    found: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        status = summary.get("accelerator")
        if status is None:
            continue
        key = json.dumps(status, sort_keys=True)
        found.setdefault(key, {**status, "shards": 0})["shards"] += 1
    return list(found.values())


def inactive_accelerator_notes(use: list[dict[str, Any]]) -> list[str]:
    """One line per status in which shards extracted without the accelerator although asked to use it."""
    return [
        f"{entry['shards']} shard(s) extracted with stock trafilatura: the accelerator's guard "
        f"{entry['failed_guard']!r} failed ({entry.get('detail')})"
        for entry in use
        if entry.get("mode") != "off" and not entry.get("active")
    ]


def finalize_shard(
    data_dir: str, shard_key: str, duplicates: Duplicates, config: DataConfig, out_dirs: dict[str, str]
) -> dict[str, int]:
    """Write one shard's final documents (duplicates removed, PII anonymised), removals and errors."""
    from tasks.data.pii import anonymize_pii

    staged = staging_paths(Path(data_dir), shard_key)
    candidates = pq.read_table(staged["candidates"]).to_pylist()
    removed = pq.read_table(staged["removed"]).to_pylist()
    kept: list[dict[str, Any]] = []
    dropped: Counter = Counter()
    pii_replacements = 0
    for row in candidates:
        row.pop("dedup_key")
        row.pop("minhash_bands")
        removal = duplicates.of(shard_key, row["record_index"])
        if removal:
            dropped[removal.filter] += 1
            removed.append({**row, "filter": removal.filter, "reason": removal.reason, "duplicate_of": removal.duplicate_of})
            continue
        if config.pii.enabled:
            row["text"], count = anonymize_pii(row["text"], config.pii)
            pii_replacements += count
        kept.append(row)
    name = f"{shard_key}.parquet"
    atomic.write_parquet(Path(out_dirs["documents"]) / name, pa.Table.from_pylist(kept, schema=DOCUMENT_SCHEMA))
    atomic.write_parquet(Path(out_dirs["removed"]) / name, pa.Table.from_pylist(removed, schema=REMOVED_SCHEMA))
    shutil.copyfile(staged["errors"], Path(out_dirs["errors"]) / name)
    counts = {name: dropped[name] for name in (DUPLICATE_RECORD, *DEDUP_FILTERS)}
    return {"kept": len(kept), "pii_replacements": pii_replacements, **counts}


def prune_staging(data_dir: Path, keep: Iterable[str]) -> None:
    """Remove staged shards other than this run's: the staging area holds one run's shards, not every version's."""
    work = Path(data_dir) / "_work"
    if not work.is_dir():
        return
    kept = set(keep)
    atomic.remove_paths([path for path in work.iterdir() if path.name.split(".", 1)[0] not in kept])


def fresh_output_dirs(data_dir: Path, names: Iterable[str]) -> dict[str, str]:
    """Empty staging directories beside the final ones, committed by `tasks.data.versions`."""
    return {name: str(atomic.temp_dir_beside(data_dir / name)) for name in names}
