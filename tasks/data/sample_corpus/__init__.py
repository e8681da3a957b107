"""The embedded labelled sample: a small, deterministic WARC with ground truth.

Real runs read Common Crawl. This generator writes a WARC of a few hundred web
pages whose fate in the data pipeline is known in advance, so every filter can
be scored (precision/recall per label) and the demo run has text to train on
without any download.

Good pages carry English prose taken from the standard library's
`pydoc_data.topics` (`prose`), wrapped in realistic boilerplate: navigation, a
cookie banner, ads, a sidebar and a footer that main-text extraction must drop
(`templates`). Bad pages are built to be removed by one specific stage; their
label is the FIRST stage, in pipeline order, that must remove them (`labels`).
Which texts the text filters keep or remove is asked of the data stage's own
filters, run as its steps (`judge`).

Everything is derived from the seed: record ids, dates, page order and the
choice of text (`plan`, `warc`). gzip members carry mtime 0, so the same seed
and page count give byte-identical files on every machine with the same
`pydoc_data`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from llmforge import atomic
from tasks.data.sample_corpus.labels import LABELS, MIN_PAGES, READER_LABELS, label_counts
from tasks.data.sample_corpus.plan import plan_pages
from tasks.data.sample_corpus.templates import BOILERPLATE_MARKERS
from tasks.data.sample_corpus.warc import write_warc

# Fixed names: the pipeline and its tests look for these in the sample directory.
WARC_NAME = "sample.warc.gz"
TRUTH_NAME = "sample.truth.jsonl"


@dataclass(frozen=True)
class SampleCorpus:
    warc_path: Path
    truth_path: Path  # JSONL: one object per response record: {"id", "url", "label", "note"}
    pages: int


def load_truth(path: Path) -> dict[str, str]:
    """Record id -> label, from a truth file written by `write_sample`."""
    truth: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                truth[row["id"]] = row["label"]
    return truth


def write_sample(out_dir: Path, seed: int = 0, pages: int = 300) -> SampleCorpus:
    """Write the labelled sample WARC and its ground truth into `out_dir`.

    The same seed and page count give byte-identical files. Both files are written
    atomically, so a reader never sees half a sample.
    """
    out_dir = Path(out_dir)
    warc_path = out_dir / WARC_NAME
    truth_path = out_dir / TRUTH_NAME
    plan = plan_pages(seed, pages)
    warc = write_warc(plan, seed, warc_path.name)
    lines = []
    for page in plan:
        note = page.note if page.source is None else f"{page.note} of {page.source.record_id}"
        row = {"id": page.record_id, "url": page.url, "label": page.label, "note": note}
        lines.append(json.dumps(row, ensure_ascii=False))
    atomic.write_bytes(warc_path, warc)
    atomic.write_text(truth_path, "\n".join(lines) + "\n")
    return SampleCorpus(warc_path=warc_path, truth_path=truth_path, pages=len(plan))


__all__ = [
    "BOILERPLATE_MARKERS",
    "LABELS",
    "MIN_PAGES",
    "READER_LABELS",
    "TRUTH_NAME",
    "WARC_NAME",
    "SampleCorpus",
    "label_counts",
    "load_truth",
    "write_sample",
]
