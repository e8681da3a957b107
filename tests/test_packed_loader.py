"""The streaming BOS-aligned packed loader: rows, alignment, losslessness, ranks, resume."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from model.packed_loader import PackedLoader, PackedRows

BOS = 0
SEQ = 16


def _write_shards(root: Path, docs: list[list[int]], per_shard: int = 40, row_group: int = 10) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(0, len(docs), per_shard):
        path = root / f"{i // per_shard:05d}.parquet"
        pq.write_table(pa.table({"tokens": pa.array(docs[i : i + per_shard], type=pa.list_(pa.uint16()))}),
                       path, row_group_size=row_group)
        paths.append(path)
    return paths


def _docs(n: int, max_len: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[BOS] + rng.integers(1, 500, size=int(rng.integers(2, max_len))).tolist() for _ in range(n)]


def test_short_documents_give_full_rows_that_start_at_bos(tmp_path: Path) -> None:
    shards = _write_shards(tmp_path, _docs(120, max_len=12))
    rows = PackedRows(shards, SEQ, seed=1, long_documents="crop")
    for _ in range(50):
        row = rows.next_row()
        assert row.shape == (SEQ + 1,) and row[0] == BOS
    assert rows.stats.rows_starting_mid_document == 0


def test_split_mode_loses_no_token_over_an_epoch(tmp_path: Path) -> None:
    docs = _docs(80, max_len=40)  # many longer than a row
    shards = _write_shards(tmp_path, docs)
    rows = PackedRows(shards, SEQ, seed=2, buffer_pieces=8)
    total = sum(len(d) for d in docs)
    seen: Counter[int] = Counter()
    # Rows drawn past the first epoch start re-reading; count only the first epoch's worth.
    n_rows = total // (SEQ + 1) - 8
    for _ in range(n_rows):
        seen.update(rows.next_row().tolist())
    assert rows.stats.epochs_started == 1 and rows.stats.tokens_cropped == 0
    assert sum(seen.values()) == n_rows * (SEQ + 1)
    everything = Counter(t for d in docs for t in d)
    assert all(seen[t] <= everything[t] for t in seen)  # every token came from the data, none twice


def test_crop_mode_counts_what_it_drops(tmp_path: Path) -> None:
    shards = _write_shards(tmp_path, _docs(40, max_len=60))
    rows = PackedRows(shards, SEQ, seed=0, long_documents="crop")
    for _ in range(30):
        assert rows.next_row()[0] == BOS
    stats = rows.stats.as_dict()
    assert rows.stats.tokens_cropped > 0 and 0 < stats["tokens_cropped_fraction"] < 1


def test_ranks_and_micro_batches_share_one_sequence_of_rows(tmp_path: Path) -> None:
    shards = _write_shards(tmp_path, _docs(100, max_len=30))
    one = PackedLoader(shards, 3, SEQ, seed=5, grad_accum_steps=2)
    two = [PackedLoader(shards, 3, SEQ, seed=5, rank=r, world_size=2) for r in range(2)]
    for _ in range(4):
        x_one = torch.cat([one.next()[0] for _ in range(2)])
        x_two = torch.cat([loader.next()[0] for loader in two])
        assert torch.equal(x_one, x_two)
    x, y = two[0].next()
    assert x.shape == y.shape == (3, SEQ) and torch.equal(x[:, 1:], y[:, :-1])


def test_resume_continues_the_same_batches(tmp_path: Path) -> None:
    shards = _write_shards(tmp_path, _docs(60, max_len=30))
    loader = PackedLoader(shards, 4, SEQ, seed=9)
    for _ in range(7):  # past one epoch of this small corpus
        loader.next()
    state = loader.state_dict()
    expected = [loader.next() for _ in range(5)]
    resumed = PackedLoader(shards, 2, SEQ, seed=0, grad_accum_steps=2)  # same global batch, split differently
    resumed.load_state_dict(state)
    got = [resumed.next() for _ in range(10)]
    for i, (ex, ey) in enumerate(expected):
        assert torch.equal(ex, torch.cat([got[2 * i][0], got[2 * i + 1][0]]))
        assert torch.equal(ey, torch.cat([got[2 * i][1], got[2 * i + 1][1]]))
    with pytest.raises(ValueError, match="global_rows"):
        PackedLoader(shards, 8, SEQ, seed=9).load_state_dict(state)


def test_empty_shards_are_an_error(tmp_path: Path) -> None:
    shards = _write_shards(tmp_path, [[]])
    with pytest.raises(ValueError, match="no tokens"):
        PackedRows(shards, SEQ, seed=0).next_row()
    with pytest.raises(FileNotFoundError):
        PackedRows([], SEQ, seed=0)
