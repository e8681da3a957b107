"""stats.json of the data stage: the funnel, per input file and in total.

Every response record ends up kept, removed by one filter, or an error (a record the
reader skipped, a document a step failed on, or a record of a shard that failed):
kept + removed + errors = responses, for each input file. Files are named by their
path relative to the source root.

Keys that only appear when there is something to say, so a clean run's stats stay as
they were: ``duplicate_files`` ({file: file kept} for files whose content equals an
earlier file's: those were not read, so they have no ``per_file`` entry and count in no
total), ``failed_shards`` (file, record range, error, its traceback, and the shard's response count,
None where even the reader could not get through it: then its file's counts are
partial), and the ``duplicate_record`` filter (a record id already seen).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from tasks.data.duplicates import DUPLICATE_RECORD, SAME_RECORD_ID
from tasks.data.recipe import DEDUP_FILTERS, DEDUP_REASONS, FILTER_ORDER, FUNNEL_STEPS
from tasks.data.shard_failure import failed_shards
from tasks.data.steps import STEP_ERROR

_TOTALS = ("records", "responses", "html", "extracted", "replaced_chars")


def _errors_of(summary: dict[str, Any]) -> Counter:
    """A shard's error rows by reason: the reader's skips, and the documents steps failed on."""
    errors = Counter(summary["skipped"])
    failed = sum(summary["filters"]["errors"].values())
    if failed:  # a key only when there are some, so a clean run's stats stay as they were
        errors[STEP_ERROR] += failed
    return errors


def _removed_of(summary: dict[str, Any], final: dict[str, int]) -> Counter:
    removed = Counter(summary["filters"]["removed"])
    removed.update({name: final[name] for name in DEDUP_FILTERS})
    if final[DUPLICATE_RECORD]:
        removed[DUPLICATE_RECORD] += final[DUPLICATE_RECORD]
    return removed


def _per_file(summaries: list[dict[str, Any]], finals: list[dict[str, int]]) -> dict[str, dict[str, Any]]:
    per_file: dict[str, dict[str, Any]] = {}
    for summary, final in zip(summaries, finals):
        entry = per_file.setdefault(
            summary["source_file"],
            {"records": 0, "responses": 0, "html": 0, "errors": Counter(), "removed": Counter(), "kept": 0, "damaged": None},
        )
        for key in ("records", "responses", "html"):
            entry[key] += summary[key]
        entry["errors"].update(_errors_of(summary))
        entry["removed"].update(_removed_of(summary, final))
        entry["kept"] += final["kept"]
        entry["damaged"] = entry["damaged"] or summary["damaged"]
    return {f: {**e, "errors": dict(e["errors"]), "removed": dict(e["removed"])} for f, e in sorted(per_file.items())}


def _reasons(summaries: list[dict[str, Any]], finals: list[dict[str, int]]) -> dict[str, dict[str, int]]:
    reasons: dict[str, Counter] = defaultdict(Counter)
    for summary, final in zip(summaries, finals):
        for name, counter in summary["filters"]["reasons"].items():
            reasons[name].update(counter)
        for name, reason in {DUPLICATE_RECORD: SAME_RECORD_ID, **DEDUP_REASONS}.items():
            if final[name]:
                reasons[name][reason] += final[name]
    return {k: dict(v) for k, v in reasons.items()}


# The global step removes repeated record ids before it looks for duplicate texts.
_GLOBAL_STEPS_AT = FUNNEL_STEPS.index(DEDUP_FILTERS[0])
_ALL_STEPS = (*FUNNEL_STEPS[:_GLOBAL_STEPS_AT], DUPLICATE_RECORD, *FUNNEL_STEPS[_GLOBAL_STEPS_AT:])


def _funnel(html: int, removed: Counter, step_errors: Counter) -> list[dict[str, Any]]:
    """HTML documents, then what is left after each step; a step's failures leave too."""
    funnel: list[dict[str, Any]] = [{"step": "html documents", "count": html}]
    remaining = html
    shown = {*FILTER_ORDER, *([DUPLICATE_RECORD] if removed.get(DUPLICATE_RECORD) else [])}
    for name in _ALL_STEPS:
        failed = step_errors.get(name, 0)
        if name not in shown and not failed:
            continue
        remaining -= removed.get(name, 0) + failed
        entry: dict[str, Any] = {"step": f"after {name}", "removed": removed.get(name, 0), "count": remaining}
        if failed:
            entry["errors"] = failed
        funnel.append(entry)
    return funnel


def build_stats(
    summaries: list[dict[str, Any]], finals: list[dict[str, int]], duplicate_files: dict[str, str] | None = None
) -> dict[str, Any]:
    """The funnel: records → HTML → extracted → each filter's removals → dedup → kept, per file and in total.
    ``duplicate_files``: {file: file kept} for the files not read because an earlier one has their content."""
    total: Counter = Counter()
    removed: Counter = Counter()
    errors: Counter = Counter()
    step_errors: Counter = Counter()
    filter_seconds: Counter = Counter()
    for summary, final in zip(summaries, finals):
        total.update({key: summary[key] for key in _TOTALS})
        total["kept"] += final["kept"]
        total["pii_replacements"] += final["pii_replacements"]
        errors.update(_errors_of(summary))
        removed.update(_removed_of(summary, final))
        step_errors.update(summary["filters"]["errors"])
        filter_seconds.update(summary["filters"]["seconds"])
    # Damaged-file entries are reported but are not response records.
    record_errors = {k: v for k, v in errors.items() if k != "damaged_file"}
    per_file = _per_file(summaries, finals)
    removed_totals = {name: removed.get(name, 0) for name in FILTER_ORDER}
    if removed.get(DUPLICATE_RECORD):
        removed_totals[DUPLICATE_RECORD] = removed[DUPLICATE_RECORD]
    failed = failed_shards(summaries)
    return {
        **({"duplicate_files": dict(sorted(duplicate_files.items()))} if duplicate_files else {}),
        **({"failed_shards": failed} if failed else {}),
        "records": total["records"],
        "responses": total["responses"],
        "html": total["html"],
        "errors": record_errors,
        "damaged_files": {f: e["damaged"] for f, e in per_file.items() if e["damaged"]},
        "extracted": total["extracted"],
        "removed": removed_totals,
        "removed_reasons": _reasons(summaries, finals),
        "kept": total["kept"],
        "replaced_chars": total["replaced_chars"],
        "pii_replacements": total["pii_replacements"],
        "accounted": total["kept"] + sum(removed.values()) + sum(record_errors.values()),
        "funnel": _funnel(total["html"], removed, step_errors),
        "filter_seconds": {k: round(v, 3) for k, v in filter_seconds.items()},
        "per_file": per_file,
    }


def run_counts_and_metrics(
    stats: dict[str, Any], summaries: list[dict[str, Any]], totals: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest's counts and metrics of a run that added a version: this version's funnel, and
    the dataset's totals over every version (`tasks.data.versions.dataset_totals`)."""
    counts = {k: stats[k] for k in ("records", "responses", "html", "extracted", "kept", "accounted", "per_file")}
    metrics = {
        **totals["metrics"],
        "new_documents": stats["kept"],
        "responses": stats["responses"],
        "removed": stats["removed"],
        "errors": stats["errors"],
        "shards": len(summaries),
        "reused_shards": sum(1 for s in summaries if s.get("reused")),
    }
    return {**counts, **totals["counts"], "shards": len(summaries)}, metrics
