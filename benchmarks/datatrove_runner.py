"""Run datatrove 0.10.1's FineWeb filtering pipeline on WARC files; record every document's fate.

Executed INSIDE datatrove's own virtual env (benchmarks/setup_datatrove_env.sh), as a subprocess of
benchmarks/data_vs_datatrove.py; it imports nothing from llmforge.

    python datatrove_runner.py --inputs LIST.txt --out DIR --lid-model lid.176.ftz [--timeout 30]
                               [--prepare] [--dump-text]

The pipeline is the first stage of datatrove's ``examples/fineweb.py``, with the same steps and
parameters, on a LocalPipelineExecutor with tasks=1, workers=1:

    WarcReader -> URLFilter -> Trafilatura(favour_precision=True, timeout=...) ->
    LanguageFilter(languages=["en"]) -> GopherRepetitionFilter -> GopherQualityFilter ->
    C4QualityFilter(filter_no_terminal_punct=False) -> FineWebQualityFilter -> JsonlWriter

each filter with a JsonlWriter exclusion writer, as in the example. Differences from the example,
all needed to run offline and to name documents:

* ``LanguageFilter(languages=["en"])``: FineWeb's intent; the 0.10.1 default keeps every language.
* One pass-through step after the reader notes which record ids became documents, so that records
  the extractor dropped (no text, timeout, error) can be told from records the reader skipped.
* The language-ID model: datatrove downloads ``lid.176.bin`` into its asset cache; here the cache
  entry it looks for is seeded with the given model file (the quantised ``lid.176.ftz`` in the
  benchmark, the same model file our side uses).
* tldextract's public-suffix list is not fetched: the URL filter's extractor is replaced by one
  built with ``suffix_list_urls=()`` (the snapshot bundled with tldextract).
* NLTK's punkt_tab data comes from ``$VENV/nltk_data`` (written by the setup script).
* datatrove checks for the distribution ``fasttext-numpy2-wheel``; ``fasttext-numpy2`` provides the
  same ``fasttext`` module and is accepted in its place.

``--prepare`` builds the cached assets (UT1 lists unpacked, model seeded) without running the
pipeline, so that a timed run measures steady-state work. Output: ``DIR/fates.json`` with
{"fates": {id: step}, "reasons": {id: reason}, "timing": {...}, "step_seconds": {...}}.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import sys
import time
from pathlib import Path

VENV = Path(sys.prefix)


def _configure_environment(cache: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["HF_ASSETS_CACHE"] = str(cache / "hf-assets")
    os.environ["NLTK_DATA"] = str(VENV / "nltk_data")
    os.environ.setdefault("TLDEXTRACT_CACHE", str(cache / "tldextract"))


def _accept_fasttext_numpy2() -> None:
    from datatrove.utils import _import_utils

    original = _import_utils._is_distribution_available

    def available(name: str):
        if name == "fasttext-numpy2-wheel":
            return original(name) or original("fasttext-numpy2")
        return original(name)

    _import_utils._is_distribution_available = available


def _seed_lid_model(model: Path) -> Path:
    """Put the model where datatrove's FT176LID looks for its download, marked complete."""
    from datatrove.io import strip_protocol
    from datatrove.utils.lid import FT176LID
    from huggingface_hub import cached_assets_path

    folder = Path(cached_assets_path(library_name="datatrove", namespace="lid", subfolder=FT176LID.MODEL_SUBFOLDER))
    target = folder / strip_protocol(FT176LID.MODEL_URL).replace("/", "_")
    if target.is_symlink() or target.exists():
        target.unlink()
    target.symlink_to(model.resolve())
    Path(f"{target}.completed").touch()
    return target


def _offline_url_filter(exclusion_writer=None):
    from datatrove.pipeline.filters import URLFilter
    from tldextract import TLDExtract

    step = URLFilter(exclusion_writer=exclusion_writer)
    step.tldextractor = TLDExtract(suffix_list_urls=(), cache_dir=os.environ["TLDEXTRACT_CACHE"])
    return step


FILTER_STEPS = ("url", "language", "gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality")


def build_pipeline(input_dir: Path, out: Path, timeout: float, read_ids_file: Path, dump_text: bool) -> list:
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter

    def removed(name: str) -> JsonlWriter:
        return JsonlWriter(str(out / "removed" / name))

    def note_read_ids(data, rank: int = 0, world_size: int = 1):
        with open(read_ids_file, "w", encoding="utf-8") as handle:
            for doc in data:
                handle.write(doc.id + "\n")
                yield doc

    def dump_extracted(data, rank: int = 0, world_size: int = 1):
        with gzip.open(out / "extracted.jsonl.gz", "wt", encoding="utf-8") as handle:
            for doc in data:
                handle.write(json.dumps({"id": doc.id, "text": doc.text}) + "\n")
                yield doc

    steps = [
        WarcReader(str(input_dir), glob_pattern="*.warc.gz"),
        note_read_ids,
        _offline_url_filter(removed("url")),
        Trafilatura(favour_precision=True, timeout=timeout),
    ]
    if dump_text:
        steps.append(dump_extracted)
    steps += [
        LanguageFilter(languages=["en"], exclusion_writer=removed("language")),
        GopherRepetitionFilter(exclusion_writer=removed("gopher_repetition")),
        GopherQualityFilter(exclusion_writer=removed("gopher_quality")),
        C4QualityFilter(filter_no_terminal_punct=False, exclusion_writer=removed("c4_quality")),
        FineWebQualityFilter(exclusion_writer=removed("fineweb_quality")),
        JsonlWriter(str(out / "output")),
    ]
    return steps


def _read_jsonl_dir(folder: Path):
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the extractor's sandbox process
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _step_seconds(logging_dir: Path) -> dict[str, float]:
    """Seconds per pipeline step from datatrove's own stats (its track_time)."""
    stats_file = logging_dir / "stats.json"
    if not stats_file.is_file():
        return {}
    seconds: dict[str, float] = {}
    for entry in json.loads(stats_file.read_text()):
        name = entry.get("name", "?")
        time_stats = entry.get("time_stats") or {}
        total = time_stats.get("total") if isinstance(time_stats, dict) else None
        if total is not None:
            seconds[name] = seconds.get(name, 0.0) + float(total)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=Path, required=True, help="text file: one WARC path per line")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--lid-model", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True, help="asset cache (UT1 lists, model, suffix list)")
    parser.add_argument("--timeout", type=float, default=30.0, help="Trafilatura's per-document timeout")
    parser.add_argument("--prepare", action="store_true", help="only build the cached assets")
    parser.add_argument("--dump-text", action="store_true", help="also save every extracted text (slower)")
    args = parser.parse_args()

    _configure_environment(args.cache)
    _accept_fasttext_numpy2()
    _seed_lid_model(args.lid_model)
    if args.prepare:
        step = _offline_url_filter()
        step.download_data()
        step.tldextractor("https://example.com/")
        print("datatrove assets ready")
        return 0

    from datatrove.executor import LocalPipelineExecutor

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    input_dir = out / "input"
    input_dir.mkdir(exist_ok=True)
    for i, line in enumerate(args.inputs.read_text(encoding="utf-8").splitlines()):
        if line.strip():
            link = input_dir / f"{i:03d}-{Path(line).name}"
            if not link.exists():
                link.symlink_to(Path(line).resolve())
    read_ids_file = out / "read_ids.txt"
    logging_dir = out / "logs"

    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    executor = LocalPipelineExecutor(
        pipeline=build_pipeline(input_dir, out, args.timeout, read_ids_file, args.dump_text),
        tasks=1,
        workers=1,
        logging_dir=str(logging_dir),
        skip_completed=False,
    )
    executor.run()
    cpu, wall = _cpu_seconds() - cpu0, time.perf_counter() - wall0

    read_ids = [line for line in read_ids_file.read_text(encoding="utf-8").splitlines() if line]
    fates: dict[str, str] = {doc_id: "extraction" for doc_id in read_ids}
    reasons: dict[str, str] = {}
    for step in FILTER_STEPS:
        for doc in _read_jsonl_dir(out / "removed" / step):
            fates[doc["id"]] = step
            reasons[doc["id"]] = (doc.get("metadata") or {}).get("filter_reason", "")
    for doc in _read_jsonl_dir(out / "output"):
        fates[doc["id"]] = "kept"
    result = {
        "fates": fates,
        "reasons": reasons,
        "read": len(read_ids),
        "timing": {"pipeline_cpu_s": cpu, "pipeline_wall_s": wall},
        "step_seconds": _step_seconds(logging_dir),
    }
    (out / "fates.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
