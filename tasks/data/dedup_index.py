"""The dedup index: what every kept dataset version tells the next one's dedup step.

One Parquet table per version (`data/dedup_index/vNNNN.parquet`), one row per candidate the
version's dedup step looked at past the record-id pass: its record id, where it lies (output
shard and record index), its exact-dedup key, its MinHash band hashes (left out for an exact
duplicate, whose bands are its kept document's), and `kept_as`, the id of the document kept
for it (its own when it was kept). Versions are deduplicated against the union of these
tables (`data.dedup.scope: global`), so a document seen in any earlier version, kept or not,
is never kept again, and `duplicate_of` names a document kept in an earlier version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

INDEX_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("shard", pa.string()),
        ("record_index", pa.int64()),
        ("dedup_key", pa.string()),
        ("minhash_bands", pa.list_(pa.uint64())),
        ("kept_as", pa.string()),
    ]
)
PRIOR_LABEL = "~"  # labels of earlier versions' entries in the dedup step; a shard label never starts so


def index_path(data_dir: Path, version: int) -> Path:
    return Path(data_dir) / "dedup_index" / f"v{version:04d}.parquet"


@dataclass
class PriorIndex:
    """The dedup index of earlier versions, as the dedup step reads it."""

    kept_as_of_id: dict[str, str] = field(default_factory=dict)
    kept_as_of_key: dict[str, str] = field(default_factory=dict)
    # (label, bands) of every entry with bands, in version order, and what each label stands for.
    banded: list[tuple[str, list[int]]] = field(default_factory=list)
    kept_as_of_label: dict[str, str] = field(default_factory=dict)
    location_of_label: dict[str, tuple[str, int]] = field(default_factory=dict)

    @classmethod
    def read(cls, paths: Iterable[Path]) -> PriorIndex:
        prior = cls()
        for path in paths:
            table = pq.read_table(path, schema=INDEX_SCHEMA)
            for row in table.to_pylist():
                prior._add(row)
        return prior

    def _add(self, row: dict[str, Any]) -> None:
        if row["id"]:
            self.kept_as_of_id.setdefault(row["id"], row["kept_as"])
        self.kept_as_of_key.setdefault(row["dedup_key"], row["kept_as"])
        if row["minhash_bands"]:
            label = f"{PRIOR_LABEL}{len(self.banded)}"
            self.banded.append((label, row["minhash_bands"]))
            self.kept_as_of_label[label] = row["kept_as"]
            self.location_of_label[label] = (row["shard"], row["record_index"])

    def texts(self, data_dir: Path, labels: set[str]) -> dict[str, str]:
        """The texts of some entries, read from the earlier versions' documents and removals
        (a kept document's text is the anonymised one: the verification step compares shingles,
        which an e-mail address or IP changes little)."""
        wanted: dict[str, dict[int, str]] = {}
        for label in labels:
            shard, record_index = self.location_of_label[label]
            wanted.setdefault(shard, {})[record_index] = label
        found: dict[str, str] = {}
        for shard, by_record in wanted.items():
            for kind in ("documents", "removed"):
                path = Path(data_dir) / kind / f"{shard}.parquet"
                if not path.is_file():
                    continue
                table = pq.read_table(path, columns=["record_index", "text"])
                for record_index, text in zip(table.column("record_index").to_pylist(), table.column("text").to_pylist()):
                    label = by_record.get(record_index)
                    if label is not None:
                        found.setdefault(label, text)
        return found


def write_index(destination: Path, rows: list[dict[str, Any]]) -> None:
    from llmforge import atomic

    atomic.write_parquet(destination, pa.Table.from_pylist(rows, schema=INDEX_SCHEMA))
