"""Conversation datasets (the `messages` format) from JSONL / Parquet files, for SFT.

Files are read with the `datasets` library (`load_dataset("json" | "parquet",
data_files=...)`), which also handles rows whose messages mix shapes (string or
list content, tool calls). Every conversation is validated with
`model.chat_format.normalize_messages`, and a bad one stops the load with an error
that says where it is:

* JSONL is first checked line by line by us, so a syntax error or a bad message
  reads `data.jsonl:17: message 2: unknown role 'bot'` (1-based line numbers, as
  editors show them); `datasets` would only say that the file failed to parse;
* Parquet has no lines: errors name the row, `data.parquet: row 16: ...` (0-based,
  as pandas and `datasets` index rows).

A name that is not a local path is treated as a Hugging Face dataset id (needs
network access); errors then name `dataset[split] row N`.

Each conversation keeps that location as its `source`, which rendering
(`model.sft_batches.render_examples`) puts in front of its own errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from model.chat_format import normalize_messages
from model.sft_batches import SourcedConversation

MESSAGES_FIELD = "messages"
_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def _clean(value: Any) -> Any:
    """Drop None-valued keys: Arrow fills keys that only some rows have with None."""
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _messages_of(row: Any, where: str, messages_field: str) -> list[dict[str, Any]]:
    if not isinstance(row, Mapping):
        raise ValueError(f"{where}: expected a JSON object with a {messages_field!r} list, got {type(row).__name__}")
    if messages_field not in row or row[messages_field] is None:
        raise ValueError(f"{where}: missing {messages_field!r}")
    messages = row[messages_field]
    if isinstance(messages, str):
        # Some datasets store the list as a JSON string.
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: {messages_field!r} is a string but not valid JSON ({exc.msg})") from None
    try:
        return normalize_messages(_clean(messages))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def prevalidate_jsonl(path: Path, messages_field: str = MESSAGES_FIELD) -> list[int]:
    """Check every line of a JSONL file, raising `path:line: why`; returns the rows' line numbers."""
    lines: list[int] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            where = f"{path}:{lineno}"
            if not line.strip():
                # `datasets` fails on these (without saying where), so name the line here.
                raise ValueError(f"{where}: blank line (JSON Lines holds one JSON object per line)")
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            _messages_of(row, where, messages_field)
            lines.append(lineno)
    if not lines:
        raise ValueError(f"{path}: no conversations")
    return lines


def _load_rows(source: str, split: str, cache_dir: str | Path | None) -> tuple[Iterable[Mapping[str, Any]], str]:
    import datasets  # heavy: imported only when loading

    path = Path(source)
    kwargs: dict[str, Any] = {"split": split}
    if cache_dir is not None:
        kwargs["cache_dir"] = str(cache_dir)
    if path.exists():
        fmt = _FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"{path}: unsupported file type (expected one of {sorted(_FORMATS)})")
        kwargs["split"] = "train"  # a local file is loaded as one split called "train"
        return datasets.load_dataset(fmt, data_files=str(path), **kwargs), fmt
    if source.endswith(tuple(_FORMATS)) or "/" not in source:
        raise FileNotFoundError(f"conversation file not found: {source}")
    return datasets.load_dataset(source, **kwargs), "hub"


def load_conversations(
    sources: str | Path | Sequence[str | Path],
    messages_field: str = MESSAGES_FIELD,
    split: str = "train",
    cache_dir: str | Path | None = None,
) -> list[SourcedConversation]:
    """Every conversation of `sources` (local .jsonl/.json/.parquet files or hub dataset ids), validated."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    out: list[SourcedConversation] = []
    for source in sources:
        path = Path(source)
        # JSON Lines only: a .json file may be one JSON array, which has no per-row lines.
        lines = prevalidate_jsonl(path, messages_field) if path.suffix.lower() == ".jsonl" and path.is_file() else None
        rows, fmt = _load_rows(str(source), split, cache_dir)
        for i, row in enumerate(rows):
            if lines is not None and i < len(lines):
                where = f"{path}:{lines[i]}"
            elif fmt == "hub":
                where = f"{source}[{split}] row {i}"
            else:
                where = f"{path}: row {i}"
            out.append(SourcedConversation(_messages_of(row, where, messages_field), where))
    return out
