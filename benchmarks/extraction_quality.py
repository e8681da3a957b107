"""How well our HTML extraction keeps main text and drops boilerplate, on two public gold sets.

    .venv/bin/python benchmarks/extraction_quality.py [--shared-data DIR] [--overhead-pages 50]

Prints one markdown report, ready to paste into BENCHMARKS.md. Compared:

* "llmforge (FineWeb recipe)": ``tasks.data.extract.extract_main_text`` with the default
  ``ExtractionConfig`` (favor_precision=True, include_comments=False, deduplicate=True
  within the page);
* "trafilatura defaults": ``trafilatura.extract(html)`` with no options at all
  (note: its default keeps comments).

Both get the page's raw bytes, so trafilatura detects the encoding itself.

Gold sets (in ../shared/data, see SOURCES.md):

(a) trafilatura's own evaluation set (``html/trafilatura/evaldata.json``, 599 pages,
    mostly German): per page, hand-picked ``with`` snippets that must appear in the
    main text and ``without`` snippets (boilerplate) that must not. Scored as
    trafilatura's ``tests/eval_common.py`` does: whitespace-normalised substring
    matching, each ``with`` found is a true positive (else a false negative), each
    ``without`` found a false positive (else a true negative), summed over all pages:
    precision = tp/(tp+fp), recall = tp/(tp+fn), accuracy = (tp+tn)/all, F1. Also the
    per-page means of "share of `with` present" and "share of `without` absent".
(b) the Zyte article-extraction benchmark (``html/article-extraction-benchmark``, 109
    news/blog pages, mostly English), full gold ``articleBody``. Token level: tokens
    are ``\\w+`` runs (Zyte's tokenizer), counted as multisets; per page
    P = |pred ∩ gold| / |pred|, R = |pred ∩ gold| / |gold|, F1; then the mean over
    pages (an empty output scores 0 on all three). Also Zyte's own metric from its
    ``evaluate.py``: 4-token shingles, per-page tp/fp/fn normalised to sum 1, mean
    precision over pages with output, mean recall, F1 of the two means, with a
    bootstrap 95% interval (1000 resamples, seed 0).

Then the per-page cost of the process boundary: the same pages through
``extract_main_text`` in-process and through ``IsolatedExtractor``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.machine import cpu_model, total_ram  # noqa: E402

import trafilatura  # noqa: E402

from llmforge.config import ExtractionConfig  # noqa: E402
from tasks.data.extract import IsolatedExtractor, extract_main_text  # noqa: E402

Extractor = Callable[[bytes], "str | None"]


def extractors() -> dict[str, Extractor]:
    cfg = ExtractionConfig()
    return {
        "llmforge (FineWeb recipe)": lambda html: extract_main_text(html, cfg),
        "trafilatura defaults": lambda html: trafilatura.extract(html),
    }


# ------------------------------------------------------------------ (a) snippets


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def score_snippets(data: Path, extract: Extractor) -> dict[str, float]:
    folder = data / "html" / "trafilatura"
    gold = json.loads((folder / "evaldata.json").read_text(encoding="utf-8"))
    langs = {}
    rows = (folder / "manifest.tsv").read_text(encoding="utf-8").splitlines()
    header = rows[0].split("\t")
    for row in rows[1:]:
        cells = dict(zip(header, row.split("\t")))
        name = cells["file"].removeprefix("pages/").removesuffix(".gz")  # "pages/<file>.gz"
        langs[name] = cells["gold_snippet_lang"].split(":")[0]
    results = {}
    for subset in ("all", "en"):
        tp = fp = fn = tn = 0
        with_share, without_share, seconds, empty, pages = [], [], 0.0, 0, 0
        for entry in gold.values():
            if subset == "en" and not langs.get(entry["file"], "").startswith("en"):
                continue
            html = gzip.decompress((folder / "pages" / f"{entry['file']}.gz").read_bytes())
            start = time.perf_counter()
            try:
                text = extract(html)
            except Exception:  # noqa: BLE001 - a crash scores as a full miss, as in trafilatura's eval
                text = None
            seconds += time.perf_counter() - start
            pages += 1
            empty += not text
            found = _norm(text or "")
            hits = sum(_norm(s) in found for s in entry["with"]) if text else 0
            leaks = sum(_norm(s) in found for s in entry["without"]) if text else 0
            tp, fn = tp + hits, fn + len(entry["with"]) - hits
            fp, tn = fp + leaks, tn + len(entry["without"]) - leaks
            with_share.append(hits / len(entry["with"]))
            without_share.append(1 - leaks / len(entry["without"]))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        results[subset] = {
            "pages": pages,
            "precision": precision,
            "recall": recall,
            "accuracy": (tp + tn) / (tp + tn + fp + fn),
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "with_present": statistics.mean(with_share),
            "without_absent": statistics.mean(without_share),
            "empty": empty,
            "ms_per_page": 1000 * seconds / pages,
        }
    return results


# ------------------------------------------------------------------ (b) article bodies

_TOKEN_RE = re.compile(r"\w+")


def _tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text or "")


def _token_prf(gold: str, pred: str) -> tuple[float, float, float]:
    g, p = Counter(_tokens(gold)), Counter(_tokens(pred))
    overlap = sum((g & p).values())
    if not overlap:
        return 0.0, 0.0, 0.0
    precision, recall = overlap / sum(p.values()), overlap / sum(g.values())
    return precision, recall, 2 * precision * recall / (precision + recall)


def _shingle_counts(gold: str, pred: str, n: int = 4) -> tuple[float, float, float]:
    def shingles(text: str) -> Counter:
        tokens = _tokens(text)
        return Counter(tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1)) if tokens[i : i + n])

    g, p = shingles(gold), shingles(pred)
    tp = sum((g & p).values())
    fp, fn = sum((p - g).values()), sum((g - p).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def _zyte_metrics(counts: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    def precision(tp: float, fp: float, fn: float) -> float:
        return 1.0 if fp == fn == 0 else 0.0 if tp == fp == 0 else tp / (tp + fp)

    def recall(tp: float, fp: float, fn: float) -> float:
        return 1.0 if fp == fn == 0 else 0.0 if tp == fn == 0 else tp / (tp + fn)

    p = statistics.mean([precision(*c) for c in counts if c[0] + c[1] > 0] or [0.0])
    r = statistics.mean([recall(*c) for c in counts if c[0] + c[2] > 0] or [0.0])
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def score_articles(data: Path, extract: Extractor) -> dict[str, float]:
    folder = data / "html" / "article-extraction-benchmark"
    gold = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    prf, shingles, seconds, empty = [], [], 0.0, 0
    for key, entry in sorted(gold.items()):
        html = gzip.decompress((folder / "html" / f"{key}.html.gz").read_bytes())
        start = time.perf_counter()
        try:
            text = extract(html) or ""
        except Exception:  # noqa: BLE001
            text = ""
        seconds += time.perf_counter() - start
        empty += not text
        prf.append(_token_prf(entry["articleBody"], text))
        shingles.append(_shingle_counts(entry["articleBody"], text))
    zp, zr, zf = _zyte_metrics(shingles)
    rng = random.Random(0)
    boot = [_zyte_metrics([shingles[rng.randrange(len(shingles))] for _ in shingles]) for _ in range(1000)]
    return {
        "pages": len(gold),
        "precision": statistics.mean(x[0] for x in prf),
        "recall": statistics.mean(x[1] for x in prf),
        "f1": statistics.mean(x[2] for x in prf),
        "zyte_precision": zp,
        "zyte_recall": zr,
        "zyte_f1": zf,
        "zyte_f1_ci": 1.96 * statistics.stdev(b[2] for b in boot),
        "empty": empty,
        "ms_per_page": 1000 * seconds / len(gold),
    }


# ------------------------------------------------------------------ isolation overhead


def no_extraction(html: str | bytes, cfg: ExtractionConfig) -> None:
    """Run in the child to time the transport alone (the child imports this script by name)."""
    return None


def measure_overhead(data: Path, n_pages: int, rounds: int = 3) -> dict[str, float]:
    folder = data / "html" / "article-extraction-benchmark" / "html"
    # Pages as the data stage hands them over: decoded text.
    pages = [
        gzip.decompress(p.read_bytes()).decode("utf-8", "replace") for p in sorted(folder.glob("*.html.gz"))[:n_pages]
    ]
    cfg = ExtractionConfig()
    start = time.perf_counter()
    extractor = IsolatedExtractor(cfg)
    extractor.extract("<html><body><p>start</p></body></html>")
    startup = time.perf_counter() - start
    extract_main_text(pages[0], cfg)  # warm the parent's imports too
    inproc, isolated = [], []
    try:
        for _ in range(rounds):  # interleaved, so drifts in machine load hit both alike
            for page in pages:
                t0 = time.perf_counter()
                a = extract_main_text(page, cfg)
                t1 = time.perf_counter()
                b = extractor.extract(page)
                t2 = time.perf_counter()
                if a != b:
                    raise AssertionError("isolated and in-process extraction differ")
                inproc.append(t1 - t0)
                isolated.append(t2 - t1)
    finally:
        extractor.close()
    # The transport alone: the same pages to a child that does no extraction.
    transport = []
    with IsolatedExtractor(cfg, function=f"{Path(__file__).stem}:no_extraction") as echo:
        echo.extract(pages[0])
        for _ in range(rounds):
            for page in pages:
                t0 = time.perf_counter()
                echo.extract(page)
                transport.append(time.perf_counter() - t0)
    deltas = [b - a for a, b in zip(inproc, isolated)]
    return {
        "pages": len(pages),
        "rounds": rounds,
        "kb_per_page": statistics.mean(len(p.encode()) for p in pages) / 1000,
        "inproc_ms": 1000 * statistics.mean(inproc),
        "isolated_ms": 1000 * statistics.mean(isolated),
        "delta_mean_ms": 1000 * statistics.mean(deltas),
        "delta_median_ms": 1000 * statistics.median(deltas),
        "transport_ms": 1000 * statistics.mean(transport),
        "transport_median_ms": 1000 * statistics.median(transport),
        "startup_s": startup,
    }


# ------------------------------------------------------------------ report


def machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} logical CPUs, {total_ram()} RAM, {platform.system()} {platform.release()}"


def commit() -> str:
    try:
        command = ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"]
        out = subprocess.run(command, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_data = os.environ.get("LLMFORGE_SHARED_DATA") or str(REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--shared-data", default=default_data, help="the shared test data folder")
    parser.add_argument("--overhead-pages", type=int, default=50, help="pages for the isolation overhead (0: skip)")
    args = parser.parse_args()
    data = Path(args.shared_data)

    snippets = {name: score_snippets(data, fn) for name, fn in extractors().items()}
    articles = {name: score_articles(data, fn) for name, fn in extractors().items()}
    overhead = measure_overhead(data, args.overhead_pages) if args.overhead_pages else None

    out = []
    out.append("### HTML extraction quality\n")
    out.append(f"- command: `.venv/bin/python benchmarks/extraction_quality.py` (commit {commit()})")
    out.append(f"- machine: {machine()}")
    out.append(
        f"- versions: Python {platform.python_version()}, trafilatura {version('trafilatura')}, "
        f"lxml {version('lxml')}, justext {version('justext')}, htmldate {version('htmldate')}"
    )
    out.append("- llmforge = `extract_main_text` with the FineWeb settings (favor_precision=True, "
               "include_comments=False, deduplicate=True within the page); trafilatura defaults = "
               "`trafilatura.extract(html)` (keeps comments). Raw page bytes in.\n")

    out.append("**(a) trafilatura eval set** (`html/trafilatura/evaldata.json`): snippets matched as in "
               "trafilatura's `tests/eval_common.py` (whitespace-normalised substrings, tp/fp/fn/tn summed "
               "over pages); \"with present\" / \"without absent\" are per-page means.\n")
    out.append("| extractor | pages | precision | recall | accuracy | F1 | with present | without absent "
               "| empty | ms/page |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for subset, label in (("all", "all"), ("en", "English")):
        for name, res in snippets.items():
            r = res[subset]
            out.append(
                f"| {name}, {label} | {r['pages']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['accuracy']:.3f} "
                f"| {r['f1']:.3f} | {r['with_present']:.3f} | {r['without_absent']:.3f} | {r['empty']} "
                f"| {r['ms_per_page']:.1f} |"
            )

    out.append("\n**(b) Zyte article-extraction benchmark** (`html/article-extraction-benchmark`, gold "
               "`articleBody`): token level = `\\w+` tokens as multisets, per-page P/R/F1 averaged over pages "
               "(empty output = 0); Zyte metric = its `evaluate.py` (4-token shingles, ± 95% bootstrap).\n")
    out.append("| extractor | pages | token P | token R | token F1 | Zyte P | Zyte R | Zyte F1 | empty | ms/page |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in articles.items():
        out.append(
            f"| {name} | {r['pages']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} "
            f"| {r['zyte_precision']:.3f} | {r['zyte_recall']:.3f} | {r['zyte_f1']:.3f} ± {r['zyte_f1_ci']:.3f} "
            f"| {r['empty']} | {r['ms_per_page']:.1f} |"
        )

    if overhead:
        o = overhead
        out.append(f"\n**Process boundary cost** (`IsolatedExtractor` vs in-process `extract_main_text`): "
                   f"{o['pages']} Zyte pages (mean {o['kb_per_page']:.0f} kB of HTML) × {o['rounds']} rounds, "
                   "interleaved; identical output checked.\n")
        out.append("| in-process ms/page | isolated ms/page | difference, mean (median) ms "
                   "| transport alone, mean (median) ms | child start s |")
        out.append("|---:|---:|---:|---:|---:|")
        out.append(
            f"| {o['inproc_ms']:.2f} | {o['isolated_ms']:.2f} "
            f"| {o['delta_mean_ms']:+.2f} ({o['delta_median_ms']:+.2f}) "
            f"| {o['transport_ms']:.3f} ({o['transport_median_ms']:.3f}) | {o['startup_s']:.2f} |"
        )
        out.append("\nTransport alone = the same pages sent to a child that runs no extraction (pipe, "
                   "UTF-8 encode/decode, answer). The difference between the first two columns is within "
                   "the run-to-run noise of a shared machine.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
