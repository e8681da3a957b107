"""Training benchmark: throughput and memory per model preset, quality at a fixed wall-time budget
side by side with nanoGPT, and throughput beside a busy process.

    .venv/bin/python benchmarks/train.py                      # every part, markdown on stdout (~15 minutes on 2 cores)
    .venv/bin/python benchmarks/train.py --part quality       # ours vs nanoGPT on each English text
    .venv/bin/python benchmarks/train.py --part quality --texts tinyshakespeare.txt
    .venv/bin/python benchmarks/train.py --part loaded        # tokens/s quiet and beside a busy process
    .venv/bin/python benchmarks/train.py --part throughput --presets small --batch-size 32   # e.g. on a GPU

Progress goes to stderr; the markdown section for BENCHMARKS.md (and, with --json, one JSON line
per result) to stdout.

Parts:

* throughput: each preset of `model/presets.py` (GPT at the pipeline's default vocabulary,
  random tokens: speed does not depend on the data) runs a few steps of `train()` in a fresh
  subprocess; tokens/s over the steps after a warm-up step, and peak memory (CPU: peak RSS
  growth of that process; CUDA: `max_memory_allocated`). On CUDA, bf16 autocast (the loop's
  default there) and MFU = tokens/s x FLOPs/token / peak, FLOPs/token = 6 x non-embedding
  parameters + 12 x layers x width x context (attention scores and weighted sum, fwd + bwd).
  Torch-only: it runs unchanged on a bare GPU machine.
* quality and loaded: through the `llmforge` commands with `benchmarks/quality.yaml`
  (`benchmarks/train_quality.py`), so they measure what a user of the default recipe gets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from benchmarks.machine import cpu_model, total_ram  # noqa: E402
from model.gpt import GPT, GPTConfig  # noqa: E402
from model.presets import PRESETS, preset_shape  # noqa: E402
from model.tokenizer import available_cores  # noqa: E402
from model.train import BatchSampler, TrainConfig, train  # noqa: E402

PIPELINE_VOCAB = 32_768  # TokenizeConfig.vocab_size's default: what the presets meet in the pipeline
# Dense bf16 peak (no sparsity) of the accelerators we expect to see, for MFU.
PEAK_BF16_FLOPS: dict[str, float] = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
# Sequences per step on CPU, where the presets' GPU batch sizes would take minutes per step.
CPU_BATCH: dict[str, int] = {"tiny": 16, "small": 2, "gpt2": 1}

def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def non_embedding_params(model: GPT) -> int:
    # The embedding is a lookup (no FLOPs); the output head is a real matmul and counts.
    return model.num_parameters() - model.embed.weight.numel()


def flops_per_token(model: GPT, seq_len: int) -> float:
    c = model.config
    return 6.0 * non_embedding_params(model) + 12.0 * c.n_layer * c.n_embd * seq_len


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def max_rss_bytes() -> int:
    # ru_maxrss is KiB on Linux and bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


# ------------------------------------------------------------------ throughput


def throughput_worker(preset: str, batch_size: int, steps: int, vocab: int, device: torch.device) -> dict[str, Any]:
    """Runs in its own process so peak RSS belongs to this preset alone."""
    n_layer, n_head, n_embd = preset_shape(preset)
    seq_len = PRESETS[preset].seq_len
    torch.manual_seed(0)
    rss_before = max_rss_bytes()
    model = GPT(GPTConfig(vocab_size=vocab, n_layer=n_layer, n_head=n_head, n_embd=n_embd, seq_len=seq_len))
    model.to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stream = torch.randint(0, vocab, (max(1_000_000, 4 * batch_size * (seq_len + 1)),))
    sampler = BatchSampler(stream, batch_size, seq_len, seed=0)
    # warmup 1 step: the first step allocates optimizer state and (on CUDA) picks kernels.
    warm = 1
    cfg = TrainConfig(steps=warm + steps, batch_size=batch_size, seq_len=seq_len, warmup_steps=1, log_every=1)
    marks: list[float] = []

    def mark(steps_done: int, _opt: torch.optim.Optimizer) -> None:
        sync(device)
        marks.append(time.perf_counter())

    train(model, sampler, cfg, device=device, on_step_end=mark)
    seconds = marks[-1] - marks[warm - 1]
    tokens_per_s = steps * batch_size * seq_len / seconds
    if device.type == "cuda":
        peak_mem = torch.cuda.max_memory_allocated(device)
    else:
        peak_mem = max_rss_bytes() - rss_before
    peak = peak_flops(device)
    fpt = flops_per_token(model, seq_len)
    return {
        "preset": preset,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "params": model.num_parameters(),
        "non_embedding_params": non_embedding_params(model),
        "vocab": vocab,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "steps_timed": steps,
        "seconds": seconds,
        "tokens_per_s": tokens_per_s,
        "peak_memory_bytes": peak_mem,
        "flops_per_token": fpt,
        "mfu": tokens_per_s * fpt / peak if peak else None,
        "threads": torch.get_num_threads(),
    }


def run_throughput(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    results = []
    for preset in args.presets.split(","):
        if args.batch_size:
            batch = args.batch_size
        else:
            batch = PRESETS[preset].batch_size if device.type == "cuda" else CPU_BATCH.get(preset, 1)
        cmd = [
            sys.executable, str(Path(__file__).resolve()), "--throughput-worker", preset,
            "--batch-size", str(batch), "--throughput-steps", str(args.throughput_steps),
            "--throughput-vocab", str(args.throughput_vocab), "--device", str(device),
            "--threads", str(args.threads),
        ]  # fmt: skip
        log(f"throughput: {preset} at batch {batch} ...")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            # Out of memory is a result too ("does not fit"), not a reason to lose the other presets.
            log(proc.stderr[-2000:])
            results.append({"preset": preset, "batch_size": batch, "error": proc.stderr.strip().splitlines()[-1:]})
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        log(f"  {result['tokens_per_s']:.0f} tokens/s, peak {result['peak_memory_bytes'] / 2**20:.0f} MiB")
        results.append(result)
    return results


# ------------------------------------------------------------------ report


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine_line(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, bf16 autocast"
    return (f"{cpu_model()}, {available_cores()} cores, {total_ram()} RAM, {platform.system()}, "
            f"Python {platform.python_version()}, torch {torch.__version__} (CPU, float32, "
            f"{torch.get_num_threads()} torch thread(s))")


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def markdown(throughput: list[dict[str, Any]], quality: list[dict[str, Any]] | None, loaded: dict[str, Any] | None,
             device: torch.device, command: str) -> str:
    lines = ["## Training", "", f"`{command}`", "", f"Machine: {machine_line(device)}; load average before the "
             f"run {LOAD_BEFORE}, after {load_average()}.", ""]
    if throughput:
        lines += ["### Throughput and memory per preset", "",
                  "| preset | params (non-emb.) | vocab | batch × context | tokens/s | peak memory | MFU |",
                  "|---|---:|---:|---|---:|---:|---:|"]
        for r in throughput:
            if "error" in r:
                lines.append(f"| {r['preset']} | | | {r['batch_size']} × | did not run: {' '.join(r['error'])} | | |")
                continue
            mfu = f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None else "–"
            lines.append(f"| {r['preset']} | {r['params'] / 1e6:.1f}M ({r['non_embedding_params'] / 1e6:.1f}M) | "
                         f"{r['vocab']:,} | {r['batch_size']} × {r['seq_len']} | {r['tokens_per_s']:,.0f} | "
                         f"{mib(r['peak_memory_bytes'])} | {mfu} |")
        lines.append("")
    if quality or loaded:
        from benchmarks.train_quality import loaded_markdown, quality_markdown

        lines += quality_markdown(quality) if quality else []
        lines += loaded_markdown(loaded) if loaded else []
    return "\n".join(lines)


LOAD_BEFORE = load_average()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["all", "throughput", "quality", "loaded"], default="all")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: the cores this process may use)")
    p.add_argument("--json", action="store_true", help="also print each result as one JSON line")
    p.add_argument("--presets", default=",".join(PRESETS))
    p.add_argument("--throughput-steps", type=int, default=0, help="timed steps per preset (0: 3 on CPU, 20 on CUDA)")
    p.add_argument("--throughput-vocab", type=int, default=PIPELINE_VOCAB)
    p.add_argument("--throughput-worker", help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=0, help="throughput batch (0: preset's on CUDA, small on CPU)")
    p.add_argument("--texts", default="", help="quality: comma-separated file names in text/en (default: all)")
    p.add_argument("--config", default=None, help="quality and loaded: another YAML instead of benchmarks/quality.yaml")
    p.add_argument("--loaded-budget-s", type=float, default=30.0, help="loaded: seconds of training per run")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads or available_cores())
    device = pick_device(args.device)
    if args.throughput_worker:  # the child process of run_throughput
        result = throughput_worker(args.throughput_worker, args.batch_size, args.throughput_steps,
                                   args.throughput_vocab, device)
        print(json.dumps(result))
        return

    if not args.throughput_steps:
        args.throughput_steps = 20 if device.type == "cuda" else 3
    throughput = run_throughput(args, device) if args.part in ("all", "throughput") else []
    quality = loaded = None
    if args.part in ("all", "quality", "loaded"):
        # The quality and loaded parts run the llmforge commands; throughput alone stays torch-only.
        from benchmarks.train_quality import QUALITY_CONFIG, english_texts, run_loaded, run_quality

        config = Path(args.config) if args.config else QUALITY_CONFIG
    if args.part in ("all", "quality"):
        quality = run_quality(english_texts([t for t in args.texts.split(",") if t]), config)
    if args.part in ("all", "loaded"):
        loaded = run_loaded(args.loaded_budget_s, config)
    if args.json:
        for r in [*throughput, *(quality or []), *([loaded] if loaded else [])]:
            print(json.dumps(r))
    command = "python benchmarks/train.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    print(markdown(throughput, quality, loaded, device, command.strip()))


if __name__ == "__main__":
    main()
