"""Human-readable views of the data stage's results: the funnel table and removed examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tasks.data.shard_failure import SHARD_FAILED
from tasks.data.steps import STEP_ERROR

EXAMPLES_PER_FILTER = 3
EXCERPT_CHARS = 300


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def funnel_title(stats: dict[str, Any]) -> str:
    return (
        f"{stats['records']} records, {stats['responses']} responses, {stats['html']} HTML documents → "
        f"{stats['kept']} kept ({_pct(stats['kept'], stats['html'])})"
    )


def funnel_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """records → responses → HTML → each filter's removals → kept, with percentages of the HTML documents."""
    html = stats["html"]
    rows = [
        {"step": "WARC records", "removed": "", "remaining": stats["records"], "of html": ""},
        {"step": "response records", "removed": "", "remaining": stats["responses"], "of html": ""},
    ]
    # Step errors are documents a step failed on: they leave in that step's funnel row, not at the reader.
    for reason, count in sorted(stats["errors"].items()):
        if reason == SHARD_FAILED:
            rows.append({"step": "records of failed shards (stats: failed_shards)", "removed": count, "remaining": "",
                         "of html": ""})
        elif reason != STEP_ERROR:
            rows.append({"step": f"reader: {reason}", "removed": count, "remaining": "", "of html": ""})
    rows.append({"step": "HTML documents", "removed": "", "remaining": html, "of html": "100.0%"})
    for entry in stats["funnel"][1:]:
        removed = entry["removed"]
        if entry.get("errors"):
            removed = f"{removed} + {entry['errors']} failed (data/errors)"
        rows.append({"step": entry["step"], "removed": removed, "remaining": entry["count"], "of html": _pct(entry["count"], html)})
    rows.append({"step": "kept", "removed": "", "remaining": stats["kept"], "of html": _pct(stats["kept"], html)})
    return rows


def removed_examples(data_dir: Path, version: int | None = None, per_filter: int = EXAMPLES_PER_FILTER) -> str:
    """A markdown page with a few removed documents per filter (of one dataset version, or of all),
    so a person can judge each filter."""
    examples: dict[str, list[dict[str, Any]]] = {}
    pattern = f"v{version:04d}-*.parquet" if version is not None else "*.parquet"
    for path in sorted((data_dir / "removed").glob(pattern)):
        for row in pq.read_table(path, columns=["url", "filter", "reason", "text", "duplicate_of"]).to_pylist():
            bucket = examples.setdefault(row["filter"], [])
            if len(bucket) < per_filter:
                bucket.append(row)
    if not examples:
        return "# Removed documents\n\nNo document was removed.\n"
    lines = ["# Removed documents, a few per filter", ""]
    for name, rows in examples.items():
        lines += [f"## {name}", ""]
        for row in rows:
            excerpt = " ".join((row["text"] or "").split())[:EXCERPT_CHARS] or "(no extracted text)"
            extra = f" — duplicate of `{row['duplicate_of']}`" if row["duplicate_of"] else ""
            lines += [f"- **{row['reason']}** <{row['url']}>{extra}", f"  > {excerpt}", ""]
    return "\n".join(lines)


def per_file_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per input file: every response record is kept, removed or an error; a copy of
    another file (not read) gets a row that says so."""
    rows = []
    for name, entry in stats["per_file"].items():
        errors = {k: v for k, v in entry["errors"].items() if k != "damaged_file"}
        rows.append(
            {
                "file": name,
                "records": entry["records"],
                "responses": entry["responses"],
                "html": entry["html"],
                "kept": entry["kept"],
                "removed": sum(entry["removed"].values()),
                "errors": sum(errors.values()),
                "damaged": entry["damaged"] or "",
            }
        )
    for name, kept in stats.get("duplicate_files", {}).items():
        blank = dict.fromkeys(("records", "responses", "html", "kept", "removed", "errors"), "")
        rows.append({"file": f"{name} (same content as {kept}: not read)", **blank, "damaged": ""})
    return sorted(rows, key=lambda row: row["file"])
