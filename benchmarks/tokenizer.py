"""Tokenizer benchmark: encoding throughput, process scaling, compression and training time.

    .venv/bin/python benchmarks/tokenizer.py               # from the repository root, ~2 minutes on 2 cores
    .venv/bin/python benchmarks/tokenizer.py --repeats 5   # more repeats, less noise

Prints a markdown section for BENCHMARKS.md on stdout (progress goes to stderr). Needs the
shared data (``$LLMFORGE_SHARED_DATA`` or ``../shared/data``). Not a test: it asserts only
that every encoder gave the same ids, nothing about speed.

What it measures, all on ``shared/data/text`` (each file read with its real encoding):

* training: ``train_bpe`` at ``--vocab-size`` on all the text, seconds per MB (1 MB = 10^6
  bytes of UTF-8);
* throughput: the text cut into ~4 KB documents at paragraph breaks (web-page sized), encoded
  by each path in one process, best of ``--repeats``; English books and all languages;
* scaling: all the documents (twice) in 1 worker process vs 2 worker processes each encoding
  half (balanced by bytes), timed from a common start to the last finish;
* compression: bytes and characters per token, per language, of a tokenizer trained on the
  first 90 % of every file and measured on the last 10 % (held out), and in-sample.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.machine import cpu_model, total_ram  # noqa: E402

import tiktoken  # noqa: E402
import tokenizers  # noqa: E402

from model.tokenizer import BpeTokenizer, available_cores, train_bpe  # noqa: E402

# shared/data/SOURCES.md: the one file that is not UTF-8. The BOM of zh/ is kept as U+FEFF.
KNOWN_ENCODINGS = {"fr/germinal-zola-latin1-crlf.txt": "latin-1"}
DOC_BYTES = 4_000
SCALING_COPIES = 2
BURN_ITERATIONS = 30_000_000  # about a second of one core, like the encoding runs
NANOCHAT_REFERENCE = (
    "nanochat's tokenizer (vocab 65,536, trained on ~2B characters of FineWeb-Edu) reports 4.86 bytes/token on "
    "its FineWeb-Edu validation text (`scripts.tok_eval`, \"Ratio\" = bytes / tokens; e.g. the report published "
    "with `nanochat-students/nanochat-tokenizer-2B` on the Hugging Face Hub)"
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def shared_data_dir() -> Path:
    configured = os.environ.get("LLMFORGE_SHARED_DATA")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"


def read_texts(root: Path) -> dict[str, str]:
    texts = {}
    for path in sorted((root / "text").rglob("*.txt")):
        name = path.relative_to(root / "text").as_posix()
        texts[name] = path.read_bytes().decode(KNOWN_ENCODINGS.get(name, "utf-8"))
    if not texts:
        raise SystemExit(f"no text files under {root / 'text'}")
    return texts


def documents(text: str, target_bytes: int = DOC_BYTES) -> list[str]:
    """`text` cut at paragraph breaks into pieces of about `target_bytes` (they concatenate back to `text`)."""
    docs, current, size = [], [], 0
    for paragraph in text.splitlines(keepends=True):
        current.append(paragraph)
        size += len(paragraph.encode("utf-8"))
        # A blank line ends a paragraph; text with few blank lines is cut at any line end.
        if (size >= target_bytes and paragraph.strip() == "") or size >= 4 * target_bytes:
            docs.append("".join(current))
            current, size = [], 0
    if current:
        docs.append("".join(current))
    return docs


def n_bytes(texts: Sequence[str]) -> int:
    return sum(len(t.encode("utf-8")) for t in texts)


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


# --- scaling across processes --------------------------------------------------------------


def _worker(tokenizer_path: str, docs: list[str], barrier, results) -> None:
    tok = BpeTokenizer.from_file(tokenizer_path)
    tok.encode_batch(docs[:50], num_threads=1)  # warm up (page in the ranks, the regex)
    barrier.wait()
    start = time.time()
    n_tokens = sum(len(ids) for ids in tok.encode_batch(docs, num_threads=1))
    results.put((start, time.time(), n_tokens))


def _burn_worker(iterations: int, barrier, results) -> None:
    # Pure CPU work with no I/O, no memory traffic and no shared state: how well this
    # machine runs two busy processes at once, whatever the code (the ceiling for ours).
    barrier.wait()
    start, x = time.time(), 0
    for i in range(iterations):
        x += i * i
    results.put((start, time.time(), iterations))


def run_processes(tokenizer_path: str, parts: list[list[str]]) -> tuple[float, int]:
    """Wall seconds from the common start to the last finish, with one process per part."""
    return _run([(_worker, (tokenizer_path, part)) for part in parts])


def run_burn(iterations: int, n_processes: int) -> tuple[float, int]:
    return _run([(_burn_worker, (iterations // n_processes,))] * n_processes)


def _run(jobs: list[tuple[Callable[..., None], tuple]]) -> tuple[float, int]:
    ctx = mp.get_context("spawn")  # no inherited thread pools, the same start-up as a process pool worker
    barrier, results = ctx.Barrier(len(jobs)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, results)) for target, args in jobs]
    for p in procs:
        p.start()
    got = [results.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"worker failed with exit code {p.exitcode}")
    return max(end for _, end, _ in got) - min(start for start, _, _ in got), sum(n for _, _, n in got)


def halves(docs: list[str]) -> list[list[str]]:
    # Greedy by size, largest first: the two halves differ by at most one document's bytes.
    parts: list[list[str]] = [[], []]
    sizes = [0, 0]
    for doc in sorted(docs, key=lambda d: -len(d.encode("utf-8"))):
        k = sizes.index(min(sizes))
        parts[k].append(doc)
        sizes[k] += len(doc.encode("utf-8"))
    return parts


# --- report ------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu, ram = cpu_model(), total_ram()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
        commit += " (with uncommitted changes)" if dirty.strip() else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "cpus": f"{os.cpu_count()} (usable by this process: {available_cores()})",
        "cpu": cpu,
        "ram": ram,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": f"tokenizers {tokenizers.__version__}, tiktoken {tiktoken.__version__}",
        "commit": commit,
    }


def command_line() -> str:
    python = Path(sys.executable)
    try:
        python = python.relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join([str(python), *sys.argv])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab-size", type=int, default=32_768)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=shared_data_dir(), help="the shared data folder")
    args = parser.parse_args()

    texts = read_texts(args.data)
    all_bytes = n_bytes(list(texts.values()))
    english = {n: t for n, t in texts.items() if n.startswith("en/")}
    log(f"{len(texts)} files, {all_bytes / 1e6:.2f} MB; training vocab {args.vocab_size} ...")

    # Training time on all the text.
    start = time.perf_counter()
    tok = train_bpe(list(texts.values()), args.vocab_size)
    train_s = time.perf_counter() - start
    if tok.encoder_backend != "tiktoken":
        raise SystemExit(f"the fast path is off for this tokenizer: {tok.fast_path_problem}")

    # Held-out compression: train on the first 90 % of each file, measure on the last 10 %.
    log("training the held-out tokenizer ...")
    cut = {n: int(len(t) * 0.9) for n, t in texts.items()}
    held_tok = train_bpe([t[: cut[n]] for n, t in texts.items()], args.vocab_size)
    compression = []
    for name, text in texts.items():
        held = text[cut[name] :]
        compression.append(
            (
                name,
                len(held.encode("utf-8")) / len(held_tok.encode(held)),
                len(held) / len(held_tok.encode(held)),
                len(text.encode("utf-8")) / len(tok.encode(text)),
            )
        )
    held_all = [t[cut[n] :] for n, t in texts.items()]
    held_tokens = sum(len(ids) for ids in held_tok.encode_batch(held_all))
    held_en = [t[cut[n] :] for n, t in english.items()]
    held_en_tokens = sum(len(ids) for ids in held_tok.encode_batch(held_en))

    # Throughput, one process.
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "tokenizer.json")
        tok.save(path)
        tok = BpeTokenizer.from_file(path)  # as the tokenize stage loads it
        raw_hf = tok.tokenizer
        enc = tok.tiktoken_encoding  # the tiktoken.Encoding itself, to show what the wrapper costs
        assert enc is not None
        corpora = {
            "English books": [d for t in english.values() for d in documents(t)],
            "all languages": [d for t in texts.values() for d in documents(t)],
        }
        threads = available_cores()
        methods: list[tuple[str, Callable[[list[str]], list[list[int]]]]] = [
            ("HF `tokenizers` `Tokenizer.encode`, one call per document (1 thread)",
             lambda docs: [raw_hf.encode(d, add_special_tokens=False).ids for d in docs]),
            (f"HF `tokenizers` `encode_batch` (Rayon, {threads} threads)",
             lambda docs: [e.ids for e in raw_hf.encode_batch(docs, add_special_tokens=False)]),
            ("tiktoken `encode_ordinary`, one call per document (1 thread)",
             lambda docs: [enc.encode_ordinary(d) for d in docs]),
            ("**ours** `BpeTokenizer.encode`, one call per document (1 thread)",
             lambda docs: [tok.encode(d) for d in docs]),
            ("**ours** `BpeTokenizer.encode_batch(num_threads=1)`",
             lambda docs: tok.encode_batch(docs, num_threads=1)),
            (f"**ours** `BpeTokenizer.encode_batch()` ({threads} threads)",
             lambda docs: tok.encode_batch(docs)),
        ]  # fmt: skip
        speeds: dict[str, dict[str, float]] = {name: {} for name, _ in methods}
        identical = True
        for corpus_name, docs in corpora.items():
            size = n_bytes(docs)
            reference = None
            for name, fn in methods:
                log(f"{corpus_name}: {name} ...")
                seconds, ids = best_time(lambda: fn(docs), args.repeats)
                speeds[name][corpus_name] = size / 1e6 / seconds
                reference = ids if reference is None else reference
                identical &= ids == reference

        # Scaling across processes: all documents, twice, so each run encodes for about a
        # second and process start-up and scheduling noise stay small next to it.
        log("processes: 1 vs 2 ...")
        docs = corpora["all languages"] * SCALING_COPIES
        one_runs, two_runs, burn_one, burn_two = [], [], [], []
        for _ in range(args.repeats):  # interleaved, so a noisy moment hits both sides alike
            one_runs.append(run_processes(path, [docs]))
            two_runs.append(run_processes(path, halves(docs)))
            burn_one.append(run_burn(BURN_ITERATIONS, 1)[0])
            burn_two.append(run_burn(BURN_ITERATIONS, 2)[0])
        (one_s, one_tokens), (two_s, two_tokens) = min(one_runs), min(two_runs)
        assert one_tokens == two_tokens
        burn_speedup = min(burn_one) / min(burn_two)
        scaling_bytes = n_bytes(docs)

    info = machine()
    out = [
        "## Tokenizer",
        "",
        "```bash",
        command_line(),
        "```",
        "",
        f"Machine: {info['cpus']} CPUs, {info['cpu']}, {info['ram']} RAM; {info['os']}; Python {info['python']}; "
        f"{info['versions']}; commit {info['commit']}. Best of {args.repeats} runs; 1 MB = 10^6 bytes of UTF-8. "
        "On a shared machine single figures can vary noticeably between runs; compare ratios within one run.",
        "",
        f"Text: the {len(texts)} files of `shared/data/text` ({all_bytes / 1e6:.2f} MB; English books "
        f"{n_bytes(list(english.values())) / 1e6:.2f} MB), cut at paragraph breaks into "
        f"{len(corpora['English books'])} / {len(corpora['all languages'])} documents of about {DOC_BYTES // 1000} KB. "
        f"Tokenizer: `train_bpe` at vocab {tok.vocab_size:,} on all of it.",
        "",
        "### Encoding throughput, one process",
        "",
        "| encoder | English MB/s | × HF encode | all languages MB/s | × HF encode |",
        "|---|---:|---:|---:|---:|",
    ]
    base = speeds[methods[0][0]]
    for name, _ in methods:
        s = speeds[name]
        out.append(
            f"| {name} | {s['English books']:.2f} | {s['English books'] / base['English books']:.2f}× "
            f"| {s['all languages']:.2f} | {s['all languages'] / base['all languages']:.2f}× |"
        )
    out += [
        "",
        f"Identical ids from every encoder on every document: **{'yes' if identical else 'NO'}**. "
        "`BpeTokenizer.encode` is tiktoken plus a UTF-8 validity check (lone surrogates raise instead of "
        "becoming U+FFFD). Threads scale less than processes: tiktoken releases the GIL while it encodes, but "
        "each call still holds it to take the text in and build the list of ids.",
        "",
        f"### Processes (all documents × {SCALING_COPIES}, {scaling_bytes / 1e6:.1f} MB; `encode_batch(num_threads=1)` in each)",
        "",
        "| processes | wall s | MB/s | speed-up |",
        "|---:|---:|---:|---:|",
        f"| 1 | {one_s:.2f} | {scaling_bytes / 1e6 / one_s:.2f} | 1.00× |",
        f"| 2 (half the documents each) | {two_s:.2f} | {scaling_bytes / 1e6 / two_s:.2f} | {one_s / two_s:.2f}× |",
        f"| 1 vs 2, a pure-Python CPU loop instead (the machine's own ceiling) | | | {burn_speedup:.2f}× |",
        "",
        f"Target ≥ 1.8×: **{'met' if one_s / two_s >= 1.8 else 'not met'}** on this machine "
        f"({available_cores()} usable cores), where two processes of a plain CPU loop reach {burn_speedup:.2f}×.",
        "",
        f"### Compression at vocab {tok.vocab_size:,}",
        "",
        "Held out: trained on the first 90 % of every file, measured on the last 10 %. In-sample: the tokenizer "
        "above (trained on everything) on whole files.",
        "",
        "| file | held-out bytes/token | held-out chars/token | in-sample bytes/token |",
        "|---|---:|---:|---:|",
    ]
    out += [f"| `{name}` | {b:.2f} | {c:.2f} | {ins:.2f} |" for name, b, c, ins in compression]
    held_all_bytes, held_en_bytes = n_bytes(held_all), n_bytes(held_en)
    out += [
        f"| **English books** | **{held_en_bytes / held_en_tokens:.2f}** | {sum(map(len, held_en)) / held_en_tokens:.2f} | |",
        f"| **all files** | **{held_all_bytes / held_tokens:.2f}** | {sum(map(len, held_all)) / held_tokens:.2f} | |",
        "",
        f"Reference point, not like for like: {NANOCHAT_REFERENCE}. Ours is trained on "
        f"{all_bytes / 1e6:.1f} MB of books in seven languages, over 200 times less text, half the vocabulary, "
        "shared between scripts; and our split keeps digit runs of up to 3 (nanochat: 2).",
        "",
        "### BPE training time",
        "",
        "| text | vocab | seconds | seconds per MB |",
        "|---|---:|---:|---:|",
        f"| all shared text, {all_bytes / 1e6:.2f} MB | {tok.vocab_size:,} | {train_s:.1f} | {train_s / (all_bytes / 1e6):.2f} |",
        "",
        f"`tokenizers`' trainer uses all {available_cores()} cores (Rayon).",
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
