"""Shards of the data stage: one input file or a record range of one, and where a shard's results are staged."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmforge.config import DataConfig, ReaderConfig
from llmforge.fingerprint import sha256_json

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tasks.data.text_reader import TextDocument
    from tasks.data.warc_reader import HtmlDocument, ReadStats, SkippedRecord


@dataclass(frozen=True)
class Shard:
    index: int
    path: str
    name: str  # the file's name in the outputs: its path relative to the source root
    start: int = 0
    stop: int | None = None
    input_sha256: str = ""
    version: int = 1  # the dataset version the shard's documents go to (tasks.data.versions)

    @property
    def key(self) -> str:
        """Its name in the staging area and the outputs: "v0003-00012" is shard 12 of version 3."""
        return f"v{self.version:04d}-{self.index:05d}"


def file_digests(files: Iterable[Path]) -> dict[str, str]:
    from llmforge.fingerprint import sha256_file

    return {str(path): sha256_file(path) for path in files}


def distinct_files(files: list[Path], fingerprints: dict[str, str]) -> tuple[list[Path], dict[str, str]]:
    """The files to read, each content once, and {path: path kept} for the others.

    A copy of a file under another name or in another folder (common in download
    folders) would give every record twice; the first of equal files in the order of
    `files` is read, the others are reported and skipped.
    """
    first_with: dict[str, Path] = {}
    distinct: list[Path] = []
    copies: dict[str, str] = {}
    for path in files:
        kept = first_with.setdefault(fingerprints[str(path)], path)
        if kept is path:
            distinct.append(path)
        else:
            copies[str(path)] = str(kept)
    return distinct, copies


def plan_shards(
    files: list[Path],
    records_per_shard: int,
    fingerprints: dict[str, str],
    max_records_per_file: int | None = None,
    names: dict[str, str] | None = None,
    reader: ReaderConfig | None = None,
    version: int = 1,
) -> list[Shard]:
    """One shard per file, or per `records_per_shard` records of a file; optionally only a file's first records.

    Records are counted as the reader with the same `reader` limits numbers them, damaged
    files included, so the shards partition what the reader reads. A file's last shard stays
    open-ended (stop=None) when it reads to the end, so damage at the end of the file is
    reported by exactly one shard. `names`: each file's name in the outputs
    (`tasks.data.sources.source_names`); without it, files are named by their base names,
    as files given one by one are. Text-dataset files: a Parquet file is split by the row
    count in its footer; JSON Lines and plain text are read whole by one shard each.
    """
    from tasks.data.text_reader import count_rows, is_text_file
    from tasks.data.warc_reader import count_records

    shards: list[Shard] = []
    for path in files:
        digest = fingerprints[str(path)]
        name = names[str(path)] if names is not None else path.name
        counted = count_rows(path) if is_text_file(path) else None
        if records_per_shard <= 0 or (is_text_file(path) and counted is None):
            shards.append(Shard(len(shards), str(path), name, 0, max_records_per_file, digest, version))
            continue
        total = counted if counted is not None else count_records(path, reader)
        end = total if max_records_per_file is None else min(total, max_records_per_file)
        for start in range(0, max(end, 1), records_per_shard):
            stop: int | None = start + records_per_shard
            if stop >= end:
                stop = None if end == total else end
            shards.append(Shard(len(shards), str(path), name, start, stop, digest, version))
    return shards


def read_shard(
    shard: Shard, stats: ReadStats, limits: ReaderConfig | None, text_column: str = "text"
) -> Iterator[HtmlDocument | TextDocument | SkippedRecord]:
    """The shard's records as the reader for its kind of file gives them: HTML responses of a
    WARC file, or rows of a text-dataset file; the skipped ones as `SkippedRecord`s."""
    from tasks.data.text_reader import is_text_file, iter_text_file
    from tasks.data.warc_reader import iter_warc

    if is_text_file(shard.path):
        return iter_text_file(shard.path, shard.start, shard.stop, stats, limits, text_column, shard.name)
    return iter_warc(shard.path, shard.start, shard.stop, stats=stats, limits=limits)


def shard_fingerprint(shard: Shard, config: DataConfig, code_digest: str) -> str:
    """What a staged shard depends on. Settings used only by the global steps (which
    duplicates to drop, PII) are left out, so changing them re-uses every shard."""
    view = config.fingerprint_view()
    view.pop("pii")
    for global_only in ("exact", "verify", "verify_threshold"):
        view["dedup"].pop(global_only)
    return sha256_json({"shard": asdict(shard), "config": view, "code": code_digest})


STAGED_KINDS = ("candidates", "removed", "errors")


def staging_paths(data_dir: Path, shard_key: str) -> dict[str, Path]:
    """The completion marker and the staged tables of one shard, under data/_work/."""
    base = data_dir / "_work"
    return {"marker": base / f"{shard_key}.done.json", **{kind: base / f"{shard_key}.{kind}.parquet" for kind in STAGED_KINDS}}


def write_staged_tables(paths: dict[str, Path], candidates: list[dict], removed: list[dict], errors: list[dict]) -> None:
    """A shard's three staged tables (see `staging_paths`), each written atomically."""
    import pyarrow as pa

    from llmforge import atomic
    from tasks.data.schemas import CANDIDATE_SCHEMA, ERROR_SCHEMA, REMOVED_SCHEMA

    for kind, rows, schema in (("candidates", candidates, CANDIDATE_SCHEMA), ("removed", removed, REMOVED_SCHEMA),
                               ("errors", errors, ERROR_SCHEMA)):
        atomic.write_parquet(paths[kind], pa.Table.from_pylist(rows, schema=schema))


def read_summary(shard: Shard, stats: ReadStats) -> dict[str, Any]:
    """The part of a shard's summary that says which records it covers and what the reader found in them."""
    return {
        "shard": shard.key,
        "source_file": shard.name,
        "source_path": shard.path,
        "range": [shard.start, shard.stop],
        "records": stats.records,
        "records_by_type": dict(stats.by_type),
        "responses": stats.responses,
    }
