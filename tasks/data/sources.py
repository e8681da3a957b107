"""Where the data stage's input files come from: the embedded sample, local WARC or text-dataset files, or Common Crawl."""

from __future__ import annotations

import glob
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from llmforge.config import DataConfig
from llmforge.fingerprint import file_record

WARC_SUFFIXES = (".warc", ".warc.gz")
_GLOB_CHARS = "*?["


class SourceError(RuntimeError):
    """The source cannot be read: the message names the file, pattern or host."""


def _is_warc(path: Path) -> bool:
    return path.name.endswith(WARC_SUFFIXES)


def sample_dir(workdir: Path) -> Path:
    return Path(workdir) / "sample"


def _is_glob(source: str) -> bool:
    return any(ch in source for ch in _GLOB_CHARS)


def _is_text(path: Path) -> bool:
    from tasks.data.text_reader import is_text_file

    return is_text_file(path)


def _of_one_kind(files: list[Path], where: str) -> list[Path]:
    """WARC files when there are any, else text-dataset files: a crawl folder's notes and
    listings (.txt, .jsonl) are not documents, while a folder of text files is a dataset."""
    warcs = [p for p in files if _is_warc(p)]
    if warcs:
        return warcs
    texts = [p for p in files if _is_text(p)]
    if not texts:
        raise SourceError(f"no .warc, .warc.gz, .txt, .jsonl, .jsonl.gz or .parquet files {where}")
    return texts


def resolve_local(source: str) -> list[Path]:
    """A WARC or text-dataset file, a directory of them (searched recursively), or a glob, as a
    sorted file list. A directory or glob that holds WARC files gives only those."""
    path = Path(source).expanduser()
    if _is_glob(source):
        return _of_one_kind(sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()),
                            f"match {source!r}")
    if path.is_dir():
        return _of_one_kind(sorted(p for p in path.rglob("*") if p.is_file()), f"in directory {path}")
    if not path.exists():
        raise SourceError(f"source not found: {path}")
    if not path.is_file():
        raise SourceError(f"source is not a regular file: {path}")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise SourceError(f"cannot read source {path}: {err.strerror or err}") from err
    return [path]


def fetch_common_crawl(crawl_id: str, config: DataConfig, cache_dir: Path, skip: Collection[str] = ()) -> list[Path]:
    """Download (or find in the cache) the first `cc_max_files` WARC files of a crawl that are not in `skip`."""
    from tasks.data.common_crawl import CrawlFetchError, FetchPolicy, fetch_crawl

    policy = FetchPolicy(
        timeout_seconds=config.cc_timeout_seconds,
        max_retries=config.cc_max_retries,
        backoff_seconds=config.cc_backoff_seconds,
    )
    try:
        return fetch_crawl(crawl_id, config.cc_base_url, cache_dir, config.cc_max_files, policy, skip=skip)
    except CrawlFetchError as err:
        raise SourceError(f"Common Crawl at {config.cc_base_url}: {err}") from err


def worth_retrying(err: BaseException) -> bool:
    """Whether a failed source resolution may succeed later: the crawl's server kept failing (after the
    per-file retries), not a final answer (a malformed crawl id, a crawl the server lacks, a 4xx) or a
    local path that is missing."""
    from tasks.data.common_crawl import CrawlFetchError, HTTPStatusError, InvalidCrawlIdError, UnknownCrawlError

    cause = err.__cause__ if isinstance(err, SourceError) else err
    final = (InvalidCrawlIdError, UnknownCrawlError, HTTPStatusError)
    return isinstance(cause, CrawlFetchError) and not isinstance(cause, final)


def check_source(config: DataConfig) -> None:
    """Fail fast, before any orchestration starts, on a source that cannot be read."""
    if config.source == "sample":
        return
    if config.source.startswith("cc:"):
        from tasks.data.common_crawl import InvalidCrawlIdError, check_crawl_id

        try:
            check_crawl_id(config.source[3:])
        except InvalidCrawlIdError as err:
            raise SourceError(str(err)) from err
        return
    resolve_local(config.source)


def resolve_source(config: DataConfig, workdir: Path, skip: Collection[str] = ()) -> list[Path]:
    """The WARC files to read, generating or downloading them first where needed. `skip`: files of a
    crawl (by their path in it) that are already ingested, so the next `cc_max_files` are taken."""
    if config.source == "sample":
        from tasks.data.sample_corpus import write_sample

        corpus = write_sample(sample_dir(workdir), seed=config.sample_seed, pages=config.sample_pages)
        return [corpus.warc_path]
    if config.source.startswith("cc:"):
        return fetch_common_crawl(config.source[3:], config, _crawl_cache(workdir), skip)
    return resolve_local(config.source)


def _crawl_cache(workdir: Path) -> Path:
    return Path(workdir) / "cache" / "common-crawl"


def _local_root(source: str) -> Path:
    """What a local source's file names are relative to: the directory given, the fixed
    leading folders of a glob, or a single file's own folder."""
    path = Path(source).expanduser()
    if _is_glob(source):
        fixed = []
        for part in path.parts[:-1]:  # the last part names files, even when it has no wildcard
            if _is_glob(part):
                break
            fixed.append(part)
        return Path(*fixed) if fixed else Path(".")
    return path if path.is_dir() else path.parent


def _crawl_names(config: DataConfig, workdir: Path, files: list[Path]) -> dict[str, str]:
    """A crawl's files by their path in the crawl (crawl-data/CC-MAIN-.../warc/NAME.warc.gz): the
    cache keeps only the file name, which the listing makes unique within the crawl."""
    from tasks.data.common_crawl import cached_listing

    listed = {Path(p).name: p for p in cached_listing(_crawl_cache(workdir), config.source[3:], config.cc_base_url)}
    return {str(path): listed[path.name] for path in files}


def _crawl_files_left(config: DataConfig, workdir: Path) -> int | None:
    """Listed files of the crawl no version read; None before the listing is cached (first run)."""
    from tasks.data.common_crawl import CrawlFetchError, cached_listing
    from tasks.data.versions import ingested_names, read_records

    try:
        listed = cached_listing(_crawl_cache(workdir), config.source[3:], config.cc_base_url)
    except (OSError, CrawlFetchError):
        return None
    return len(set(listed) - ingested_names(read_records(Path(workdir) / "data")[0]))


def source_names(config: DataConfig, workdir: Path, files: list[Path]) -> dict[str, str]:
    """Each file's name in the outputs (`source_file`, per-file statistics, error rows): its path
    relative to the source root, so files of one name in two folders stay apart. A flat folder's
    files, a single file and the sample are named by their base names."""
    if config.source.startswith("cc:"):
        return _crawl_names(config, workdir, files)
    if config.source == "sample":
        return {str(path): path.name for path in files}
    root = _local_root(config.source)
    return {str(path): Path(os.path.relpath(path, root)).as_posix() for path in files}


def describe_source_inputs(workdir: Path, config: DataConfig, known: dict[str, Any] | None) -> dict[str, Any]:
    """Fingerprints of the source files, for deciding whether the data stage is up to date.

    The sample is described by its generator (code and seed are already fingerprinted),
    and a Common Crawl source by its crawl id (a published crawl never changes) and, with
    incremental ingestion, by how many of its listed files no version has read yet: a run
    that ingests the next `cc_max_files` changes that number, so the next night runs again
    until the crawl is done. The language-ID model and the URL lists are assets,
    fingerprinted by ``tasks.data.assets``.
    """
    if config.source.startswith("cc:") and config.incremental:
        return {"source": config.source, "files_not_ingested": _crawl_files_left(config, workdir)}
    if config.source == "sample" or config.source.startswith("cc:"):
        return {"source": config.source}
    previous = (known or {}).get("files", {})
    try:
        files = resolve_local(config.source)
    except SourceError as err:
        return {"source": config.source, "error": str(err)}
    return {"files": {str(p): file_record(p, previous.get(str(p))) for p in files}}
