"""Frame the shared HTML test pages as WARC response records, for the datatrove comparison.

The pages under ``shared/data/html`` are bare HTML files; both pipelines read WARC. Each page
becomes one ``response`` record as a crawler would have written it:

* HTTP/1.1 200 with ``Content-Type: text/html; charset=utf-8`` (neither reader trusts that
  charset: both decode as UTF-8 and fall back to cchardet, so the declared charset is moot);
* ``WARC-Identified-Payload-Type: text/html`` (what Common Crawl writes, and what both readers
  look at first);
* ``WARC-Target-URI`` from the folder's ``manifest.tsv``; the 39 trafilatura pages whose manifest
  has no http(s) URL get ``https://llmforge-bench.invalid/<set>/<file name>``;
* a record id derived from the page's path (``uuid5``), and a fixed WARC-Date, so the same pages
  always give byte-identical files and the same document ids on both sides.

The files go to a cache directory (never into the repository):
``$LLMFORGE_BENCH_CACHE`` or ``~/.cache/llmforge-bench``, under ``warc-pages/``. They are
rewritten only when missing.

    python benchmarks/frame_pages.py            # prints the paths of the framed files
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parent.parent
_NAMESPACE = uuid.UUID("5b0e6a52-37c4-4c8e-9d51-6a1f0c1f8a11")
_WARC_DATE = "2024-01-01T00:00:00Z"
# (set name, folder under html/, how many WARC files to spread its pages over)
PAGE_SETS: tuple[tuple[str, str, int], ...] = (
    ("trafilatura", "trafilatura", 2),
    ("article-extraction-benchmark", "article-extraction-benchmark", 1),
)
# The real WARCs are read where they lie; this one makes datatrove fail the whole task (warcio
# raises at the cut-off record), so the comparison leaves it out on both sides.
EXCLUDED_REAL_WARCS = frozenset({"resiliparse-clipped-record.warc.gz"})


def shared_data_dir() -> Path:
    """``$LLMFORGE_SHARED_DATA``, else ``../shared/data`` beside the repository root."""
    env = os.environ.get("LLMFORGE_SHARED_DATA")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        raise FileNotFoundError(f"shared data not found at {path} (set LLMFORGE_SHARED_DATA)")
    return path


def cache_dir() -> Path:
    env = os.environ.get("LLMFORGE_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "llmforge-bench"


def _pages(set_name: str, folder: Path) -> Iterator[tuple[str, str, bytes]]:
    """(record id, url, HTML bytes) for every page of one set, in manifest order."""
    with open(folder / "manifest.tsv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    for row in rows:
        rel = row["file"]
        url = (row.get("url") or "").strip()
        if not url.startswith(("http://", "https://")):
            url = f"https://llmforge-bench.invalid/{set_name}/{quote(Path(rel).name)}"
        html = gzip.decompress((folder / rel).read_bytes())
        record_id = f"<urn:uuid:{uuid.uuid5(_NAMESPACE, f'{set_name}/{rel}')}>"
        yield record_id, url, html


def _write_warc(path: Path, pages: list[tuple[str, str, bytes]]) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=True)
    for record_id, url, html in pages:
        http_headers = StatusAndHeaders(
            "200 OK",
            [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(html)))],
            protocol="HTTP/1.1",
        )
        record = writer.create_warc_record(
            url,
            "response",
            payload=io.BytesIO(html),
            http_headers=http_headers,
            warc_headers_dict={
                "WARC-Record-ID": record_id,
                "WARC-Date": _WARC_DATE,
                "WARC-Identified-Payload-Type": "text/html",
            },
        )
        writer.write_record(record)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)


def framed_page_files(out_dir: Path | None = None) -> list[Path]:
    """The page sets as WARC files (written once, then reused)."""
    data = shared_data_dir()
    out = (out_dir or cache_dir()) / "warc-pages"
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for set_name, folder, n_files in PAGE_SETS:
        targets = [out / f"{set_name}-{i:02d}.warc.gz" for i in range(n_files)]
        files += targets
        if all(t.is_file() for t in targets):
            continue
        pages = list(_pages(set_name, data / "html" / folder))
        per_file = -(-len(pages) // n_files)
        for i, target in enumerate(targets):
            _write_warc(target, pages[i * per_file : (i + 1) * per_file])
    return files


def real_warc_files() -> tuple[list[Path], list[Path]]:
    """(the shared real WARCs both sides read, the ones left out)."""
    all_files = sorted((shared_data_dir() / "warc").glob("*.warc.gz"))
    return [p for p in all_files if p.name not in EXCLUDED_REAL_WARCS], [
        p for p in all_files if p.name in EXCLUDED_REAL_WARCS
    ]


def benchmark_inputs(out_dir: Path | None = None) -> list[Path]:
    """Every WARC file of the comparison, framed pages first."""
    return framed_page_files(out_dir) + real_warc_files()[0]


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    for file in benchmark_inputs():
        print(file)
