"""Dataset versions: a growing source is ingested file by file, deduplicated against every earlier
version, and encoded with a frozen tokenizer; interrupted, incomplete and changed runs recover."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llmforge.config import DataConfig, TokenizeConfig
from tasks.data import versions
from tasks.data.versions import plan_ingestion, rebuild_reasons
from warc_copies import copy_responses, near_copy

DOLMA = "dolma-sample-0000-wget-2024.warc.gz"
WIKI = "CC-MAIN-2024-22-whirlwind-an.wikipedia.warc.gz"
UKWA = "ukwa-data.gov.uk-2014-crawl-a.warc.gz"


# ---------------------------------------------------------------- the plan, on hand-made records


def _record(version: int, inputs: dict[str, str], recipe: str = "r", incomplete: dict | None = None) -> dict:
    return {"version": version, "recipe": recipe, "inputs": {n: {"sha256": d, "size": 1} for n, d in inputs.items()},
            "incomplete": incomplete or {}, "files": {}}


def _workdir_with(tmp_path: Path, records: list[dict]) -> Path:
    for record in records:
        path = versions.record_path(tmp_path / "data", record["version"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    return tmp_path


def _plan(workdir: Path, files: dict[str, str], recipe: str = "r", rebuild: str | None = None):
    paths = [workdir / "src" / name for name in files]
    names = {str(p): p.name for p in paths}
    digests = {str(p): files[p.name] for p in paths}
    reasons, records = rebuild_reasons(workdir, recipe, rebuild)
    return plan_ingestion(paths, names, digests, reasons, records)


def test_only_files_with_unseen_content_are_read(tmp_path: Path) -> None:
    workdir = _workdir_with(tmp_path, [_record(1, {"a": "A"}), _record(2, {"b": "B", "b2": "B"})])
    plan = _plan(workdir, {"a": "A", "b2": "B", "c": "C", "renamed-a": "A"})
    assert plan.mode == "append" and plan.version == 3
    assert [p.name for p in plan.files] == ["c"]
    assert plan.already_ingested == ["a", "b2"]
    assert plan.copies_of_ingested == {"renamed-a": {"copy_of": "a", "version": 1, "sha256": "A"}}
    assert plan.gone == ["b"]
    assert "2 already ingested" in plan.notes()[0] and "b" in plan.notes()[-1]


def test_nothing_new_means_nothing_to_do(tmp_path: Path) -> None:
    plan = _plan(_workdir_with(tmp_path, [_record(1, {"a": "A"})]), {"a": "A"})
    assert (plan.mode, plan.version, plan.files) == ("none", 1, [])


def test_a_changed_file_is_new_content(tmp_path: Path) -> None:
    plan = _plan(_workdir_with(tmp_path, [_record(1, {"a": "A"})]), {"a": "A2"})
    assert plan.mode == "append" and [p.name for p in plan.files] == ["a"]


@pytest.mark.parametrize(
    ("records", "recipe", "rebuild", "reason"),
    [
        ([], "r", None, "no dataset version yet"),
        ([_record(1, {"a": "A"})], "r2", None, "recipe"),
        ([_record(1, {"a": "A"})], "r", "--rebuild", "--rebuild"),
        ([_record(1, {"a": "A"}), _record(3, {"b": "B"})], "r", None, "not numbered"),
    ],
)
def test_what_rebuilds(tmp_path: Path, records: list[dict], recipe: str, rebuild: str | None, reason: str) -> None:
    plan = _plan(_workdir_with(tmp_path, records), {"a": "A", "b": "B"}, recipe, rebuild)
    assert plan.mode == "rebuild" and plan.version == 1 and len(plan.files) == 2
    assert reason in plan.reasons[0]


def test_damaged_dataset_files_rebuild(tmp_path: Path) -> None:
    record = _record(1, {"a": "A"})
    record["files"] = {"data/documents/v0001-00000.parquet": {"sha256": "0" * 64, "size": 3}}
    workdir = _workdir_with(tmp_path, [record])
    plan = _plan(workdir, {"a": "A"})
    assert plan.mode == "rebuild" and "missing" in plan.reasons[0]
    (workdir / "data" / "documents").mkdir(parents=True)
    (workdir / "data" / "documents" / "v0001-00000.parquet").write_bytes(b"abc")
    assert "modified" in _plan(workdir, {"a": "A"}).reasons[0]


def test_an_incomplete_last_version_is_done_again_with_its_files(tmp_path: Path) -> None:
    records = [_record(1, {"a": "A"}), _record(2, {"b": "B"}, incomplete={"c": "boom"})]
    plan = _plan(_workdir_with(tmp_path, records), {"a": "A", "b": "B", "c": "C", "d": "D"})
    assert plan.mode == "append" and plan.version == 2
    assert [p.name for p in plan.files] == ["b", "c", "d"]
    assert [r["version"] for r in plan.earlier] == [1]


def test_files_of_an_uncommitted_version_are_leftovers(tmp_path: Path) -> None:
    workdir = _workdir_with(tmp_path, [_record(1, {"a": "A"})])
    for folder, name in (("documents", "v0001-00000.parquet"), ("documents", "v0002-00000.parquet"),
                         ("dedup_index", "v0002.parquet"), ("errors", "notes.txt")):
        (workdir / "data" / folder).mkdir(parents=True, exist_ok=True)
        (workdir / "data" / folder / name).write_bytes(b"x")
    left = versions.uncommitted_files(workdir)
    assert [p.relative_to(workdir).as_posix() for p in left] == [
        "data/dedup_index/v0002.parquet", "data/documents/v0002-00000.parquet"]


# ---------------------------------------------------------------- the dedup step against earlier versions


def _staged(data_dir: Path, key: str, rows: list[dict]) -> None:
    from tasks.data.shards import staging_paths, write_staged_tables

    paths = staging_paths(data_dir, key)
    paths["marker"].parent.mkdir(parents=True, exist_ok=True)
    write_staged_tables(paths, rows, [], [])


def _candidate(doc_id: str, record_index: int, text: str, config: DataConfig) -> dict:
    from tasks.data.dedup import band_hashes, minhash_signatures, normalize_for_dedup

    import xxhash

    signature = minhash_signatures(text, config.dedup.n_grams, config.dedup.buckets, config.dedup.hashes_per_bucket,
                                   config.dedup.seed)
    return {"id": doc_id, "url": f"https://x/{doc_id}", "text": text, "crawl_date": None, "language": "en",
            "language_score": 1.0, "source_file": "f", "record_index": record_index,
            "dedup_key": xxhash.xxh3_128_hexdigest(normalize_for_dedup(text).encode()), "minhash_bands": band_hashes(signature)}


def test_documents_seen_in_earlier_versions_are_removed_pointing_at_what_was_kept(tmp_path: Path) -> None:
    from tasks.data.dedup_index import PriorIndex
    from tasks.data.duplicates import find_duplicates
    from tasks.data.stage import finalize_shard

    config = DataConfig()
    words = [f"word{i}" for i in range(400)]
    long_text = " ".join(words)
    other = " ".join(reversed(words))
    data_dir = tmp_path / "data"
    _staged(data_dir, "v0001-00000", [_candidate("a", 0, long_text, config), _candidate("b", 1, long_text + " x", config),
                                       _candidate("c", 2, "short unique text here", config)])
    first = find_duplicates(str(data_dir), ["v0001-00000"], config, None, str(tmp_path / "v0001.parquet"))
    out_dirs = {kind: str(data_dir / kind) for kind in ("documents", "removed", "errors")}
    for folder in out_dirs.values():
        Path(folder).mkdir()
    finalize_shard(str(data_dir), "v0001-00000", first, config, out_dirs)
    index = pq.read_table(tmp_path / "v0001.parquet").to_pylist()
    assert [(r["id"], r["kept_as"]) for r in index] == [("a", "a"), ("b", "a"), ("c", "c")]

    _staged(data_dir, "v0002-00000", [
        _candidate("c", 0, "another text entirely", config),  # a record id seen before
        _candidate("d", 1, "Short, unique text here!", config),  # exact duplicate of c once normalised
        _candidate("e", 2, long_text + " y", config),  # near duplicate of a (and of b)
        _candidate("f", 3, other, config),  # new
        _candidate("g", 4, other, config),  # exact duplicate of f, in this version
    ])
    prior = PriorIndex.read([tmp_path / "v0001.parquet"])
    found = find_duplicates(str(data_dir), ["v0002-00000"], config, prior, str(tmp_path / "v0002.parquet"))
    removals = {i: (r.filter, r.duplicate_of) for i, r in found.by_shard["v0002-00000"].items()}
    assert removals == {0: ("duplicate_record", "c"), 1: ("exact_dedup", "c"), 2: ("minhash", "a"), 4: ("exact_dedup", "f")}
    assert [(r["id"], r["kept_as"]) for r in pq.read_table(tmp_path / "v0002.parquet").to_pylist()] == [
        ("d", "c"), ("e", "a"), ("f", "f"), ("g", "f")]

    verified = DataConfig.model_validate({"dedup": {"verify": True}})
    found = find_duplicates(str(data_dir), ["v0002-00000"], verified, prior, None)
    assert found.by_shard["v0002-00000"][2].duplicate_of == "a"  # the verifier read a's text from version 1


# ---------------------------------------------------------------- through Prefect, on real WARCs


def _read(workdir: Path, kind: str, pattern: str = "*.parquet") -> list[dict]:
    rows: list[dict] = []
    for path in sorted((workdir / "data" / kind).glob(pattern)):
        rows += pq.read_table(path).to_pylist()
    return rows


def _digests(folder: Path) -> dict[str, str]:
    from llmforge.fingerprint import sha256_file

    return {p.name: sha256_file(p) for p in sorted(folder.glob("*.parquet"))}


@pytest.mark.integration
@pytest.mark.slow
def test_a_growing_folder_becomes_versions_without_rewriting_or_retokenizing(prefect_harness, shared_data, tmp_path):
    from flows.data import data_flow
    from flows.tokenization import tokenize_flow
    from llmforge.fingerprint import sha256_file

    src, workdir = tmp_path / "src", tmp_path / "work"
    src.mkdir()
    shutil.copy(shared_data / "warc" / DOLMA, src / DOLMA)
    config, tokenize = DataConfig(source=str(src), max_workers=1), TokenizeConfig(vocab_size=512)
    first = data_flow(workdir=str(workdir), config=config)
    assert first["metrics"]["version"] == 1
    tokenize_flow(workdir=str(workdir), config=tokenize)
    kept_v1 = {row["id"] for row in _read(workdir, "documents")}
    v1_files = {kind: _digests(workdir / "data" / kind) for kind in ("documents", "removed", "errors")}
    v1_tokens, tokenizer = _digests(workdir / "tokens" / "train"), sha256_file(workdir / "tokenizer" / "tokenizer.json")

    # The crawl grows: its pages again under new record ids, near copies of them, a byte copy of the
    # first file under another name, and one file of new pages.
    assert copy_responses(src / DOLMA, src / "again.warc.gz", seed=1) == 22
    copy_responses(src / DOLMA, src / "near.warc.gz", seed=2, edit=near_copy)
    shutil.copy(src / DOLMA, src / "copy-of-dolma.warc.gz")
    shutil.copy(shared_data / "warc" / UKWA, src / UKWA)
    second = data_flow(workdir=str(workdir), config=config)
    assert second["status"] == "ran" and second["metrics"]["version"] == 2

    record = json.loads((workdir / "data" / "versions" / "0002.json").read_text())
    assert sorted(record["inputs"]) == ["again.warc.gz", "copy-of-dolma.warc.gz", "near.warc.gz", UKWA]
    assert record["inputs"]["copy-of-dolma.warc.gz"]["copy_of"] == DOLMA
    stats = json.loads((workdir / "data" / "stats.json").read_text())
    assert sorted(stats["per_file"]) == ["again.warc.gz", "near.warc.gz", UKWA]  # only new content was read
    assert stats["accounted"] == stats["responses"]
    for kind, digests in v1_files.items():  # version 1 is never rewritten
        assert {n: d for n, d in _digests(workdir / "data" / kind).items() if n.startswith("v0001")} == digests

    removed = _read(workdir, "removed", "v0002-*.parquet")
    again = [row for row in removed if row["source_file"] == "again.warc.gz"]
    assert {row["filter"] for row in again if row["duplicate_of"]} == {"exact_dedup"}
    assert {row["duplicate_of"] for row in again if row["duplicate_of"]} == kept_v1
    near = [row for row in removed if row["source_file"] == "near.warc.gz" and row["duplicate_of"]]
    assert near and {row["duplicate_of"] for row in near} <= kept_v1
    kept = _read(workdir, "documents")
    assert len({row["id"] for row in kept}) == len(kept)
    assert not {row["source_file"] for row in _read(workdir, "documents", "v0002-*.parquet")} - {UKWA, "near.warc.gz"}

    third = tokenize_flow(workdir=str(workdir), config=tokenize)
    assert third["metrics"]["encoded_shards"] == len(list((workdir / "data" / "documents").glob("v0002-*")))
    assert sha256_file(workdir / "tokenizer" / "tokenizer.json") == tokenizer
    after = _digests(workdir / "tokens" / "train")
    assert {n: d for n, d in after.items() if n in v1_tokens} == v1_tokens and len(after) > len(v1_tokens)

    # Nothing new: nothing runs, nothing downstream goes stale.
    assert data_flow(workdir=str(workdir), config=config)["status"] == "skipped"
    assert tokenize_flow(workdir=str(workdir), config=tokenize)["status"] == "skipped"

    # A run killed after writing part of version 3: its files are removed, and the next run makes version 3.
    shutil.copy(shared_data / "warc" / WIKI, src / WIKI)
    stray = workdir / "data" / "documents" / "v0003-00000.parquet"
    shutil.copy(workdir / "data" / "documents" / "v0001-00000.parquet", stray)
    third_data = data_flow(workdir=str(workdir), config=config)
    assert third_data["metrics"]["version"] == 3
    assert json.loads((workdir / "data" / "versions" / "0003.json").read_text())["inputs"].keys() == {WIKI}

    # A changed recipe rebuilds: one version, every file read again.
    per_version = config.model_copy(update={"dedup": config.dedup.model_copy(update={"scope": "per_version"})})
    rebuilt = data_flow(workdir=str(workdir), config=per_version)
    assert rebuilt["metrics"]["version"] == 1
    record = json.loads((workdir / "data" / "versions" / "0001.json").read_text())
    assert record["reasons"] == ["the recipe changed since version 3 (config changed)"]
    assert sorted(p.name for p in (workdir / "data" / "versions").iterdir()) == ["0001.json"]
    assert not list((workdir / "data" / "documents").glob("v0002-*"))
    assert tokenize_flow(workdir=str(workdir), config=tokenize)["metrics"]["encoded_shards"] >= 1
    assert sha256_file(workdir / "tokenizer" / "tokenizer.json") == tokenizer  # still frozen


@pytest.mark.integration
@pytest.mark.slow
def test_a_crawl_is_ingested_a_budget_of_files_per_run(prefect_harness, shared_data, tmp_path):
    """`cc:` with cc_max_files 1: each run downloads and reads the next file of the listing only, and once
    every file is in a version the stage is up to date."""
    import gzip

    from flows.data import data_flow
    from http_fault_server import serve

    crawl_id, served = "CC-MAIN-2099-02", tmp_path / "server"
    paths = []
    for index, name in enumerate((WIKI, DOLMA, UKWA)):
        relative = f"crawl-data/{crawl_id}/segments/1.{index}/warc/{name}"
        (served / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "warc" / name, served / relative)
        paths.append(relative)
    (served / f"crawl-data/{crawl_id}/warc.paths.gz").write_bytes(gzip.compress("\n".join(paths).encode()))
    workdir = tmp_path / "work"
    with serve(served) as server:
        config = DataConfig(source=f"cc:{crawl_id}", cc_max_files=1, cc_base_url=server.base_url, max_workers=1)
        for version, path in enumerate(paths, 1):
            before = len(server.gets())
            outcome = data_flow(workdir=str(workdir), config=config)
            assert outcome["metrics"]["version"] == version
            record = json.loads(versions.record_path(workdir / "data", version).read_text())
            assert list(record["inputs"]) == [path]
            assert {r.path for r in server.gets()[before:]} <= {path, f"crawl-data/{crawl_id}/warc.paths.gz"}
        assert data_flow(workdir=str(workdir), config=config)["status"] == "skipped"


def test_status_lists_the_versions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from llmforge.cli import main

    record = _record(1, {"a.warc.gz": "A", "b.warc.gz": "B"})
    record["stats"] = {"responses": 10, "kept": 6, "removed": {"minhash": 2, "language": 1}}
    _workdir_with(tmp_path, [record, {**_record(2, {"c.warc.gz": "C"}), "created_at": "2026-12-07T02:00:00+00:00"}])
    assert main(["status", "--workdir", str(tmp_path), "--json"]) == 0
    out, err = capsys.readouterr()
    rows = json.loads(out.splitlines()[-1])["data_versions"]
    assert [(r["version"], r["files read"], r["kept"], r["removed as duplicates"]) for r in rows] == [(1, 2, 6, 2), (2, 1, 0, 0)]
    assert "dataset versions:" in err and "2026-12-07 02:00:00" in err
