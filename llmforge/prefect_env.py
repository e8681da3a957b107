"""Which Prefect API the CLI talks to: a running dashboard if there is one, else a temporary local server."""

from __future__ import annotations

import os
import urllib.request

DEFAULT_DASHBOARD_API = "http://127.0.0.1:4200/api"


def dashboard_api_url() -> str:
    return os.environ.get("LLMFORGE_DASHBOARD_API", DEFAULT_DASHBOARD_API)


def server_is_up(api_url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def configure_prefect() -> str:
    """Call before running flows. Returns the API URL in use.

    An explicit PREFECT_API_URL wins; otherwise a dashboard started with
    `llmforge dashboard` is used when it answers, so CLI runs show up on it.
    Failing both, a temporary local server is started here and named in the
    environment: worker processes of the process pool inherit it and report
    to the same server, instead of each starting a temporary server of its own.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    api = dashboard_api_url()
    if not server_is_up(api):
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()
        server.start(timeout=120)
        api = server.api_url
    os.environ["PREFECT_API_URL"] = api
    return api
