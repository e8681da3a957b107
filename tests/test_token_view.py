"""The token viewer: exact token texts, ANSI colouring, and a self-contained, properly escaped HTML page."""

from __future__ import annotations

import ast
import re
import unicodedata
from html.parser import HTMLParser

import pytest

from model.token_view import render_html, render_terminal, token_spans
from model.tokenizer import BpeTokenizer, train_bpe

# Latin text only: Chinese, Cyrillic and emoji stay single bytes in this vocabulary,
# so their characters are split across tokens, which is what the viewer must show.
CORPUS = ["the quick brown fox jumps over the lazy dog, don't panic! 12345\n" * 3, "Grüße aus München\r\n"] * 20

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Grüße aus München, 你好世界, Привет, 🎉👩‍👩‍👧",
    "<script>alert('x & y')</script> \"quoted\" <b>bold</b> &amp;",
    "line one\nline two\r\n\ttabbed\r\n\n",
    "\x00\x1b[31mnot red\x1b[0m \x9b2J \u202eevil\u202c \ufeffbom",
    "",
]


@pytest.fixture(scope="module")
def tok() -> BpeTokenizer:
    return train_bpe(CORPUS, 320)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("text", TEXTS)
def test_token_texts_concatenate_to_input(tok: BpeTokenizer, text: str) -> None:
    spans = token_spans(tok, text)
    assert "".join(s.text for s in spans) == text
    assert b"".join(s.raw for s in spans) == text.encode("utf-8")
    assert [s.id for s in spans] == tok.encode(text)


def test_split_characters_are_marked(tok: BpeTokenizer) -> None:
    spans = token_spans(tok, "你")  # three bytes, three byte tokens in this vocabulary
    assert [s.raw for s in spans] == [b"\xe4", b"\xbd", b"\xa0"]
    assert [s.text for s in spans] == ["", "", "你"]  # the character belongs to its last byte's token
    assert not any(s.whole for s in spans)
    assert "e4" in render_terminal(tok, "你")
    page = render_html(tok, "你")
    assert 'data-bytes="e4"' in page and 'data-bytes="a0"' in page


@pytest.mark.parametrize("text", TEXTS)
def test_terminal_rendering(tok: BpeTokenizer, text: str) -> None:
    out = render_terminal(tok, text)
    lines = out.rstrip("\n").split("\n")
    # The last line is the ids, exactly what encode returns.
    assert ast.literal_eval(lines[-1]) == tok.encode(text)
    assert lines[-2].startswith(f"{len(tok.encode(text))} tokens, {len(text)} characters")
    # One background colour switch per token, neighbours always different.
    backgrounds = re.findall(r"\x1b\[48;5;(\d+)m", out)
    assert len(backgrounds) >= len(tok.encode(text))
    # No raw control character reaches the terminal except our own escapes and line breaks.
    plain = ANSI.sub("", out)
    assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0 for c in plain)
    assert "\u202e" not in plain and "\ufeff" not in plain


def test_terminal_shows_the_text(tok: BpeTokenizer) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    shown = ANSI.sub("", render_terminal(tok, text)).split("\n")[0]
    assert shown == text
    spans = token_spans(tok, text)
    colours = re.findall(r"\x1b\[48;5;(\d+)m", render_terminal(tok, text))
    assert len(colours) == len(spans)
    assert all(a != b for a, b in zip(colours, colours[1:]))


class _Spans(HTMLParser):
    """Collects the token spans' ids and text content, and any <script> element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[int] = []
        self.texts: list[str] = []
        self.depth = 0  # > 0 inside a token span
        self.scripts = 0
        self.ids_line = ""
        self._in_ids = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "p" and a.get("class") == "ids":
            self._in_ids = True
        if tag == "span":
            if "data-id" in a:
                self.ids.append(int(a["data-id"] or ""))
                self.texts.append("")
                self.depth = 1
            elif self.depth:
                self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self.depth:
            self.depth -= 1
        if tag == "p":
            self._in_ids = False

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.texts[-1] += data
        if self._in_ids:
            self.ids_line += data


@pytest.mark.parametrize("text", TEXTS)
def test_html_page(tok: BpeTokenizer, text: str) -> None:
    page = render_html(tok, text)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page.lower() and "http" not in page  # self-contained, nothing executable
    parser = _Spans()
    parser.feed(page)
    ids = tok.encode(text)
    assert parser.ids == ids
    assert parser.scripts == 0
    assert ast.literal_eval(parser.ids_line) == ids
    assert f"{len(ids)} tokens, {len(text)} characters" in page
    if not any(_shown_as_escape(c) for c in text):
        # The page's text is the input: markers come from CSS, not from text.
        assert "".join(parser.texts) == text


def _shown_as_escape(c: str) -> bool:
    """Characters an HTML page cannot or should not carry raw: controls, formatting, separators."""
    category = unicodedata.category(c)
    return (category == "Cc" and c not in "\n\r\t") or category in ("Cf", "Zl", "Zp")


def test_html_escapes_markup_and_attributes(tok: BpeTokenizer) -> None:
    text = "<script>alert(1)</script> \" ' & <img src=x onerror=alert(2)>"
    page = render_html(tok, text, title="<b>title</b>")
    assert "<script>" not in page and "<img" not in page and "<b>title" not in page
    assert "&lt;script&gt;" in page or "&lt;" in page
    # Tooltips carry the token text too; quotes must not end the attribute.
    for title in re.findall(r'title="([^"]*)"', page):
        assert "<" not in title and ">" not in title
    parser = _Spans()
    parser.feed(page)
    assert "".join(parser.texts) == text


def test_html_control_characters_are_visible_not_raw(tok: BpeTokenizer) -> None:
    page = render_html(tok, "a\x00b\x1bc\x7f\u202ed")
    assert not any(c in page for c in "\x00\x1b\x7f\u202e")
    assert "\u2400" in page and "\u241b" in page and "\\u202e" in page
