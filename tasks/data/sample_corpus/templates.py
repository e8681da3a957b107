"""The sample's HTML: three site templates with the boilerplate extraction must drop."""

from __future__ import annotations

import html as html_lib
import random
import re
from dataclasses import dataclass

from tasks.data.sample_corpus.prose import Prose

@dataclass(frozen=True)
class Site:
    name: str
    host: str
    path_prefix: str


def html_page(prose: Prose, site: Site, skin: int, lang: str, related: list[str]) -> str:
    """`prose` as the main text of a page in one of the site templates, amid its boilerplate."""
    title = html_lib.escape(prose.title, quote=False)
    body = "\n".join(f"<p>{html_lib.escape(p, quote=False)}</p>" for p in prose.paragraphs)
    links = "".join(
        f'<li><a href="{site.path_prefix}{slug(r)}/">{html_lib.escape(r, quote=False)}</a></li>' for r in related
    )
    return SKINS[skin % len(SKINS)].format(
        lang=lang, title=title, site=site.name, article=body, related=links, host=site.host
    )


_HEAD = (
    '<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    "<title>{title} | {site}</title>\n"
    '<link rel="stylesheet" href="/static/main.css">\n'
    "<script>window.dataLayer = window.dataLayer || []; window.dataLayer.push(['init']);</script>\n"
    "</head>\n"
)
# A consent-manager style banner: the text sits in an open <dialog>, which trafilatura
# discards even on pages where nothing else is left to extract.
_COOKIE_BANNER = (
    '<div id="cookie-banner" class="cookie-consent"><dialog open aria-label="Cookie consent">'
    "<p>This website uses cookies to give you the best experience. By continuing to browse you agree "
    'to our use of cookies. Read our <a href="/privacy/">Privacy Policy</a> and '
    '<a href="/cookies/">Cookie Policy</a>.</p><button type="button">Accept all cookies</button></dialog></div>\n'
)
_FOOTER = (
    '<footer class="site-footer">\n<p>Copyright © 2024 {site}. All rights reserved.</p>\n'
    '<ul><li><a href="/terms/">Terms of Use</a></li><li><a href="/privacy/">Privacy Policy</a></li>'
    '<li><a href="/contact/">Contact us</a></li></ul>\n</footer>\n</body>\n</html>\n'
)
SKINS = [
    # A documentation mirror.
    _HEAD
    + "<body>\n"
    + '<header class="site-header"><a class="logo" href="/">{site}</a>'
    '<form action="/search" role="search">'
    '<input type="search" name="q" placeholder="Search the docs"></form></header>\n'
    '<nav class="main-nav"><ul><li><a href="/">Home</a></li><li><a href="/topics/">All topics</a></li>'
    '<li><a href="/downloads/">Downloads</a></li><li><a href="/community/">Community</a></li>'
    '<li><a href="/about/">About</a></li></ul></nav>\n'
    + _COOKIE_BANNER
    + '<div class="ad ad-leaderboard"><a href="https://ads.example.net/click?slot=top">'
    '<img src="https://ads.example.net/banner-728x90.png" alt="Advertisement"></a>'
    "<span>Sponsored: fast cloud hosting for your side projects</span></div>\n"
    '<div class="layout">\n<article class="doc">\n<h1>{title}</h1>\n{article}\n</article>\n'
    '<aside class="sidebar"><h2>Related topics</h2><ul>{related}</ul>'
    '<div class="ad ad-sidebar">Advertisement: learn a new language in thirty days</div></aside>\n</div>\n'
    + _FOOTER,
    # A personal blog.
    _HEAD
    + '<body class="blog">\n'
    + '<header><div class="brand"><a href="/">{site}</a>'
    '<span class="tagline">Notes on programming and tools</span></div>'
    '<nav><a href="/">Blog</a> | <a href="/archive/">Archive</a> | <a href="/tags/">Tags</a> | '
    '<a href="/feed.xml">RSS feed</a> | <a href="/about/">About me</a></nav></header>\n'
    + _COOKIE_BANNER
    + '<main>\n<article class="post">\n<header><h1>{title}</h1>'
    '<p class="byline">Posted in <a href="/tags/python/">Python</a></p></header>\n'
    '<div class="entry-content">\n{article}\n</div>\n</article>\n'
    '<aside class="newsletter"><h2>Subscribe</h2><p>Get new posts by email. No spam, unsubscribe at any time.</p>'
    '<form><input type="email" name="email"><button>Subscribe</button></form></aside>\n</main>\n'
    '<aside class="widgets"><h2>Recent posts</h2><ul>{related}</ul>'
    '<div class="sponsor">Sponsored: the keyboard our readers love</div></aside>\n'
    + _FOOTER,
    # A magazine-style site.
    _HEAD
    + "<body>\n"
    + '<div class="topbar"><a href="/login/">Sign in</a> <a href="/subscribe/">Subscribe</a></div>\n'
    '<header class="masthead"><a href="/" class="logo">{site}</a></header>\n'
    '<nav class="sections"><ul><li><a href="/news/">News</a></li><li><a href="/guides/">Guides</a></li>'
    '<li><a href="/reviews/">Reviews</a></li><li><a href="/events/">Events</a></li></ul></nav>\n'
    + _COOKIE_BANNER
    + '<div class="ad-slot" data-slot="header">Advertisement</div>\n'
    '<div class="page">\n<main id="content">\n<article>\n<h1 class="headline">{title}</h1>\n'
    '<div class="article-body">\n{article}\n</div>\n</article>\n</main>\n'
    '<aside class="rail"><h3>Most read</h3><ol>{related}</ol>'
    '<div class="ad-slot" data-slot="rail">Sponsored: compare broadband deals near you</div></aside>\n</div>\n'
    + _FOOTER,
]
# Boilerplate strings that must never reach the extracted main text of a kept page.
BOILERPLATE_MARKERS: tuple[str, ...] = (
    "uses cookies",
    "Accept all cookies",
    "Privacy Policy",
    "All rights reserved",
    "Sponsored",
    "Advertisement",
    "All topics",
    "Related topics",
    "Recent posts",
    "Most read",
    "Get new posts by email",
    "Search the docs",
    "Sign in",
)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "page"


def extraction_failure_page(rng: random.Random, index: int, site: Site) -> tuple[str, str]:
    """Pages with no main text at all: what is left after boilerplate removal is empty."""
    kind = index % 4
    head = _HEAD.format(lang="en", title=f"Page {index}", site=site.name)
    nav = (
        '<nav class="main-nav"><ul><li><a href="/">Home</a></li><li><a href="/topics/">All topics</a></li>'
        '<li><a href="/about/">About</a></li></ul></nav>\n'
    )
    if kind == 0:
        images = "".join(
            f'<figure><img src="/photos/{rng.randrange(10**6):06d}.jpg" alt=""></figure>'
            for _ in range(rng.randint(4, 9))
        )
        body, note = f'<div class="gallery">{images}</div>', "image gallery only"
    elif kind == 1:
        links = "".join(
            f'<li><a href="/section/{rng.randrange(10**5)}/">Section {i + 1}</a></li>'
            for i in range(rng.randint(8, 16))
        )
        body, note = f'<nav class="sitemap"><ul>{links}</ul></nav>', "navigation links only"
    elif kind == 2:
        body = (
            '<form class="login" action="/login" method="post"><label>User name <input name="user"></label>'
            '<label>Password <input type="password" name="pw"></label><button>Sign in</button></form>'
        )
        note = "login form only"
    else:
        body = (
            '<div id="app" data-build="' + f"{rng.randrange(16**8):08x}" + '"></div>'
            '<noscript>Please enable scripts.</noscript><script src="/static/app.bundle.js"></script>'
        )
        note = "empty single-page-app shell"
    page = head + "<body>\n" + nav + _COOKIE_BANNER + f"<main>{body}</main>\n" + _FOOTER.format(site=site.name)
    return page, note

