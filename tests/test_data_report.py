"""The funnel table on the dashboard: reader skips and step failures appear where they happen."""

from __future__ import annotations

from tasks.data.report import funnel_rows


def _stats() -> dict:
    return {
        "records": 10, "responses": 8, "html": 6, "kept": 3,
        "errors": {"non_html": 2, "step_error": 1},
        "funnel": [
            {"step": "html documents", "count": 6},
            {"step": "after url", "removed": 1, "count": 5},
            {"step": "after language", "removed": 1, "count": 3, "errors": 1},
        ],
    }


def test_reader_skips_are_reader_rows_and_step_failures_stay_on_their_step() -> None:
    rows = {row["step"]: row for row in funnel_rows(_stats())}
    assert rows["reader: non_html"]["removed"] == 2
    assert "reader: step_error" not in rows
    assert rows["after language"]["removed"] == "1 + 1 failed (data/errors)"
    assert rows["after url"]["removed"] == 1
    assert rows["kept"]["remaining"] == 3
