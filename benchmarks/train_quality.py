"""The training benchmark's quality and loaded-machine parts, run through the commands a user runs.

* quality: for each English text in the shared data (tinyshakespeare and the others beside it),
  `llmforge data`, `tokenize` and `pretrain` with `benchmarks/quality.yaml` (the text as the source,
  nanoGPT's split, 95 s of training with the default recipe), then nanoGPT's documented CPU recipe
  on the same text and split (`benchmarks/nanogpt_reference.py`), one after the other so they never
  share the cores. Both are scored on the whole validation split in bits per UTF-8 byte.
* loaded: `llmforge pretrain` on tinyshakespeare for a short budget on a quiet machine, then beside
  a busy-loop process that this script starts and stops, with the thread governor
  (`pretrain.adapt_threads`) on and off; tokens/s of each.

The commands use a private llmforge home and Prefect home, and the local server they start
(stopped at the end); fixed costs are reported beside the training time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.command_overhead import _run, _shared_data, private_env
from benchmarks.nanogpt_reference import run_nanogpt

HERE = Path(__file__).resolve().parent
QUALITY_CONFIG = HERE / "quality.yaml"
TEXTS = "text/en"
SHAKESPEARE = "tinyshakespeare.txt"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def english_texts(names: list[str] | None = None) -> list[Path]:
    folder = _shared_data() / TEXTS
    texts = sorted(folder.glob("*.txt"))
    if names:
        texts = [t for t in texts if t.name in names]
    if not texts:
        raise SystemExit(f"no texts in {folder} (set LLMFORGE_SHARED_DATA)")
    # tinyshakespeare first: the headline figure.
    return sorted(texts, key=lambda t: t.name != SHAKESPEARE)


def _config_with(base: Path, out: Path, pretrain: dict[str, Any]) -> Path:
    config = yaml.safe_load(base.read_text())
    config["pretrain"] = {**config["pretrain"], **pretrain}
    out.write_text(yaml.safe_dump(config))
    return out


def _pretrain_metrics(workdir: Path) -> dict[str, Any]:
    return json.loads((workdir / "checkpoints" / "base" / "manifest.json").read_text())["metrics"]


def ours_on(text: Path, config: Path, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    """data, tokenize, pretrain on one text; the pretrain manifest's figures and each command's cost."""
    commands: dict[str, dict[str, float]] = {}
    for stage, extra in (("data", ["--source", str(text)]), ("tokenize", []), ("pretrain", [])):
        cpu, wall = _run([stage, "--config", str(config), "--workdir", str(workdir), *extra], env)
        commands[stage] = {"cpu_s": round(cpu, 2), "wall_s": round(wall, 2)}
        log(f"  llmforge {stage}: {wall:.1f} s")
    metrics = _pretrain_metrics(workdir)
    tokens = json.loads((workdir / "tokens" / "manifest.json").read_text())["metrics"]
    return {"commands": commands, "metrics": metrics, "tokens": tokens}


def run_quality(texts: list[Path], config: Path = QUALITY_CONFIG) -> list[dict[str, Any]]:
    base = Path(tempfile.mkdtemp(prefix="llmforge-quality-"))
    env = private_env(base, base / "home")
    rows = []
    try:
        for text in texts:
            log(f"{text.name}: ours ({config.name})")
            ours = ours_on(text, config, base / f"w-{text.stem}", env)
            m = ours["metrics"]
            log(f"  {m['val_bits_per_byte']:.4f} bits/byte, {m['steps']} steps, {m['tokens_per_s']:,.0f} tokens/s")
            log(f"{text.name}: nanoGPT CPU recipe")
            reference = run_nanogpt(text, log=log)
            log(f"  {reference['bits_per_byte']:.4f} bits/byte, {reference['wall_seconds']:.0f} s")
            rows.append({"text": text.name, "ours": ours, "nanogpt": reference})
    finally:
        _run(["server", "stop"], env)
        shutil.rmtree(base, ignore_errors=True)
    return rows


BUSY_LOOP = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def run_loaded(budget_s: float = 30.0, config: Path = QUALITY_CONFIG) -> dict[str, Any]:
    """Tokens/s of a short `llmforge pretrain`: quiet, and beside one busy process with the governor on and off."""
    text = english_texts([SHAKESPEARE])[0]
    base = Path(tempfile.mkdtemp(prefix="llmforge-loaded-"))
    env = private_env(base, base / "home")
    workdir = base / "w"
    results: dict[str, Any] = {"budget_s": budget_s}
    try:
        for stage, extra in (("data", ["--source", str(text)]), ("tokenize", [])):
            _run([stage, "--config", str(config), "--workdir", str(workdir), *extra], env)
        for name, adapt, busy in (("quiet", True, False), ("loaded, governor on", True, True),
                                  ("loaded, governor off", False, True), ("quiet again", True, False)):
            run_config = _config_with(config, base / f"{len(results)}.yaml",
                                      {"time_budget_s": budget_s, "adapt_threads": adapt})
            spinner = (subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(budget_s * 4 + 60)])
                       if busy else None)
            try:
                started = time.perf_counter()
                _run(["pretrain", "--force", "--config", str(run_config), "--workdir", str(workdir)], env)
                wall = time.perf_counter() - started
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
            m = _pretrain_metrics(workdir)
            results[name] = {"tokens_per_s": m["tokens_per_s"], "steps": m["steps"], "wall_s": round(wall, 1),
                             "val_bits_per_byte": m.get("val_bits_per_byte"),
                             "threads": m.get("threads", {}).get("changes", [])}
            log(f"{name}: {m['tokens_per_s']:,.0f} tokens/s, {len(results[name]['threads'])} thread change(s)")
    finally:
        _run(["server", "stop"], env)
        shutil.rmtree(base, ignore_errors=True)
    return results


def quality_markdown(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["### Quality at a fixed wall-time budget: ours vs nanoGPT's CPU recipe, side by side", "",
             "Each text: the first 90 % of its characters to train on, the last 10 % to validate on; both scored "
             "on the whole validation split. Ours: `llmforge data/tokenize/pretrain --config benchmarks/quality.yaml` "
             "(the default recipe, 95 s of training). nanoGPT: its README's CPU command (2,000 iterations).", "",
             "| text | ours bits/byte | nanoGPT bits/byte | ours ÷ nanoGPT | ours: steps, tokens/s, train s | "
             "ours: commands wall s (data + tokenize + pretrain) | nanoGPT: tokens/s, wall s |",
             "|---|---:|---:|---:|---|---:|---|"]
    for row in rows:
        m, ref, cmds = row["ours"]["metrics"], row["nanogpt"], row["ours"]["commands"]
        wall = sum(c["wall_s"] for c in cmds.values())
        parts = " + ".join(f"{c['wall_s']:.1f}" for c in cmds.values())
        lines.append(
            f"| {row['text']} | **{m['val_bits_per_byte']:.3f}** | {ref['bits_per_byte']:.3f} | "
            f"{m['val_bits_per_byte'] / ref['bits_per_byte']:.2f}× | {m['steps']}, {m['tokens_per_s']:,.0f}, "
            f"{m['train_seconds']:.1f} | {wall:.1f} ({parts}) | "
            f"{ref['tokens_per_s']:,.0f}, {ref['wall_seconds']:.1f} |")
    first = rows[0]["ours"]
    lines += ["", f"Ours: {first['metrics']['parameters'] / 1e6:.2f}M parameters, vocabulary "
              f"{first['tokens']['vocab_size']:,} BPE; nanoGPT: {rows[0]['nanogpt']['params'] / 1e6:.2f}M parameters, "
              "characters.", ""]
    return lines


def loaded_markdown(result: dict[str, Any]) -> list[str]:
    quiet = result["quiet"]["tokens_per_s"]
    lines = [f"### Throughput beside a busy process (`llmforge pretrain`, {result['budget_s']:.0f} s budget, tinyshakespeare)",
             "", "| run | tokens/s | × quiet | thread changes |", "|---|---:|---:|---|"]
    for name in ("quiet", "loaded, governor on", "loaded, governor off", "quiet again"):
        r = result[name]
        changes = "; ".join(f"{c['threads_from']}→{c['threads_to']} at step {c['step']}" for c in r["threads"]) or "none"
        lines.append(f"| {name} | {r['tokens_per_s']:,.0f} | {r['tokens_per_s'] / quiet:.2f}× | {changes} |")
    return [*lines, ""]
