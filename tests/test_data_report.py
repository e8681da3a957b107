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


def test_accelerator_use_groups_shards_by_status_and_names_failed_guards() -> None:
    from tasks.data.stage import accelerator_use, inactive_accelerator_notes

    active = {"mode": "auto", "active": True, "failed_guard": None, "detail": None, "trafilatura_version": "2.3.1"}
    failed = {**active, "active": False, "failed_guard": "trafilatura_version", "detail": "2.4.0 is installed"}
    off = {**active, "mode": "off", "active": False}
    summaries = [{"accelerator": active}, {"accelerator": active}, {"accelerator": None}, {"accelerator": failed},
                 {"accelerator": off}]
    use = accelerator_use(summaries)
    assert [entry["shards"] for entry in use] == [2, 1, 1]
    notes = inactive_accelerator_notes(use)
    assert len(notes) == 1 and "'trafilatura_version'" in notes[0] and "2.4.0 is installed" in notes[0]
