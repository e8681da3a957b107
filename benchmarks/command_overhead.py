"""The fixed cost of an `llmforge` command: `llmforge data` on a one-record WARC, as a user runs it.

Three ways a command can meet its Prefect server, each timed ROUNDS times in turn:

* ephemeral: `--ephemeral`, a temporary server started and stopped by the command (what every
  command did before the persistent local server);
* cold: the persistent local server is not running, so the command starts it;
* warm: the persistent server is running (every command after the first).

For each: the CPU seconds of the command's whole process tree (the supervisor, the stage
process, its workers and, with --ephemeral, its temporary server) and its wall seconds. A
persistent server lives on after the command, so the CPU it spends answering the command is
read from /proc and reported beside it (for the cold case, its start-up as well).

    .venv/bin/python benchmarks/command_overhead.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import describe

REPO = Path(__file__).resolve().parent.parent
ONE_RECORD_WARC = "jwarc-commoncrawl.org-single-response.warc.gz"


def _shared_data() -> Path:
    configured = os.environ.get("LLMFORGE_SHARED_DATA")
    return Path(configured) if configured else REPO.parent / "shared" / "data"


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds a running process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_pid(home: Path) -> int | None:
    record = home / "server" / "server.json"
    return json.loads(record.read_text())["pid"] if record.is_file() else None


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds of the command's process tree, wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([str(REPO / ".venv" / "bin" / "llmforge"), *args], env=env, capture_output=True, text=True,
                          cwd=REPO)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"`llmforge {' '.join(args)}` failed:\n{done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def private_env(base: Path, home: Path) -> dict[str, str]:
    """The commands' environment: llmforge home, Prefect home and cache under `base`, the local server
    (not a temporary one, not one PREFECT_API_URL names)."""
    return {**{k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "LLMFORGE_EPHEMERAL")},
            "LLMFORGE_HOME": str(home), "PREFECT_HOME": str(base / "prefect-home"),
            "LLMFORGE_CACHE_DIR": str(base / "cache")}


def measure(rounds: int) -> dict[str, dict[str, float]]:
    base = Path(tempfile.mkdtemp(prefix="llmforge-overhead-"))
    source = base / "source"
    source.mkdir()
    shutil.copy(_shared_data() / "warc" / ONE_RECORD_WARC, source)
    home = base / "home"
    env = private_env(base, home)
    samples: dict[str, list[tuple[float, float, float]]] = {"ephemeral": [], "cold": [], "warm": []}
    try:
        for round_no in range(rounds):
            def data(kind: str, *extra: str) -> list[str]:
                return ["data", "--source", str(source), "--workdir", str(base / f"w-{kind}-{round_no}"), *extra]

            cpu, wall = _run(data("ephemeral", "--ephemeral"), env)
            samples["ephemeral"].append((cpu, wall, 0.0))
            _run(["server", "stop"], env)
            cpu, wall = _run(data("cold"), env)
            pid = _server_pid(home)
            server_cpu = _process_cpu(pid) if pid else 0.0
            samples["cold"].append((cpu, wall, server_cpu))
            before = _process_cpu(pid) if pid else 0.0
            cpu, wall = _run(data("warm"), env)
            samples["warm"].append((cpu, wall, (_process_cpu(pid) - before) if pid else 0.0))
    finally:
        _run(["server", "stop"], env)
        shutil.rmtree(base, ignore_errors=True)
    return {kind: {"command_cpu_s": statistics.median(s[0] for s in runs),
                   "wall_s": statistics.median(s[1] for s in runs),
                   "server_cpu_s": statistics.median(s[2] for s in runs)}
            for kind, runs in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    results = measure(args.rounds)
    print(describe(args.rounds))
    print("| server | command CPU s | wall s | persistent server's CPU s for it |")
    print("|---|---:|---:|---:|")
    for kind, figures in results.items():
        print(f"| {kind} | {figures['command_cpu_s']:.2f} | {figures['wall_s']:.2f} | {figures['server_cpu_s']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
