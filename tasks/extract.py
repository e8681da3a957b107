"""Main-text extraction from HTML with trafilatura, as FineWeb's Trafilatura step does it.

datatrove's ``Trafilatura(favour_precision=True)`` calls ``trafilatura.extract`` with
``favor_precision``, ``include_comments=False`` and ``deduplicate`` and nothing else,
so the output is trafilatura's defaults: plain text (``output_format="txt"``), tables
included, images excluded, the readability/jusText fallback on. Those defaults are
passed explicitly here so a trafilatura upgrade that changes them can't change ours.

Deliberate difference: with ``deduplicate=True`` trafilatura remembers text segments
in one process-wide LRU cache, so in datatrove a paragraph seen in more than two
earlier pages of the same worker is dropped, and whole pages repeated that often
come back empty; the result depends on which pages a worker saw before. Here each
call gets its own cache, so repeated segments are removed within the page only and
extraction is a pure function of the HTML (the same output on any worker, in any
order). Cross-page boilerplate is left to the repetition filters and dedup.

The per-document timeout (datatrove: 0.1 s by default, then the page is dropped) is
applied by the caller across a process boundary, not here.
"""

from __future__ import annotations

import trafilatura
from trafilatura.deduplication import LRUCache
from trafilatura.settings import LRU_SIZE

from llmforge.config import ExtractionConfig


def extract_main_text(html: str | bytes, cfg: ExtractionConfig) -> str | None:
    """The page's main text, or None when trafilatura finds none.

    Bytes are accepted too: trafilatura then detects the encoding itself.
    """
    text = trafilatura.extract(
        html,
        favor_precision=cfg.favor_precision,
        include_comments=cfg.include_comments,
        deduplicate=LRUCache(maxsize=LRU_SIZE) if cfg.deduplicate else False,
        output_format="txt",
        include_tables=True,
        include_images=False,
    )
    return text or None
