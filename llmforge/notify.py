"""A failed run tells someone: a JSON POST to the webhook in LLMFORGE_FAILURE_WEBHOOK.

Set it in the environment of the CLI or of the worker (a deployment's job variables) to
reach a chat channel, a pager or any HTTP receiver. The body is one JSON object:
``event`` ("llmforge.run.failed"), ``flow``, ``flow_run_id``, ``flow_run_name``,
``state`` ("Failed" or "Crashed"), ``message`` (the error, one line), ``workdir``
and ``url`` (the run's page in the Prefect UI, when known). A notification that cannot
be delivered is a warning; it never changes how the run ended.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

WEBHOOK_ENV = "LLMFORGE_FAILURE_WEBHOOK"
TIMEOUT_SECONDS = 10.0


def run_page(api_url: str | None, flow_run_id: str) -> str | None:
    """The UI page of a run on a server whose API is at `api_url` (a local or self-hosted server)."""
    if not api_url or not api_url.rstrip("/").endswith("/api"):
        return None
    return f"{api_url.rstrip('/').removesuffix('/api')}/runs/flow-run/{flow_run_id}"


def failure_payload(flow: str, flow_run_id: str, flow_run_name: str, state: str, message: str | None,
                    workdir: str | None, url: str | None) -> dict[str, Any]:
    return {
        "event": "llmforge.run.failed", "flow": flow, "flow_run_id": flow_run_id, "flow_run_name": flow_run_name,
        "state": state, "message": " ".join((message or "").split()), "workdir": workdir, "url": url,
    }


def post_json(url: str, payload: dict[str, Any], timeout: float = TIMEOUT_SECONDS) -> int:
    """POST the payload; returns the HTTP status (urllib raises OSError on a connection or HTTP error)."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "llmforge"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status
