"""Fuzzing the data stage through the CLI with damaged copies of the real WARCs.

`tests/fuzz_warc.py` writes each batch: the real WARCs unchanged, then files truncated,
bit-flipped (compressed and inflated), with garbled, repeated or missing headers, lying
Content-Lengths, binary payloads, decompression bombs, repeated records, junk between
gzip members, files that are not WARC at all, and copies of other files. Each batch goes
through `llmforge data --json` in a subprocess, as a user runs it, and every run must:

* exit 0: these inputs damage records, never a whole shard, so no shard may fail;
* publish documents, removals, errors and stats.json, with the intact files' documents
  exactly those of a run over the intact files alone;
* account for every response record of every file it read (kept + removed + errors =
  responses, in stats.json and in the Parquet rows), read every distinct content once and
  list the other copies as duplicate_files;
* stay within RSS_HEADROOM of a clean run's peak memory.

The seed is in every test id and failure message; `LLMFORGE_FUZZ_SEED=N` runs another one,
and `python tests/fuzz_warc.py --seed N --batch B --files 70 DIR` rewrites one batch to look at.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from cli_process import CliRun, cli_environment, run_cli
from fuzz_warc import (
    BOMB_KINDS,
    BOMB_SIZES,
    INTACT_DIR,
    INTACT_WARCS,
    KINDS,
    MB,
    FuzzFile,
    Members,
    Record,
    _bomb,
    bomb_member,
    write_batch,
)

from llmforge.config import ReaderConfig
from tasks.data.shard_failure import SHARD_FAILED
from tasks.data.steps import STEP_ERROR
from tasks.data.warc_reader import SKIP_REASONS, ReadStats, iter_warc

SEED = int(os.environ.get("LLMFORGE_FUZZ_SEED", "20240601"))
BATCHES = 3
FILES_PER_BATCH = 70  # mutated files and copies, besides the intact WARCs: 210 in all
# What a damaged batch may take beyond a clean run's peak: a worker reading a bomb may hold
# about 33 MB of one record (the reader's default limits) and the copies warcio makes of it.
# Measured: clean 484 MB, batches up to 547 MB (the CLI's main process is the largest; its
# workers peak near 340 MB). With the reader's max_payload_bytes lifted to 1 GiB by config,
# two 320 MB bombs took the peak to 1795 MB.
RSS_HEADROOM = 300 * MB
READER_DETAIL_LIMIT = 200
STEP_DETAIL_LIMIT = 400

# ------------------------------------------------------------------ the generator (fast)


def _digests(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_the_same_seed_writes_byte_identical_files(shared_data: Path, tmp_path: Path) -> None:
    sources = shared_data / "warc"
    first = write_batch(sources, tmp_path / "a", SEED, batch=1, files=26)
    again = write_batch(sources, tmp_path / "b", SEED, batch=1, files=26)
    assert first == again
    digests = _digests(tmp_path / "a")
    assert digests == _digests(tmp_path / "b"), f"seed {SEED}: the generator is not deterministic"
    write_batch(sources, tmp_path / "c", SEED + 1, batch=1, files=26)
    changed = {n for n, d in _digests(tmp_path / "c").items() if digests.get(n) != d}
    assert len(changed) > 13, "another seed should damage the files differently"


def test_every_batch_holds_every_kind_of_damage_and_the_intact_files(shared_data: Path, tmp_path: Path) -> None:
    written = write_batch(shared_data / "warc", tmp_path, SEED, batch=0, files=len(KINDS))
    assert [f.kind for f in written if f.kind != "intact"] == list(KINDS)
    assert [f.name for f in written if f.kind == "intact"] == [f"{INTACT_DIR}/{name}" for name in INTACT_WARCS]
    for entry in written:
        assert entry.name.endswith((".warc", ".warc.gz")), entry
        data = (tmp_path / entry.name).read_bytes()
        if entry.kind == "intact":
            assert data == (shared_data / "warc" / entry.source).read_bytes()
        elif entry.kind == "duplicate_file":
            assert data == (tmp_path / entry.source).read_bytes(), entry
        elif entry.source:
            assert data != (shared_data / "warc" / entry.source).read_bytes(), f"{entry} is unchanged"


def test_members_and_records_split_and_join_without_change(shared_data: Path) -> None:
    members = Members.split((shared_data / "warc" / "pywb-example.com.warc.gz").read_bytes())
    assert len(members.plain) == 6 and members.tail == b""
    assert Members.split(members.gzipped()).plain == members.plain
    for member in members.plain:
        record = Record.parse(member)
        assert record is not None and record.to_bytes() == member
    clipped = Members.split((shared_data / "warc" / "resiliparse-clipped-record.warc.gz").read_bytes())
    assert clipped.plain == [] and clipped.tail and clipped.tail_plain.startswith(b"WARC/1.")


def _longest_line(pieces: Iterator[bytes]) -> tuple[int, int]:
    """(bytes in all, longest run without a newline) of a stream of pieces."""
    total = longest = run = 0
    for piece in pieces:
        total += len(piece)
        *ended, last = piece.split(b"\n")
        if ended:
            longest = max(longest, run + len(ended[0]), *(len(line) for line in ended[1:]))
            run = 0
        run += len(last)
        longest = max(longest, run)
    return total, longest


def _inflate(member: bytes) -> Iterator[bytes]:
    inflater = zlib.decompressobj(31)
    for at in range(0, len(member), 64 * 1024):
        yield inflater.decompress(member[at : at + 64 * 1024], MB)
        while inflater.unconsumed_tail:
            yield inflater.decompress(inflater.unconsumed_tail, MB)
    assert inflater.eof


@pytest.mark.parametrize("kind", BOMB_KINDS)
def test_bombs_are_small_on_disk_and_inflate_to_one_endless_line(kind: str) -> None:
    import random

    size = 24 * MB  # the builder is the same at any size; the suite's sizes are checked below
    member = _bomb(kind, size, random.Random(0))
    assert len(member) < 64 * 1024
    if kind == "coded_body":  # the record is small; its gzip HTTP body is the bomb
        record = zlib.decompress(member, 31)
        member = record[record.index(b"\x1f\x8b") : record.rindex(b"\r\n\r\n")]
    total, longest = _longest_line(_inflate(member))
    assert total >= size and longest >= size
    assert min(BOMB_SIZES) > 4 * ReaderConfig().max_payload_bytes


def test_a_bomb_member_holds_what_it_says() -> None:
    member = bomb_member(b"head:", b"xy", 3 * MB, b":tail")
    plain = zlib.decompress(member, 31)
    assert plain == b"head:" + b"xy" * (3 * MB // 2) + b":tail"


# ------------------------------------------------------------------ through the CLI (slow)


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("fuzz-env")
    return cli_environment(base / "prefect-home", base / "cache")


def _run_data(source: Path, workdir: Path, env: dict[str, str]) -> CliRun:
    return run_cli(["data", "--source", str(source), "--workdir", str(workdir), "--json"], env)


def _documents_by_file(workdir: Path, prefix: str) -> dict[str, list[tuple[str, str, str]]]:
    rows = pq.read_table(workdir / "data" / "documents", columns=["id", "url", "text", "source_file"]).to_pylist()
    found: dict[str, list[tuple[str, str, str]]] = {}
    for row in rows:
        if row["source_file"].startswith(prefix):
            found.setdefault(row["source_file"], []).append((row["id"], row["url"], row["text"]))
    return {name: sorted(docs) for name, docs in sorted(found.items())}


@pytest.fixture(scope="module")
def clean_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory, cli_env: dict[str, str]) -> dict[str, Any]:
    """The intact WARCs alone, laid out as in every batch: the documents and peak memory to compare with."""
    base = tmp_path_factory.mktemp("fuzz-clean")
    source = base / "source"
    write_batch(shared_data / "warc", source, SEED, batch=0, files=0)
    run = _run_data(source, base / "work", cli_env)
    assert run.returncode == 0, run.describe()
    documents = _documents_by_file(base / "work", f"{INTACT_DIR}/")
    assert sum(len(docs) for docs in documents.values()) > 10, "the intact files should keep some documents"
    return {"run": run, "documents": documents}


@pytest.fixture(scope="module")
def fuzz_totals(clean_run: dict[str, Any]) -> Iterator[Counter]:
    """Figures summed over the batches, printed at the end (visible with -s)."""
    totals: Counter = Counter()
    yield totals
    clean = clean_run["run"]
    print(
        f"\nfuzz seed={SEED}: {totals['files']} files ({totals['mutated']} mutated or copied) "
        f"in {totals['runs']} runs, "
        f"{totals['records']} records, {totals['responses']} responses, kept {totals['kept']}, "
        f"removed {totals['removed']}, errors {totals['errors']} (+{totals['damaged_file']} damaged-file rows), "
        f"crashes {totals['crashes']}, runs that published {totals['published']}; peak RSS worst "
        f"{totals['worst_peak'] / MB:.0f} MB, clean {clean.peak_rss_bytes / MB:.0f} MB; CLI time "
        f"{totals['seconds']:.0f} s (clean run {clean.seconds:.0f} s)"
    )


def _expected_reads(batch: Path) -> tuple[list[str], dict[str, str]]:
    """The files the stage should read (each content once, the first in its order) and the copies it should list."""
    first_with: dict[str, str] = {}
    copies: dict[str, str] = {}
    for path in sorted(p for p in batch.rglob("*") if p.is_file() and p.name.endswith((".warc", ".warc.gz"))):
        name = path.relative_to(batch).as_posix()
        kept = first_with.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), name)
        if kept != name:
            copies[name] = kept
    return sorted(first_with.values()), copies


def _rows_by_file(directory: Path) -> Counter:
    return Counter(pq.read_table(directory, columns=["source_file"]).column("source_file").to_pylist())


def _error_rows_by_file(directory: Path) -> tuple[Counter, Counter, list[str]]:
    """(record error rows by source_file, damaged_file rows by source_file, problems with the rows)."""
    records: Counter = Counter()
    damaged: Counter = Counter()
    problems: list[str] = []
    for row in pq.read_table(directory, columns=["source_file", "reason", "detail"]).to_pylist():
        reason, detail = row["reason"], row["detail"] or ""
        (damaged if reason == "damaged_file" else records)[row["source_file"]] += 1
        limit = STEP_DETAIL_LIMIT if reason == STEP_ERROR else READER_DETAIL_LIMIT
        if reason not in (*SKIP_REASONS, STEP_ERROR, SHARD_FAILED):
            problems.append(f"{row['source_file']}: error reason {reason!r} is not in the vocabulary")
        if len(detail) > limit or not detail.isprintable():
            problems.append(f"{row['source_file']}: {reason} detail is not a short printable line: {detail[:80]!r}...")
    return records, damaged, problems


def _read_directly(path: Path) -> ReadStats:
    stats = ReadStats()
    for _ in iter_warc(path, stats=stats, limits=ReaderConfig()):
        pass
    return stats


def _accounting_problems(batch: Path, workdir: Path, stats: dict[str, Any], about: dict[str, FuzzFile]) -> list[str]:
    """Every way the published outputs fail to account for the batch's response records, one line each."""
    data = workdir / "data"
    kept_rows, removed_rows = _rows_by_file(data / "documents"), _rows_by_file(data / "removed")
    error_rows, damaged_rows, problems = _error_rows_by_file(data / "errors")
    read, copies = _expected_reads(batch)
    if stats.get("duplicate_files", {}) != copies:
        problems.append(f"duplicate_files {stats.get('duplicate_files')} != the byte-identical copies {copies}")
    if sorted(stats["per_file"]) != read:
        wrong = sorted(set(stats["per_file"]) ^ set(read))
        problems.append(f"per_file lists {wrong} wrongly (files to read: {len(read)})")
    for name in read:
        entry = stats["per_file"].get(name)
        if entry is None:
            continue
        errors = sum(n for reason, n in entry["errors"].items() if reason != "damaged_file")
        removed = sum(entry["removed"].values())
        direct = _read_directly(batch / name)
        checks = [
            ("kept + removed + errors", entry["kept"] + removed + errors, entry["responses"]),
            ("responses read directly", direct.responses, entry["responses"]),
            ("document rows", kept_rows[name], entry["kept"]),
            ("removed rows", removed_rows[name], removed),
            ("error rows", error_rows[name], errors),
            ("damaged-file rows", damaged_rows[name], entry["errors"].get("damaged_file", 0)),
        ]
        wrong = [f"{what} {got} (expected {expected})" for what, got, expected in checks if got != expected]
        if wrong:
            responses = entry["responses"]
            problems.append(f"{name} ({about.get(name)}): {responses} responses in stats.json; " + ", ".join(wrong))
    if stats["accounted"] != stats["responses"]:
        problems.append(f"stats.json accounts for {stats['accounted']} of {stats['responses']} responses")
    return problems


def _check_exit(run: CliRun, stats: dict[str, Any] | None, where: str) -> None:
    if run.returncode == 1 and stats and stats.get("failed_shards"):
        failed = "\n".join(f"  {s['file']} {s['range']}: {s['error']}" for s in stats["failed_shards"])
        pytest.fail(f"{where}: {len(stats['failed_shards'])} shard(s) failed on damaged records:\n{failed}")
    assert run.returncode == 0, f"{where}: {run.describe()}"
    assert run.error_lines() == [], f"{where}: a successful run printed errors: {run.error_lines()}"


def _published(workdir: Path) -> dict[str, Any] | None:
    data = workdir / "data"
    if not all((data / name).is_dir() for name in ("documents", "removed", "errors")):
        return None
    path = data / "stats.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _count(totals: Counter, run: CliRun, stats: dict[str, Any] | None, written: list[FuzzFile]) -> None:
    totals["runs"] += 1
    totals["files"] += len(written)
    totals["mutated"] += sum(1 for f in written if f.kind != "intact")
    totals["seconds"] += run.seconds
    totals["worst_peak"] = max(totals["worst_peak"], run.peak_rss_bytes)
    # Exit 1 with one error line is a run that failed as documented (the test says why); anything else is a crash.
    one_line_failure = run.returncode == 1 and len(run.error_lines()) == 1
    totals["crashes"] += stats is None or not (run.returncode == 0 or one_line_failure)
    if stats is None:
        return
    totals["published"] += 1
    for key in ("records", "responses", "kept"):
        totals[key] += stats[key]
    totals["removed"] += sum(stats["removed"].values())
    totals["errors"] += sum(stats["errors"].values())
    totals["damaged_file"] += sum(e["errors"].get("damaged_file", 0) for e in stats["per_file"].values())


@pytest.mark.slow
@pytest.mark.parametrize("batch", range(BATCHES), ids=[f"seed{SEED}-batch{b}" for b in range(BATCHES)])
def test_the_data_stage_survives_damaged_warcs(
    batch: int,
    shared_data: Path,
    tmp_path: Path,
    cli_env: dict[str, str],
    clean_run: dict[str, Any],
    fuzz_totals: Counter,
) -> None:
    rewrite = f"python tests/fuzz_warc.py --seed {SEED} --batch {batch} --files {FILES_PER_BATCH} DIR"
    where = f"seed {SEED} batch {batch} (rewrite it: {rewrite})"
    source, workdir = tmp_path / "source", tmp_path / "work"
    written = write_batch(shared_data / "warc", source, SEED, batch, FILES_PER_BATCH)
    run = _run_data(source, workdir, cli_env)
    stats = _published(workdir)
    _count(fuzz_totals, run, stats, written)

    _check_exit(run, stats, where)
    assert stats is not None, f"{where}: the run published no documents/removed/errors/stats.json"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["status"] == "ran" and result["metrics"]["documents"] == stats["kept"], where

    problems = _accounting_problems(source, workdir, stats, {f.name: f for f in written})
    assert not problems, f"{where}:\n" + "\n".join(problems)
    assert _documents_by_file(workdir, f"{INTACT_DIR}/") == clean_run["documents"], (
        f"{where}: the intact files' documents differ from a run over them alone"
    )
    bound = clean_run["run"].peak_rss_bytes + RSS_HEADROOM
    assert run.peak_rss_bytes <= bound, (
        f"{where}: peak RSS {run.peak_rss_bytes / MB:.0f} MB is over the clean run's "
        f"{clean_run['run'].peak_rss_bytes / MB:.0f} MB + {RSS_HEADROOM // MB} MB"
    )
