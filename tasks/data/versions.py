"""Dataset versions: each data run that finds new input files appends one, and never rewrites the others.

A version N owns `data/{documents,removed,errors}/vNNNN-SSSSS.parquet` (one file per shard),
its dedup index `data/dedup_index/vNNNN.parquet`, and its record `data/versions/NNNN.json`:
the input files it read, the funnel, the files it wrote with their digests, and the recipe
(config, code, libraries and assets) it was made with. The record is written last and is the
commit: a version's files without a record are what an interrupted run left, and the next run
removes them (`uncommitted_files`) before it looks at anything.

A run appends when the recipe is the one the last version was made with and every committed
file is as recorded; it then reads only the files whose content no version ingested. Anything
else (a changed recipe, damaged outputs, `--rebuild`, `data.incremental: false`) rebuilds: all
input is read again into a new version 1, and the old versions are replaced as a whole.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmforge.fingerprint import fingerprint_files, sha256_json

VERSIONED_DIRS = ("documents", "removed", "errors", "dedup_index")
_VERSIONED_FILE = re.compile(r"v(\d{4,})(?:-\d{5,})?\.parquet")
_RECORD_FILE = re.compile(r"(\d{4,})\.json")
# What a version's recipe is made of: everything in the stage's inputs but the source files.
_RECIPE_INPUTS = ("config_sha256", "code", "libraries", "assets")


def versions_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "versions"


def record_path(data_dir: Path, version: int) -> Path:
    return versions_dir(data_dir) / f"{version:04d}.json"


def recipe_digest(inputs: dict[str, Any]) -> str:
    """What the documents of a version depend on besides its input files (a `StageRun`'s inputs)."""
    return sha256_json({key: inputs.get(key) for key in _RECIPE_INPUTS})


def read_records(data_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The committed versions' records in order, and what is wrong with them (unreadable
    records, gaps in the numbering): anything there forces a rebuild."""
    folder = versions_dir(data_dir)
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    if not folder.is_dir():
        return records, problems
    for path in sorted(folder.iterdir()):
        if not _RECORD_FILE.fullmatch(path.name):
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            problems.append(f"version record {path.name} is unreadable ({err.__class__.__name__})")
            continue
        records.append(record)
    numbers = [record.get("version") for record in records]
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"version records are not numbered 1..{len(numbers)}: {numbers[:10]}")
    return records, problems


def _committed(data_dir: Path) -> set[int]:
    folder = versions_dir(data_dir)
    if not folder.is_dir():
        return set()
    return {int(m.group(1)) for p in folder.iterdir() if (m := _RECORD_FILE.fullmatch(p.name))}


def uncommitted_files(workdir: Path) -> list[Path]:
    """Files of versions that have no record: an interrupted run's, to be removed before the next one looks."""
    data_dir = Path(workdir) / "data"
    committed = _committed(data_dir)
    found = []
    for name in VERSIONED_DIRS:
        folder = data_dir / name
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = _VERSIONED_FILE.fullmatch(path.name)
            if match and int(match.group(1)) not in committed:
                found.append(path)
    return sorted(found)


def versioned_files(workdir: Path, known: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """{path relative to the work directory: file record} of every file in the versioned folders."""
    return fingerprint_files(Path(workdir), [f"data/{name}/*" for name in VERSIONED_DIRS], known)


def damage(workdir: Path, records: list[dict[str, Any]], known: dict[str, Any] | None = None) -> list[str]:
    """How the versioned folders differ from what the records say was committed."""
    recorded: dict[str, str] = {}
    for record in records:
        recorded.update({path: entry["sha256"] for path, entry in record.get("files", {}).items()})
    present = versioned_files(workdir, known)
    problems = []
    missing = sorted(set(recorded) - set(present))
    changed = sorted(p for p in recorded if p in present and present[p]["sha256"] != recorded[p])
    unexpected = sorted(set(present) - set(recorded))
    for what, paths in (("missing", missing), ("modified", changed), ("not part of any version", unexpected)):
        if paths:
            problems.append(f"{len(paths)} dataset file(s) {what}, e.g. {paths[0]}")
    return problems


@dataclass
class Ingestion:
    """What a data run does: rebuild (read everything into version 1), append version N, or nothing."""

    mode: Literal["rebuild", "append", "none"]
    version: int
    files: list[Path]  # the files to read
    reasons: list[str] = field(default_factory=list)
    earlier: list[dict[str, Any]] = field(default_factory=list)  # the records of the versions kept
    already_ingested: list[str] = field(default_factory=list)  # files some version read: not read again
    # Files whose content a version ingested under another name: {name: {copy_of, version, sha256}}.
    copies_of_ingested: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Files an earlier version read that the source no longer lists (their documents stay).
    gone: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        """What to tell the user about this run's plan, one line each."""
        if self.mode == "rebuild":
            return [f"data: building version 1 from {len(self.files)} file(s): {'; '.join(self.reasons)}"]
        lines = []
        if self.mode == "append":
            why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
            lines.append(f"data: appending version {self.version}{why}: {len(self.files)} file(s) to read, "
                         f"{len(self.already_ingested)} already ingested")
        else:
            lines.append(f"data: no new input files ({len(self.already_ingested)} already ingested): "
                         f"the dataset stays at version {self.version}")
        if self.copies_of_ingested:
            first, earlier = next(iter(self.copies_of_ingested.items()))
            lines.append(f"data: {len(self.copies_of_ingested)} new file(s) repeat the content of an ingested one, "
                         f"not read (e.g. {first} = {earlier['copy_of']} of version {earlier['version']})")
        if self.gone:
            lines.append(f"data: {len(self.gone)} ingested file(s) are no longer in the source; their documents "
                         f"stay in their versions (e.g. {self.gone[0]})")
        return lines


def rebuild_reasons(
    workdir: Path, recipe: str, rebuild_because: str | None, known: dict[str, Any] | None = None,
    what_changed: list[str] | None = None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """Why this run must rebuild (empty: it appends), and the committed records. `rebuild_because`:
    the caller's reason to rebuild anyway (`--rebuild`, incremental ingestion off), or None;
    `what_changed`: what the stage's freshness check found changed, to say why a recipe differs."""
    records, problems = read_records(Path(workdir) / "data")
    if rebuild_because:
        return [rebuild_because], records
    if not records:
        return problems or ["no dataset version yet"], records
    if problems:
        return problems, records
    if records[-1].get("recipe") != recipe:
        detail = "; ".join(what_changed or []) or "config, code, libraries or assets"
        return [f"the recipe changed since version {records[-1]['version']} ({detail})"], records
    return damage(Path(workdir), records, known), records


def ingested_names(records: list[dict[str, Any]]) -> set[str]:
    """The names of the files the complete versions read (what a `cc:` run skips in the crawl's listing)."""
    complete = records[:-1] if records and records[-1].get("incomplete") else records
    return {name for record in complete for name in record.get("inputs", {})}


def plan_ingestion(
    files: list[Path],
    names: dict[str, str],
    digests: dict[str, str],
    reasons: list[str],
    records: list[dict[str, Any]],
    complete_listing: bool = True,
) -> Ingestion:
    """Rebuild when there are `reasons` (`rebuild_reasons`), else append the files no version ingested.
    `complete_listing`: the files are the whole source (False for a crawl read a budget at a time,
    whose earlier files are not listed again: none of them is then reported gone)."""
    if reasons:
        return Ingestion("rebuild", 1, files, reasons)
    plan = _append_plan(records, files, names, digests)
    if not complete_listing:
        plan.gone = []
    return plan


def _append_plan(records: list[dict[str, Any]], files: list[Path], names: dict[str, str], digests: dict[str, str]) -> Ingestion:
    """Append the files no version ingested. A last version that is incomplete (a shard of it
    failed) is done again as the same version, with the files it read and any new ones: its
    staged shards are reused, so only what failed is redone."""
    last = records[-1]
    redo = bool(last.get("incomplete"))
    earlier = records[:-1] if redo else records
    ingested: dict[str, tuple[str, int]] = {}  # content digest -> (name, version)
    known_names: set[tuple[str, str]] = set()  # (name, digest) of every file read, copies included
    for record in earlier:
        for name, entry in record.get("inputs", {}).items():
            ingested.setdefault(entry["sha256"], (name, record["version"]))
            known_names.add((name, entry["sha256"]))
    new, already, copies = [], [], {}
    for path in files:
        name = names[str(path)]
        seen = ingested.get(digests[str(path)])
        if seen is None:
            new.append(path)
        elif (name, digests[str(path)]) in known_names:
            already.append(name)
        else:
            copies[name] = {"copy_of": seen[0], "version": seen[1], "sha256": digests[str(path)]}
    gone = sorted({name for name, _ in known_names} - set(names.values()))
    if not new:
        return Ingestion("none", last["version"], [], [], records, already, copies, gone)
    version = last["version"] if redo else last["version"] + 1
    reasons = [f"version {version} is incomplete: {len(last['incomplete'])} file(s) had failed shards"] if redo else []
    return Ingestion("append", version, new, reasons, earlier, already, copies, gone)


def file_inputs(files: list[Path], names: dict[str, str], digests: dict[str, str]) -> dict[str, dict[str, Any]]:
    """A version's `inputs`: {name: {sha256, size}} of the files it read in full."""
    return {names[str(p)]: {"sha256": digests[str(p)], "size": p.stat().st_size} for p in files}


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """One line of the versions table (`llmforge status`, the dashboard)."""
    stats = record.get("stats", {})
    return {
        "version": record["version"],
        "created": record.get("created_at", "")[:19].replace("T", " "),
        "files read": sum(1 for entry in record.get("inputs", {}).values() if "copy_of" not in entry),
        "responses": stats.get("responses", 0),
        "kept": stats.get("kept", 0),
        "removed as duplicates": sum(stats.get("removed", {}).get(name, 0)
                                     for name in ("duplicate_record", "exact_dedup", "minhash")),
        "incomplete files": len(record.get("incomplete", {})),
    }


def staged_file_records(workdir: Path, staged: dict[str, str]) -> dict[str, dict[str, Any]]:
    """{final path: {sha256, size}} of the files staged for the versioned folders."""
    from llmforge.fingerprint import sha256_file

    found = {}
    for name, folder in staged.items():
        for path in sorted(Path(folder).iterdir()):
            final = (Path("data") / name / path.name).as_posix()
            found[final] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return found


def commit_append(workdir: Path, version: int, staged: dict[str, str], record: dict[str, Any]) -> None:
    """Move a version's staged files into the versioned folders, then write its record (the commit).
    A version done again (it was incomplete) is uncommitted first, so a crash half-way leaves
    files without a record, which the next run removes, never a record that lies."""
    import os
    import shutil

    from llmforge import atomic

    data_dir = Path(workdir) / "data"
    record = {**record, "files": staged_file_records(workdir, staged)}
    record_path(data_dir, version).unlink(missing_ok=True)
    for path in uncommitted_files(workdir):
        path.unlink(missing_ok=True)
    for name, folder in staged.items():
        final = data_dir / name
        final.mkdir(parents=True, exist_ok=True)
        for path in sorted(Path(folder).iterdir()):
            os.replace(path, final / path.name)
        shutil.rmtree(folder, ignore_errors=True)
    atomic.write_json(record_path(data_dir, version), record)


def commit_rebuild(workdir: Path, staged: dict[str, str], record: dict[str, Any]) -> None:
    """Swap in the versioned folders of a rebuilt dataset, then its one record (the commit)."""
    from llmforge import atomic

    data_dir = Path(workdir) / "data"
    record = {**record, "files": staged_file_records(workdir, staged)}
    for name, folder in staged.items():
        atomic.replace_directory(Path(folder), data_dir / name)
    fresh = atomic.temp_dir_beside(versions_dir(data_dir))
    atomic.write_json(fresh / "0001.json", record)
    atomic.replace_directory(fresh, versions_dir(data_dir))


def new_record(
    ingestion: Ingestion,
    recipe: str,
    source: str,
    inputs: dict[str, dict[str, Any]],
    copies: dict[str, str],
    stats: dict[str, Any],
) -> dict[str, Any]:
    """A version's record, but for its `files` (added at commit). `inputs`: {name: {sha256, size}} of
    every file read; `copies`: {name: name read} for those of equal content. A file with a failed shard
    is listed under `incomplete`, not `inputs`: the next run reads it again (`_append_plan`)."""
    from datetime import datetime, timezone

    failed = {}
    for shard in stats.get("failed_shards", []):
        failed.setdefault(shard["file"], shard["error"])
    read = {name: entry for name, entry in inputs.items() if name not in failed}
    for copy, kept in copies.items():
        if kept in read:
            read[copy] = {**read[kept], "copy_of": kept}
    for copy, earlier in ingestion.copies_of_ingested.items():  # recorded, so later runs know them
        read[copy] = {"sha256": earlier["sha256"], "copy_of": earlier["copy_of"]}
    return {
        "version": ingestion.version,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "mode": ingestion.mode,
        "reasons": ingestion.reasons,  # why it rebuilt, or why an incomplete version was done again
        "recipe": recipe,
        "source": source,
        "inputs": read,
        "incomplete": failed,
        "already_ingested": len(ingestion.already_ingested),
        "stats": stats,
    }


def dataset_totals(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The dataset across its versions (their records), as the manifest's counts and metrics."""
    documents = sum(record.get("stats", {}).get("kept", 0) for record in records)
    files = sum(1 for record in records for entry in record.get("inputs", {}).values() if "copy_of" not in entry)
    latest = records[-1]["version"] if records else 0
    return {
        "counts": {"versions": len(records), "files_ingested": files},
        "metrics": {"documents": documents, "version": latest},
    }
