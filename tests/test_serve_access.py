"""Which requests `llmforge serve` answers: by `Host` (DNS rebinding) and by `Origin` (other sites),
plus the JSON-only POST rule, against a live server. A refused request never reaches the model:
each test checks the `FakeBackend`'s `calls`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from llmforge.cli import main
from tasks.chat.access import AccessPolicy
from tasks.chat.api import create_app
from tasks.chat.backend import FakeBackend
from tasks.chat.serve import BackgroundServer

MODEL = "llmforge-fake"
REQUEST = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
JSON = {"content-type": "application/json"}
SITE = "http://localhost:3000"  # a web app allowed to use the API from the browser


@pytest.fixture()
def backend() -> FakeBackend:
    return FakeBackend(model_name=MODEL)


@pytest.fixture()
def live(backend: FakeBackend) -> Iterator[BackgroundServer]:
    access = AccessPolicy.build("127.0.0.1", allowed_hosts=["chat.example", "fixed.example:8443"], cors_origins=[SITE])
    with BackgroundServer(create_app(backend, access=access)) as server:
        yield server


def _chat(server: BackgroundServer, headers: dict[str, str], body: str = REQUEST) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", content=body, headers=headers, timeout=10)


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code, error


# --- Host ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example",  # DNS rebinding: the attacker's name, resolving to 127.0.0.1
        "attacker.example:{port}",
        "localhost.attacker.example:{port}",
        "127.0.0.1:1",  # a loopback name, but not this server's port
        "localhost",  # port 80 implied
        "192.168.1.20:{port}",
        "bad host",
        "[not-ipv6]:{port}",
        "[127.0.0.1]:{port}",
        "",
        "fixed.example:{port}",  # configured for port 8443 only
    ],
)
def test_other_hosts_are_refused(live: BackgroundServer, backend: FakeBackend, host: str) -> None:
    headers = {**JSON, "host": host.format(port=live.port)}
    _error(_chat(live, headers), 421, "host_not_allowed")
    _error(httpx.get(f"{live.url}/v1/models", headers=headers), 421, "host_not_allowed")
    _error(httpx.get(f"{live.url}/", headers=headers), 421, "host_not_allowed")  # the page too
    assert backend.calls == []


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:{port}", "localhost:{port}", "LocalHost:{port}", "[::1]:{port}", "127.0.0.2:{port}",
     "chat.example", "chat.example:{port}", "chat.example:1234", "fixed.example:8443"],
)  # fmt: skip
def test_loopback_and_configured_hosts_are_answered(live: BackgroundServer, backend: FakeBackend, host: str) -> None:
    response = _chat(live, {**JSON, "host": host.format(port=live.port)})
    assert response.status_code == 200, response.text
    assert len(backend.calls) == 1


def test_the_bound_address_implies_its_name_and_a_wildcard_none() -> None:
    port = 8000
    wildcard = AccessPolicy.build("0.0.0.0")
    assert wildcard.allows_host("localhost:8000", "http", port)
    assert not wildcard.allows_host("192.168.1.5:8000", "http", port)
    assert not wildcard.allows_host("myhost.lan:8000", "http", port)
    assert not AccessPolicy.build("::").allows_host("[fe80::1]:8000", "http", port)

    specific = AccessPolicy.build("192.168.1.5")
    assert specific.allows_host("192.168.1.5:8000", "http", port)
    assert not specific.allows_host("192.168.1.5:9000", "http", port)
    assert not specific.allows_host("attacker.example:8000", "http", port)
    assert AccessPolicy.build("fd00::5").allows_host("[fd00::5]:8000", "http", port)

    named = AccessPolicy.build("0.0.0.0", allowed_hosts=["gpu-box.lan"])
    assert named.allows_host("GPU-BOX.lan:8000", "http", port)
    assert named.allows_host("gpu-box.lan", "https", port)  # behind a TLS proxy
    # A Host without a port means the scheme's default port.
    assert AccessPolicy.build().allows_host("localhost", "https", 443)


# --- Origin and Content-Type --------------------------------------------------------------------


def test_cross_origin_text_plain_post_never_starts_a_generation(live: BackgroundServer, backend: FakeBackend) -> None:
    # What any web page can send without a preflight: `fetch(url, {method: "POST", mode: "no-cors", body})`.
    response = _chat(live, {"content-type": "text/plain;charset=UTF-8", "origin": "https://attacker.example"})
    _error(response, 403, "origin_not_allowed")
    assert "access-control-allow-origin" not in response.headers
    # Even from an allowed site, or with no Origin at all, a non-JSON body is refused: 415.
    for headers in ({"content-type": "text/plain", "origin": SITE}, {"content-type": "text/plain"},
                    {"content-type": "application/x-www-form-urlencoded"}, {"content-type": "multipart/form-data"},
                    {"content-type": "application/json; charset=latin-1"}, {}):  # fmt: skip
        _error(_chat(live, headers), 415, "unsupported_media_type")
    assert backend.calls == []


@pytest.mark.parametrize(
    "origin", ["https://attacker.example", "http://localhost:3001", "https://localhost:3000", "null", "garbage"]
)
def test_cross_origin_json_post_from_an_unconfigured_origin_is_refused(
    live: BackgroundServer, backend: FakeBackend, origin: str
) -> None:
    response = _chat(live, {**JSON, "origin": origin})
    _error(response, 403, "origin_not_allowed")
    assert "access-control-allow-origin" not in response.headers
    _error(httpx.get(f"{live.url}/v1/models", headers={"origin": origin}), 403, "origin_not_allowed")
    assert backend.calls == []


def test_same_origin_requests_are_answered(live: BackgroundServer, backend: FakeBackend) -> None:
    """What the chat page sends: its own origin (browsers add Origin to same-origin POSTs)."""
    pages = ((live.url, f"127.0.0.1:{live.port}"), (f"http://localhost:{live.port}", f"localhost:{live.port}"))
    for origin, host in pages:
        response = _chat(live, {**JSON, "origin": origin, "host": host})
        assert response.status_code == 200, response.text
        assert "access-control-allow-origin" not in response.headers  # same origin: no CORS needed
    assert len(backend.calls) == 2


def test_a_configured_origin_gets_cors_headers(live: BackgroundServer, backend: FakeBackend) -> None:
    response = _chat(live, {**JSON, "origin": SITE})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == SITE
    assert "Origin" in response.headers["vary"]
    assert response.json()["choices"][0]["message"]["content"] == "Echo: hi"

    models = httpx.get(f"{live.url}/v1/models", headers={"origin": SITE})
    assert models.status_code == 200 and models.headers["access-control-allow-origin"] == SITE
    # Errors carry the header too, so the site's page can read them.
    bad = _chat(live, {**JSON, "origin": SITE}, body="{")
    assert bad.status_code == 400 and bad.headers["access-control-allow-origin"] == SITE
    # A streamed reply as well.
    stream_body = json.dumps({**json.loads(REQUEST), "stream": True})
    with httpx.stream("POST", f"{live.url}/v1/chat/completions", content=stream_body,
                      headers={**JSON, "origin": SITE}) as streamed:  # fmt: skip
        assert streamed.headers["access-control-allow-origin"] == SITE
        assert list(streamed.iter_lines())[-2] == "data: [DONE]"
    assert len(backend.calls) == 2


def test_preflight(live: BackgroundServer, backend: FakeBackend) -> None:
    asked = "content-type, authorization, x-stainless-os"
    preflight = {"origin": SITE, "access-control-request-method": "POST", "access-control-request-headers": asked}
    response = httpx.options(f"{live.url}/v1/chat/completions", headers=preflight)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == SITE
    assert set(response.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
    assert response.headers["access-control-allow-headers"] == asked
    assert int(response.headers["access-control-max-age"]) > 0
    assert "Origin" in response.headers["vary"]

    # A malformed header list is not echoed back.
    odd = httpx.options(f"{live.url}/v1/chat/completions",
                        headers={**preflight, "access-control-request-headers": "x-a\tb, (c)"})  # fmt: skip
    assert odd.status_code == 204 and "access-control-allow-headers" not in odd.headers

    attacker = {**preflight, "origin": "https://attacker.example"}
    refused = httpx.options(f"{live.url}/v1/chat/completions", headers=attacker)
    _error(refused, 403, "origin_not_allowed")
    assert not any(name.startswith("access-control-") for name in refused.headers)
    assert backend.calls == []


# --- Configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed_hosts", "cors_origins", "message"),
    [
        ((), ("*",), "any web page"),
        ((), ("null",), "any web page"),
        ((), ("http://localhost:3000/app",), "--cors-origin"),
        ((), ("ftp://localhost",), "--cors-origin"),
        ((), ("localhost:3000",), "--cors-origin"),
        (("http://chat.example",), (), "--allowed-host"),
        (("chat.example:99999",), (), "--allowed-host"),
    ],
)
def test_malformed_hosts_and_origins_are_refused_at_start(
    allowed_hosts: tuple[str, ...], cors_origins: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AccessPolicy.build("127.0.0.1", allowed_hosts, cors_origins)


def test_configured_origins_are_normalised() -> None:
    policy = AccessPolicy.build(cors_origins=["HTTP://LocalHost:3000/", "https://app.example:443"])
    assert policy.cors_origins == {("http", "localhost", 3000), ("https", "app.example", 443)}


def test_serve_command_checks_its_flags_before_loading_a_model(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--workdir", str(tmp_path), "--allowed-host", "ok.example", "--cors-origin", "*"])
    assert code == 1
    assert "--cors-origin '*' would let any web page use the model" in capsys.readouterr().err
