"""The embedded labelled sample: deterministic, complete, and labelled the way the real tools see it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import trafilatura
from warcio.archiveiterator import ArchiveIterator

from tasks.data.dedup import shingle_jaccard, shingle_set
from tasks.data.sample_corpus import (
    BOILERPLATE_MARKERS,
    LABELS,
    MIN_PAGES,
    READER_LABELS,
    SampleCorpus,
    label_counts,
    load_truth,
    write_sample,
)
from tasks.data.sample_corpus.judge import fails_first, first_removal, passes_with_margin
from tasks.data.warc_reader import HtmlDocument, ReadStats, SkippedRecord, count_records, iter_warc

# Words of FineWeb's hard-banned URL list (datatrove's banned_words.txt) that the sample's URLs use.
BANNED_URL_WORDS = ("porn", "xxx", "viagra", "cialis", "bdsm")
ENGLISH_MIN_SCORE = 0.65
NEAR_DUPLICATE_JACCARD = 0.85
TEXT_LABELS = ("kept", "url", "language", "gopher_repetition", "gopher_quality", "exact_dedup", "minhash")


def clear_trafilatura_cache() -> None:
    """trafilatura's duplicate filter keeps a process-wide cache of paragraphs it has seen;
    start each pass from an empty one so results do not depend on what ran before."""
    from trafilatura import deduplication

    deduplication.LRU_TEST.clear()


def extract(html: str) -> str | None:
    return trafilatura.extract(html, favor_precision=True, include_comments=False, deduplicate=True)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleCorpus:
    return write_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def truth_rows(sample: SampleCorpus) -> list[dict]:
    return [json.loads(line) for line in sample.truth_path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def read(sample: SampleCorpus) -> tuple[list[HtmlDocument | SkippedRecord], ReadStats]:
    stats = ReadStats()
    return list(iter_warc(sample.warc_path, stats=stats)), stats


@pytest.fixture(scope="module")
def extracted(read) -> dict[str, str | None]:
    """Main text of every HTML page, extracted in file order as one pipeline pass would."""
    items, _ = read
    clear_trafilatura_cache()
    return {item.id: extract(item.html) for item in items if isinstance(item, HtmlDocument)}


@pytest.fixture(scope="module")
def labels(sample: SampleCorpus) -> dict[str, str]:
    return load_truth(sample.truth_path)


@pytest.fixture(scope="module")
def lid(lid_model_path: Path):
    import fasttext

    model = fasttext.load_model(str(lid_model_path))

    def english_score(text: str) -> tuple[str, float]:
        labels, scores = model.predict(text.replace("\n", " "), k=1)
        # fasttext returns a tuple of labels and a numpy array (or a list): handle both.
        return str(labels[0]).removeprefix("__label__"), float(list(scores)[0])

    return english_score


def ids_with(labels: dict[str, str], label: str) -> list[str]:
    return [doc_id for doc_id, value in labels.items() if value == label]


def source_of(row: dict) -> str:
    match = re.search(r"<urn:uuid:[0-9a-f-]+>", row["note"])
    assert match, row
    return match.group(0)


# --------------------------------------------------------------- the files


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    first = write_sample(tmp_path / "a", seed=7, pages=60)
    second = write_sample(tmp_path / "b", seed=7, pages=60)
    assert first.warc_path.read_bytes() == second.warc_path.read_bytes()
    assert first.truth_path.read_bytes() == second.truth_path.read_bytes()
    other = write_sample(tmp_path / "c", seed=8, pages=60)
    assert other.warc_path.read_bytes() != first.warc_path.read_bytes()
    assert set(load_truth(other.truth_path)).isdisjoint(load_truth(first.truth_path))


def test_rewrite_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    corpus = write_sample(tmp_path, pages=MIN_PAGES)
    again = write_sample(tmp_path, pages=MIN_PAGES)
    assert again == corpus
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([corpus.warc_path.name, corpus.truth_path.name])


def test_label_counts_of_the_default_sample(sample: SampleCorpus, labels: dict[str, str]) -> None:
    assert LABELS[-1] == "kept" and len(set(LABELS)) == len(LABELS)
    counts = {label: len(ids_with(labels, label)) for label in LABELS}
    assert counts == label_counts(300)
    assert sample.pages == 300 == len(labels)
    assert counts["truncated"] == 1
    assert counts["kept"] >= 150
    for label in LABELS[:-1]:
        if label != "truncated":
            assert 10 <= counts[label] <= 20, label


def test_small_samples_hold_every_label(tmp_path: Path) -> None:
    corpus = write_sample(tmp_path, pages=MIN_PAGES)
    assert set(load_truth(corpus.truth_path).values()) == set(LABELS)
    with pytest.raises(ValueError):
        write_sample(tmp_path / "tiny", pages=MIN_PAGES - 1)


def test_every_response_record_has_one_truth_line(sample, truth_rows, read) -> None:
    items, stats = read
    assert [row["id"] for row in truth_rows] == [item.id for item in items]
    assert stats.responses == len(truth_rows) == len({row["id"] for row in truth_rows})
    assert len({row["url"] for row in truth_rows}) == len(truth_rows)
    assert all(set(row) == {"id", "url", "label", "note"} and row["label"] in LABELS for row in truth_rows)
    assert all(row["url"] == item.url for row, item in zip(truth_rows, items))
    assert count_records(sample.warc_path) == stats.records and stats.by_type.get("warcinfo") == 1


def test_reader_skips_exactly_the_reader_labels(read, labels) -> None:
    items, stats = read
    for item in items:
        label = labels[item.id]
        if label in READER_LABELS:
            assert isinstance(item, SkippedRecord) and item.reason == label, (label, item)
        else:
            assert isinstance(item, HtmlDocument) and item.replaced_chars == 0, (label, item)
    assert stats.damaged is None, "the truncated record sits in a complete gzip member"
    assert stats.responses == stats.accounted_responses


def test_truncated_record_is_last_and_records_before_it_are_intact(read, labels) -> None:
    items, _ = read
    assert labels[items[-1].id] == "truncated"
    assert all(labels[item.id] != "truncated" for item in items[:-1])
    assert "Content-Length" in items[-1].detail


def test_some_html_responses_lack_a_payload_type(sample: SampleCorpus, labels) -> None:
    with_type = without_type = 0
    with open(sample.warc_path, "rb") as fh:
        for record in ArchiveIterator(fh, arc2warc=True):
            if record.rec_type != "response":
                continue
            assert record.rec_headers.get_header("WARC-Date", "").startswith("2024-05-")
            if labels[record.rec_headers.get_header("WARC-Record-ID")] in READER_LABELS:
                continue
            assert record.http_headers.get_header("Content-Type") == "text/html; charset=utf-8"
            if record.rec_headers.get_header("WARC-Identified-Payload-Type"):
                with_type += 1
            else:
                without_type += 1
    assert with_type > 2 * without_type > 0


# ---------------------------------------------------------- what the filters see


def test_every_page_past_the_reader_extracts_except_extraction_pages(extracted, labels) -> None:
    for doc_id, text in extracted.items():
        if labels[doc_id] == "extraction":
            assert not text, f"{doc_id} should have no main text, got {text!r}"
        else:
            assert text, f"{labels[doc_id]} page {doc_id} lost its text"


def test_extraction_pages_have_no_main_text_whatever_ran_before(read, labels) -> None:
    items, _ = read
    for item in items:
        if isinstance(item, HtmlDocument) and labels[item.id] in ("extraction", "gopher_quality"):
            clear_trafilatura_cache()
            text = extract(item.html)
            assert bool(text) == (labels[item.id] != "extraction"), (labels[item.id], item.url, text)


def test_kept_pages_are_clean_prose(extracted, labels) -> None:
    for doc_id in ids_with(labels, "kept") + ids_with(labels, "url"):
        text = extracted[doc_id]
        leaked = [marker for marker in BOILERPLATE_MARKERS if marker in text]
        assert not leaked, f"boilerplate {leaked} in {doc_id}"
        assert len(text.split()) >= 150
        assert first_removal(text) is None, doc_id


def test_language_labels_agree_with_lid176(extracted, labels, lid) -> None:
    for doc_id in ids_with(labels, "language"):
        language, score = lid(extracted[doc_id])
        assert language != "en" or score < ENGLISH_MIN_SCORE, (doc_id, language, score)
    # Pages labelled for a later stage must get past the language filter.
    for label in ("kept", "gopher_repetition", "gopher_quality", "exact_dedup", "minhash"):
        for doc_id in ids_with(labels, label):
            language, score = lid(extracted[doc_id])
            assert language == "en" and score >= ENGLISH_MIN_SCORE, (label, doc_id, language, score)


def test_language_pages_cover_three_languages(extracted, labels, lid) -> None:
    found = {lid(extracted[doc_id])[0] for doc_id in ids_with(labels, "language")}
    assert {"de", "fr", "es"} <= found


def test_repetition_and_quality_labels_fail_the_right_filter_first(extracted, labels) -> None:
    for label in ("gopher_repetition", "gopher_quality"):
        for doc_id in ids_with(labels, label):
            assert first_removal(extracted[doc_id]) == label, doc_id


def test_the_judge_asks_the_stage_filters_and_wants_a_margin_for_good_text(extracted, labels) -> None:
    low_quality = extracted[ids_with(labels, "gopher_quality")[0]]
    assert fails_first(low_quality, "gopher_quality") and not fails_first(low_quality, "gopher_repetition")
    spam = "\n".join(["Buy cheap flights today, limited offer!"] * 12 + ["Questions? Our team answers every day."])
    assert first_removal(spam) == "gopher_repetition" and fails_first(spam, "gopher_repetition")
    assert not fails_first(spam, "gopher_quality")
    kept = extracted[ids_with(labels, "kept")[0]]
    assert first_removal(kept) is None and passes_with_margin(kept)
    # 60 words of prose pass the stage's filters, but not by the margin good pages need.
    short = " ".join(kept.split()[:60]).rstrip(".") + "."
    assert first_removal(short) is None and not passes_with_margin(short)


def test_duplicates_copy_an_earlier_kept_page(truth_rows, extracted, labels) -> None:
    position = {row["id"]: n for n, row in enumerate(truth_rows)}
    for row in truth_rows:
        if row["label"] not in ("exact_dedup", "minhash"):
            continue
        source = source_of(row)
        assert labels[source] == "kept" and position[source] < position[row["id"]]
        copy_text, source_text = extracted[row["id"]], extracted[source]
        if row["label"] == "exact_dedup":
            assert copy_text == source_text
        else:
            assert copy_text != source_text
            assert shingle_jaccard(copy_text, source_text) >= NEAR_DUPLICATE_JACCARD, row
        assert first_removal(copy_text) is None
    sources = [source_of(r) for r in truth_rows if r["label"] in ("exact_dedup", "minhash")]
    assert len(sources) == len(set(sources)), "each kept page is copied at most once"


def test_kept_pages_are_neither_exact_nor_near_duplicates_of_each_other(extracted, labels) -> None:
    kept = [extracted[doc_id] for doc_id in ids_with(labels, "kept")]
    assert len(set(kept)) == len(kept)
    sets = [set(shingle_set(text).tolist()) for text in kept]
    worst = 0.0
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            union = len(sets[i] | sets[j])
            worst = max(worst, len(sets[i] & sets[j]) / union)
    assert worst < 0.5, worst


def test_url_labels_follow_the_banned_words(truth_rows) -> None:
    def banned(url: str) -> bool:
        return bool(set(re.split(r"[^a-z0-9]+", url.lower())) & set(BANNED_URL_WORDS))

    for row in truth_rows:
        assert banned(row["url"]) == (row["label"] == "url"), row["url"]


@pytest.mark.slow
def test_labels_match_the_pipeline_filters(read, labels, lid_model_path: Path) -> None:
    """Run the project's own steps in pipeline order, through its step runner: each page must be
    removed by exactly the stage its label names, and kept pages must survive them all."""
    from llmforge.config import DataConfig
    from tasks.data.dedup import exact_dedup, minhash_dedup
    from tasks.data.extract import extract_main_text
    from tasks.data.filters import build_text_filters
    from tasks.data.filters.url import url_filter
    from tasks.data.langid import LanguageIdentifier, language_filter
    from tasks.data.recipe import language_step, text_filter_steps, url_step
    from tasks.data.steps import Document, Step, Verdict, run_steps

    cfg = DataConfig()

    def extract_in_process(batch):
        texts = [extract_main_text(document.html, cfg.extraction) for document in batch]
        return [Verdict(text=text) if text else Verdict("no_main_text") for text in texts]

    steps = [
        url_step(url_filter(cfg.url_filter)),
        Step("extraction", extract_in_process),
        language_step(language_filter(LanguageIdentifier(lid_model_path), cfg.language)),
        *text_filter_steps(
            build_text_filters(cfg.gopher_repetition, cfg.gopher_quality, cfg.c4_quality, cfg.fineweb_quality)
        ),
    ]
    items, _ = read
    outcome = {item.id: item.reason for item in items if isinstance(item, SkippedRecord)}
    documents = [
        Document(n, {"id": item.id, "url": item.url, "text": ""}, item.html)
        for n, item in enumerate(items) if isinstance(item, HtmlDocument)
    ]
    survivors: list[tuple[str, str]] = []
    for result in run_steps(documents, steps):
        if result.kept:
            survivors.append((result.document.row["id"], result.text))
        else:
            outcome[result.document.row["id"]] = result.step
    exact = exact_dedup(survivors)
    outcome.update({doc_id: "exact_dedup" for doc_id in exact})
    rest = [(doc_id, text) for doc_id, text in survivors if doc_id not in exact]
    near = minhash_dedup(rest)
    outcome.update({doc_id: "minhash" for doc_id in near})
    outcome.update({doc_id: "kept" for doc_id, _ in rest if doc_id not in near})

    wrong = {doc_id: (label, outcome[doc_id]) for doc_id, label in labels.items() if outcome[doc_id] != label}
    assert not wrong, f"{len(wrong)} pages disagree with their label: {list(wrong.values())[:10]}"
