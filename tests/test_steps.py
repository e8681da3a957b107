"""The step runner: batching, verdicts, counting, record order, fault isolation and the collector settings."""

from __future__ import annotations

import gc
from collections.abc import Sequence

import pytest

from tasks.data.filters.text_view import TextView, make_view
from tasks.data.steps import (
    MAX_ERROR_DETAIL,
    STEP_ERROR,
    Document,
    FilterBook,
    Outcome,
    Step,
    Verdict,
    error_detail,
    run_steps,
    run_text,
)


def documents(count: int, seen: list[int] | None = None):
    """Documents with a raw page and no text yet; `seen` records which were read, and when."""
    for position in range(count):
        if seen is not None:
            seen.append(position)
        yield Document(position, {"id": f"doc-{position}", "text": ""}, html=f"<p>page {position}</p>")


def extract(batch: Sequence[Document]) -> list[Verdict]:
    return [Verdict(text=document.html.removeprefix("<p>").removesuffix("</p>")) for document in batch]


def drop_when(predicate, reason: str):
    def run(batch: Sequence[Document]) -> list[Verdict]:
        return [Verdict(reason if predicate(document) else None) for document in batch]

    return run


def number(document: Document) -> int:
    return int(document.text.split()[-1])


def by_kind(outcomes: list[Outcome]) -> dict[str, list]:
    return {
        "kept": [o.document.position for o in outcomes if o.kept],
        "removed": sorted((o.document.position, o.step, o.reason) for o in outcomes if not o.kept and not o.failed),
        "failed": sorted((o.document.position, o.step, o.detail) for o in outcomes if o.failed),
    }


def test_documents_go_through_every_step_in_order_and_are_counted() -> None:
    steps = [
        Step("extraction", extract),
        Step("odd", drop_when(lambda d: number(d) % 2 == 1, "odd_number"), batch_size=4),
        Step("threes", drop_when(lambda d: number(d) % 3 == 0, "multiple_of_three"), batch_size=4),
    ]
    book = FilterBook()
    result = by_kind(list(run_steps(documents(10), steps, book)))
    assert result["kept"] == [2, 4, 8]
    assert result["removed"] == [
        (0, "threes", "multiple_of_three"), (1, "odd", "odd_number"), (3, "odd", "odd_number"),
        (5, "odd", "odd_number"), (6, "threes", "multiple_of_three"), (7, "odd", "odd_number"),
        (9, "odd", "odd_number"),
    ]
    assert result["failed"] == []
    assert book.kept == {"extraction": 10, "odd": 5, "threes": 3}
    assert book.removed == {"odd": 5, "threes": 2}
    assert book.reasons == {"odd": {"odd_number": 5}, "threes": {"multiple_of_three": 2}}
    assert set(book.seconds) == {"extraction", "odd", "threes"}
    assert book.as_dict()["errors"] == {}


def test_record_steps_run_as_records_arrive_and_batches_hold_texts_only() -> None:
    """The batch step runs once its batch is full, with only that many documents read;
    the documents waiting in it hold their text, not their raw page."""
    seen: list[int] = []
    batches: list[tuple[list[int], int, list[str | None]]] = []

    def record_level(batch: Sequence[Document]) -> list[Verdict]:
        assert len(batch) == 1 and seen[-1] == batch[0].position  # the record just read
        return extract(batch)

    def batch_level(batch: Sequence[Document]) -> list[Verdict]:
        batches.append(([d.position for d in batch], len(seen), [d.html for d in batch]))
        return [Verdict() for _ in batch]

    steps = [Step("extraction", record_level), Step("text", batch_level, batch_size=3)]
    kept = [o.document.position for o in run_steps(documents(7, seen), steps)]
    assert kept == list(range(7))
    assert batches == [([0, 1, 2], 3, [None] * 3), ([3, 4, 5], 6, [None] * 3), ([6], 7, [None])]


def test_verdict_fields_stay_on_removed_documents_and_rewrites_hand_on_their_view() -> None:
    views: list[TextView] = []

    def identify(batch: Sequence[Document]) -> list[Verdict]:
        return [Verdict("lang_not_allowed" if "page 1" in d.text else None, fields={"language": "xx"}) for d in batch]

    def rewrite(batch: Sequence[Document]) -> list[Verdict]:
        return [Verdict(text=make_view(d.view.text.upper())) for d in batch]

    def look(batch: Sequence[Document]) -> list[Verdict]:
        views.extend(d.view for d in batch)
        return [Verdict() for _ in batch]

    steps = [Step("extraction", extract), Step("language", identify, 2), Step("upper", rewrite, 2), Step("look", look, 2)]
    outcomes = {o.document.position: o for o in run_steps(documents(3), steps)}
    assert outcomes[1].step == "language" and outcomes[1].document.row == {"id": "doc-1", "text": "page 1", "language": "xx"}
    assert [outcomes[p].text for p in (0, 2)] == ["PAGE 0", "PAGE 2"]
    assert [v.text for v in views] == ["PAGE 0", "PAGE 2"]
    assert all(view is outcomes[p].document.view for view, p in zip(views, (0, 2)))


def test_run_text_reports_the_step_that_removed_a_text() -> None:
    steps = [Step("short", drop_when(lambda d: len(d.text) < 5, "too_short"))]
    assert (run_text(steps, "tiny").step, run_text(steps, "tiny").reason) == ("short", "too_short")
    kept = run_text(steps, "long enough")
    assert kept.kept and kept.text == "long enough"


# ------------------------------------------------------------------ fault isolation


def raising_on(victim: int, calls: list[list[int]]):
    def run(batch: Sequence[Document]) -> list[Verdict]:
        calls.append([d.position for d in batch])
        if any(number(d) == victim for d in batch):
            raise ValueError(f"cannot judge\npage {victim}")
        return [Verdict() for _ in batch]

    return run


def test_a_step_that_raises_on_one_document_fails_only_that_document(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[list[int]] = []
    later: list[int] = []

    def after(batch: Sequence[Document]) -> list[Verdict]:
        later.extend(d.position for d in batch)
        return [Verdict() for _ in batch]

    steps = [Step("extraction", extract), Step("fragile", raising_on(5, calls), 4), Step("after", after, 4)]
    book = FilterBook()
    result = by_kind(list(run_steps(documents(10), steps, book)))
    assert result["failed"] == [(5, "fragile", "fragile: ValueError: cannot judge page 5")]
    assert result["kept"] == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert later == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    # The failing batch ran again document by document; the other batches ran once.
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [4], [5], [6], [7], [8, 9]]
    assert book.errors == {"fragile": 1} and book.kept["fragile"] == 9 and not book.removed
    assert "fragile: ValueError: cannot judge page 5" in caplog.text


def test_a_step_that_raises_on_every_document_fails_each_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    def broken(batch: Sequence[Document]) -> list[Verdict]:
        raise KeyError("missing")

    steps = [Step("extraction", extract), Step("broken", broken, 3)]
    book = FilterBook()
    outcomes = list(run_steps(documents(5), steps, book))
    assert [(o.failed, o.reason) for o in outcomes] == [(True, STEP_ERROR)] * 5
    assert {o.detail for o in outcomes} == {"broken: KeyError: 'missing'"}
    assert book.errors == {"broken": 5}
    assert caplog.text.count("broken: KeyError") == 1


def test_error_details_are_one_bounded_line() -> None:
    detail = error_detail("gopher_quality", RuntimeError("first line\n\tsecond line " + "x" * 5000))
    assert detail.startswith("gopher_quality: RuntimeError: first line second line xxx")
    assert "\n" not in detail and len(detail) == MAX_ERROR_DETAIL
    assert error_detail("url", ValueError()) == "url: ValueError"


class Unusable(RuntimeError):
    pass


def test_a_fatal_exception_ends_the_run_and_the_collector_settings_come_back() -> None:
    threshold = gc.get_threshold()

    def cannot_start(batch: Sequence[Document]) -> list[Verdict]:
        raise Unusable("the worker process did not start")

    steps = [Step("extraction", cannot_start, fatal=(Unusable,))]
    with pytest.raises(Unusable):
        list(run_steps(documents(3), steps))
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0


def test_collector_settings_are_relaxed_during_a_run_only() -> None:
    threshold = gc.get_threshold()
    during: list[tuple[int, ...]] = []

    def look(batch: Sequence[Document]) -> list[Verdict]:
        during.append(gc.get_threshold())
        return [Verdict() for _ in batch]

    list(run_steps(documents(2), [Step("look", look)]))
    assert during[0][0] >= 10_000
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0


def test_wrong_verdict_counts_and_batch_sizes_are_errors() -> None:
    with pytest.raises(ValueError, match="batch size"):
        list(run_steps(documents(1), [Step("zero", extract, batch_size=0)]))
    with pytest.raises(RuntimeError, match="gave 0 verdicts for 1 documents"):
        list(run_steps(documents(1), [Step("nothing", lambda batch: [])]))
