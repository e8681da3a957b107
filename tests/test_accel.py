"""The trafilatura accelerator as a component (tasks/data/accel/): the same extracted text as
stock trafilatura, the modes auto/on/off, every guard, and the status the extraction child
reports to its parent."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable
from pathlib import Path

import lxml.html
import pytest
from accel_support import load_pages, pages, require_accelerator, stock_after  # noqa: F401 - fixtures
from lxml import etree
from lxml.etree import XPath
from trafilatura import core, external, htmlprocessing, main_extractor, utils, xpaths
from trafilatura.utils import load_html

from llmforge.config import DataConfig, ExtractionConfig
from tasks.data import accel
from tasks.data.accel import class_lookup, control, guards, pruning, stand_ins, xpath_plan
from tasks.data.extract import IsolatedExtractor, extract_main_text


def _stock_texts(docs: list[str | bytes]) -> list[str | None]:
    return [extract_main_text(doc, ExtractionConfig(accelerate="off")) for doc in docs]


# ------------------------------------------------------------------ output identity


def test_extraction_output_is_identical_on_a_few_pages(shared_data: Path, stock_after: None) -> None:
    docs: list[str | bytes] = list(load_pages(shared_data, step=97))
    stock = _stock_texts(docs)
    assert not accel.installed()
    require_accelerator()
    assert [extract_main_text(doc, ExtractionConfig(accelerate="on")) for doc in docs] == stock
    assert sum(text is not None for text in stock) >= len(docs) - 1


@pytest.mark.slow
def test_extraction_output_is_identical(pages: list[bytes], shared_data: Path, stock_after: None) -> None:
    from tasks.data.warc_reader import HtmlDocument, iter_warc

    docs: list[str | bytes] = list(pages)
    for path in sorted(shared_data.glob("warc/*.warc.gz"))[:4]:
        try:
            docs += [item.html for item in iter_warc(path) if isinstance(item, HtmlDocument)][:10]
        except Exception:  # noqa: BLE001 - a damaged file ends its own documents only
            pass
    stock = _stock_texts(docs)
    require_accelerator()
    assert [extract_main_text(doc, ExtractionConfig(accelerate="on")) for doc in docs] == stock
    assert sum(text is not None for text in stock) > len(docs) // 2


def test_element_classes_are_unchanged_by_the_lookup(pages: list[bytes], stock_after: None) -> None:
    accel.configure("off")
    before = [type(e) for e in load_html(pages[0]).iter()]
    require_accelerator()
    assert class_lookup.installed()
    assert [type(e) for e in load_html(pages[0]).iter()] == before
    form = lxml.html.fromstring("<form><input name='a'><select></select><textarea></textarea><label>x</label></form>")
    names = [type(e).__name__ for e in form.iter()]
    assert names == ["FormElement", "InputElement", "SelectElement", "TextareaElement", "LabelElement"]


# ------------------------------------------------------------------ modes


def _bindings() -> list[object]:
    """Everything the accelerator replaces when it is in place."""
    return [
        *(module.prune_unwanted_nodes for module in (core, htmlprocessing, main_extractor)),
        *(module.tree_cleaning for module in (core, htmlprocessing, external)),
        utils.repair_faulty_html,
        main_extractor.BODY_XPATH,
    ]


def _all_stock() -> bool:
    modules_ok = all(getattr(f, "__module__", "").startswith("trafilatura.") for f in _bindings()[:-1])
    return modules_ok and main_extractor.BODY_XPATH is xpaths.BODY_XPATH and not class_lookup.installed()


def test_off_mode_never_installs_anything(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, stock_after: None) -> None:
    accel.configure("off")
    stock = _bindings()
    for part in (pruning, class_lookup, stand_ins):
        monkeypatch.setattr(part, "install", lambda *args: pytest.fail("installed in off mode"))
    monkeypatch.setattr(guards, "failed_guard", lambda: pytest.fail("guards evaluated in off mode"))
    with caplog.at_level(logging.WARNING, logger="llmforge"):
        assert extract_main_text("<html><body><p>" + "Some words here. " * 20 + "</p></body></html>", ExtractionConfig(accelerate="off"))
    assert all(a is b for a, b in zip(_bindings(), stock, strict=True)) and _all_stock()
    assert accel.status() == accel.AcceleratorStatus("off", False, trafilatura_version=guards.trafilatura_version())
    assert not caplog.records


def test_auto_mode_installs_when_every_guard_holds(stock_after: None) -> None:
    accel.configure("off")
    assert guards.failed_guard() is None, "a guard fails on the installed trafilatura"
    status = accel.configure("auto")
    assert status == accel.AcceleratorStatus("auto", True, None, "", guards.trafilatura_version())
    version = guards.trafilatura_version()
    assert status.as_dict() == {"mode": "auto", "active": True, "failed_guard": None, "detail": "", "trafilatura_version": version}
    assert accel.AcceleratorStatus.from_dict(status.as_dict()) == status
    assert not _all_stock() and accel.installed()


def _changed_expression(monkeypatch: pytest.MonkeyPatch) -> None:
    original = xpaths.OVERALL_DISCARD_XPATH[0]
    changed = XPath(original.path.replace("cookie", "cookies"), namespaces={"re": xpath_plan.REGEXP_NS})
    monkeypatch.setattr(xpaths, "OVERALL_DISCARD_XPATH", [changed, *xpaths.OVERALL_DISCARD_XPATH[1:]])


def _other_parser_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = lxml.html.HTMLParser()
    parser.set_element_class_lookup(etree.ElementDefaultClassLookup())
    monkeypatch.setattr(utils, "HTML_PARSER", parser)


# (how to break it, the name of the guard that must fail)
GUARD_BREAKERS: list[tuple[Callable[[pytest.MonkeyPatch], None], str]] = [
    (lambda mp: mp.setattr(guards, "VERIFIED_TRAFILATURA_VERSIONS", frozenset({"0.0"})), "trafilatura_version"),
    (_changed_expression, "xpath:OVERALL_DISCARD_XPATH[0]"),
    (lambda mp: mp.setattr(xpaths, "BODY_XPATH", xpaths.BODY_XPATH[:2]), "xpath:BODY_XPATH[2]"),
    (lambda mp: mp.setattr(htmlprocessing, "prune_unwanted_nodes", lambda tree, nodelist, with_backup=False: tree),
     "source:trafilatura.htmlprocessing.prune_unwanted_nodes"),
    (lambda mp: mp.setitem(guards.STOCK_SOURCES, ("trafilatura.htmlprocessing", "tree_cleaning"), "0" * 64),
     "source:trafilatura.htmlprocessing.tree_cleaning"),
    (lambda mp: mp.setitem(guards.STOCK_SOURCES, ("trafilatura.utils", "repair_faulty_html"), "0" * 64),
     "source:trafilatura.utils.repair_faulty_html"),
    (lambda mp: mp.setitem(guards.STOCK_SOURCES, ("lxml.html", "HtmlElementClassLookup.lookup"), "0" * 64),
     "source:lxml.html.HtmlElementClassLookup.lookup"),
    (lambda mp: mp.setattr(utils, "INVALID_XML_CHARS", __import__("re").compile(r"[\x00-\x08]")),
     "pattern:trafilatura.utils.INVALID_XML_CHARS"),
    (lambda mp: mp.setattr(xpath_plan, "union_follows_attribute_order", lambda: False), "lxml_union_order"),
    (_other_parser_lookup, "html_parser_classes"),
]


@pytest.mark.parametrize(("breaker", "guard"), GUARD_BREAKERS, ids=[guard for _, guard in GUARD_BREAKERS])
def test_each_guard_can_fail(
    breaker: Callable[[pytest.MonkeyPatch], None], guard: str, monkeypatch: pytest.MonkeyPatch, stock_after: None
) -> None:
    accel.configure("off")
    breaker(monkeypatch)
    failure = guards.failed_guard()
    assert failure is not None and failure.guard == guard, failure
    assert dict(guards.evaluate())[guard] == failure.detail


def test_the_guard_listing_names_the_failed_guard(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stock_after: None) -> None:
    assert guards.main() == 0
    monkeypatch.setattr(guards, "VERIFIED_TRAFILATURA_VERSIONS", frozenset({"0.0"}))
    assert guards.main() == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 * len(guards.evaluate())
    assert [line for line in lines if line.startswith("FAIL")] == [
        f"FAIL trafilatura_version: trafilatura {guards.trafilatura_version()} is installed; verified: 0.0"
    ]


def _break_tree_cleaning_guard(monkeypatch: pytest.MonkeyPatch) -> str:
    accel.configure("off")
    guard = ("trafilatura.htmlprocessing", "tree_cleaning")
    monkeypatch.setitem(guards.STOCK_SOURCES, guard, "0" * 64)
    return "source:trafilatura.htmlprocessing.tree_cleaning"


def test_auto_mode_with_a_failed_guard_warns_once_and_extracts_with_stock(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, stock_after: None
) -> None:
    docs = load_pages(shared_data, step=150)
    expected = _stock_texts(docs)
    guard = _break_tree_cleaning_guard(monkeypatch)
    monkeypatch.setattr(control, "_warned", False)
    stock = _bindings()
    with caplog.at_level(logging.WARNING, logger="llmforge"):
        texts = [extract_main_text(doc, ExtractionConfig(accelerate="auto")) for doc in docs]
        accel.configure("off")
        accel.configure("auto")  # evaluated again: still one warning per process
    assert texts == expected
    assert all(a is b for a, b in zip(_bindings(), stock, strict=True)) and _all_stock()
    warnings = [r for r in caplog.records if r.name.startswith("llmforge") and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and guard in warnings[0].getMessage() and "stock trafilatura" in warnings[0].getMessage()
    status = accel.status()
    assert status is not None and (status.mode, status.active, status.failed_guard) == ("auto", False, guard)


def test_on_mode_with_a_failed_guard_raises(monkeypatch: pytest.MonkeyPatch, stock_after: None) -> None:
    guard = _break_tree_cleaning_guard(monkeypatch)
    with pytest.raises(accel.AcceleratorGuardFailed, match=guard.replace(".", r"\.")) as caught:
        extract_main_text("<html><body><p>x</p></body></html>", ExtractionConfig(accelerate="on"))
    assert caught.value.guard == guard and "\n" not in str(caught.value)
    assert "python -m tasks.data.accel" in str(caught.value)
    assert _all_stock()


def test_accelerate_is_execution_only() -> None:
    views = {mode: DataConfig(extraction=ExtractionConfig(accelerate=mode)).fingerprint_view() for mode in accel.MODES}
    assert views["auto"] == views["on"] == views["off"]
    assert "accelerate" not in views["auto"]["extraction"]
    with pytest.raises(ValueError):
        ExtractionConfig(accelerate="fast")  # type: ignore[arg-type]


# ------------------------------------------------------------------ the extraction child

# Imported by the child before it configures the accelerator: breaks one guard there.
BROKEN_GUARD_MODULE = textwrap.dedent(
    """
    from tasks.data.accel import guards
    guards.VERIFIED_TRAFILATURA_VERSIONS = frozenset({"0.0"})
    from tasks.data.extract import extract_main_text as extract
    """
)


@pytest.fixture()
def broken_guard_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "llmforge_broken_guard.py").write_text(BROKEN_GUARD_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "llmforge_broken_guard:extract"


def test_the_child_reports_its_status_also_after_a_restart(stock_after: None) -> None:
    page = "<html><body><p>" + "A paragraph of plain words. " * 20 + "</p></body></html>"
    with IsolatedExtractor(ExtractionConfig(timeout_seconds=5.0)) as extractor:
        status = extractor.accelerator
        assert status == accel.AcceleratorStatus("auto", True, None, "", guards.trafilatura_version())
        assert extractor.extract(page) == extract_main_text(page, ExtractionConfig(accelerate="off"))
        extractor._replace(kill=True)  # what a timeout or a crash does
        assert extractor.restarts == 1
        again = extractor.accelerator
        assert again == status and again is not status  # read from the new child
    with IsolatedExtractor(ExtractionConfig(accelerate="off")) as extractor:
        assert extractor.accelerator == accel.AcceleratorStatus("off", False, trafilatura_version=guards.trafilatura_version())


def test_a_child_with_a_failed_guard_in_auto_mode_reports_it_and_extracts(
    broken_guard_module: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, stock_after: None
) -> None:
    page = "<html><body><p>" + "A paragraph of plain words. " * 20 + "</p></body></html>"
    monkeypatch.setattr(control, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="llmforge"):
        with IsolatedExtractor(ExtractionConfig(), function=broken_guard_module) as extractor:
            status = extractor.accelerator
            assert (status.mode, status.active, status.failed_guard) == ("auto", False, "trafilatura_version")
            assert extractor.extract(page) == extract_main_text(page, ExtractionConfig(accelerate="off"))
            extractor._replace(kill=True)
            assert extractor.accelerator.failed_guard == "trafilatura_version"
    warnings = [r for r in caplog.records if r.name.startswith("llmforge")]
    assert len(warnings) == 1 and "trafilatura_version" in warnings[0].getMessage()


def test_a_child_with_a_failed_guard_in_on_mode_stops_the_run(broken_guard_module: str) -> None:
    with IsolatedExtractor(ExtractionConfig(accelerate="on"), function=broken_guard_module) as extractor:
        with pytest.raises(accel.AcceleratorGuardFailed, match="'trafilatura_version' failed") as caught:
            extractor.run("<html><body><p>x</p></body></html>")  # not a per-page reason
        assert caught.value.guard == "trafilatura_version"
        with pytest.raises(accel.AcceleratorGuardFailed):
            extractor.accelerator
