"""The sample's labels: the first step, in pipeline order, that must remove a page."""

from __future__ import annotations

# Pipeline order; the label of a page is the first stage that must remove it.
LABELS: tuple[str, ...] = (
    "non_html",
    "decode_error",
    "truncated",
    "url",
    "extraction",
    "language",
    "gopher_repetition",
    "gopher_quality",
    "exact_dedup",
    "minhash",
    "kept",
)
READER_LABELS: frozenset[str] = frozenset({"non_html", "decode_error", "truncated"})

# Pages per removal label in a 300-page sample; other sizes scale these.
_PER_300: dict[str, int] = {
    "non_html": 12,
    "decode_error": 10,
    "url": 12,
    "extraction": 12,
    "language": 15,
    "gopher_repetition": 12,
    "gopher_quality": 14,
    "exact_dedup": 12,
    "minhash": 12,
}
MIN_PAGES = 20


def label_counts(pages: int) -> dict[str, int]:
    """How many pages of each label a sample of `pages` pages has."""
    if pages < MIN_PAGES:
        raise ValueError(f"the sample needs at least {MIN_PAGES} pages to hold every label, got {pages}")
    counts = {label: max(1, round(pages * n / 300)) for label, n in _PER_300.items()}
    counts["truncated"] = 1
    counts["kept"] = pages - sum(counts.values())
    return {label: counts[label] for label in LABELS}
