"""`llmforge runs`: the recent stage runs of a work directory, read from the Prefect server's history.

A run belongs to a work directory by its tag ``workdir:<absolute path>``, which the CLI puts on
every run it starts; a run a worker started from a deployment has no such tag and is matched by
its ``workdir`` parameter instead, relative to the project root where the worker runs. Each row
gives the stage, when it started, how long it took, its final state and the headline its stage
left as the state's message, with a link to the run's page in the UI.

Plain HTTP against the server's REST API: no Prefect import, so the command answers in well
under a second.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from llmforge.stages import STAGE_ORDER

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORKDIR_TAG = "workdir:"
RUN_FLOWS = (*STAGE_ORDER, "pipeline")


def workdir_tag(workdir: str | Path) -> str:
    return WORKDIR_TAG + str(Path(workdir).resolve())


@dataclass(frozen=True)
class RunRow:
    stage: str
    started: str | None
    seconds: float | None
    state: str
    headline: str
    url: str


def _post(api_url: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(f"{api_url.rstrip('/')}/{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def belongs_to(run: dict[str, Any], workdir: Path) -> bool:
    """Whether a flow run (as the API returns it) ran on this work directory."""
    target = str(workdir.resolve())
    tags = [t for t in run.get("tags") or [] if t.startswith(WORKDIR_TAG)]
    if tags:
        return WORKDIR_TAG + target in tags
    parameter = (run.get("parameters") or {}).get("workdir")
    return isinstance(parameter, str) and str((PROJECT_ROOT / parameter).resolve()) == target


def _seconds(run: dict[str, Any]) -> float | None:
    if run.get("start_time") and run.get("end_time"):
        start, end = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("start_time", "end_time"))
        return round((end - start).total_seconds(), 1)
    return round(run["total_run_time"], 1) if run.get("total_run_time") else None


def recent_runs(api_url: str, workdir: Path, limit: int) -> list[RunRow]:
    """The work directory's last `limit` stage and pipeline runs, newest first."""
    flows = _post(api_url, "flows/filter", {"flows": {"name": {"any_": list(RUN_FLOWS)}}})
    names = {flow["id"]: flow["name"] for flow in flows}
    if not names:
        return []
    rows: list[RunRow] = []
    offset, page = 0, 200
    ui = api_url.rstrip("/").removesuffix("/api")
    while len(rows) < limit:
        runs = _post(api_url, "flow_runs/filter", {
            "flows": {"id": {"any_": list(names)}}, "sort": "EXPECTED_START_TIME_DESC", "limit": page, "offset": offset,
        })
        for run in runs:
            if belongs_to(run, workdir) and len(rows) < limit:
                state = run.get("state") or {}
                rows.append(RunRow(
                    stage=names.get(run["flow_id"], "?"), started=run.get("start_time"), seconds=_seconds(run),
                    state=state.get("name") or run.get("state_name") or "?", headline=state.get("message") or "",
                    url=f"{ui}/runs/flow-run/{run['id']}",
                ))
        if len(runs) < page:
            break
        offset += page
    return rows


def format_rows(rows: list[RunRow]) -> str:
    if not rows:
        return "no runs of this work directory are recorded on this server"
    lines = []
    for row in rows:
        started = row.started[:19].replace("T", " ") if row.started else "not started"
        took = f"{row.seconds:>7.1f}s" if row.seconds is not None else "       -"
        lines.append(f"{started}  {row.stage:<9} {took}  {row.state:<10} {row.headline}\n{'':21}{row.url}")
    return "\n".join(lines)


def rows_as_json(rows: list[RunRow]) -> str:
    return json.dumps({"runs": [asdict(row) for row in rows]})
