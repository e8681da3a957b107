"""PII anonymisation: e-mail addresses and public IPv4 addresses, as datatrove's PIIFormatter.

Rules taken from datatrove:

* e-mails: the usual RFC 5322-style pattern (dot-separated local part of letters,
  digits and ``!#$%&'*+/=?^_`{|}~-``; a dotted host name or a bracketed IP-ish
  literal), every match replaced;
* IPv4: four dotted decimal octets 0-255; replaced only when Python's ``ipaddress``
  calls the address global (``is_global``), so private (10/8, 172.16/12,
  192.168/16), loopback (127/8), link-local, shared (100.64/10), reserved and
  documentation ranges stay (multicast counts as global and is replaced); an octet
  with a leading zero is not a valid address and stays too;
* e-mails first, then IPs.

Deliberate differences: datatrove cycles through several replacement strings, we use
the single one the config gives; and datatrove's IP pattern has no boundaries, so it
also rewrites the first four parts of "1.2.3.4.5" or the digits "11.22.33.44" inside
"11.22.33.444" (leaving "0.0.0.04"). Here an address must not be glued to more
digits or dotted numbers on either side.
"""

from __future__ import annotations

import ipaddress
import re

from llmforge.config import PiiConfig

_LOCAL_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
_BRACKETED_HOST = rf"\[(?:{_OCTET}\.){{3}}(?:{_OCTET}|[A-Za-z0-9-]*[A-Za-z0-9]:)\]"
_EMAIL_RE = re.compile(
    rf"\b{_LOCAL_ATOM}(?:\.{_LOCAL_ATOM})*@(?:(?:{_HOST_LABEL}\.)+{_HOST_LABEL}|{_BRACKETED_HOST})"
)
_IPV4_RE = re.compile(rf"(?<![\d.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\.?\d)")


def is_public_ipv4(candidate: str) -> bool:
    try:
        return ipaddress.IPv4Address(candidate).is_global
    except ValueError:
        return False


def anonymize_pii(text: str, cfg: PiiConfig) -> tuple[str, int]:
    """(text with e-mails and public IPv4 addresses replaced, number of replacements)."""
    count = 0

    def email(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return cfg.email_replacement

    def ip(match: re.Match[str]) -> str:
        nonlocal count
        if not is_public_ipv4(match.group(0)):
            return match.group(0)
        count += 1
        return cfg.ip_replacement

    text = _EMAIL_RE.sub(email, text)
    text = _IPV4_RE.sub(ip, text)
    return text, count
