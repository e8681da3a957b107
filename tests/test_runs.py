"""`llmforge runs`: which flow runs belong to a work directory, and how a row reads."""

from __future__ import annotations

from pathlib import Path

from llmforge.runs import PROJECT_ROOT, RunRow, belongs_to, format_rows, workdir_tag
from tasks.report_card import headline_message


def test_a_cli_run_belongs_to_the_work_directory_of_its_tag(tmp_path: Path) -> None:
    run = {"tags": [workdir_tag(tmp_path / "w")], "parameters": {"workdir": "runs/default"}}
    assert belongs_to(run, tmp_path / "w")
    assert not belongs_to(run, tmp_path / "other")
    assert not belongs_to(run, PROJECT_ROOT / "runs" / "default")  # the tag wins over the parameter


def test_a_deployment_run_belongs_by_its_parameter_relative_to_the_project_root(tmp_path: Path) -> None:
    run = {"tags": ["nightly"], "parameters": {"workdir": "runs/default"}}
    assert belongs_to(run, PROJECT_ROOT / "runs" / "default")
    assert not belongs_to(run, tmp_path)
    assert belongs_to({"tags": [], "parameters": {"workdir": str(tmp_path)}}, tmp_path)
    assert not belongs_to({"tags": [], "parameters": {}}, tmp_path)


def test_the_headline_is_the_stage_s_status_and_numbers() -> None:
    outcome = {"stage": "data", "status": "ran",
               "metrics": {"documents": 3, "responses": 9, "removed": {"url": 4, "language": 1}, "errors": {"x": 1}}}
    assert headline_message(outcome) == "ran: 3 documents kept of 9 responses (5 removed, 1 unreadable)"
    assert headline_message({"stage": "custom", "status": "skipped"}) == "skipped"
    pipeline = {"stages": [{"status": "ran"}, {"status": "skipped"}, {"status": "ran"}]}
    assert headline_message(pipeline) == "2 of 3 stages ran, the others were up to date"


def test_rows_read_as_one_line_and_a_link_each() -> None:
    row = RunRow(stage="data", started="2026-12-07T17:40:00.1Z", seconds=2.8, state="Completed",
                 headline="ran: 1 documents", url="http://127.0.0.1:4200/runs/flow-run/abc")
    assert format_rows([row]).splitlines() == [
        "2026-12-07 17:40:00  data          2.8s  Completed  ran: 1 documents",
        " " * 21 + "http://127.0.0.1:4200/runs/flow-run/abc",
    ]
    assert "no runs" in format_rows([])
