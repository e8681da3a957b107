"""The chat page in headless Chromium (selenium): type a message, watch the reply stream in,
keep a multi-turn history, start a new chat; and pages of other sites, which must not reach the
model unless the server names their origin.

Needs Chromium (tests/chromium.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium import chromium

from tasks.chat.access import AccessPolicy
from tasks.chat.api import create_app
from tasks.chat.backend import FakeBackend
from tasks.chat.serve import BackgroundServer
from tasks.chat.validation import ServeLimits

# A real Chromium per module: seconds of start-up before the first page.
pytestmark = pytest.mark.slow

MODEL = "llmforge-fake"


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as web:
        yield web


@pytest.fixture()
def backend() -> FakeBackend:
    # Slow enough that the reply visibly arrives in several pieces.
    return FakeBackend(model_name=MODEL, delay_s=0.06, chars_per_token=2)


@pytest.fixture()
def server(backend: FakeBackend) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(backend, ServeLimits())) as live:
        yield live


def _wait(driver: Any, condition: Any, timeout: float = 10.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def _record_assistant_text(driver: Any) -> None:
    """Start recording every text the last assistant bubble shows (to prove it streamed)."""
    driver.execute_script(
        """
        window.__seen = [];
        const view = document.getElementById("conversation");
        new MutationObserver(() => {
          const replies = view.querySelectorAll(".message.assistant");
          if (replies.length) window.__seen.push(replies[replies.length - 1].textContent);
        }).observe(view, {subtree: true, childList: true, characterData: true});
        """
    )


def _send(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.ID, "input")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    # The reply is finished when the page is idle again and the bubble has text.
    _wait(driver, lambda d: d.execute_script("return document.body.dataset.state") == "idle"
          and d.find_elements(By.CSS_SELECTOR, ".message.assistant"))  # fmt: skip


def _bubbles(driver: Any) -> list[tuple[str, str]]:
    from selenium.webdriver.common.by import By

    return [(e.get_attribute("data-role"), e.text) for e in driver.find_elements(By.CSS_SELECTOR, ".message")]


def test_chat_page_streams_replies_and_keeps_history(driver: Any, server: BackgroundServer, backend: FakeBackend) -> None:
    from selenium.webdriver.common.by import By

    driver.get(server.url + "/")
    _wait(driver, lambda d: d.find_element(By.ID, "model-name").text == MODEL)

    # The temperature slider's value is what the request carries.
    slider = driver.find_element(By.ID, "temperature")
    driver.execute_script(
        "arguments[0].value = '0.3'; arguments[0].dispatchEvent(new Event('input'));", slider
    )
    assert driver.find_element(By.ID, "temperature-value").text == "0.3"

    _record_assistant_text(driver)
    _send(driver, "hello browser")
    expected = "Echo: hello browser"
    _wait(driver, lambda d: _bubbles(d) == [("user", "hello browser"), ("assistant", expected)])
    seen = [t for t in driver.execute_script("return window.__seen") if t]
    # Streamed: the bubble showed several growing prefixes before the whole reply.
    partial = {t for t in seen if t != expected}
    assert len(partial) >= 3, seen
    assert all(expected.startswith(t) for t in seen), seen
    assert backend.calls[-1]["temperature"] == pytest.approx(0.3)

    # Multi-turn: the second request carries the whole conversation.
    _send(driver, "and again")
    _wait(driver, lambda d: len(_bubbles(d)) == 4 and _bubbles(d)[-1] == ("assistant", "Echo: and again"))
    assert [(m["role"], m["content"]) for m in backend.calls[-1]["messages"]] == [
        ("user", "hello browser"),
        ("assistant", expected),
        ("user", "and again"),
    ]

    # New chat: the view is cleared and the next request starts a fresh history.
    driver.find_element(By.ID, "new-chat").click()
    assert _bubbles(driver) == []
    _send(driver, "fresh start")
    _wait(driver, lambda d: _bubbles(d) == [("user", "fresh start"), ("assistant", "Echo: fresh start")])
    assert [m["content"] for m in backend.calls[-1]["messages"]] == ["fresh start"]


def test_page_is_self_contained(server: BackgroundServer) -> None:
    """No CDN: every script and stylesheet the page names is served by this server."""
    import re

    import httpx

    html = httpx.get(server.url + "/").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    for asset in assets:
        assert httpx.get(server.url + asset).status_code == 200, asset
    web_dir = Path(__file__).resolve().parent.parent / "tasks" / "chat" / "web"
    for source in web_dir.iterdir():
        assert "http://" not in source.read_text() and "https://" not in source.read_text(), source


# --- Other sites ---------------------------------------------------------------------------------

# Run in a page of another origin: what any site the user visits could try. A "simple" text/plain
# POST needs no preflight (the browser sends it, only the reply stays hidden); a JSON POST is
# preflighted. Reports what came back to the page.
CROSS_SITE_FETCHES = """
const [url, body, done] = arguments;
(async () => {
  const seen = {};
  try {
    await fetch(url, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body});
    seen.textPlain = "sent";
  } catch (err) { seen.textPlain = "failed: " + err; }
  try {
    const response = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body});
    const reply = await response.json();
    seen.json = response.status + " " + (reply.choices ? reply.choices[0].message.content : reply.error.code);
  } catch (err) { seen.json = "blocked"; }
  done(seen);
})();
"""


@pytest.fixture()
def other_site() -> Iterator[BackgroundServer]:
    """A plain page on another origin (another port of this machine)."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def page(request: Any) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>another site</title><p>nothing here</p>")

    with BackgroundServer(Starlette(routes=[Route("/", page)])) as live:
        yield live


def _fetch_from(driver: Any, site: BackgroundServer, api: BackgroundServer) -> dict[str, str]:
    driver.get(site.url + "/")
    driver.set_script_timeout(15)
    body = '{"model": "%s", "messages": [{"role": "user", "content": "from elsewhere"}]}' % MODEL
    seen: dict[str, str] = driver.execute_async_script(CROSS_SITE_FETCHES, api.url + "/v1/chat/completions", body)
    return seen


def test_other_sites_cannot_use_the_model(
    driver: Any, other_site: BackgroundServer, server: BackgroundServer, backend: FakeBackend,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    with caplog.at_level("WARNING", logger="llmforge.serve"):
        seen = _fetch_from(driver, other_site, server)
    assert seen == {"textPlain": "sent", "json": "blocked"}, seen
    # The text/plain POST did reach the server, and was refused there before any generation.
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused POST")]
    assert any(other_site.url in message for message in refusals), refusals
    assert backend.calls == []


def test_a_configured_site_can_use_the_api(driver: Any, other_site: BackgroundServer, backend: FakeBackend) -> None:
    access = AccessPolicy.build("127.0.0.1", cors_origins=[other_site.url])
    with BackgroundServer(create_app(backend, ServeLimits(), access)) as api:
        seen = _fetch_from(driver, other_site, api)
    # The JSON request (after its preflight) is answered; the text/plain one still starts nothing.
    assert seen == {"textPlain": "sent", "json": "200 Echo: from elsewhere"}, seen
    assert len(backend.calls) == 1
