"""The URL filter against datatrove's real lists (UT1 blocklist and banned words) and real URLs.

The rules and reasons follow datatrove 0.10.1's URLFilter; the differences are
deliberate and listed in tasks/data/filters/url.py. (The older tests of the config-only
rules live in tests/test_filters.py.)
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import tarfile
from pathlib import Path

import pytest

from llmforge.config import UrlFilterConfig
from tasks.data import assets as assets_module
from tasks.data.assets import AssetMissing, asset_path
from tasks.data.filters import url as url_module
from tasks.data.filters.url import (
    DATATROVE_REASONS,
    UT1_ARCHIVE,
    PublicSuffixList,
    describe_lists,
    load_lists,
    public_suffix_list,
    url_filter,
)


class FullUrlFilterConfig(UrlFilterConfig):
    """UrlFilterConfig with the fields the filter reads when present."""

    use_integrated_lists: bool = True
    blocklist_dir: str | None = None
    soft_word_threshold: int = 2
    banned_subwords: list[str] = []
    soft_banned_words: list[str] = []


@pytest.fixture(scope="module")
def assets() -> Path:
    try:
        return asset_path("url_lists")
    except AssetMissing as missing:
        if os.environ.get("CI"):
            pytest.fail(str(missing))
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def ut1_head(assets: Path) -> dict[str, list[str]]:
    """The first entries of the real UT1 `urls` and `domains` lists (decompressing only the start)."""
    head: dict[str, list[str]] = {}
    with tarfile.open(assets / UT1_ARCHIVE, "r:gz") as tar:
        for member in tar:
            extracted = tar.extractfile(member)
            assert extracted is not None
            head[member.name] = extracted.read(2_000_000).decode("utf-8").split("\n")[:-1]
    return head


@pytest.fixture(scope="module")
def lists_only(assets: Path):
    """The integrated lists alone, as datatrove's URLFilter() uses them."""
    return url_filter(UrlFilterConfig(banned_words=[]))


@pytest.fixture(scope="module")
def manifest_urls(shared_data: Path) -> list[str]:
    rows = (shared_data / "html" / "trafilatura" / "manifest.tsv").read_text(encoding="utf-8").splitlines()
    column = rows[0].split("\t").index("url")
    return [row.split("\t")[column] for row in rows[1:] if row.split("\t")[column]]


def test_listed_registered_domains_block_every_host_under_them(lists_only, ut1_head) -> None:
    psl = public_suffix_list()
    registered = [d for d in ut1_head["domains"] if psl.registered_domain(d) == d][:50]
    assert len(registered) == 50
    for domain in registered:
        assert lists_only(f"http://{domain}/") == "url_blocked_domain", domain
        assert lists_only(f"https://www.{domain}/some/page.html") == "url_blocked_domain", domain
        assert lists_only(f"https://user@a.b.{domain}:8443/x?y=1") == "url_blocked_domain", domain
        # Deliberate difference: hosts are compared lower-case (datatrove keeps the URL's case).
        assert lists_only(f"https://WWW.{domain.upper()}/") == "url_blocked_domain", domain


def test_listed_subdomains_block_that_host_only(lists_only, ut1_head) -> None:
    # datatrove compares the registered domain and the full host, nothing in between.
    assert "0-puppy-0.tumblr.com" in ut1_head["domains"]
    assert "tumblr.com" not in ut1_head["domains"]
    assert lists_only("https://0-puppy-0.tumblr.com/post/1") == "url_blocked_subdomain"
    assert lists_only("https://0-puppy-0.tumblr.com./") == "url_blocked_subdomain"  # trailing root dot
    assert lists_only("https://www.0-puppy-0.tumblr.com/") is None
    assert lists_only("https://llmforge-test-blog.tumblr.com/") is None


def test_ip_and_bare_suffix_entries_never_match_as_in_datatrove(lists_only, ut1_head) -> None:
    # UT1 lists IP addresses and TLD-like entries; tldextract gives an IP or a bare suffix
    # no registered domain, so datatrove never blocks on them, and neither do we.
    ips = [d for d in ut1_head["domains"] if d.replace(".", "").isdigit()]
    assert len(ips) > 1000
    for ip in ips[:20]:
        assert lists_only(f"http://{ip}/index.html") is None
    assert "adult" in ut1_head["domains"]
    assert lists_only("https://example.adult/") is None


def test_listed_urls_match_with_or_without_the_scheme(lists_only, ut1_head) -> None:
    for entry in ut1_head["urls"][:20]:
        assert "://" not in entry
        assert lists_only(entry) == "url_blocked_url"  # datatrove's exact comparison
        # Deliberate difference: datatrove compares the full URL, so a crawled URL
        # ("https://host/path") never matches UT1's scheme-less entries there.
        assert lists_only("https://" + entry) == "url_blocked_url", entry
        assert lists_only("http://" + entry) == "url_blocked_url", entry


def test_banned_words_soft_words_and_subwords(lists_only) -> None:
    # Hard words: a whole token of the URL as written (not lower-cased, as in datatrove).
    assert lists_only("https://example.com/free-porn-videos") == "url_banned_word"
    assert lists_only("https://example.com/viagra") == "url_banned_word"
    assert lists_only("https://example.com/PORN") is None
    assert lists_only("https://example.com/pornographic-history") is None  # not a token
    # "#xx" is commented out in banned_words.txt.
    assert lists_only("https://example.com/xx/chapter") is None
    # Soft words: two distinct ones are needed (threshold 2).
    assert lists_only("https://example.com/lingerie-catalogue") is None
    assert lists_only("https://example.com/lingerie/lingerie") is None
    assert lists_only("https://example.com/sexy-lingerie") == "url_soft_banned_words"
    # Subwords: a substring of the URL squashed to lower-case alphanumerics.
    assert lists_only("https://example.com/watch-XVideos-now") == "url_banned_subword"
    assert lists_only("https://example.com/big-black/") == "url_banned_subword"  # "big black" -> "bigblack"
    assert lists_only("https://www.bbc.co.uk/news/science-environment") is None


def test_real_pages_from_the_shared_set(lists_only, manifest_urls: list[str]) -> None:
    benign = [
        "https://www.watson.ch/leben/drinks/453207266-sazerac-alles-ueber-den-cocktail-klassiker-aus-new-orleans",
        "https://www.tagblatt.ch/kultur/mit-allen-wassern-gewaschen-ld.1161246",
    ]
    for url in benign:
        assert url in manifest_urls
        assert lists_only(url) is None
    blocked = {lists_only(url) for url in manifest_urls} - {None}
    assert blocked == {"url_blocked_domain"}  # two news sites are in UT1, as datatrove decides too
    assert sum(lists_only(url) is not None for url in manifest_urls) == 2
    assert lists_only("https://www.lacuarta.com/espectaculos/noticia/va-y-agarra/I7QCHL6HAZ/") == "url_blocked_domain"


def test_defaults_are_fineweb_lists_and_config_words_add_to_them(assets: Path) -> None:
    # "sex" is only a soft word in datatrove's lists (one is not enough) and "casino" is in none.
    assert url_filter(UrlFilterConfig())("https://example.com/casino-bonus") is None
    assert url_filter(UrlFilterConfig())("https://example.com/sex-education") is None
    assert url_filter(UrlFilterConfig())("https://example.com/sex-escort") == "url_soft_banned_words"
    extended = url_filter(UrlFilterConfig(banned_words=["casino"], soft_banned_words=["education"]))
    assert extended("https://example.com/casino-bonus") == "url_banned_word"
    assert extended("https://example.com/sex-education") == "url_soft_banned_words"


def test_integrated_lists_can_be_switched_off(assets: Path) -> None:
    check = url_filter(FullUrlFilterConfig(use_integrated_lists=False, banned_words=[]))
    assert check("https://example.com/porn") is None
    assert check("https://0-puppy-0.tumblr.com/") is None
    words = url_filter(FullUrlFilterConfig(use_integrated_lists=False, soft_banned_words=["alpha", "beta"]))
    assert words("https://example.com/alpha/beta") == "url_soft_banned_words"
    assert words("https://example.com/alpha") is None


def _write_tarball(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_a_blocklist_dir_replaces_the_packaged_lists(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "domains").write_text("# comment\nblocked.com\nsub.hosting.net\n  spaced.org  \r\n", encoding="utf-8")
    (plain / "urls").write_text("shop.example.net/bad-page\n", encoding="utf-8")
    (plain / "banned_words.txt").write_text("#commented\nfoo-bar\n", encoding="utf-8")
    (plain / "banned_subwords.txt").write_text("evil thing\n", encoding="utf-8")
    (plain / "soft_banned_words.txt").write_text("red\nblue\n", encoding="utf-8")
    cfg = FullUrlFilterConfig(blocklist_dir=str(plain), banned_words=[])
    check = url_filter(cfg)
    assert check("https://www.blocked.com/") == "url_blocked_domain"
    assert check("https://spaced.org/") == "url_blocked_domain"
    assert check("https://sub.hosting.net/") == "url_blocked_subdomain"
    assert check("https://other.hosting.net/") is None
    assert check("https://shop.example.net/bad-page") == "url_blocked_url"
    assert check("https://example.com/foobar") == "url_banned_word"  # "foo-bar" normalises to "foobar"
    assert check("https://example.com/commented") is None
    assert check("https://example.com/an-evil-thing") == "url_banned_subword"
    assert check("https://example.com/red/blue") == "url_soft_banned_words"
    assert check("https://example.com/porn") is None  # datatrove's lists are not used
    assert describe_lists(cfg)["domains"] == 3

    # The same layout as datatrove's assets: the UT1 lists inside the tarball.
    packed = tmp_path / "packed"
    packed.mkdir()
    _write_tarball(packed / UT1_ARCHIVE, {"urls": b"a.org/x\n", "domains": b"packed.com\n"})
    check = url_filter(FullUrlFilterConfig(blocklist_dir=str(packed), banned_words=[]))
    assert check("http://cdn.packed.com/") == "url_blocked_domain"
    assert check("http://a.org/x") == "url_blocked_url"

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no URL blocklists"):
        url_filter(FullUrlFilterConfig(blocklist_dir=str(empty)))
    with pytest.raises(FileNotFoundError, match="not a directory"):
        url_filter(FullUrlFilterConfig(blocklist_dir=str(tmp_path / "missing")))


def test_parsed_lists_are_cached_on_disk_and_a_changed_list_is_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMFORGE_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "domains").write_text("blocked.com\nsub.hosting.net\n", encoding="utf-8")
    (folder / "urls").write_text("shop.example.net/bad-page\n", encoding="utf-8")
    (folder / "banned_words.txt").write_text("foo-bar\n", encoding="utf-8")
    load = url_module.load_lists.__wrapped__  # past the per-process memo

    parsed = load(str(folder))
    compiled = sorted(p.name for p in (tmp_path / "cache" / "url-lists").iterdir())
    assert [Path(n).suffix for n in compiled] == [".json", ".npy"]
    monkeypatch.setattr(url_module, "_compile", lambda folder: pytest.fail("parsed again"))
    mapped = load(str(folder))
    assert mapped.digest == parsed.digest and mapped.urls == parsed.urls
    assert mapped.banned_words == parsed.banned_words == {"foobar"}
    assert "sub.hosting.net" in mapped.domains and "blocked.com" in mapped.domains
    assert "hosting.net" not in mapped.domains and len(mapped.domains) == 2
    monkeypatch.undo()

    monkeypatch.setenv("LLMFORGE_CACHE_DIR", str(tmp_path / "cache"))
    (folder / "domains").write_text("other.com\n", encoding="utf-8")
    changed = load(str(folder))
    assert "other.com" in changed.domains and "blocked.com" not in changed.domains
    assert changed.digest != parsed.digest

    # A damaged cache entry is parsed again, not trusted.
    for path in (tmp_path / "cache" / "url-lists").glob("*.npy"):
        path.write_bytes(b"not an array")
    assert "other.com" in load(str(folder)).domains

    # An unwritable cache only costs time.
    monkeypatch.setenv("LLMFORGE_CACHE_DIR", str(tmp_path / "lists" / "domains" / "not-a-dir"))
    assert "other.com" in load(str(folder)).domains


def test_missing_datatrove_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the package that ships the lists were not installed.
    not_installed = dataclasses.replace(assets_module.ASSETS["url_lists"], package="llmforge_no_such_package")
    monkeypatch.setitem(assets_module.ASSETS, "url_lists", not_installed)
    monkeypatch.delenv("LLMFORGE_URL_LISTS_DIR", raising=False)
    with pytest.raises(AssetMissing, match="`datatrove` package .* not installed.*blocklist_dir.*LLMFORGE_URL_LISTS_DIR"):
        url_filter(UrlFilterConfig())


def test_the_lists_folder_can_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "domains").write_text("blocked-by-env.com\n", encoding="utf-8")
    monkeypatch.setenv("LLMFORGE_URL_LISTS_DIR", str(folder))
    check = url_filter(FullUrlFilterConfig(banned_words=[]))
    assert check("https://www.blocked-by-env.com/") == "url_blocked_domain"
    assert check("https://0-puppy-0.tumblr.com/") is None  # the packaged lists are not read
    # The config field wins over the environment.
    other = tmp_path / "other"
    other.mkdir()
    (other / "domains").write_text("blocked-by-config.com\n", encoding="utf-8")
    from_config = url_filter(FullUrlFilterConfig(blocklist_dir=str(other), banned_words=[]))
    assert from_config("https://blocked-by-config.com/") == "url_blocked_domain"
    assert from_config("https://blocked-by-env.com/") is None


def test_the_public_suffix_list_can_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    psl = tmp_path / "psl.dat"
    psl.write_text("// a private snapshot\nexample\n", encoding="utf-8")
    monkeypatch.setenv("LLMFORGE_PUBLIC_SUFFIX_LIST", str(psl))
    public_suffix_list.cache_clear()
    try:
        assert public_suffix_list().registered_domain("a.b.example") == "b.example"
        assert public_suffix_list().registered_domain("news.bbc.co.uk") == ""  # not in this snapshot
        monkeypatch.setenv("LLMFORGE_PUBLIC_SUFFIX_LIST", str(tmp_path / "missing.dat"))
        public_suffix_list.cache_clear()
        with pytest.raises(AssetMissing, match=r"Public Suffix List not found: .*missing.dat .*\$LLMFORGE_PUBLIC_SUFFIX_LIST"):
            public_suffix_list()
    finally:
        monkeypatch.undo()
        public_suffix_list.cache_clear()


def test_lists_load_once_per_process_and_the_filter_pickles_small(assets: Path) -> None:
    folder = str(assets.resolve())
    assert load_lists(folder) is load_lists(folder)
    info = describe_lists(UrlFilterConfig())
    assert info["domains"] > 4_000_000 and info["urls"] > 10_000
    assert info["banned_words"] > 100 and info["banned_subwords"] > 100 and info["soft_banned_words"] > 50
    assert len(info["sha256"]) == 64
    check = url_filter(UrlFilterConfig())
    payload = pickle.dumps(check)
    assert len(payload) < 10_000  # settings only; the lists reload in the receiving process
    assert pickle.loads(payload)("https://0-puppy-0.tumblr.com/") == "url_blocked_subdomain"


def test_public_suffix_rules() -> None:
    psl = PublicSuffixList(["com", "uk", "co.uk", "*.ck", "!www.ck", "中国"])
    assert psl.registered_domain("www.bbc.co.uk") == "bbc.co.uk"
    assert psl.registered_domain("co.uk") == ""
    assert psl.registered_domain("a.b.example.com") == "example.com"
    assert psl.registered_domain("foo.bar.ck") == "foo.bar.ck"  # wildcard
    assert psl.registered_domain("www.ck") == "www.ck"  # exception
    assert psl.registered_domain("host.example") == ""  # unknown suffix: no implicit "*" rule
    assert psl.registered_domain("10.0.0.1") == ""
    assert psl.registered_domain("shop.xn--fiqs8s") == "shop.xn--fiqs8s"  # punycode of 中国
    real = public_suffix_list()
    assert real.registered_domain("x.blogspot.com") == "blogspot.com"  # ICANN section only, as tldextract
    assert real.registered_domain("news.bbc.co.uk") == "bbc.co.uk"


def test_reasons_map_to_datatrove() -> None:
    assert list(DATATROVE_REASONS.values()) == [
        "domain", "subdomain", "url", "hard_blacklisted", "soft_blacklisted", "blacklisted_subword",
    ]
