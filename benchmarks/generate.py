"""Generation benchmark: KV-cached engine vs re-running the whole context, and batched sampling.

    .venv/bin/python benchmarks/generate.py               # from the repository root, ~1-2 minutes on 2 cores
    .venv/bin/python benchmarks/generate.py --repeats 5   # more repeats, less noise

Prints a markdown section for BENCHMARKS.md on stdout (progress goes to stderr). Not a test:
it asserts only that cached and uncached greedy decoding gave the same tokens.

Model: the "tiny" preset's shape (4 layers, 128 wide, 4 heads, context 256) with a 32,768-token
vocabulary (the project tokenizer's), random weights (speed does not depend on them), float32
on CPU. Every prompt is 16 tokens.

Speeds are tokens per CPU-second of this process (see `measure`).

* single sequence: tokens/s of `generate(...)` (cached) and of the previous implementation
  (the whole context through the model for every token, kept here as `generate_uncached`),
  greedy, at a few output lengths; best of `--repeats`;
* batched sampling: K=16 samples of one prompt (temperature 1, top-k 50), all generated
  tokens per second, by `sample_many` (one prefill, 16 rows decoded together) vs 16 calls of
  cached `generate` one after the other vs 16 uncached calls (timed on 2, scaled: the calls
  are independent and alike).

Runs on one torch thread unless `--threads` says otherwise (see the comment in `main`).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from benchmarks.machine import cpu_model, total_ram  # noqa: E402
from model.engine import GenerationParams, sample_many  # noqa: E402
from model.generate import generate, sample_next  # noqa: E402
from model.gpt import GPT, GPTConfig  # noqa: E402
from model.presets import preset_shape  # noqa: E402

VOCAB = 32_768
PROMPT_LEN = 16
K = 16


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@torch.no_grad()
def generate_uncached(
    model: GPT, prompt_ids: list[int], max_new_tokens: int, temperature: float = 1.0,
    top_k: int | None = None, generator: torch.Generator | None = None,
) -> list[int]:  # fmt: skip
    """The previous `generate`: every token re-runs the model on the last seq_len tokens."""
    ids = list(prompt_ids)
    for _ in range(max_new_tokens):
        logits, _ = model(torch.tensor([ids[-model.config.seq_len :]]))
        ids.append(sample_next(logits[0, -1], temperature, top_k, generator))
    return ids[len(prompt_ids) :]


def measure(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best CPU seconds of each run, the runs interleaved within every repeat.

    CPU time of the (single-threaded) process, not wall time: on a shared machine other
    jobs steal whole slices of wall time, and interleaving gives every run the same odds.
    """
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 128, 240])
    parser.add_argument("--batch-length", type=int, default=128, help="tokens per sample in the K=16 run")
    # One thread by default: a tiny model's per-token work is too small to split, and on a
    # shared machine OpenMP threads that wait for a busy core make every op many times slower.
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    n_layer, n_head, n_embd = preset_shape("tiny")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, n_layer=n_layer, n_head=n_head, n_embd=n_embd, seq_len=256)).eval()
    prompt = torch.randint(0, VOCAB, (PROMPT_LEN,), generator=torch.Generator().manual_seed(1)).tolist()
    generate(model, prompt, 8, temperature=0.0)  # warm-up: first-call allocations and kernel choice
    generate_uncached(model, prompt, 8, temperature=0.0)

    single = []
    for n in args.lengths:
        if PROMPT_LEN + n > model.config.seq_len:
            raise SystemExit(f"prompt {PROMPT_LEN} + {n} tokens is over the context of {model.config.seq_len}")
        cached_ids = generate(model, prompt, n, temperature=0.0)
        uncached_ids = generate_uncached(model, prompt, n, temperature=0.0)
        assert cached_ids == uncached_ids, f"cached and uncached greedy decoding differ at length {n}"
        t = measure(
            {
                "cached": lambda: generate(model, prompt, n, temperature=0.0),
                "uncached": lambda: generate_uncached(model, prompt, n, temperature=0.0),
            },
            args.repeats,
        )
        t_cached, t_uncached = t["cached"], t["uncached"]
        single.append((n, n / t_uncached, n / t_cached))
        log(f"length {n}: uncached {n / t_uncached:.0f} tok/s, cached {n / t_cached:.0f} tok/s")

    n = args.batch_length
    params = GenerationParams(max_new_tokens=n, temperature=1.0, top_k=50)
    g = torch.Generator().manual_seed(2)
    t = measure(
        {
            "batch": lambda: sample_many(model, prompt, K, params, generator=g),
            "in turn": lambda: [generate(model, prompt, n, temperature=1.0, top_k=50, generator=g) for _ in range(K)],
        },
        args.repeats,
    )
    t_batch, t_seq = t["batch"], t["in turn"]
    t_unc2 = measure(
        {"uncached": lambda: [generate_uncached(model, prompt, n, 1.0, 50, g) for _ in range(2)]}, 1
    )["uncached"]
    t_unc = t_unc2 * K / 2
    log(f"K={K}: batched {K * n / t_batch:.0f}, in turn {K * n / t_seq:.0f}, uncached {K * n / t_unc:.0f} tok/s")

    command = "flock /tmp/llmforge-bench.lock .venv/bin/python benchmarks/generate.py " + shlex.join(sys.argv[1:])
    out = [
        "## Generation",
        "",
        "```bash",
        command.strip(),
        "```",
        "",
        f"Machine: {os.cpu_count()} cores, {cpu_model()}, torch threads: {torch.get_num_threads()}, {total_ram()} RAM; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}; torch {torch.__version__}. "
        f"Tokens per CPU-second of the process (one thread, so this is wall speed on an idle core; "
        f"a shared machine's wall clock is noisier), best of {args.repeats} interleaved runs. Model: the `tiny` preset shape ({n_layer} layers, {n_embd} wide, "
        f"{n_head} heads, context 256), vocabulary {VOCAB:,}, random weights, float32 on CPU; "
        f"prompt {PROMPT_LEN} tokens. Cached and uncached greedy outputs were identical at every length. "
        "The uncached column is the previous `generate` loop with today's sampler, so its ratio is the cache's alone.",
        "",
        "### One sequence, greedy (tokens/s)",
        "",
        "| new tokens | uncached (previous `generate`) | KV cache (`generate`) | speed-up |",
        "|---:|---:|---:|---:|",
        *(f"| {n} | {u:.0f} | {c:.0f} | **{c / u:.1f}×** |" for n, u, c in single),
        "",
        f"### {K} samples of one prompt, {n} new tokens each (temperature 1, top-k 50; generated tokens/s)",
        "",
        "| method | tokens/s | vs batched |",
        "|---|---:|---:|",
        f"| `sample_many(..., {K})`: one prefill, {K} rows decoded together | {K * n / t_batch:.0f} | 1.0× |",
        f"| {K} cached `generate` calls in turn | {K * n / t_seq:.0f} | {t_batch / t_seq:.2f}× |",
        f"| {K} uncached calls in turn (2 timed, scaled) | {K * n / t_unc:.0f} | {t_batch / t_unc:.3f}× |",
        "",
        f"Batched sampling is {t_seq / t_batch:.1f}× the throughput of cached calls in turn and "
        f"{t_unc / t_batch:.0f}× that of the previous uncached `generate`.",
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
