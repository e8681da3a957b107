"""The URL filter: FineWeb's blocklists and banned words, checked before any HTML is parsed.

Follows datatrove 0.10.1's ``URLFilter`` (the first filter of FineWeb), with the same
lists: the UT1 blocklist (``url_filterblacklistsv0_3_0.tar.gz``: 4.56 M ``domains``,
19.6 K ``urls``) and ``banned_words.txt``, ``banned_subwords.txt`` and
``soft_banned_words.txt``, found through tasks/data/assets.py (asset ``url_lists``). In
datatrove's order, a URL is dropped when

1. its registered domain (eTLD+1: public suffix plus one label) is a listed domain
   ("url_blocked_domain"; datatrove's reason "domain");
2. its full host is a listed domain ("url_blocked_subdomain"; "subdomain");
3. it is a listed URL ("url_blocked_url"; "url");
4. one of its tokens is a banned word ("url_banned_word"; "hard_blacklisted"): the
   URL is split on every run of non-alphanumeric characters, *without* lower-casing,
   so "PORN" in a path does not match "porn";
5. at least ``soft_word_threshold`` (2) distinct soft-banned words are among its tokens
   ("url_soft_banned_words"; "soft_blacklisted");
6. a banned subword is a substring of the URL with every non-alphanumeric character
   removed and lower-cased ("url_banned_subword"; "blacklisted_subword").

List entries are read as datatrove reads them: lines starting with "#" are comments;
domains and URLs are stripped, words are reduced to lower-case alphanumerics. The
config's ``banned_words`` and ``extra_blocked_domains`` are added to the lists.

The registered domain is computed as ``tldextract`` does by default (ICANN section of
the Public Suffix List, no implicit "*" rule: a host whose suffix is unknown, and an
IP address, has no registered domain and is never blocked by rules 1-2), from the PSL
snapshot found through tasks/data/assets.py (asset ``public_suffix_list``), so nothing is
fetched at run time.

Deliberate differences from datatrove:

* hosts are compared lower-case (datatrove compares tldextract's output, which keeps
  the URL's case, so "WWW.PornSite.COM" escapes the list there);
* a listed URL also matches without its scheme: UT1's URL list has no scheme
  ("host/path") while datatrove compares the full URL ("https://host/path"), so in
  datatrove that list never matches a crawled URL;
* ``extra_blocked_domains`` (ours, not in UT1) block the host and every subdomain,
  also under suffixes the PSL does not know (".example", ".local");
* empty words (a list line with no alphanumerics) are ignored instead of matching the
  empty token that every URL ending in "/" has.

Memory: the 4.56 M domains are kept as a sorted array of 64-bit hashes (36 MB instead
of ~450 MB for a Python set of strings). Parsing the lists takes ~1.3 s (the process
peaks at ~300 MB while it reads them); the parsed form is cached on disk (see
``load_lists``), so later processes memory-map it in a few milliseconds and share its
pages. Lists load once per process and are shared by every filter built from the
same sources. A hash collision could block a URL by mistake with probability ~2.5e-13
per lookup.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from xxhash import xxh3_64_intdigest

from llmforge.config import UrlFilterConfig, cache_dir
from tasks.data.assets import (
    BANNED_SUBWORDS_FILE,
    BANNED_WORDS_FILE,
    DOMAINS_FILE,
    SOFT_BANNED_WORDS_FILE,
    URL_LIST_FILES,
    URLS_FILE,
    UT1_ARCHIVE,
    asset_path,
)

# Our reason -> datatrove's reason, in the order the rules are checked.
DATATROVE_REASONS = {
    "url_blocked_domain": "domain",
    "url_blocked_subdomain": "subdomain",
    "url_blocked_url": "url",
    "url_banned_word": "hard_blacklisted",
    "url_soft_banned_words": "soft_blacklisted",
    "url_banned_subword": "blacklisted_subword",
}
REASONS = tuple(DATATROVE_REASONS)

# Domains blocked whatever the config says (besides the integrated lists).
DEFAULT_BLOCKED_DOMAINS: frozenset[str] = frozenset()
DEFAULT_SOFT_WORD_THRESHOLD = 2

_NON_ALNUM_RE = re.compile(r"[^a-zA-Z0-9]+")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _normalise_word(word: str) -> str:
    return _NON_ALNUM_RE.sub("", word).lower()


def _normalise_domain(domain: str) -> str:
    return domain.strip().lower().strip(".")


def url_host(url: str) -> str:
    """The URL's host name, lower-case, without port, credentials or trailing dot."""
    text = url if "://" in url else "//" + url
    try:
        host = urlsplit(text).hostname or ""
    except ValueError:  # e.g. an unbalanced "[" in the authority
        authority = re.split(r"[/?#]", text.split("//", 1)[-1], maxsplit=1)[0]
        host = authority.rpartition("@")[2].partition(":")[0].lower()
    return host.strip(".")


# ---------------------------------------------------------------- public suffix list


class PublicSuffixList:
    """The ICANN section of the Public Suffix List, matched as tldextract does by default."""

    def __init__(self, rules: Iterable[str]):
        self._root: dict = {}
        for rule in rules:
            node = self._root
            for label in reversed(rule.lower().split(".")):
                node = node.setdefault(label, {})
            node[""] = True  # a rule ends here

    @classmethod
    def from_file(cls, path: str | Path, private: bool = False) -> PublicSuffixList:
        rules = []
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if "===BEGIN PRIVATE DOMAINS===" in line and not private:
                break
            rule = line.strip().split(maxsplit=1)[0] if line.strip() else ""
            if rule and not rule.startswith("//"):
                rules.append(rule)
        return cls(rules)

    def suffix_start(self, labels: list[str]) -> int:
        """Index of the first label of the public suffix; len(labels) when none is known."""
        node = self._root
        start = end = len(labels)
        for label in reversed(labels):
            label = _decode_label(label)
            child = node.get(label)
            if child is not None:
                end -= 1
                node = child
                if "" in child:
                    start = end
                continue
            if "*" in node:  # wildcard rule, unless an exception rule names the label
                return end if "!" + label in node else end - 1
            break
        return start

    def registered_domain(self, host: str) -> str:
        """The public suffix plus one label ("bbc.co.uk" for "www.bbc.co.uk"); "" when the
        suffix is unknown, the host is a suffix itself, or the host is an IP address."""
        labels = host.split(".")
        start = self.suffix_start(labels)
        if start == len(labels) or start == 0:
            return ""
        return ".".join(labels[start - 1 :])


def _decode_label(label: str) -> str:
    if label.startswith("xn--"):
        try:
            return label.encode("ascii").decode("idna")
        except (UnicodeError, ValueError):
            pass
    return label


@lru_cache(maxsize=1)
def public_suffix_list() -> PublicSuffixList:
    return PublicSuffixList.from_file(asset_path("public_suffix_list"))


# ---------------------------------------------------------------- the lists


class HashedStrings:
    """A read-only set of many strings, stored as their sorted 64-bit hashes.

    The hash is xxHash's XXH3 (64 bits): stable across processes and machines, so the
    array can be compiled once, cached on disk and memory-mapped by every worker.
    """

    def __init__(self, hashes: np.ndarray):
        self._hashes = hashes  # sorted uint64

    @classmethod
    def from_items(cls, items: Iterable[bytes]) -> HashedStrings:
        hashes = np.fromiter(map(xxh3_64_intdigest, items), dtype=np.uint64)
        hashes.sort()
        return cls(hashes)

    @classmethod
    def from_lines(cls, data: bytes, chunk_bytes: int = 8_000_000) -> HashedStrings:
        """The lines of `data` (as _lines reads them), hashed a chunk at a time so that
        only a few MB of line objects exist at once."""
        parts, start = [], 0
        while start < len(data):
            end = data.find(b"\n", start + chunk_bytes)
            end = len(data) if end < 0 else end + 1
            parts.append(np.fromiter(map(xxh3_64_intdigest, _lines(data[start:end])), dtype=np.uint64))
            start = end
        return cls(np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64))

    @property
    def hashes(self) -> np.ndarray:
        return self._hashes

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, item: str) -> bool:
        if not len(self._hashes):
            return False
        h = xxh3_64_intdigest(item.encode("utf-8", "surrogatepass"))
        i = int(self._hashes.searchsorted(np.uint64(h)))
        return i < len(self._hashes) and int(self._hashes[i]) == h


def _lines(data: bytes) -> list[bytes]:
    """Non-comment lines, stripped, as datatrove's parse_list reads them."""
    lines = data.split(b"\n")
    if any(c in data for c in (b"\r", b" ", b"\t", b"\x0b", b"\x0c")):
        lines = [line.strip() for line in lines]
    if b"#" in data:
        lines = [line for line in lines if not line.startswith(b"#")]
    return [line for line in lines if line]


def _words(data: bytes) -> frozenset[str]:
    return frozenset(w for w in (_normalise_word(x.decode("utf-8")) for x in _lines(data)) if w)


@dataclass(frozen=True)
class UrlLists:
    domains: HashedStrings
    urls: frozenset[str]
    banned_words: frozenset[str]
    banned_subwords: tuple[str, ...]
    soft_banned_words: frozenset[str]
    source: str  # where they came from, for logs and manifests
    digest: str  # sha256 over the files read, in a fixed order


def _read_ut1(folder: Path) -> dict[str, bytes]:
    files = {}
    for name in (DOMAINS_FILE, URLS_FILE):
        if (folder / name).is_file():
            files[name] = (folder / name).read_bytes()
    missing = {DOMAINS_FILE, URLS_FILE} - files.keys()
    if missing and (folder / UT1_ARCHIVE).is_file():
        with tarfile.open(folder / UT1_ARCHIVE, "r:gz") as tar:
            for member in tar:
                if member.isfile() and member.name in missing:
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    files[member.name] = extracted.read()
    return files


def _source_files(folder: Path) -> dict[str, Path]:
    """The list files present in `folder`, by name."""
    return {name: folder / name for name in URL_LIST_FILES if (folder / name).is_file()}


def _compile(folder: Path) -> UrlLists:
    """Read and parse the lists in `folder` (datatrove's layout)."""
    files = _read_ut1(folder)
    for name in (BANNED_WORDS_FILE, BANNED_SUBWORDS_FILE, SOFT_BANNED_WORDS_FILE):
        if (folder / name).is_file():
            files[name] = (folder / name).read_bytes()
    if not files:
        raise FileNotFoundError(
            f"no URL blocklists in {folder}: expected {DOMAINS_FILE}, {URLS_FILE} (or {UT1_ARCHIVE}), "
            f"{BANNED_WORDS_FILE}, {BANNED_SUBWORDS_FILE}, {SOFT_BANNED_WORDS_FILE}"
        )
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{len(files[name])}\0".encode())
        digest.update(files[name])
    empty = b""
    return UrlLists(
        domains=HashedStrings.from_lines(files.pop(DOMAINS_FILE, empty)),
        urls=frozenset(x.decode("utf-8") for x in _lines(files.get(URLS_FILE, empty))),
        banned_words=_words(files.get(BANNED_WORDS_FILE, empty)),
        banned_subwords=tuple(sorted(_words(files.get(BANNED_SUBWORDS_FILE, empty)))),
        soft_banned_words=_words(files.get(SOFT_BANNED_WORDS_FILE, empty)),
        source=str(folder),
        digest=digest.hexdigest(),
    )


# Bump when the compiled layout, the hash or the parsing of the lists changes.
COMPILED_FORMAT = 1


def _compiled_key(sources: dict[str, Path]) -> str:
    """A digest of the raw list files (hashing the 18 MB archive takes ~0.05 s; decompressing
    and parsing it takes ~1.3 s, which the compiled copy saves)."""
    key = hashlib.sha256(f"url-lists-v{COMPILED_FORMAT}".encode())
    for name in sorted(sources):
        data = sources[name].read_bytes()
        key.update(f"\0{name}\0{len(data)}\0".encode())
        key.update(data)
    return key.hexdigest()


def _read_compiled(stem: Path, folder: Path) -> UrlLists | None:
    meta_path, domains_path = stem.with_suffix(".json"), stem.with_suffix(".npy")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        domains = np.load(domains_path, mmap_mode="r")  # shared by every worker through the page cache
    except (OSError, ValueError):
        return None
    if meta.get("format") != COMPILED_FORMAT or len(domains) != meta.get("domains") or domains.dtype != np.uint64:
        return None
    return UrlLists(
        domains=HashedStrings(domains),
        urls=frozenset(meta["urls"]),
        banned_words=frozenset(meta["banned_words"]),
        banned_subwords=tuple(meta["banned_subwords"]),
        soft_banned_words=frozenset(meta["soft_banned_words"]),
        source=str(folder),
        digest=meta["digest"],
    )


def _write_compiled(stem: Path, lists: UrlLists) -> None:
    from llmforge.atomic import atomic_path, write_json

    with atomic_path(stem.with_suffix(".npy")) as tmp, tmp.open("wb") as handle:
        np.save(handle, np.ascontiguousarray(lists.domains.hashes))
    # the JSON last: it is what marks the pair complete
    write_json(stem.with_suffix(".json"), {
        "format": COMPILED_FORMAT,
        "domains": len(lists.domains),
        "digest": lists.digest,
        "urls": sorted(lists.urls),
        "banned_words": sorted(lists.banned_words),
        "banned_subwords": list(lists.banned_subwords),
        "soft_banned_words": sorted(lists.soft_banned_words),
    })


@lru_cache(maxsize=4)
def load_lists(folder: str) -> UrlLists:
    """The lists in `folder` (datatrove's layout), read once per process.

    `domains` and `urls` are plain files or members of url_filterblacklistsv0_3_0.tar.gz;
    a missing file is an empty list, but at least one of the five must exist. The parsed
    lists are kept in ``cache_dir()/url-lists``, keyed by a digest of the raw files, so
    that later processes map them in instead of parsing the archive again; a cache that
    cannot be written only costs that time.
    """
    path = Path(folder)
    sources = _source_files(path)
    if not sources:
        return _compile(path)  # raises the "no URL blocklists" error
    stem = cache_dir() / "url-lists" / _compiled_key(sources)
    cached = _read_compiled(stem, path)
    if cached is not None:
        return cached
    lists = _compile(path)
    try:
        _write_compiled(stem, lists)
    except OSError:
        pass  # a read-only or full cache: the lists are still right, only slower next time
    return lists


def lists_folder(cfg: UrlFilterConfig) -> str | None:
    """Where the integrated lists come from (the ``url_lists`` asset: cfg.blocklist_dir, else
    its environment override, else datatrove's copy); None when cfg.use_integrated_lists is
    off. Raises AssetMissing when they are on but not found."""
    if not cfg.use_integrated_lists:
        return None
    return str(asset_path("url_lists", cfg.blocklist_dir).resolve())


def describe_lists(cfg: UrlFilterConfig) -> dict[str, object]:
    """What the filter built from `cfg` checks against, for manifests and stage fingerprints."""
    folder = lists_folder(cfg)
    if folder is None:
        return {"integrated_lists": None}
    lists = load_lists(folder)
    return {
        "integrated_lists": lists.source,
        "sha256": lists.digest,
        "domains": len(lists.domains),
        "urls": len(lists.urls),
        "banned_words": len(lists.banned_words),
        "banned_subwords": len(lists.banned_subwords),
        "soft_banned_words": len(lists.soft_banned_words),
    }


# ---------------------------------------------------------------- the filter


@dataclass(frozen=True)
class _Settings:
    """Everything the filter depends on; small, so the filter pickles cheaply."""

    folder: str | None
    extra_domains: frozenset[str]
    banned_words: frozenset[str]
    banned_subwords: frozenset[str]
    soft_banned_words: frozenset[str]
    soft_word_threshold: int


class UrlFilter:
    """``url -> reason | None``. Pickles as its settings; the lists reload (once) per process."""

    def __init__(self, settings: _Settings):
        self.settings = settings
        lists = load_lists(settings.folder) if settings.folder else None
        self._domains = lists.domains if lists else HashedStrings.from_items(())
        self._urls = lists.urls if lists else frozenset()
        self._extra_domains = settings.extra_domains
        self._banned = (lists.banned_words if lists else frozenset()) | settings.banned_words
        self._soft = (lists.soft_banned_words if lists else frozenset()) | settings.soft_banned_words
        self._subwords = tuple(sorted(set(lists.banned_subwords if lists else ()) | settings.banned_subwords))
        self._threshold = settings.soft_word_threshold
        self._psl = public_suffix_list()

    def __reduce__(self):
        return (UrlFilter, (self.settings,))

    def __call__(self, url: str) -> str | None:
        host = url_host(url)
        if host:
            registered = self._psl.registered_domain(host)
            if registered and registered in self._domains:
                return "url_blocked_domain"
            if self._extra_domains and _is_listed_or_parent(host, self._extra_domains):
                return "url_blocked_domain"
            if registered and host in self._domains:
                return "url_blocked_subdomain"
        if self._urls and (url in self._urls or _SCHEME_RE.sub("", url, count=1) in self._urls):
            return "url_blocked_url"
        if self._banned or self._soft:
            tokens = set(_NON_ALNUM_RE.split(url))
            if not self._banned.isdisjoint(tokens):
                return "url_banned_word"
            if self._soft and len(self._soft.intersection(tokens)) >= self._threshold:
                return "url_soft_banned_words"
        if self._subwords:
            squashed = _normalise_word(url)
            if any(word in squashed for word in self._subwords):
                return "url_banned_subword"
        return None


def _is_listed_or_parent(host: str, listed: frozenset[str]) -> bool:
    # The host and each parent domain: "a.b.example.com", "b.example.com", ...
    labels = host.split(".")
    return any(".".join(labels[i:]) in listed for i in range(len(labels)))


def _settings(cfg: UrlFilterConfig) -> _Settings:
    def words(name: str) -> frozenset[str]:
        return frozenset(w for w in map(_normalise_word, getattr(cfg, name, ()) or ()) if w)

    extra = (*DEFAULT_BLOCKED_DOMAINS, *cfg.extra_blocked_domains)
    return _Settings(
        folder=lists_folder(cfg),
        extra_domains=frozenset(d for d in map(_normalise_domain, extra) if d),
        banned_words=words("banned_words"),
        banned_subwords=words("banned_subwords"),
        soft_banned_words=words("soft_banned_words"),
        soft_word_threshold=cfg.soft_word_threshold,
    )


def url_filter(cfg: UrlFilterConfig) -> Callable[[str], str | None]:
    """The URL check for `cfg`: a reason (one of REASONS) to drop the URL, or None."""
    return UrlFilter(_settings(cfg))
