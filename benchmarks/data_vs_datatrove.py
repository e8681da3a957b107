"""Side-by-side: our data stage vs datatrove 0.10.1's FineWeb recipe, on the same WARC files.

    .venv/bin/python benchmarks/data_vs_datatrove.py            # from the repository root
    .venv/bin/python benchmarks/data_vs_datatrove.py --no-write # print only, leave the results file alone

Needs the datatrove venv (``bash benchmarks/setup_datatrove_env.sh``) and the shared data
(``$LLMFORGE_SHARED_DATA`` or ``../shared/data``). Not a test: it asserts nothing about speed.

What runs:

* input: the shared HTML pages framed as WARC response records (``benchmarks/frame_pages.py``) plus
  the shared real WARCs, except ``resiliparse-clipped-record.warc.gz`` on which datatrove fails the
  whole task (left out of both sides);
* ours: ``tasks.data.shards.plan_shards`` + ``tasks.data.stage.process_shard`` in one process (no Prefect), one shard
  per file, with a ``DataConfig`` that follows the recipe (language ``en`` > 0.65, same lid.176.ftz
  file as datatrove, MinHash/exact dedup and PII off: they run after the filters, and datatrove's
  side stops at the filters too);
* datatrove: ``benchmarks/datatrove_runner.py`` in the datatrove venv, LocalPipelineExecutor with
  tasks=1, workers=1, Trafilatura's timeout set to our ``extraction.timeout_seconds`` (30 s);
* each side is one child process, timed from outside: wall clock, and CPU seconds (user + system)
  of the process and everything it waited for (datatrove extracts in a child process). Inside,
  each also times its pipeline alone (after interpreter start and imports).

The document "fate" is the step that dropped it (``reader`` for records a reader did not turn into
an HTML document, ``extraction`` for no main text, then each filter) or ``kept``. Agreement is
measured over the records that at least one side read as an HTML document.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.machine import cpu_model, total_ram  # noqa: E402
from tasks.data.recipe import DEDUP_FILTERS, FILTER_ORDER  # noqa: E402

from benchmarks import frame_pages  # noqa: E402

DATATROVE_VENV = Path(os.environ.get("DATATROVE_VENV", HERE / ".venv-datatrove"))
# A document's fate: the step that dropped it, in pipeline order (dedup is not compared).
FATES = ("reader", *(name for name in FILTER_ORDER if name not in DEDUP_FILTERS), "kept")
CHAIN = ("url", "language", "gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality")
QUALITY = ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality")
MD_BEGIN = "<!-- benchmark:begin (written by benchmarks/data_vs_datatrove.py) -->"
MD_END = "<!-- benchmark:end -->"


# --------------------------------------------------------------------------- our side


def benchmark_config(lid_model: Path):
    from llmforge.config import DataConfig, DedupConfig, LanguageConfig, PiiConfig

    return DataConfig(
        source="benchmark",
        records_per_shard=0,
        language=LanguageConfig(languages=["en"], min_score=0.65, model_path=str(lid_model)),
        dedup=DedupConfig(exact=False, minhash=False),
        pii=PiiConfig(enabled=False),
    )


_SHARED_FUNCTION = "benchmarks.data_vs_datatrove:extract_with_shared_dedup_cache"
_shared_cache_installed = False


def extract_with_shared_dedup_cache(html, cfg):
    """Our extraction, but with one trafilatura dedup cache for the whole process (as datatrove's
    extractor process has). Runs inside our extractor's child process in the fidelity run."""
    global _shared_cache_installed
    import tasks.data.extract

    if not _shared_cache_installed:
        shared = tasks.data.extract.LRUCache(maxsize=tasks.data.extract.LRU_SIZE)
        tasks.data.extract.LRUCache = lambda maxsize: shared  # type: ignore[assignment]
        _shared_cache_installed = True
    return tasks.data.extract.extract_main_text(html, cfg)


def _share_trafilatura_dedup_cache() -> None:
    """Benchmark-only patch for the fidelity run (see ``extract_with_shared_dedup_cache``).

    Our extraction gives every page a fresh cache (tasks/data/extract.py); datatrove's extractor
    process keeps trafilatura's process-wide one, so boilerplate seen on earlier pages of the
    same site vanishes from later ones.
    """
    import tasks.data.extract

    isolated = getattr(tasks.data.extract, "IsolatedExtractor", None)
    if isolated is None:  # extraction in this process
        shared = tasks.data.extract.LRUCache(maxsize=tasks.data.extract.LRU_SIZE)
        tasks.data.extract.LRUCache = lambda maxsize: shared  # type: ignore[assignment]
        return

    class SharedCacheExtractor(isolated):  # type: ignore[misc, valid-type]
        def __init__(self, cfg, **kwargs):
            kwargs.setdefault("function", _SHARED_FUNCTION)
            super().__init__(cfg, **kwargs)

    tasks.data.extract.IsolatedExtractor = SharedCacheExtractor  # type: ignore[misc]


def _cpu_seconds() -> float:
    """CPU seconds of this process and of the children it has waited for (our extractor)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_ours(inputs: list[Path], out: Path, lid_model: Path, shared_dedup: bool = False) -> None:
    """The worker: our data stage's per-shard logic on every input, in this one process."""
    import pyarrow.parquet as pq

    from tasks.data.recipe import close_shared_extractors
    from tasks.data.shards import file_digests, plan_shards
    from tasks.data.stage import process_shard

    if shared_dedup:
        _share_trafilatura_dedup_cache()

    config = benchmark_config(lid_model)
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    shards = plan_shards(inputs, config.records_per_shard, file_digests(inputs))
    summaries = [process_shard(shard, config, str(data_dir), "benchmark") for shard in shards]
    close_shared_extractors()  # reaps the extraction child, so its CPU time is counted
    cpu, wall = _cpu_seconds() - cpu0, time.perf_counter() - wall0

    fates: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for summary in summaries:
        work = data_dir / "_work"
        for row in pq.read_table(work / f"{summary['shard']}.errors.parquet", columns=["id", "reason"]).to_pylist():
            if row["id"]:
                fates[row["id"]] = "reader"
                reasons[row["id"]] = row["reason"]
        for row in pq.read_table(work / f"{summary['shard']}.removed.parquet", columns=["id", "filter", "reason"]).to_pylist():
            fates[row["id"]] = row["filter"]
            reasons[row["id"]] = row["reason"]
        for row in pq.read_table(work / f"{summary['shard']}.candidates.parquet", columns=["id"]).to_pylist():
            fates[row["id"]] = "kept"
    seconds: Counter = Counter()
    for summary in summaries:
        seconds.update(summary["filters"]["seconds"])
    result = {
        "fates": fates,
        "reasons": reasons,
        "read": sum(s["html"] for s in summaries),
        "timing": {"pipeline_cpu_s": cpu, "pipeline_wall_s": wall},
        "step_seconds": dict(seconds),
    }
    (out / "fates.json").write_text(json.dumps(result, indent=1), encoding="utf-8")


# --------------------------------------------------------------------------- driver


def _run_timed(cmd: list[str], log: Path) -> dict[str, float]:
    """Run a child to completion; its wall time and the CPU time of it and its waited-for children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        proc = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO_ROOT, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(cmd[:2])} failed ({proc.returncode}); log {log}:\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"process_cpu_s": cpu, "process_wall_s": wall}


def machine_info() -> dict[str, str]:
    return {"nproc": str(os.cpu_count()), "cpu": cpu_model(), "ram": total_ram(), "python": platform.python_version()}


def _versions(python: str) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json\n"
        "names = ['datatrove', 'trafilatura', 'lxml', 'spacy', 'fasttext-numpy2', 'fasttext-predict', 'warcio',"
        " 'numpy', 'tldextract']\n"
        "out = {}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "try:\n"
        "    import fasttext\n"  # two distributions install this module; say whose is active
        "    out['fasttext module from'] = 'fasttext-numpy2' if hasattr(fasttext, 'train_supervised') else 'fasttext-predict'\n"
        "except ImportError: pass\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def agreement(ours: dict[str, str], theirs: dict[str, str], universe: set[str]) -> dict[str, Any]:
    kept_ours = {i for i in universe if ours.get(i) == "kept"}
    kept_theirs = {i for i in universe if theirs.get(i) == "kept"}
    union = kept_ours | kept_theirs
    same = sum(1 for i in universe if ours.get(i, "reader") == theirs.get(i, "reader"))
    same_decision = sum(1 for i in universe if (ours.get(i) == "kept") == (theirs.get(i) == "kept"))
    confusion: dict[str, Counter] = {f: Counter() for f in FATES}
    for i in universe:
        confusion[theirs.get(i, "reader")][ours.get(i, "reader")] += 1
    return {
        "jaccard": len(kept_ours & kept_theirs) / len(union) if union else 1.0,
        "same_fate": same / len(universe) if universe else 1.0,
        "same": same,
        "same_decision": same_decision,
        "same_decision_frac": same_decision / len(universe) if universe else 1.0,
        "universe": len(universe),
        "kept_ours": len(kept_ours),
        "kept_theirs": len(kept_theirs),
        "confusion": confusion,
    }


def _confusion_table(a: dict[str, Any]) -> list[str]:
    lines = [
        "| datatrove ↓ / ours → | " + " | ".join(FATES) + " | total |",
        "|---|" + "---:|" * (len(FATES) + 1),
    ]
    for row in FATES:
        counts = a["confusion"][row]
        total = sum(counts.values())
        if not total:
            continue
        cells = [(f"**{counts[c]}**" if c == row else str(counts[c])) if counts[c] else "·" for c in FATES]
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {total} |")
    return lines


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "n/a"


def render(report: dict[str, Any]) -> str:
    o, d = report["ours"], report["datatrove"]
    n = report["documents"]
    a = report["agreement"]
    m = report["machine"]
    lines = [
        f"Command: `{report['command']}` (run {report['date']})",
        "",
        f"Machine: {m['nproc']} cores (`nproc`), {m['cpu']}, {m['ram']} RAM, Python {m['python']}.",
        "Versions: ours " + ", ".join(f"{k} {v}" for k, v in report["versions"]["ours"].items())
        + "; datatrove venv " + ", ".join(f"{k} {v}" for k, v in report["versions"]["datatrove"].items()) + ".",
        "",
        f"Input: {report['n_files']} WARC files, {n} HTML documents (records either reader turned into an HTML "
        f"document; ours read {o['read']}, datatrove {d['read']}). Left out of both: "
        + ", ".join(report["excluded"]) + ".",
        "",
        f"### Throughput (one process each; the median of {len(report['rounds'])} alternating rounds)",
        "",
        "| side | CPU s | wall s | docs / CPU-s (per core) | docs / wall-s | pipeline CPU s | pipeline docs / CPU-s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, side in (("ours", o), ("datatrove 0.10.1", d)):
        t = side["timing"]
        lines.append(
            f"| {name} | {t['process_cpu_s']:.1f} | {t['process_wall_s']:.1f} | {n / t['process_cpu_s']:.1f} | "
            f"{n / t['process_wall_s']:.1f} | {t['pipeline_cpu_s']:.1f} | {n / t['pipeline_cpu_s']:.1f} |"
        )
    ot, dt = o["timing"], d["timing"]
    lines.append(
        f"| **ours / datatrove** | | | **{_ratio(dt['process_cpu_s'], ot['process_cpu_s'])}** | "
        f"{_ratio(dt['process_wall_s'], ot['process_wall_s'])} | | {_ratio(dt['pipeline_cpu_s'], ot['pipeline_cpu_s'])} |"
    )
    rows = report["rounds"]
    lines += [
        "",
        "Every round (CPU s): " + "; ".join(
            f"ours {r['ours_cpu_s']:.1f}, datatrove {r['datatrove_cpu_s']:.1f} "
            f"({_ratio(r['datatrove_cpu_s'], r['ours_cpu_s'])})" for r in rows
        ) + ". Each side made the same decisions in every round.",
    ]
    lines += [
        "",
        "CPU s and wall s cover the whole child process (interpreter start, imports, model and list loading); "
        "the pipeline columns only the pipeline inside it. Both sides extract in a child process "
        "(datatrove's sandbox, our IsolatedExtractor); its CPU time is included.",
        "",
        "### Where the time goes (seconds inside each pipeline)",
        "",
        "| step | ours | datatrove |",
        "|---|---:|---:|",
    ]
    os_, ds = report["steps"]["ours"], report["steps"]["datatrove"]
    for step in ("extraction", *CHAIN):
        lines.append(f"| {step} | {os_.get(step, 0.0):.2f} | {ds.get(step, 0.0):.2f} |")
    oc, dc = sum(os_.get(s, 0.0) for s in CHAIN), sum(ds.get(s, 0.0) for s in CHAIN)
    oq, dq = sum(os_.get(s, 0.0) for s in QUALITY), sum(ds.get(s, 0.0) for s in QUALITY)
    oe, de = os_.get("extraction", 0.0), ds.get("extraction", 0.0)
    lines += [
        f"| **filter chain (url … fineweb)** | **{oc:.2f}** | **{dc:.2f}** |",
        f"| chain / extraction | **{oc / oe:.1%}** | {dc / de:.1%} |" if oe and de else "| chain / extraction | n/a | n/a |",
        f"| quality filters only / extraction | {oq / oe:.1%} | {dq / de:.1%} |" if oe and de else "",
        "",
        "Ours: the shard summaries' `filters.seconds`. datatrove: its own per-step `time_stats` "
        "(extraction there includes the round trip to its sandbox process).",
        "",
        "### Agreement",
        "",
        f"- kept: ours {a['kept_ours']}, datatrove {a['kept_theirs']}; "
        f"**Jaccard of kept ids {a['jaccard']:.4f}**",
        f"- **same fate: {a['same']} / {a['universe']} = {a['same_fate']:.2%}**; "
        f"same keep/drop decision: {a['same_decision']} / {a['universe']} = {a['same_decision_frac']:.2%}",
        "",
        "Rows: datatrove's fate; columns: ours.",
        "",
        *_confusion_table(a),
    ]
    f = report.get("agreement_shared_dedup")
    if f:
        lines += [
            "",
            "#### Same, with trafilatura's dedup cache shared across pages as in datatrove (fidelity run)",
            "",
            "Our extraction deliberately gives each page its own trafilatura dedup cache; datatrove's extractor "
            "keeps one for the whole process. This second, untimed run of ours patches in one shared cache "
            "(benchmark only), so that both sides filter identical extracted text and the remaining "
            "differences are the filters'.",
            "",
            f"- kept: ours {f['kept_ours']}, datatrove {f['kept_theirs']}; **Jaccard of kept ids {f['jaccard']:.4f}**",
            f"- **same fate: {f['same']} / {f['universe']} = {f['same_fate']:.2%}**; "
            f"same keep/drop decision: {f['same_decision']} / {f['universe']} = {f['same_decision_frac']:.2%}",
            "",
            *_confusion_table(f),
        ]
    if report.get("disagreements"):
        lines += ["", "Disagreements (id: datatrove fate/reason → ours fate/reason):", ""]
        for item in report["disagreements"]:
            lines.append(f"- `{item['id']}` {item['url'][:90]}: {item['theirs']} → {item['ours']}")
    return "\n".join(line for line in lines) + "\n"


def write_markdown(text: str, path: Path) -> None:
    block = f"{MD_BEGIN}\n{text}{MD_END}"
    if path.is_file():
        current = path.read_text(encoding="utf-8")
        if MD_BEGIN in current and MD_END in current:
            head, rest = current.split(MD_BEGIN, 1)
            tail = rest.split(MD_END, 1)[1]
            path.write_text(head + block + tail, encoding="utf-8")
            return
        path.write_text(current.rstrip() + "\n\n" + block + "\n", encoding="utf-8")
        return
    path.write_text(f"# Benchmarks\n\n## Data stage vs datatrove\n\n{block}\n", encoding="utf-8")


def _urls(inputs: list[Path]) -> dict[str, str]:
    from tasks.data.warc_reader import iter_warc

    urls: dict[str, str] = {}
    for path in inputs:
        for item in iter_warc(path):
            if item.id:
                urls[item.id] = item.url or ""
    return urls


def _dt_step_seconds(raw: dict[str, float]) -> dict[str, float]:
    names = {
        "Url-filter": "url",
        "Trafilatura": "extraction",
        "Language ID": "language",
        "Gopher Repetition": "gopher_repetition",
        "Gopher Quality": "gopher_quality",
        "C4 Quality": "c4_quality",
        "FineWeb Quality": "fineweb_quality",
        "Warc": "reader",
        "Jsonl": "writer",
    }
    out: dict[str, float] = {}
    for key, value in raw.items():
        for fragment, step in names.items():
            if key.endswith(fragment):
                out[step] = out.get(step, 0.0) + value
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="Our data stage vs datatrove's FineWeb recipe.")
    parser.add_argument("--ours-worker", nargs=3, metavar=("OUT", "INPUTS", "LID"), help=argparse.SUPPRESS)
    parser.add_argument("--shared-dedup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-fidelity-run", action="store_true",
                        help="skip the second (untimed) run of ours with datatrove's shared dedup cache")
    parser.add_argument("--no-write", action="store_true", help="don't update benchmarks/results/data_vs_datatrove.md")
    parser.add_argument("--keep", type=Path, help="keep both sides' outputs in this directory")
    parser.add_argument("--timeout", type=float, help="datatrove's per-document extraction timeout "
                        "(default: our extraction.timeout_seconds)")
    parser.add_argument("--list", type=int, default=40, help="list up to N disagreeing documents")
    parser.add_argument("--rounds", type=int, default=3,
                        help="time each side this many times, alternating which goes first; the tables "
                        "use each side's median round (this machine's timings vary by about 10%%)")
    args = parser.parse_args()

    if args.ours_worker:
        out, inputs_file, lid = args.ours_worker
        inputs = [Path(p) for p in Path(inputs_file).read_text(encoding="utf-8").splitlines() if p]
        run_ours(inputs, Path(out), Path(lid), shared_dedup=args.shared_dedup)
        return 0

    dt_python = DATATROVE_VENV / "bin" / "python"
    if not dt_python.is_file():
        raise SystemExit(f"no datatrove venv at {DATATROVE_VENV}: run `bash benchmarks/setup_datatrove_env.sh` first")
    lid_model = frame_pages.shared_data_dir() / "models" / "lid.176.ftz"
    inputs = frame_pages.benchmark_inputs()
    excluded = [p.name for p in frame_pages.real_warc_files()[1]]
    timeout = args.timeout if args.timeout is not None else benchmark_config(lid_model).extraction.timeout_seconds
    cache = frame_pages.cache_dir() / "datatrove"

    work = args.keep or Path(tempfile.mkdtemp(prefix="llmforge-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    inputs_file = work / "inputs.txt"
    inputs_file.write_text("".join(f"{p}\n" for p in inputs), encoding="utf-8")
    rounds = max(1, args.rounds)
    sides = [f"{side}-{k}" for k in range(1, rounds + 1) for side in ("ours", "datatrove")]
    for side in (*sides, "ours-shared-dedup"):
        if (work / side).exists():
            raise SystemExit(f"{work / side} exists; use an empty --keep directory")

    dt_cmd = [str(dt_python), str(HERE / "datatrove_runner.py"), "--inputs", str(inputs_file),
              "--lid-model", str(lid_model), "--cache", str(cache), "--timeout", str(timeout)]
    print("preparing datatrove's cached assets (untimed) ...", file=sys.stderr)
    prepared = work / "datatrove-prepare"
    _run_timed([*dt_cmd, "--out", str(prepared), "--prepare"], work / "datatrove-prepare.log")
    print("preparing our compiled URL lists (untimed; cached once per machine) ...", file=sys.stderr)
    from tasks.data.filters.url import describe_lists

    describe_lists(benchmark_config(lid_model).url_filter)

    def run_side(side: str, k: int) -> tuple[dict[str, Any], dict[str, float]]:
        out = work / f"{side}-{k}"
        print(f"round {k}/{rounds}: running {side} ...", file=sys.stderr)
        if side == "ours":
            cmd = [sys.executable, str(Path(__file__).resolve()), "--ours-worker", str(out), str(inputs_file),
                   str(lid_model)]
        else:
            cmd = [*dt_cmd, "--out", str(out)]
        timing = _run_timed(cmd, work / f"{side}-{k}.log")
        return json.loads((out / "fates.json").read_text(encoding="utf-8")), timing

    results: dict[str, list[tuple[dict[str, Any], dict[str, float]]]] = {"ours": [], "datatrove": []}
    for k in range(1, rounds + 1):
        # alternate who goes first, so that a drift in the machine's speed hits both sides alike
        for side in ("ours", "datatrove") if k % 2 else ("datatrove", "ours"):
            results[side].append(run_side(side, k))
    for side, runs in results.items():
        if any(run[0]["fates"] != runs[0][0]["fates"] for run in runs):
            raise SystemExit(f"{side}: the fates differ between rounds (not deterministic)")
    round_rows = [
        {"ours_cpu_s": o[1]["process_cpu_s"], "datatrove_cpu_s": d[1]["process_cpu_s"]}
        for o, d in zip(results["ours"], results["datatrove"], strict=True)
    ]

    def median_run(runs: list[tuple[dict[str, Any], dict[str, float]]]) -> dict[str, Any]:
        fates, timing = sorted(runs, key=lambda run: run[1]["process_cpu_s"])[(len(runs) - 1) // 2]
        fates["timing"].update(timing)
        return fates

    fidelity = None
    if not args.no_fidelity_run:
        print("running ours again, with datatrove's shared trafilatura dedup cache (untimed) ...", file=sys.stderr)
        _run_timed(
            [sys.executable, str(Path(__file__).resolve()), "--ours-worker", str(work / "ours-shared-dedup"),
             str(inputs_file), str(lid_model), "--shared-dedup"],
            work / "ours-shared-dedup.log",
        )
        fidelity = json.loads((work / "ours-shared-dedup" / "fates.json").read_text(encoding="utf-8"))

    ours, theirs = median_run(results["ours"]), median_run(results["datatrove"])
    universe = {i for i, f in ours["fates"].items() if f != "reader"} | set(theirs["fates"])
    agree = agreement(ours["fates"], theirs["fates"], universe)
    agree_fidelity = None
    if fidelity is not None:
        fid_universe = {i for i, f in fidelity["fates"].items() if f != "reader"} | set(theirs["fates"])
        agree_fidelity = agreement(fidelity["fates"], theirs["fates"], fid_universe)

    urls = _urls(inputs)
    disagreements = []
    for i in sorted(universe, key=lambda x: urls.get(x, "")):
        of, tf = ours["fates"].get(i, "reader"), theirs["fates"].get(i, "reader")
        if of != tf:
            disagreements.append({
                "id": i, "url": urls.get(i, ""),
                "ours": f"{of}/{ours['reasons'].get(i, '')}".rstrip("/"),
                "theirs": f"{tf}/{theirs['reasons'].get(i, '')}".rstrip("/"),
            })
    report = {
        "command": "python benchmarks/data_vs_datatrove.py",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(),
        "versions": {"ours": _versions(sys.executable), "datatrove": _versions(str(dt_python))},
        "n_files": len(inputs),
        "excluded": excluded,
        "documents": len(universe),
        "ours": ours,
        "datatrove": theirs,
        "steps": {"ours": ours["step_seconds"], "datatrove": _dt_step_seconds(theirs["step_seconds"])},
        "agreement": agree,
        "agreement_shared_dedup": agree_fidelity,
        "disagreements": disagreements[: args.list],
        "rounds": round_rows,
    }
    (work / "report.json").write_text(json.dumps(report, indent=1, default=dict), encoding="utf-8")
    text = render(report)
    print(text)
    if not args.no_write:
        target = REPO_ROOT / "benchmarks" / "results" / "data_vs_datatrove.md"
        write_markdown(text, target)
        print(f"updated {target.relative_to(REPO_ROOT)}", file=sys.stderr)
    print(f"outputs in {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
