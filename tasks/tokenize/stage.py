"""The tokenize stage's logic: train a byte-level BPE on the documents, then encode them into token shards."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from llmforge import atomic
from llmforge.config import TokenizeConfig
from model.tokenizer import BpeTokenizer, train_bpe, vocab_report


def document_shards(documents_dir: Path) -> list[Path]:
    shards = sorted(Path(documents_dir).glob("*.parquet"))
    if not shards:
        raise FileNotFoundError(f"no document shards in {documents_dir}: run the data stage first")
    return shards


def document_digests(workdir: Path, shards: list[Path]) -> dict[str, str]:
    """{shard name: sha256} of the document shards; the data manifest's digests spare re-hashing."""
    from llmforge.fingerprint import file_record
    from llmforge.manifest import read_manifest

    known = (read_manifest(Path(workdir), "data") or {}).get("outputs", {})
    return {path.name: file_record(path, known.get(f"data/documents/{path.name}"))["sha256"] for path in shards}


def iter_documents(documents_dir: Path) -> Iterator[tuple[str, str]]:
    """(id, text) of every document, in shard order."""
    for path in document_shards(documents_dir):
        table = pq.read_table(path, columns=["id", "text"])
        yield from zip(table.column("id").to_pylist(), table.column("text").to_pylist())


def split_parts(doc_id: str, text: str, config: TokenizeConfig) -> list[tuple[str, str]]:
    """(split, text) of the parts of one document: the whole of it in one split by its id, or
    (split "tail") its head in train and its last val_fraction of characters in val."""
    if config.split == "documents":
        return [("val" if is_validation(doc_id, config.val_fraction) else "train", text)]
    cut = int(len(text) * (1.0 - config.val_fraction))
    return [(split, part) for split, part in (("train", text[:cut]), ("val", text[cut:])) if part]


def training_texts(documents_dir: Path, config: TokenizeConfig) -> list[str]:
    """The capped sample of text the BPE trainer sees: training text only, so that the
    validation split scores a tokenizer that never saw it."""
    texts, total = [], 0
    for doc_id, document in iter_documents(documents_dir):
        text = "".join(part for split, part in split_parts(doc_id, document, config) if split == "train")
        piece = text[: config.max_chars_per_doc]
        if total + len(piece) > config.max_train_chars:
            piece = piece[: config.max_train_chars - total]
        if piece:
            texts.append(piece)
            total += len(piece)
        if total >= config.max_train_chars:
            break
    if not texts:
        raise ValueError(f"the documents in {documents_dir} contain no text to train a tokenizer on")
    return texts


def train_tokenizer(documents_dir: Path, config: TokenizeConfig, destination: Path) -> dict[str, Any]:
    tokenizer = train_bpe(training_texts(documents_dir, config), config.vocab_size)
    atomic.write_with(destination, lambda tmp: tokenizer.save(tmp))
    return {"vocab_size": tokenizer.vocab_size}


def is_validation(doc_id: str, val_fraction: float) -> bool:
    """A stable split: the same document lands in the same split whatever the shard layout."""
    bucket = int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big") / 2**64
    return bucket < val_fraction


def token_dtype(vocab_size: int) -> pa.DataType:
    return pa.uint16() if vocab_size <= np.iinfo(np.uint16).max + 1 else pa.uint32()


def check_encodable(doc_id: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"document {doc_id} contains unencodable text at offset {err.start} (lone surrogate?); "
            "the data stage should have replaced it with U+FFFD"
        ) from err


def encode_shard(
    documents_path: Path, tokenizer_path: Path, out_dirs: dict[str, str], config: TokenizeConfig
) -> dict[str, dict[str, int]]:
    """Encode one documents shard into the train and val token shards of the same name."""
    tokenizer = BpeTokenizer.from_file(tokenizer_path)
    table = pq.read_table(documents_path, columns=["id", "text"])
    ids, texts = table.column("id").to_pylist(), table.column("text").to_pylist()
    for doc_id, text in zip(ids, texts):
        check_encodable(doc_id, text)
    part_ids, parts = [], []
    for doc_id, text in zip(ids, texts):
        for part in split_parts(doc_id, text, config):
            part_ids.append(doc_id)
            parts.append(part)
    # One process per core already: more threads per process would oversubscribe the CPUs.
    encoded = tokenizer.encode_batch([text for _, text in parts], num_threads=1)
    dtype = token_dtype(tokenizer.vocab_size)
    schema = pa.schema([("id", pa.string()), ("tokens", pa.list_(dtype)), ("n_bytes", pa.int64())])
    rows: dict[str, dict[str, list]] = {split: {"id": [], "tokens": [], "n_bytes": []} for split in ("train", "val")}
    for doc_id, (split, text), tokens in zip(part_ids, parts, encoded):
        rows[split]["id"].append(doc_id)
        rows[split]["tokens"].append([tokenizer.bos_id, *tokens])
        rows[split]["n_bytes"].append(len(text.encode("utf-8")))
    counts: dict[str, Any] = {}
    for split, columns in rows.items():
        atomic.write_parquet(
            Path(out_dirs[split]) / documents_path.name,
            pa.Table.from_pydict(columns, schema=schema),
            row_group_size=config.row_group_size,
        )
        counts[split] = {
            "documents": len(columns["id"]),
            "tokens": sum(len(t) for t in columns["tokens"]),
            "bytes": sum(columns["n_bytes"]),
        }
    return counts


def summarize(counts: list[dict[str, Any]], vocab_size: int) -> dict[str, Any]:
    totals = {
        split: {key: sum(c[split][key] for c in counts) for key in ("documents", "tokens", "bytes")}
        for split in ("train", "val")
    }
    val = totals["val"]
    # BOS tokens carry no bytes; leave them out of the compression figure.
    text_tokens = val["tokens"] - val["documents"]
    return {
        "vocab_size": vocab_size,
        "train_documents": totals["train"]["documents"],
        "val_documents": val["documents"],
        "train_tokens": totals["train"]["tokens"],
        "val_tokens": val["tokens"],
        "val_bytes_per_token": round(val["bytes"] / text_tokens, 4) if text_tokens else None,
    }


def read_token_documents(split_dir: Path, max_tokens: int | None = None) -> list[np.ndarray]:
    """Every document's token ids from one split, in shard order (optionally capped in total tokens)."""
    shards = sorted(Path(split_dir).glob("*.parquet"))
    if not shards:
        raise FileNotFoundError(f"no token shards in {split_dir}: run the tokenize stage first")
    docs, total = [], 0
    for path in shards:
        for tokens in pq.read_table(path, columns=["tokens"]).column("tokens").to_numpy(zero_copy_only=False):
            docs.append(np.asarray(tokens, dtype=np.int64))
            total += len(tokens)
            if max_tokens is not None and total >= max_tokens:
                return docs
    if not docs:
        raise ValueError(f"the token shards in {split_dir} are empty")
    return docs


def publish_token_shards(tokens_dir: Path, staged: dict[str, str], replace: bool, dropped: list[str]) -> None:
    """Put the newly encoded shards in place: the splits as a whole when every shard was encoded,
    else each new shard beside the ones kept, and the shards of vanished documents removed."""
    import os
    import shutil

    for split, folder in staged.items():
        final = Path(tokens_dir) / split
        if replace:
            atomic.replace_directory(Path(folder), final)
            continue
        final.mkdir(parents=True, exist_ok=True)
        for path in sorted(Path(folder).iterdir()):
            os.replace(path, final / path.name)
        shutil.rmtree(folder, ignore_errors=True)
        for name in dropped:
            (final / name).unlink(missing_ok=True)


def staging_dir(tokens_dir: Path, split: str) -> str:
    """An empty directory beside the final split, swapped in once every shard is encoded."""
    return str(atomic.temp_dir_beside(tokens_dir / split))


def vocabulary_report(tokenizer_path: Path, val_dir: Path) -> dict[str, Any]:
    """How the validation split (every shard of it) uses the vocabulary: usage, bytes per token,
    longest and commonest tokens."""
    val_counts: Counter = Counter()
    for path in sorted(Path(val_dir).glob("*.parquet")):
        documents = pq.read_table(path, columns=["tokens"]).column("tokens").to_numpy(zero_copy_only=False)
        if len(documents):
            text_tokens = np.concatenate([np.asarray(tokens[1:], dtype=np.int64) for tokens in documents])  # BOS: no text
            ids, counts = np.unique(text_tokens, return_counts=True)
            val_counts.update(dict(zip(ids.tolist(), counts.tolist())))
    return vocab_report(BpeTokenizer.from_file(tokenizer_path), val_counts)


def _token_table(entries: list[dict[str, Any]], with_count: bool) -> list[str]:
    header = "| id | bytes | token |" + (" count | share |" if with_count else "")
    lines = [header, "|---|---|---|" + ("---|---|" if with_count else "")]
    for entry in entries:
        shown = json.dumps(entry["text"], ensure_ascii=False).replace("|", "\\|")
        row = f"| {entry['id']} | {entry['bytes']} | `{shown}` |"
        lines.append(row + (f" {entry['count']} | {entry['share']:.2%} |" if with_count else ""))
    return lines


def report_markdown(metrics: dict[str, Any], vocabulary: dict[str, Any]) -> str:
    lines = ["# Tokenizer and token shards", "", "| metric | value |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in metrics.items()]
    lines += ["", "## Vocabulary on the validation split", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in vocabulary.items() if not isinstance(v, (list, dict))]
    lines += ["", "## Longest tokens", "", *_token_table(vocabulary["longest_tokens"], False)]
    if vocabulary.get("top_tokens"):
        lines += ["", "## Most frequent tokens", "", *_token_table(vocabulary["top_tokens"], True)]
    return "\n".join(lines) + "\n"
