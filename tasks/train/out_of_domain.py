"""Out-of-domain scores: how well a model predicts ordinary text it never trained on.

The validation split comes from the same source as the training split, so a model that
memorised its source can still score well there. ``evaluate.extra_texts`` names plain
text files (a book, say) that are scored the same way, next to two baselines a useful
model must beat: a uniform guess over the vocabulary, and a unigram model of the
training split (each token's frequency there, add-one smoothed). All in bits per UTF-8
byte, so they compare across tokenizers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.gpt import GPT
from model.tokenizer import SPECIAL_TOKENS, BpeTokenizer

# Training tokens counted for the unigram baseline: plenty for a 32k vocabulary, bounded in memory.
UNIGRAM_MAX_TOKENS = 20_000_000


def read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").removeprefix("\ufeff")
    except FileNotFoundError:
        raise FileNotFoundError(f"evaluate.extra_texts: {path} not found") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"evaluate.extra_texts: {path} is a directory, not a text file") from None


def unigram_log2_probs(train_dir: Path, vocab_size: int, max_tokens: int = UNIGRAM_MAX_TOKENS) -> np.ndarray:
    """log2 p(token) of an add-one-smoothed unigram model of the training split's text tokens."""
    from tasks.tokenize.stage import read_token_documents

    counts = np.zeros(vocab_size, dtype=np.float64)
    for doc in read_token_documents(train_dir, max_tokens):
        counts += np.bincount(doc[doc >= len(SPECIAL_TOKENS)].astype(np.int64), minlength=vocab_size)[:vocab_size]
    text_tokens = vocab_size - len(SPECIAL_TOKENS)
    probs = (counts[len(SPECIAL_TOKENS):] + 1.0) / (counts.sum() + text_tokens)
    log2 = np.full(vocab_size, -np.inf)
    log2[len(SPECIAL_TOKENS):] = np.log2(probs)
    return log2


def score_text(
    model: GPT, tokenizer: BpeTokenizer, byte_lengths: torch.Tensor, unigram: np.ndarray, path: Path, max_tokens: int
) -> dict[str, Any]:
    """The model's bits per byte on the text (its first `max_tokens` tokens), and both baselines on the same tokens."""
    from tasks.train.evaluate import bits_per_byte

    ids = np.array([tokenizer.bos_id, *tokenizer.encode(read_text(path))], dtype=np.int64)[: max_tokens + 1]
    if len(ids) < 2:
        raise ValueError(f"evaluate.extra_texts: {path} holds no text to score")
    scored = bits_per_byte(model, [ids], byte_lengths, max_tokens)
    targets = ids[1:]
    n_bytes = int(byte_lengths[torch.from_numpy(targets)].sum())
    return {
        "text": Path(path).name,
        "tokens": scored["val_tokens"],
        "bytes": n_bytes,
        "bits_per_byte": round(scored["val_bits_per_byte"], 4),
        "uniform_bits_per_byte": round(len(targets) * math.log2(tokenizer.vocab_size) / n_bytes, 4),
        "unigram_bits_per_byte": round(float(-unigram[targets].sum()) / n_bytes, 4),
    }


def markdown(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## Out of domain: texts the model never trained on", "",
             "Bits per byte; lower is better. A model worth its training beats both baselines.", "",
             "| text | tokens | model | uniform over the vocabulary | unigram of the training split |",
             "|---|---:|---:|---:|---:|"]
    for row in rows:
        beats = row["bits_per_byte"] < min(row["uniform_bits_per_byte"], row["unigram_bits_per_byte"])
        model = f"**{row['bits_per_byte']}**" if beats else f"{row['bits_per_byte']} (worse than a baseline)"
        lines.append(f"| {row['text']} | {row['tokens']:,} | {model} | {row['uniform_bits_per_byte']} | "
                     f"{row['unigram_bits_per_byte']} |")
    return [*lines, ""]
