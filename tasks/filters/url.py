"""The URL filter: blocked domains and banned words, checked before any HTML is parsed.

Follows datatrove's URLFilter for the two rules it keeps:

* a URL whose host is a blocked domain, or a subdomain of one, is dropped
  ("url_blocked_domain"). datatrove compares the registered domain (via tldextract)
  and the full host against its list; "host equals or ends with .domain" gives the
  same answer for lists of registered domains and also covers listed subdomains'
  own subdomains, without needing the public-suffix list;
* a URL containing a banned word as a whole token, splitting the URL on every
  non-alphanumeric run, is dropped ("url_banned_word"). As in datatrove the URL is
  not lower-cased before splitting (the banned words are normalised to lower-case
  alphanumerics), so "PORN" in a path does not match "porn".

Not here yet (datatrove has them): its bundled UT1 adult domain/URL lists, the
"soft" banned words (two or more drop a URL) and banned substrings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import partial
from urllib.parse import urlsplit

from llmforge.config import UrlFilterConfig

# Domains blocked whatever the config says. Empty until the UT1 blocklist lands.
DEFAULT_BLOCKED_DOMAINS: frozenset[str] = frozenset()

_NON_ALNUM_RE = re.compile(r"[^a-zA-Z0-9]+")


def _normalise_word(word: str) -> str:
    return _NON_ALNUM_RE.sub("", word).lower()


def _normalise_domain(domain: str) -> str:
    return domain.strip().lower().strip(".")


def url_host(url: str) -> str:
    """The URL's host name, lower-case, without port, credentials or trailing dot."""
    parts = urlsplit(url if "://" in url else "//" + url)
    return (parts.hostname or "").strip(".")


def _is_blocked(host: str, blocked: frozenset[str]) -> bool:
    # Test the host and each parent domain: "a.b.example.com", "b.example.com", ...
    labels = host.split(".")
    return any(".".join(labels[i:]) in blocked for i in range(len(labels)))


def _domain_set(extra: Iterable[str]) -> frozenset[str]:
    return frozenset(d for d in map(_normalise_domain, (*DEFAULT_BLOCKED_DOMAINS, *extra)) if d)


def _check_url(blocked: frozenset[str], banned: frozenset[str], url: str) -> str | None:
    host = url_host(url)
    if host and _is_blocked(host, blocked):
        return "url_blocked_domain"
    if banned and not banned.isdisjoint(_NON_ALNUM_RE.split(url)):
        return "url_banned_word"
    return None


def url_filter(cfg: UrlFilterConfig) -> Callable[[str], str | None]:
    banned = frozenset(w for w in map(_normalise_word, cfg.banned_words) if w)
    return partial(_check_url, _domain_set(cfg.extra_blocked_domains), banned)
