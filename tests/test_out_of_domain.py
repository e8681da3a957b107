"""Out-of-domain scores: a text the model never saw, beside a uniform guess and a unigram model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from model.gpt import GPT, GPTConfig
from model.tokenizer import SPECIAL_TOKENS, BpeTokenizer
from tasks.tokenize.stage import read_token_documents
from tasks.train.evaluate import token_byte_lengths
from tasks.train.out_of_domain import markdown, score_text, unigram_log2_probs
from test_resume import _workdir


def test_the_baselines_are_what_they_say(tmp_path: Path) -> None:
    root = _workdir(tmp_path / "run")
    tokenizer = BpeTokenizer.from_file(root / "tokenizer" / "tokenizer.json")
    vocab = tokenizer.vocab_size
    unigram = unigram_log2_probs(root / "tokens" / "train", vocab)
    counts = np.zeros(vocab)
    for doc in read_token_documents(root / "tokens" / "train"):
        for token in doc:
            if token >= len(SPECIAL_TOKENS):
                counts[token] += 1
    expected = np.log2((counts[len(SPECIAL_TOKENS):] + 1) / (counts.sum() + vocab - len(SPECIAL_TOKENS)))
    assert np.allclose(unigram[len(SPECIAL_TOKENS):], expected)
    assert np.isclose(np.exp2(unigram[len(SPECIAL_TOKENS):]).sum(), 1.0)

    text = tmp_path / "book.txt"
    text.write_text("\ufeffhello world, a tiny corpus of an unseen kind", encoding="utf-8")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab, n_layer=1, n_head=2, n_embd=32, seq_len=16))
    row = score_text(model, tokenizer, token_byte_lengths(tokenizer), unigram, text, max_tokens=10_000)
    ids = tokenizer.encode("hello world, a tiny corpus of an unseen kind")  # the BOM is not text
    n_bytes = len("hello world, a tiny corpus of an unseen kind".encode())
    assert (row["tokens"], row["bytes"]) == (len(ids), n_bytes)
    assert row["uniform_bits_per_byte"] == pytest.approx(len(ids) * math.log2(vocab) / n_bytes, abs=1e-4)
    assert row["unigram_bits_per_byte"] == pytest.approx(-unigram[ids].sum() / n_bytes, abs=1e-4)
    # An untrained model is about as good as a uniform guess.
    assert abs(row["bits_per_byte"] - row["uniform_bits_per_byte"]) < 0.5
    assert "worse than a baseline" in "\n".join(markdown([row]))


def test_a_missing_text_names_the_setting(tmp_path: Path) -> None:
    root = _workdir(tmp_path / "run")
    tokenizer = BpeTokenizer.from_file(root / "tokenizer" / "tokenizer.json")
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=32, seq_len=16))
    with pytest.raises(FileNotFoundError, match="evaluate.extra_texts: .*nowhere.txt not found"):
        score_text(model, tokenizer, token_byte_lengths(tokenizer), np.zeros(tokenizer.vocab_size), tmp_path / "nowhere.txt", 100)
