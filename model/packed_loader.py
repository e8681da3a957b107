"""Streaming, BOS-aligned packing of token documents into training rows, split over ranks.

The random-window sampler (`model.train.BatchSampler`) needs the whole corpus in
memory and starts windows mid-document. This loader streams documents from
Parquet token shards instead and packs them into rows of ``seq_len + 1`` tokens
that begin at a document's BOS, so the model rarely has to predict text whose
beginning it never saw:

- Documents come from the shards' row groups in an order shuffled per epoch
  (seeded; row groups, and documents within each), and the data is cycled for as
  many epochs as the run needs.
- Rows are filled best-fit from a buffer of pieces: the largest piece that fits
  the space left goes in next; when none fits, the shortest piece is cut to fill
  the row exactly, so no row carries padding.
- ``long_documents="split"`` (default) loses nothing: a document longer than a
  row becomes row-sized pieces, and the cut-off tail of a piece goes back into
  the buffer; such pieces may start a row mid-document (counted). ``"crop"``
  keeps rows strictly aligned: a document keeps only its first row and a cut
  piece loses its tail (the tokens dropped are counted).
- Each optimizer step takes the next ``batch_size * grad_accum_steps *
  world_size`` rows of one global sequence; rank r's micro-batch m is the slice
  ``(m * world_size + r) * batch_size``. Every rank reads the stream and keeps its
  own rows (a few MB per step against a training step's compute), which makes a
  step's data independent of the number of processes: one process accumulating
  two micro-batches trains on exactly the rows two processes share.
- Its state is the number of steps taken; resuming replays the packing up to
  there (reading the data again, without training on it).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow.parquet as pq
import torch

from model.batch_split import GlobalBatchSplit


@dataclass
class PackingStats:
    rows: int = 0
    tokens_used: int = 0
    tokens_cropped: int = 0
    documents: int = 0
    epochs_started: int = 0
    rows_starting_mid_document: int = 0

    def as_dict(self) -> dict[str, float | int]:
        total = self.tokens_used + self.tokens_cropped
        return {
            "rows": self.rows,
            "documents": self.documents,
            "epochs_started": self.epochs_started,
            "tokens_cropped_fraction": round(self.tokens_cropped / total, 4) if total else 0.0,
            "rows_starting_mid_document_fraction": round(self.rows_starting_mid_document / self.rows, 4)
            if self.rows else 0.0,
        }


def shard_units(shards: Sequence[Path]) -> list[tuple[Path, int]]:
    """(shard, row group) pairs: the unit the per-epoch shuffle moves around."""
    if not shards:
        raise FileNotFoundError("no token shards given to the packed loader")
    units = []
    for path in shards:
        n = pq.ParquetFile(path).metadata.num_row_groups
        units.extend((Path(path), i) for i in range(n))
    return units


def read_unit(unit: tuple[Path, int]) -> list[np.ndarray]:
    path, row_group = unit
    column = pq.ParquetFile(path).read_row_group(row_group, columns=["tokens"]).column("tokens")
    return [np.asarray(doc, dtype=np.int64) for doc in column.to_numpy(zero_copy_only=False)]


@dataclass(order=True)
class _Piece:
    length: int
    serial: int  # ties broken by arrival, so the packing is deterministic
    tokens: np.ndarray = field(compare=False)
    starts_document: bool = field(compare=False, default=True)


class PackedRows:
    """The global, endless sequence of packed rows (each seq_len + 1 tokens)."""

    def __init__(
        self,
        shards: Sequence[Path],
        seq_len: int,
        seed: int,
        buffer_pieces: int = 128,
        long_documents: Literal["split", "crop"] = "split",
    ) -> None:
        if seq_len <= 0 or buffer_pieces <= 0:
            raise ValueError("seq_len and buffer_pieces must be positive")
        self.units = shard_units(shards)
        self.row_len = seq_len + 1
        self.seed = seed
        self.buffer_pieces = buffer_pieces
        self.long_documents = long_documents
        self.stats = PackingStats()
        self._buffer: list[_Piece] = []  # kept sorted by (length, serial)
        self._serial = 0
        self._documents = self._document_stream()

    def _document_stream(self) -> Iterator[np.ndarray]:
        epoch = 0
        while True:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.units))
            self.stats.epochs_started += 1
            produced = False
            for i in order:
                docs = read_unit(self.units[i])
                # Documents move within their row group too, so that a small corpus seen for
                # many epochs is packed into different rows each time.
                for j in np.random.default_rng([self.seed, epoch, int(i)]).permutation(len(docs)):
                    if docs[j].size:
                        produced = True
                        yield docs[j]
            if not produced:
                raise ValueError("the token shards hold no tokens")
            epoch += 1

    def _add(self, tokens: np.ndarray, starts_document: bool) -> None:
        bisect.insort(self._buffer, _Piece(int(tokens.size), self._serial, tokens, starts_document))
        self._serial += 1

    def _refill(self) -> None:
        while len(self._buffer) < self.buffer_pieces:
            doc = next(self._documents)
            self.stats.documents += 1
            if doc.size <= self.row_len:
                self._add(doc, True)
            elif self.long_documents == "crop":
                self._add(doc[: self.row_len], True)
                self.stats.tokens_cropped += int(doc.size) - self.row_len
            else:
                for start in range(0, int(doc.size), self.row_len):
                    self._add(doc[start : start + self.row_len], start == 0)

    def next_row(self) -> np.ndarray:
        self._refill()
        parts: list[np.ndarray] = []
        space = self.row_len
        while space > 0:
            # The largest piece that still fits: bisect on (length, serial) just past `space`.
            i = bisect.bisect_right(self._buffer, _Piece(space, 1 << 62, np.empty(0))) - 1
            if i >= 0:
                piece = self._buffer.pop(i)
            else:
                piece = self._buffer.pop(0)  # nothing fits: cut the shortest
                rest = piece.tokens[space:]
                if self.long_documents == "split":
                    self._add(rest, False)  # its tail waits for a later row: nothing is lost
                else:
                    self.stats.tokens_cropped += int(rest.size)
                piece = _Piece(space, piece.serial, piece.tokens[:space], piece.starts_document)
            if not parts and not piece.starts_document:
                self.stats.rows_starting_mid_document += 1
            parts.append(piece.tokens)
            space -= piece.length
            if space > 0 and not self._buffer:
                self._refill()
        row = np.concatenate(parts)
        self.stats.rows += 1
        self.stats.tokens_used += self.row_len
        return row


class PackedLoader(GlobalBatchSplit):
    """This rank's micro-batches of packed rows, with the same interface as BatchSampler."""

    def __init__(
        self,
        shards: Sequence[Path],
        batch_size: int,
        seq_len: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        grad_accum_steps: int = 1,
        buffer_pieces: int = 128,
        long_documents: Literal["split", "crop"] = "split",
    ) -> None:
        super().__init__(batch_size, rank, world_size, grad_accum_steps)
        self.shards = [Path(s) for s in shards]
        self.seq_len = seq_len
        self.seed = seed
        self.buffer_pieces = buffer_pieces
        self.long_documents = long_documents
        self.rows = PackedRows(self.shards, seq_len, seed, buffer_pieces, long_documents)
        self._step_rows: np.ndarray | None = None

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        _, micro, first = self._next_slot()
        if micro == 0:
            self._step_rows = np.stack([self.rows.next_row() for _ in range(self.global_rows)])
        assert self._step_rows is not None
        mine = torch.from_numpy(self._step_rows[first : first + self.batch_size])
        return mine[:, :-1], mine[:, 1:]

    def __iter__(self) -> PackedLoader:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.next()

    def state_dict(self) -> dict[str, int | str]:
        return {
            "kind": "packed",
            "seed": self.seed,
            "step": self.steps_done,
            "position": self.position,
            "global_rows": self.global_rows,
            "seq_len": self.seq_len,
            "buffer_pieces": self.buffer_pieces,
            "long_documents": self.long_documents,
        }

    def load_state_dict(self, state: dict[str, int | str]) -> None:
        if state.get("kind") != "packed":
            raise ValueError("sampler state is not a packed loader's (was the run started with another data_loader?)")
        for key, mine in (("global_rows", self.global_rows), ("seq_len", self.seq_len),
                          ("buffer_pieces", self.buffer_pieces), ("long_documents", self.long_documents)):
            if state.get(key) != mine:
                raise ValueError(f"sampler state has {key}={state.get(key)!r}, this loader has {mine!r}")
        self.seed = int(state["seed"])
        self.rows = PackedRows(self.shards, self.seq_len, self.seed, self.buffer_pieces, self.long_documents)
        steps = int(state["step"])
        for _ in range(steps * self.global_rows):
            self.rows.next_row()
        self._resume_at_step(steps)
        self._step_rows = None
