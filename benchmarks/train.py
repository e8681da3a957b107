"""Training benchmark: throughput and memory per model preset, and quality at a fixed wall-time budget.

    .venv/bin/python benchmarks/train.py                      # both parts, markdown on stdout (~5 minutes on 2 cores)
    .venv/bin/python benchmarks/train.py --part quality       # only the 95-second Shakespeare run
    .venv/bin/python benchmarks/train.py --part throughput --presets small --batch-size 32   # e.g. on a GPU

Progress goes to stderr; the markdown section for BENCHMARKS.md (and, with --json, one JSON line
per result) to stdout. Torch-only on purpose: nothing here or in what it imports touches Prefect,
so the script runs unchanged on a bare GPU machine. Everything trains through the project's own
`model.train.train` loop with the optimizer from `model.optim.make_optimizer`.

Parts:

* throughput: each preset of `model/presets.py` (GPT at the pipeline's default vocabulary,
  random tokens: speed does not depend on the data) runs a few steps of `train()` in a fresh
  subprocess; tokens/s over the steps after a warm-up step, and peak memory (CPU: peak RSS
  growth of that process; CUDA: `max_memory_allocated`). On CUDA, bf16 autocast (the loop's
  default there) and MFU = tokens/s x FLOPs/token / peak, FLOPs/token = 6 x non-embedding
  parameters + 12 x layers x width x context (attention scores and weighted sum, fwd + bwd).
* quality: tinyshakespeare, first 90 % of the characters to train on, last 10 % to validate on
  (nanoGPT's split); a BPE tokenizer (`train_bpe`) trained on the training part only; training
  for a wall-time budget (default 95 s), after which validation bits per byte =
  total nats over all validation tokens / ln 2 / validation UTF-8 bytes.

The budget is enforced with the schedule's own clock: `OptimizerSettings(time_budget_s=...)`
makes the warmdown end on time, and an `on_step_end` hook stops `train()` once the budget is
spent (TrainConfig has no time limit of its own yet). Tokenizer training, encoding and
evaluation are outside the budget, as they are in the nanoGPT reference.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from benchmarks.machine import cpu_model, total_ram  # noqa: E402
from model.gpt import GPT, GPTConfig  # noqa: E402
from model.optim import OptimizerSettings, make_optimizer  # noqa: E402
from model.presets import PRESETS, preset_shape  # noqa: E402
from model.tokenizer import BpeTokenizer, available_cores, train_bpe  # noqa: E402
from model.train import BatchSampler, StepLog, TrainConfig, evaluate_loss, pack_documents, train  # noqa: E402

SHAKESPEARE = "text/en/tinyshakespeare.txt"
PIPELINE_VOCAB = 32_768  # TokenizeConfig.vocab_size's default: what the presets meet in the pipeline
# Dense bf16 peak (no sparsity) of the accelerators we expect to see, for MFU.
PEAK_BF16_FLOPS: dict[str, float] = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
# Sequences per step on CPU, where the presets' GPU batch sizes would take minutes per step.
CPU_BATCH: dict[str, int] = {"tiny": 16, "small": 2, "gpt2": 1}

# Measured on this 2-core machine by the author (quoted, not re-run here).
NANOGPT_REFERENCE = {"bits_per_byte": 2.72, "seconds": 95.0, "tokens_per_s": 19_800, "params": "0.8M", "vocab": 65}
UNTUNED_REFERENCE = {"bits_per_byte": 2.27, "seconds": 95.0, "params": "1M", "vocab": 1024}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def shared_data_dir() -> Path:
    configured = os.environ.get("LLMFORGE_SHARED_DATA")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"


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


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine spent busy since boot (Linux), to spot other load during a run."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


# ------------------------------------------------------------------ quality


@dataclass
class QualitySetup:
    """The quality run's settings; the defaults are the best found on the 2-core machine (BENCHMARKS.md)."""

    vocab: int = 2048  # 1,536 ~ 2,048 < 3,072 < 4,096 at 2 threads: a bigger head costs steps
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    # Short windows won every comparison at this budget (32 < 64 < 128 < 256 tokens at equal
    # tokens per step): more of the few steps go to local statistics, and attention is cheaper.
    seq_len: int = 32
    batch_size: int = 64
    optimizer: str = "muon"
    lr: float = 6e-3  # AdamW peak (embeddings, head, gains; everything under --optimizer adamw)
    muon_lr: float = 0.04
    muon_momentum: float = 0.95
    embed_lr_scale: float = 1.0
    head_lr_scale: float = 1.0
    warmup_steps: int = 20
    warmdown_frac: float = 0.8  # 0.4 < 0.6 < 0.8 in bits/byte at 300 steps
    # ~4 epochs in 95 s on 2 cores: decay is the regulariser that pays (0 > 0.1 > 0.4 > 0.2 in bits/byte).
    weight_decay: float = 0.2  # AdamW's, on embeddings and head
    muon_weight_decay: float = 0.2
    grad_clip: float = 1.0
    budget_s: float = 95.0
    # > 0: a fixed number of steps instead of the time budget (schedule by steps), for
    # comparing settings on a machine whose speed others' load makes unsteady.
    steps: int = 0
    seed: int = 1337


class _BudgetSpent(Exception):
    """Raised from train()'s step-end hook once the wall-time budget is used up."""


def split_text(text: str) -> tuple[str, str]:
    cut = int(len(text) * 0.9)  # nanoGPT's shakespeare_char split: characters, not bytes
    return text[:cut], text[cut:]


def run_quality(setup: QualitySetup, device: torch.device) -> dict[str, Any]:
    path = shared_data_dir() / SHAKESPEARE
    if not path.is_file():
        raise SystemExit(f"{path} not found (set LLMFORGE_SHARED_DATA)")
    train_text, val_text = split_text(path.read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    tokenizer: BpeTokenizer = train_bpe([train_text], setup.vocab)
    bos = tokenizer.bos_id
    # One document each: BOS, then the whole text. Every validation token after BOS is scored.
    train_ids = [bos, *tokenizer.encode(train_text)]
    val_ids = [bos, *tokenizer.encode(val_text)]
    log(f"tokenizer: vocab {tokenizer.vocab_size}, {len(train_ids)} train / {len(val_ids)} val tokens "
        f"({len(val_text.encode('utf-8')) / (len(val_ids) - 1):.2f} val bytes/token), {time.perf_counter() - t0:.1f}s")

    torch.manual_seed(setup.seed)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=setup.n_layer, n_head=setup.n_head,
                       n_embd=setup.n_embd, seq_len=setup.seq_len)
    model = GPT(config).to(device)
    # Steps only bound the run from above: the budget's clock ends it, and the schedule's
    # progress is max(step fraction, time fraction), so a huge step count leaves time in charge.
    fixed = setup.steps > 0
    cfg = TrainConfig(steps=setup.steps if fixed else 10_000_000, batch_size=setup.batch_size, seq_len=setup.seq_len,
                      learning_rate=setup.lr, warmup_steps=setup.warmup_steps, weight_decay=setup.weight_decay,
                      grad_clip=setup.grad_clip, seed=setup.seed, log_every=100)
    settings = OptimizerSettings(
        kind=setup.optimizer,  # type: ignore[arg-type]
        schedule="wsd", warmdown_frac=setup.warmdown_frac, final_lr_ratio=0.0,
        time_budget_s=None if fixed else setup.budget_s,
        muon_lr=setup.muon_lr, muon_momentum=setup.muon_momentum, muon_weight_decay=setup.muon_weight_decay,
        embed_lr_scale=setup.embed_lr_scale, head_lr_scale=setup.head_lr_scale,
    )  # fmt: skip
    optimizer = make_optimizer(model, cfg, settings)
    schedule = optimizer.lr_schedule  # type: ignore[attr-defined]
    sampler = BatchSampler(pack_documents([train_ids], setup.seq_len), setup.batch_size, setup.seq_len, seed=setup.seed)
    steps_done = 0

    def on_log(entry: StepLog) -> None:
        log(f"  step {entry.step:5d}  loss {entry.loss:.3f}  lr {entry.lr:.2e}  {entry.tokens_per_s:,.0f} tok/s"
            f"  {schedule.elapsed_s():.0f}s")

    def stop_when_spent(done: int, _opt: torch.optim.Optimizer) -> None:
        nonlocal steps_done
        steps_done = done
        if not fixed and schedule.budget_spent():
            raise _BudgetSpent

    sync(device)
    busy_before, own_before = busy_cpu_seconds(), own_cpu_seconds()
    start = time.perf_counter()
    try:
        train(model, sampler, cfg, device=device, on_log=on_log, optimizer=optimizer, on_step_end=stop_when_spent)
    except _BudgetSpent:
        pass
    sync(device)
    seconds = time.perf_counter() - start
    busy_after, own_cpu = busy_cpu_seconds(), own_cpu_seconds() - own_before
    # The machine is shared: CPU time others used while we trained explains slow runs.
    other_cpu = None if busy_before is None or busy_after is None else busy_after - busy_before - own_cpu
    tokens = steps_done * setup.batch_size * setup.seq_len

    t0 = time.perf_counter()
    nats, n_tokens = evaluate_loss(model, [val_ids], setup.seq_len, batch_size=32, device=device)
    val_bytes = len(val_text.encode("utf-8"))
    bits_per_byte = nats * n_tokens / math.log(2) / val_bytes
    log(f"val: {nats:.4f} nats/token over {n_tokens} tokens = {bits_per_byte:.4f} bits/byte "
        f"({time.perf_counter() - t0:.1f}s to evaluate)")
    return {
        **asdict(setup),
        "vocab_actual": tokenizer.vocab_size,
        "params": model.num_parameters(),
        "non_embedding_params": non_embedding_params(model),
        "steps": steps_done,
        "train_seconds": seconds,
        "tokens": tokens,
        "tokens_per_s": tokens / seconds,
        "epochs": tokens / len(train_ids),
        "val_nats_per_token": nats,
        "val_tokens": n_tokens,
        "val_bytes": val_bytes,
        "bits_per_byte": bits_per_byte,
        "threads": torch.get_num_threads(),
        "own_cpu_per_s": own_cpu / seconds,
        "other_cpu_per_s": None if other_cpu is None else max(0.0, other_cpu) / seconds,
        "device": str(device),
    }


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


def markdown(throughput: list[dict[str, Any]], quality: dict[str, Any] | None, device: torch.device,
             command: str) -> str:
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
    if quality:
        q = quality
        ref = NANOGPT_REFERENCE
        lines += ["### Quality at a fixed wall-time budget (tinyshakespeare)", "",
                  "| run | params | vocab | train s | tokens/s | val bits/byte | × nanoGPT bits/byte |",
                  "|---|---:|---:|---:|---:|---:|---:|",
                  f"| **ours**: {q['optimizer']}, {q['n_layer']}×{q['n_embd']}, batch {q['batch_size']} × "
                  f"{q['seq_len']} | {q['params'] / 1e6:.2f}M | {q['vocab_actual']:,} BPE | {q['train_seconds']:.1f} | "
                  f"{q['tokens_per_s']:,.0f} | **{q['bits_per_byte']:.3f}** | "
                  f"{q['bits_per_byte'] / ref['bits_per_byte']:.2f}× |",
                  f"| nanoGPT CPU recipe (quoted) | {ref['params']} | 65 chars | {ref['seconds']:.0f} | "
                  f"{ref['tokens_per_s']:,} | {ref['bits_per_byte']:.2f} | 1.00× |",
                  f"| untuned Llama-shaped (quoted) | {UNTUNED_REFERENCE['params']} | 1,024 BPE | 95 | | "
                  f"{UNTUNED_REFERENCE['bits_per_byte']:.2f} | "
                  f"{UNTUNED_REFERENCE['bits_per_byte'] / ref['bits_per_byte']:.2f}× |", "",
                  f"Ours: {q['steps']} steps, {q['tokens']:,} tokens ({q['epochs']:.1f} epochs of the training "
                  f"part); validation {q['val_tokens']:,} tokens / {q['val_bytes']:,} bytes, "
                  f"{q['val_nats_per_token']:.4f} nats/token. While it trained, this process used "
                  f"{q['own_cpu_per_s']:.2f} cores and other processes {_fmt(q['other_cpu_per_s'])}. Settings: {json.dumps(_settings(q))}.", ""]
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "unknown" if x is None else f"{x:.2f}"


def _settings(q: dict[str, Any]) -> dict[str, Any]:
    keys = [f.name for f in QualitySetup.__dataclass_fields__.values()]  # type: ignore[attr-defined]
    return {k: q[k] for k in keys}


LOAD_BEFORE = load_average()


def main(argv: list[str] | None = None) -> None:
    defaults = QualitySetup()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["all", "throughput", "quality"], default="all")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: the cores this process may use)")
    p.add_argument("--json", action="store_true", help="also print each result as one JSON line")
    p.add_argument("--presets", default=",".join(PRESETS))
    p.add_argument("--throughput-steps", type=int, default=0, help="timed steps per preset (0: 3 on CPU, 20 on CUDA)")
    p.add_argument("--throughput-vocab", type=int, default=PIPELINE_VOCAB)
    p.add_argument("--throughput-worker", help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=0, help="throughput batch (0: preset's on CUDA, small on CPU)")
    for field, value in asdict(defaults).items():
        if field == "batch_size":
            p.add_argument("--quality-batch-size", dest="q_batch_size", type=int, default=value)
        else:
            p.add_argument(f"--{field.replace('_', '-')}", dest=f"q_{field}", type=type(value), default=value)
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
    quality = None
    if args.part in ("all", "quality"):
        setup = QualitySetup(**{f: getattr(args, f"q_{f}") for f in asdict(defaults)})
        quality = run_quality(setup, device)
    if args.json:
        for r in [*throughput, *([quality] if quality else [])]:
            print(json.dumps(r))
    command = "python benchmarks/train.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    print(markdown(throughput, quality, device, command.strip()))


if __name__ == "__main__":
    main()
