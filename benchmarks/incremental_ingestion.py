"""What a night of ingestion costs when one WARC file arrives: `llmforge data` and `llmforge tokenize`
as a user runs them (CLI, the persistent local server warm), appending a version, against rebuilding
the same grown input from scratch (`--rebuild` / `--force`, what every change cost before versions).

Per round, on a fresh work directory:

1. `data` and `tokenize` on the shared WARCs but one (version 1);
2. the last file is added: `data` appends version 2 (only that file is read), `tokenize` encodes its shards;
3. nothing new: `data` and `tokenize` again (the fixed cost of a night without new files);
4. `data --rebuild` and `tokenize --force` on the grown input: the anchor.

For each: the CPU seconds of the command's process tree, the persistent server's CPU for it, wall
seconds, and the stage's own time from its manifest (`timings.total_s`).

    .venv/bin/python benchmarks/incremental_ingestion.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.command_overhead import _process_cpu, _run, _server_pid, _shared_data, private_env
from benchmarks.machine import describe

ADDED = "ukwa-data.gov.uk-2014-crawl-a.warc.gz"
STEPS = ("initial", "append one file", "nothing new", "rebuild (anchor)")


def _stage_seconds(workdir: Path, manifest: str) -> float:
    return json.loads((workdir / manifest).read_text())["timings"]["total_s"]


def _timed(args: list[str], env: dict[str, str], home: Path) -> tuple[float, float, float]:
    pid = _server_pid(home)
    before = _process_cpu(pid) if pid else 0.0
    cpu, wall = _run(args, env)
    pid = _server_pid(home)
    return cpu, wall, (_process_cpu(pid) - before) if pid else 0.0


def _round(base: Path, env: dict[str, str], home: Path, config: Path) -> dict[str, dict[str, tuple]]:
    source, workdir = base / "source", base / "work"
    shutil.rmtree(source, ignore_errors=True)
    shutil.rmtree(workdir, ignore_errors=True)
    source.mkdir()
    for path in sorted((_shared_data() / "warc").glob("*.warc*")):
        if path.name != ADDED:
            shutil.copy(path, source)
    common = ["--workdir", str(workdir), "--config", str(config)]
    results: dict[str, dict[str, tuple]] = {}
    for step, data_extra, tokenize_extra in (("initial", [], []), ("append one file", [], []),
                                             ("nothing new", [], []), ("rebuild (anchor)", ["--rebuild"], ["--force"])):
        if step == "append one file":
            shutil.copy(_shared_data() / "warc" / ADDED, source)
        data = _timed(["data", "--source", str(source), *common, *data_extra], env, home)
        data_stage = _stage_seconds(workdir, "data/manifest.json")
        tokenize = _timed(["tokenize", *common, *tokenize_extra], env, home)
        results[step] = {"data": (*data, data_stage), "tokenize": (*tokenize, _stage_seconds(workdir, "tokens/manifest.json"))}
    record = json.loads((workdir / "data" / "versions" / "0001.json").read_text())
    assert record["mode"] == "rebuild" and ADDED in record["inputs"], "the anchor did not rebuild the grown input"
    return results


def measure(rounds: int) -> dict[str, dict[str, list[float]]]:
    base = Path(tempfile.mkdtemp(prefix="llmforge-incremental-"))
    home = base / "home"
    config = base / "llmforge.yaml"
    config.write_text("tokenize: {vocab_size: 4096}\n")
    env = private_env(base, home)
    samples: dict[str, dict[str, list[tuple]]] = {step: {"data": [], "tokenize": []} for step in STEPS}
    try:
        _run(["server", "start"], env)
        time.sleep(1.0)
        for _ in range(rounds):
            for step, stages in _round(base, env, home, config).items():
                for stage, figures in stages.items():
                    samples[step][stage].append(figures)
    finally:
        _run(["server", "stop"], env)
        shutil.rmtree(base, ignore_errors=True)
    return {step: {stage: [statistics.median(s[i] for s in runs) for i in range(4)] for stage, runs in stages.items()}
            for step, stages in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    results = measure(args.rounds)
    print(f"{describe(args.rounds)}; persistent local server, warm")
    print("| step | command | command CPU s | server CPU s | wall s | stage's own s |")
    print("|---|---|---:|---:|---:|---:|")
    for step, stages in results.items():
        for stage, (cpu, wall, server, own) in stages.items():
            shown = "skipped" if step == "nothing new" else f"{own:.2f}"  # its manifest is the last run's
            print(f"| {step} | {stage} | {cpu:.2f} | {server:.2f} | {wall:.2f} | {shown} |")
    append, rebuild = results["append one file"], results["rebuild (anchor)"]
    for stage in ("data", "tokenize"):
        print(f"{stage}: rebuild / append = {rebuild[stage][0] / append[stage][0]:.1f}x command CPU, "
              f"{rebuild[stage][3] / append[stage][3]:.1f}x the stage's own time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
