"""A failed run posts to LLMFORGE_FAILURE_WEBHOOK, once, and a dead webhook changes nothing about the run."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from llmforge.notify import failure_payload, run_page


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"content_type": self.headers["Content-Type"], **json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def receiver() -> Iterator[tuple[str, list[dict]]]:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.received
    finally:
        server.shutdown()
        server.server_close()


def test_the_payload_is_one_line_and_links_to_the_run() -> None:
    payload = failure_payload("data", "abc", "brave-fox", "Failed", "source not found:\n  /x", "runs/a",
                              run_page("http://127.0.0.1:4200/api", "abc"))
    assert payload == {"event": "llmforge.run.failed", "flow": "data", "flow_run_id": "abc",
                       "flow_run_name": "brave-fox", "state": "Failed", "message": "source not found: /x",
                       "workdir": "runs/a", "url": "http://127.0.0.1:4200/runs/flow-run/abc"}
    assert run_page("https://api.prefect.cloud/api/accounts/x/workspaces/y", "abc") is None  # not a local server
    assert run_page(None, "abc") is None


@pytest.mark.integration
def test_a_failed_stage_run_posts_once_to_the_webhook(prefect_harness, receiver, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.tokenization import tokenize_flow

    url, received = receiver
    monkeypatch.setenv("LLMFORGE_FAILURE_WEBHOOK", url)
    with pytest.raises(Exception) as raised:
        tokenize_flow(workdir=str(tmp_path / "empty"))  # no documents to tokenize
    [note] = received
    assert note["content_type"] == "application/json"
    assert note["event"] == "llmforge.run.failed" and note["flow"] == "tokenize" and note["state"] == "Failed"
    assert note["workdir"] == str(tmp_path / "empty") and note["flow_run_id"]
    assert str(raised.value).split()[0] in note["message"]


@pytest.mark.integration
def test_an_unreachable_webhook_leaves_the_run_s_own_error(prefect_harness, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    from flows.tokenization import tokenize_flow

    monkeypatch.setenv("LLMFORGE_FAILURE_WEBHOOK", "http://127.0.0.1:9/nobody")
    with pytest.raises(Exception) as raised:
        tokenize_flow(workdir=str(tmp_path / "empty"))
    assert "notification" not in str(raised.value)
    assert any("could not send the failure notification" in r.getMessage() for r in caplog.records)


@pytest.mark.integration
def test_a_successful_run_posts_nothing(prefect_harness, receiver, shared_data: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.data import data_flow
    from llmforge.config import DataConfig

    url, received = receiver
    monkeypatch.setenv("LLMFORGE_FAILURE_WEBHOOK", url)
    source = shared_data / "warc" / "jwarc-commoncrawl.org-single-response.warc.gz"
    assert data_flow(workdir=str(tmp_path / "w"), config=DataConfig(source=str(source)))["status"] == "ran"
    assert received == []
