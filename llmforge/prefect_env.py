"""Which Prefect API the CLI talks to (the persistent local server unless told otherwise), and
what the CLI's console shows of Prefect's run logs."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from llmforge.local_server import ensure_server, ephemeral_requested, server_paths

# The temporary server configure_prefect started, if any (Prefect also stops it at exit).
_temporary_server: Any = None


def configure_prefect(ephemeral: bool = False) -> str:
    """Call before running flows. Returns the API URL in use.

    An explicit PREFECT_API_URL wins; otherwise runs go to the persistent local server
    (`llmforge.local_server`, started here on first use), or with `ephemeral` (or
    LLMFORGE_EPHEMERAL=1) to a temporary server that ends with this process. The URL is
    put in the environment: the process pool's workers inherit it and report to the
    same server instead of each starting one of their own.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    if ephemeral or ephemeral_requested():
        from prefect.server.api.server import SubprocessASGIServer

        global _temporary_server
        _temporary_server = SubprocessASGIServer()
        _temporary_server.start(timeout=120)
        api = _temporary_server.api_url
    else:
        record, started = ensure_server()
        if started:
            print(f"llmforge: started the local Prefect server at {record.ui_url} "
                  f"(run history in {server_paths().directory}; `llmforge server stop` stops it)",
                  file=sys.stderr, flush=True)
        api = record.api_url
    os.environ["PREFECT_API_URL"] = api
    return api


def stop_temporary_server() -> None:
    """Stop the temporary server now (its log line comes before the CLI's last line), if one was started."""
    global _temporary_server
    if _temporary_server is not None:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        # The run's last logs and events are still queued for the server: send them while it is up.
        for service in (APILogWorker, EventsWorker):
            service.drain_all(timeout=5)
        _temporary_server.stop()
        _temporary_server = None


# Loggers of flow and task runs: every record still reaches the server through Prefect's API handler.
_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class _CliConsoleFilter(logging.Filter):
    """Keeps Prefect's tracebacks and repeated failures off the CLI's console.

    A flow run that raises is logged with the whole traceback (~30 lines) before the exception
    reaches the CLI, which then reports it as one line: that record is dropped here. So are a
    failed task run's error records: the flow fails with the same exception, or reports it in
    its own one line (failed shards). A task that will be retried says so at INFO, which stays.
    After an interrupt nothing is shown: the CLI has already said so. `--verbose` shows it all.
    """

    def __init__(self) -> None:
        super().__init__()
        self.silent = False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.silent:
            return False
        if not record.name.startswith(_RUN_LOGGERS):
            return True
        if record.name.startswith("prefect.task_runs"):
            return record.levelno < logging.ERROR
        return not record.exc_info


def _console_filters() -> list[_CliConsoleFilter]:
    return [f for h in logging.getLogger().handlers for f in h.filters if isinstance(f, _CliConsoleFilter)]


def quiet_run_tracebacks() -> None:
    """Install the console filter on Prefect's console handler (idempotent); `--verbose` skips this."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()  # Prefect sets its handlers up lazily; later set-ups only adjust levels
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
            isinstance(f, _CliConsoleFilter) for f in handler.filters
        ):
            handler.addFilter(_CliConsoleFilter())


def silence_console() -> None:
    """Show no more Prefect logs on the console (after an interrupt); the server still gets them."""
    for console_filter in _console_filters():
        console_filter.silent = True
