"""Evaluation: batched bits per byte equals the per-window definition; the checkpoint comparison table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.gpt import GPT, GPTConfig
from tasks.train.evaluate import bits_per_byte, comparison_markdown, update_history


def test_batched_bits_per_byte_matches_window_by_window() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, n_layer=1, n_head=2, n_embd=16, seq_len=8)).eval()
    rng = np.random.default_rng(0)
    docs = [np.concatenate([[0], rng.integers(1, 50, size=int(rng.integers(3, 20)))]) for _ in range(9)]
    byte_lengths = torch.tensor([0] + [1 + i % 3 for i in range(1, 50)])
    got = bits_per_byte(model, docs, byte_lengths, max_tokens=10_000, batch_size=3)

    stream = torch.from_numpy(np.concatenate(docs).astype(np.int64))
    nats, n_bytes, tokens = 0.0, 0, 0
    with torch.no_grad():
        for start in range(0, len(stream) - 1, 8):
            window = stream[start : start + 9]
            logits, _ = model(window[:-1].unsqueeze(0))
            losses = F.cross_entropy(logits[0], window[1:], reduction="none")
            counted = byte_lengths[window[1:]]
            nats += float(losses[counted > 0].sum())
            n_bytes += int(counted.sum())
            tokens += int((counted > 0).sum())
    assert got["val_tokens"] == tokens and got["val_bytes"] == n_bytes
    assert math.isclose(got["val_bits_per_byte"], nats / math.log(2) / n_bytes, rel_tol=1e-5)
    assert got["eval_tokens_per_s"] > 0


def test_history_keeps_one_row_per_set_of_weights(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    a = {"checkpoint": "base", "weights": "aaa", "step": 10, "val_bits_per_byte": 2.0}
    b = {"checkpoint": "other", "weights": "bbb", "step": 20, "val_bits_per_byte": 1.5}
    update_history(path, [a])
    rows = update_history(path, [{**a, "val_bits_per_byte": 1.9}, b])
    assert [(r["weights"], r["val_bits_per_byte"]) for r in rows] == [("aaa", 1.9), ("bbb", 1.5)]
    table = comparison_markdown(rows)
    assert table.count("\n") == 4 and "| base | aaa |" in table
