"""Show how a tokenizer cuts text into tokens: coloured in a terminal, or as a self-contained HTML page.

Tokens are byte sequences, and a token may hold only part of a multi-byte
character ("你" is three bytes that a small vocabulary can split). `token_spans`
therefore gives every token its bytes *and* the characters it completes, so the
spans' texts concatenate to exactly the input. The renderers show a token that
is not a whole number of characters as its bytes in hex, followed by whatever
characters it completes.

Both renderers make invisible and dangerous characters visible instead of
emitting them: in a terminal a raw ESC or C1 control could rewrite the screen,
and a bidi override could reorder what is shown.
"""

from __future__ import annotations

import codecs
import html
import unicodedata
from dataclasses import dataclass
from typing import Protocol


class _Tokenizer(Protocol):
    """What the viewer needs from a tokenizer (`model.tokenizer.BpeTokenizer` has it)."""

    def encode(self, text: str) -> list[int]: ...

    def token_bytes(self, i: int) -> bytes: ...


@dataclass(frozen=True)
class TokenSpan:
    id: int
    raw: bytes  # the bytes this token stands for
    text: str  # the characters whose last byte is in this token ("" if it only starts one)

    @property
    def whole(self) -> bool:
        """True when the token is a whole number of characters (its bytes decode on their own)."""
        try:
            self.raw.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True


def token_spans(tokenizer: _Tokenizer, text: str) -> list[TokenSpan]:
    """`text`'s tokens in order; their `.text` fields concatenate to `text`."""
    ids = tokenizer.encode(text)
    # An incremental decoder hands out each character once its last byte has
    # arrived, which is exactly "the characters this token completes".
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    spans = []
    for i in ids:
        raw = tokenizer.token_bytes(i)
        spans.append(TokenSpan(id=i, raw=raw, text=decoder.decode(raw)))
    decoder.decode(b"", final=True)  # raises if the ids ended inside a character
    return spans


def summary(spans: list[TokenSpan], text: str) -> str:
    n_bytes = len(text.encode("utf-8"))
    per_token = f"{n_bytes / len(spans):.2f}" if spans else "n/a"
    return f"{len(spans)} tokens, {len(text)} characters, {n_bytes} bytes, {per_token} bytes/token"


# Light backgrounds from the 256-colour palette, with black text on top: six
# hues so neighbouring tokens always differ and long runs stay readable.
_TERMINAL_BACKGROUNDS = (153, 223, 194, 218, 229, 189)
_RESET = "\x1b[0m"


def render_terminal(tokenizer: _Tokenizer, text: str) -> str:
    """The tokens on cycling background colours, a summary line, then the ids as one `[a, b, ...]` line."""
    spans = token_spans(tokenizer, text)
    out = []
    for n, span in enumerate(spans):
        colour = f"\x1b[48;5;{_TERMINAL_BACKGROUNDS[n % len(_TERMINAL_BACKGROUNDS)]}m\x1b[38;5;16m"
        shown = "" if span.whole else f"\x1b[3;4m{_hex(span.raw)}\x1b[23;24m"
        shown += "".join(_visible(c) for c in span.text)
        # Reset before each line break so the colour does not bleed to the right edge.
        shown = shown.replace("\n", f"{_RESET}\n{colour}")
        out.append(f"{colour}{shown}{_RESET}")
    return "".join(out) + "\n" + summary(spans, text) + "\n" + repr([span.id for span in spans]) + "\n"


_HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #111; }
.tokens { white-space: pre-wrap; word-break: break-all; font: 15px/1.9 ui-monospace, monospace; }
.t { border-radius: 3px; padding: 1px 0; }
.c0 { background: #cfe3ff; } .c1 { background: #ffe1c2; } .c2 { background: #cdf2d0; }
.c3 { background: #ffd1e3; } .c4 { background: #fff3b0; } .c5 { background: #e3d7ff; }
.nl::before { content: "\\21b5"; color: #888; }
.cr::before { content: "\\240d"; color: #888; }
.tab::before { content: "\\21e5"; color: #888; }
.esc { color: #a00; font-style: italic; }
.part::before { content: attr(data-bytes); font-size: 75%; font-style: italic; color: #555;
  border: 1px dashed #888; border-radius: 2px; padding: 0 2px; margin-right: 1px; }
.ids { font: 12px ui-monospace, monospace; color: #444; word-break: break-all; }
"""


def render_html(tokenizer: _Tokenizer, text: str, title: str = "Tokens") -> str:
    """A self-contained HTML page: one coloured span per token, its id and bytes in the tooltip.

    The page's text content is the input (newline, CR and tab markers, and the hex
    of split characters, are drawn with CSS, not written as text), except for
    control and formatting characters, which appear as escapes like \\u202e.
    """
    spans = token_spans(tokenizer, text)
    parts = []
    for n, span in enumerate(spans):
        classes = ["t", f"c{n % 6}"]
        attrs = [f'data-id="{span.id}"', f'title="{_attr(_tooltip(span))}"']
        if not span.whole:
            classes.append("part")
            attrs.append(f'data-bytes="{_hex(span.raw)}"')
        body = "".join(_html_char(c) for c in span.text)
        parts.append(f'<span class="{" ".join(classes)}" {" ".join(attrs)}>{body}</span>')
    ids = ", ".join(str(span.id) for span in spans)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_HTML_STYLE}</style>\n</head>\n<body>\n"
        f'<p class="summary">{html.escape(summary(spans, text))}</p>\n'
        f'<pre class="tokens">{"".join(parts)}</pre>\n'
        f'<p class="ids">[{ids}]</p>\n'
        "</body>\n</html>\n"
    )


def _hex(raw: bytes) -> str:
    return raw.hex(" ")


def _tooltip(span: TokenSpan) -> str:
    # Bytes that are not whole characters as \xNN, line breaks and tabs as their escapes.
    shown = span.raw.decode("utf-8", errors="backslashreplace")
    shown = shown.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    unit = "byte" if len(span.raw) == 1 else "bytes"
    return f"id {span.id} · {len(span.raw)} {unit} · {_hex(span.raw)} · “{shown}”"


def _attr(value: str) -> str:
    # Attribute values keep newlines fine, but control characters are not allowed in HTML at all.
    return html.escape("".join(_escape_if_control(c) or c for c in value), quote=True)


def _escape_if_control(c: str) -> str | None:
    """A visible stand-in for a character that must not be printed raw, or None if it is fine as is."""
    category = unicodedata.category(c)
    if category == "Cc" and c not in "\n\t\r":
        if ord(c) < 0x20:
            return chr(0x2400 + ord(c))  # the "control pictures" block: ␀ ␁ ... ␛ ...
        if c == "\x7f":
            return "\u2421"  # ␡
        return f"\\x{ord(c):02x}"  # C1 controls; U+009B alone is a CSI in some terminals
    if category in ("Cf", "Zl", "Zp"):  # bidi overrides, zero-width characters, BOM, line separators
        return f"\\u{ord(c):04x}"
    return None


def _visible(c: str) -> str:
    """Terminal form of one character."""
    if c == "\n":
        return "\u21b5\n"
    if c == "\r":
        return "\u240d"
    if c == "\t":
        return "\u21e5"
    return _escape_if_control(c) or c


def _html_char(c: str) -> str:
    """HTML form of one character (in a <pre>): markers for newline, CR and tab come from CSS."""
    if c == "\n":
        return '<span class="nl"></span>\n'
    if c == "\r":
        # A raw CR would be turned into a newline by the HTML parser; a character reference is not.
        return '<span class="cr"></span>&#13;'
    if c == "\t":
        return '<span class="tab"></span>\t'
    stand_in = _escape_if_control(c)
    if stand_in is not None:
        return f'<span class="esc">{html.escape(stand_in)}</span>'
    return html.escape(c, quote=False)
