"""The data stage's global dedup step over every shard's candidates, in shard order.

Three passes, each over what the ones before left: a record id seen before (the same
WARC record in two files, or twice in one), then exact duplicates, then MinHash
clusters. The first document in (shard, record) order is kept. A run that appends a dataset
version looks at the earlier versions' dedup index first (`tasks.data.dedup_index`): a
document any earlier version saw is removed, pointing at the document kept there.

Record ids can repeat, so candidates are labelled here by shard and record index
("v0001-00003:117"), which are unique by construction: a shard is a record range of one
file, and a file content is read once (``tasks.data.shards.distinct_files``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from llmforge.config import DataConfig
from tasks.data.dedup_index import PRIOR_LABEL, PriorIndex, write_index
from tasks.data.recipe import DEDUP_REASONS
from tasks.data.shards import staging_paths

# A candidate whose record id an earlier candidate already has: removed by this filter,
# with the stats reason below; its row's reason also names the record kept.
DUPLICATE_RECORD = "duplicate_record"
SAME_RECORD_ID = "same_record_id"


@dataclass(frozen=True)
class Removal:
    filter: str
    reason: str
    duplicate_of: str  # id of the document kept


@dataclass
class Duplicates:
    """The candidates the global step removes, by shard key and record index."""

    by_shard: dict[str, dict[int, Removal]] = field(default_factory=dict)

    def add(self, label: str, removal: Removal) -> None:
        shard_key, record_index = _unlabel(label)
        self.by_shard.setdefault(shard_key, {})[record_index] = removal

    def of(self, shard_key: str, record_index: int) -> Removal | None:
        return self.by_shard.get(shard_key, {}).get(record_index)


def _label(shard_key: str, record_index: int) -> str:
    return f"{shard_key}:{record_index}"


def _unlabel(label: str) -> tuple[str, int]:
    shard_key, record_index = label.split(":")
    return shard_key, int(record_index)


def _read_candidates(data_dir: str, shard_keys: list[str], columns: list[str]) -> Iterator[tuple[str, pa.Table]]:
    for key in shard_keys:
        yield key, pq.read_table(staging_paths(Path(data_dir), key)["candidates"], columns=columns)


@dataclass
class _Candidates:
    """What the passes read of every candidate, in shard order."""

    labels: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    bands: list[list[int] | None] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # shard key -> source_file

    @classmethod
    def read(cls, data_dir: str, shard_keys: list[str]) -> _Candidates:
        found = cls()
        columns = ["id", "source_file", "record_index", "dedup_key", "minhash_bands"]
        for key, table in _read_candidates(data_dir, shard_keys, columns):
            if table.num_rows:
                found.files[key] = table.column("source_file")[0].as_py()
            found.labels += [_label(key, i) for i in table.column("record_index").to_pylist()]
            found.ids += table.column("id").to_pylist()
            found.keys += table.column("dedup_key").to_pylist()
            found.bands += table.column("minhash_bands").to_pylist()
        return found

    def describe(self, label: str) -> str:
        shard_key, record_index = _unlabel(label)
        return f"{self.files[shard_key]} record {record_index}"


def repeated_record_ids(labels: list[str], ids: list[str]) -> dict[str, str]:
    """{label: label kept} for candidates whose id an earlier candidate has. An empty id
    (a record without WARC-Record-ID) names no record, so it never repeats one."""
    first_with: dict[str, str] = {}
    repeated: dict[str, str] = {}
    for label, doc_id in zip(labels, ids):
        if not doc_id:
            continue
        kept = first_with.setdefault(doc_id, label)
        if kept != label:
            repeated[label] = kept
    return repeated


def find_duplicates(
    data_dir: str, shard_keys: list[str], config: DataConfig, prior: PriorIndex | None = None,
    index_out: str | None = None,
) -> Duplicates:
    """Repeated record ids, exact duplicates, then MinHash clusters among what is left, each
    against the earlier versions' documents (`prior`) first, then within this run. `index_out`:
    where to write this run's dedup index (`tasks.data.dedup_index`)."""
    from tasks.data.dedup import cluster_by_bands

    prior = prior or PriorIndex()
    found = _Candidates.read(data_dir, shard_keys)
    repeated = repeated_record_ids(found.labels, found.ids)
    seen_before = {
        label: prior.kept_as_of_id[doc_id] for label, doc_id in zip(found.labels, found.ids)
        if label not in repeated and doc_id and doc_id in prior.kept_as_of_id
    }
    unique = [i for i, label in enumerate(found.labels) if label not in repeated and label not in seen_before]
    exact_before, exact = _exact_pass(found, unique, prior) if config.dedup.exact else ({}, {})
    near: dict[str, str] = {}
    if config.dedup.minhash:
        gone = exact.keys() | exact_before.keys()
        remaining = [(found.labels[i], found.bands[i]) for i in unique if found.labels[i] not in gone]
        docs = [*prior.banded, *remaining]
        verify = _verifier(data_dir, shard_keys, prior, docs, config) if config.dedup.verify else None
        near = {label: kept for label, kept in cluster_by_bands(docs, verify=verify).items() if label[0] != PRIOR_LABEL}

    kept_ids = {**_ids_of(found, {*repeated.values(), *exact.values(), *near.values()}), **prior.kept_as_of_label}
    duplicates = Duplicates()
    for label, kept in repeated.items():
        reason = f"{SAME_RECORD_ID} (kept: {found.describe(kept)})"
        duplicates.add(label, Removal(DUPLICATE_RECORD, reason, kept_ids[kept]))
    for label, kept_as in seen_before.items():
        duplicates.add(label, Removal(DUPLICATE_RECORD, f"{SAME_RECORD_ID} (in an earlier version)", kept_as))
    for name, pairs in (("exact_dedup", exact), ("minhash", near)):
        for label, kept in pairs.items():
            duplicates.add(label, Removal(name, DEDUP_REASONS[name], kept_ids[kept]))
    for label, kept_as in exact_before.items():
        duplicates.add(label, Removal("exact_dedup", DEDUP_REASONS["exact_dedup"], kept_as))
    if index_out is not None:
        write_index(Path(index_out), _index_rows(found, unique, duplicates, exact.keys() | exact_before.keys()))
    return duplicates


def _exact_pass(found: _Candidates, unique: list[int], prior: PriorIndex) -> tuple[dict[str, str], dict[str, str]]:
    """({label: id kept in an earlier version}, {label: label kept in this run}) for exact duplicates."""
    from tasks.data.dedup import exact_dedup

    before = {found.labels[i]: prior.kept_as_of_key[found.keys[i]] for i in unique if found.keys[i] in prior.kept_as_of_key}
    within = exact_dedup((found.labels[i], found.keys[i]) for i in unique if found.labels[i] not in before)
    return before, within


def _index_rows(found: _Candidates, unique: list[int], duplicates: Duplicates, exact: set[str]) -> list[dict[str, Any]]:
    """This run's entries of the dedup index: every candidate past the record-id passes."""
    rows = []
    for i in unique:
        label = found.labels[i]
        shard_key, record_index = _unlabel(label)
        removal = duplicates.of(shard_key, record_index)
        rows.append({
            "id": found.ids[i], "shard": shard_key, "record_index": record_index, "dedup_key": found.keys[i],
            "minhash_bands": None if label in exact else found.bands[i],
            "kept_as": removal.duplicate_of if removal else found.ids[i],
        })
    return rows


def _ids_of(found: _Candidates, labels: set[str]) -> dict[str, str]:
    return {label: doc_id for label, doc_id in zip(found.labels, found.ids) if label in labels}


def _verifier(
    data_dir: str, shard_keys: list[str], prior: PriorIndex, docs: list[tuple[str, Any]], config: DataConfig
) -> Callable[[str, str], bool]:
    """Exact-Jaccard check of candidate pairs; reads the texts of candidate documents only."""
    from tasks.data.dedup import candidate_ids, jaccard_verifier

    wanted = candidate_ids(docs)
    texts = prior.texts(Path(data_dir), {label for label in wanted if label[0] == PRIOR_LABEL})
    for key, table in _read_candidates(data_dir, shard_keys, ["record_index", "text"]):
        for record_index, text in zip(table.column("record_index").to_pylist(), table.column("text").to_pylist()):
            label = _label(key, record_index)
            if label in wanted:
                texts[label] = text
    return jaccard_verifier(texts, config.dedup.verify_threshold, config.dedup.n_grams)
