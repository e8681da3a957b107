"""Which requests the chat server answers at all: by `Host` and by `Origin`.

Any web page the user opens can make the browser send requests to a server on this
machine. Two rules keep such pages from using the model or reading its replies:

* **Host (DNS rebinding).** An attacker's name that resolves to 127.0.0.1 makes the
  browser treat this server as the attacker's site, so its page could read the
  replies. Such requests still carry the attacker's name in `Host`. Answered are
  only loopback names (`localhost`, loopback IPs such as `127.0.0.1` and `[::1]`) and
  the specific address the server was bound to, each on the server's own port, plus
  the names given with `--allowed-host` (`name`: any port, `name:port`: that one).
  Binding a wildcard address (`0.0.0.0`, `::`) adds no name: other machines reach
  the server only through names given with `--allowed-host`.
* **Origin (cross-site requests).** A page elsewhere can still send a request the
  browser thinks harmless (a `text/plain` POST needs no preflight): it cannot read
  the reply, but the model would run. A request whose `Origin` is neither this
  server's own origin nor one given with `--cors-origin` is refused (`RequestGuard`
  does so before the body is read); the configured ones get CORS headers.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_PORTS = {"http": 80, "https": 443}
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::", "[::]"})
# A host as it appears in a Host header or an origin: a name or IPv4 address, or an IPv6
# address in brackets, then an optional port. Lower-cased before matching.
_HOST_PORT = re.compile(r"(?P<name>\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?")
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<host>[^/?#@]+)")

Origin = tuple[str, str, int]  # scheme, host name, port (the scheme's default when not written)


class OriginVerdict(enum.Enum):
    NONE = "no Origin header"  # not sent by a browser for this request, or not a browser
    SAME = "same origin"  # the chat page itself
    ALLOWED = "configured cross origin"  # given with --cors-origin: answered with CORS headers
    REFUSED = "other origin"


def parse_host(value: str) -> tuple[str, int | None]:
    """`name[:port]` as (lower-case name, port or None); IPv6 keeps its brackets. ValueError if malformed."""
    match = _HOST_PORT.fullmatch(value.strip().lower())
    if match is None:
        raise ValueError(f"{value!r} is not a host name, an IPv4 address or a bracketed IPv6 address")
    name = match["name"]
    if name.startswith("["):
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            raise ValueError(f"{value!r} has brackets around something that is not an IPv6 address") from None
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{value!r} has port {port}, outside 1-65535")
    return name, port


def parse_origin(value: str) -> Origin:
    """An origin as browsers send it (`http://localhost:3000`); ValueError for anything else (`null` included)."""
    cleaned = value.strip().lower()
    match = _ORIGIN.fullmatch(cleaned.removesuffix("/"))
    if match is None:
        raise ValueError(f"{value!r} is not an origin of the form http(s)://host[:port]")
    name, port = parse_host(match["host"])
    scheme = match["scheme"]
    return scheme, name, port or DEFAULT_PORTS[scheme]


def is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def _host_name_of_address(bind_host: str) -> str | None:
    """The Host-header name of a bound address; None for a wildcard (no single name)."""
    address = bind_host.strip().lower()
    if address in WILDCARD_ADDRESSES:
        return None
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"  # IPv6, written as in a URL
    return parse_host(address)[0]


@dataclass(frozen=True)
class AccessPolicy:
    """The hosts and origins one server answers; see the module docstring for the rules."""

    bound_name: str | None = None  # the specific address the server listens on (None: loopback or wildcard)
    allowed_hosts: frozenset[tuple[str, int | None]] = frozenset()  # --allowed-host; port None: any port
    cors_origins: frozenset[Origin] = frozenset()  # --cors-origin

    @classmethod
    def build(
        cls, bind_host: str = "127.0.0.1", allowed_hosts: Iterable[str] = (), cors_origins: Iterable[str] = ()
    ) -> AccessPolicy:
        """The policy of a server bound to `bind_host`; ValueError names a malformed host or origin."""
        try:
            hosts = frozenset(parse_host(h) for h in allowed_hosts)
        except ValueError as exc:
            raise ValueError(f"--allowed-host: {exc}") from None
        origins: set[Origin] = set()
        for origin in cors_origins:
            if origin.strip() in ("*", "null"):
                raise ValueError(
                    f"--cors-origin {origin!r} would let any web page use the model; name each site's origin"
                )
            try:
                origins.add(parse_origin(origin))
            except ValueError as exc:
                raise ValueError(f"--cors-origin: {exc}") from None
        try:
            bound = _host_name_of_address(bind_host)
        except ValueError as exc:
            raise ValueError(f"--host: {exc}") from None
        return cls(bound_name=None if bound is None or is_loopback(bound) else bound, allowed_hosts=hosts,
                   cors_origins=frozenset(origins))  # fmt: skip

    def allows_host(self, host: str | None, scheme: str, server_port: int | None) -> bool:
        """Whether a request with this Host header is answered; `server_port` is the port it arrived on."""
        if not host:
            return False
        try:
            name, port = parse_host(host)
        except ValueError:
            return False
        port = port or DEFAULT_PORTS.get(scheme, 80)
        if (name, None) in self.allowed_hosts or (name, port) in self.allowed_hosts:
            return True
        own_name = is_loopback(name) or name == self.bound_name
        return own_name and (server_port is None or port == server_port)

    def judge_origin(self, origin: str | None, host: str, scheme: str) -> OriginVerdict:
        """Where a request with this Origin comes from, relative to this server at `scheme`://`host`."""
        if origin is None:
            return OriginVerdict.NONE
        try:
            sender = parse_origin(origin)
            name, port = parse_host(host)
        except ValueError:  # "null" (sandboxed frames, file: pages) or garbage: no site to trust
            return OriginVerdict.REFUSED
        if sender == (scheme, name, port or DEFAULT_PORTS.get(scheme, 80)):
            return OriginVerdict.SAME
        return OriginVerdict.ALLOWED if sender in self.cors_origins else OriginVerdict.REFUSED
