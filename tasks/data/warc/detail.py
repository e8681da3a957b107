"""Short, printable texts for error rows: whatever bytes a damaged file holds, a detail
is at most `DETAIL_LIMIT` characters with every non-printable character escaped."""

from __future__ import annotations

DETAIL_LIMIT = 200
_ELLIPSIS = "..."


def _escaped(char: str) -> str:
    return char if char.isprintable() else char.encode("unicode_escape").decode("ascii")


def printable(text: str, limit: int = DETAIL_LIMIT) -> str:
    """`text` with non-printable characters escaped (``\\x00``, ``\\n``), cut to `limit` characters."""
    # Escapes only lengthen the text: the first `limit` characters are all that can show.
    shown = "".join(_escaped(char) for char in text[: limit + 1])
    if len(shown) <= limit and len(text) <= limit:
        return shown
    return shown[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def quoted(data: bytes, limit: int = 60) -> str:
    """A piece of a file for a detail: quoted, undecodable bytes as ``\\xNN``, at most `limit` characters inside the quotes."""
    text = data[: limit * 4].rstrip(b"\r\n").decode("utf-8", "backslashreplace")
    return f"'{printable(text, limit)}'"
