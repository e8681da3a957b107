"""A shard that crashed: its records become error rows, and the other shards go on.

``process_shard`` isolates a step's failure to one document; an exception that still
escapes it (the file cannot be read, a step that cannot run at all, a bug, a worker
process that died) fails the shard. The shard's records are then read again with the
reader alone, and every response record becomes an error row with reason
``SHARD_FAILED`` (detail: the exception), so kept + removed + errors = responses still
holds for its file. When even the reader fails, the rows it got to are written and the
shard's summary says its response count is not known. No completion marker is written:
the next run processes the shard again.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from pathlib import Path
from typing import Any

from llmforge.config import ReaderConfig
from tasks.data.shards import Shard, read_shard, read_summary, staging_paths, write_staged_tables
from tasks.data.steps import FilterBook

log = logging.getLogger(__name__)

SHARD_FAILED = "shard_failed"
MAX_FAILURE_DETAIL = 200  # characters: the detail goes into a one-line error message
MAX_TRACEBACK = 4000  # characters of a failed shard's traceback kept in stats.json


def failure_detail(error: BaseException) -> str:
    """"<ExceptionType>: <message>" on one line, shortened."""
    message = re.sub(r"\s+", " ", str(error)).strip()
    detail = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return detail if len(detail) <= MAX_FAILURE_DETAIL else detail[: MAX_FAILURE_DETAIL - 1] + "…"


def failure_traceback(error: BaseException) -> str:
    """The exception's traceback as text, its last MAX_TRACEBACK characters (where it was raised)."""
    text = "".join(traceback.format_exception(error))
    return text if len(text) <= MAX_TRACEBACK else "…" + text[-(MAX_TRACEBACK - 1):]


def _error_rows(
    shard: Shard, detail: str, limits: ReaderConfig | None, text_column: str
) -> tuple[list[dict[str, Any]], Any, bool]:
    """One row per response record of the shard, the reader's counts, and whether it read them all."""
    from tasks.data.warc_reader import ReadStats, SkippedRecord

    stats = ReadStats()
    rows: list[dict[str, Any]] = []
    try:
        for item in read_shard(shard, stats, limits, text_column):
            damage = isinstance(item, SkippedRecord) and item.reason == "damaged_file"
            rows.append({
                "id": item.id, "url": item.url, "reason": item.reason if damage else SHARD_FAILED,
                "detail": item.detail if damage else detail, "source_file": shard.name, "record_index": item.record_index,
            })
    except Exception as err:  # noqa: BLE001 - the reader failing too is what makes the count unknown
        log.warning("shard %s (%s): the records after the first %d cannot be read either: %s",
                    shard.key, shard.name, stats.records, failure_detail(err))
        return rows, stats, False
    return rows, stats, True


def record_failed_shard(
    shard: Shard, error: BaseException, data_dir: str, limits: ReaderConfig | None = None, text_column: str = "text"
) -> dict[str, Any]:
    """Stage the failed shard's records as error rows; return its summary (shaped as process_shard's)."""
    started = time.perf_counter()
    detail = failure_detail(error)
    paths = staging_paths(Path(data_dir), shard.key)
    # A worker may have finished the shard before it died: its marker must not vouch for these tables.
    paths["marker"].unlink(missing_ok=True)
    rows, stats, complete = _error_rows(shard, detail, limits, text_column)
    write_staged_tables(paths, [], [], rows)
    damaged = {"damaged_file": stats.skipped["damaged_file"]} if "damaged_file" in stats.skipped else {}
    return {
        **read_summary(shard, stats),
        "html": 0,  # no document reached the steps
        "skipped": {SHARD_FAILED: stats.responses, **damaged},
        "damaged": stats.damaged,
        "extracted": 0,
        "candidates": 0,
        "filters": FilterBook().as_dict(),
        "replaced_chars": 0,
        "accelerator": None,
        "seconds": round(time.perf_counter() - started, 3),
        "failed": {"error": detail, "responses_known": complete, "traceback": failure_traceback(error)},
        "reused": False,
    }


def where(summary: dict[str, Any]) -> str:
    """The shard's file, and its record range when the file was split."""
    start, stop = summary["range"]
    if start == 0 and stop is None:
        return summary["source_file"]
    return f"{summary['source_file']} records {start}-{'end' if stop is None else stop - 1}"


def failed_shards(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shards that failed, as stats.json lists them; `responses` is None where it is not known."""
    return [
        {
            "shard": s["shard"], "file": s["source_file"], "range": s["range"], "error": s["failed"]["error"],
            "responses": s["responses"] if s["failed"]["responses_known"] else None,
            "traceback": s["failed"].get("traceback"),
        }
        for s in summaries
        if "failed" in s
    ]


def incomplete_message(summaries: list[dict[str, Any]]) -> str | None:
    """The one-line message that ends a run with failed shards; None when none failed."""
    failed = [s for s in summaries if "failed" in s]
    if not failed:
        return None
    first = failed[0]
    return (
        f"{len(failed)} of {len(summaries)} shards failed (first: {where(first)}: {first['failed']['error']}); "
        "the other shards are published; re-run to retry the failed shards"
    )
