"""nanoGPT's documented CPU recipe as a side-by-side reference for the training benchmark.

    .venv/bin/python benchmarks/nanogpt_reference.py --text PATH [--max-iters N] [--threads N] [--json]

An unmodified nanoGPT (commit 3adf61e, MIT, with its LICENCE) lives outside the project in the shared
folder (`find_anchor`). Nothing of it is copied into llmforge: at run time the anchor is copied into a
scratch directory, our own char-level data (same format as its `data/shakespeare_char/prepare.py`)
is written there, and its `train.py` runs as a subprocess with the README's CPU command. A second
subprocess, started from a scoring script this module writes into the same scratch copy, imports
nanoGPT's `model.py` and scores the checkpoint on every character of the validation split, so the
result is in the same unit as our own run: bits per UTF-8 byte of the last 10 % of the text.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
ANCHOR_NAME = "nanogpt-3adf61e"
# The README's CPU command, verbatim; max_iters/lr_decay_iters are appended from the argument.
README_ARGS = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
               "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
               "--n_embd=128", "--dropout=0.0"]
EVAL_INTERVAL = 250  # config/train_shakespeare_char.py's; checkpoints are only written at these evals
WARMUP_ITERS = 100  # the same config's; its get_lr divides by lr_decay_iters - warmup_iters (0 at max_iters=100)
ITER_RE = re.compile(r"^iter (\d+): loss (\S+), time ([\d.]+)ms")
STEP_RE = re.compile(r"^step (\d+): train loss (\S+), val loss (\S+)")
RESULT_TAG = "NANOGPT_REFERENCE_SCORE "

# Written into the scratch copy and run there, so that `import model` is nanoGPT's own model.py.
# Its forward(idx, targets) returns logits at every position but only the *mean* loss, so the
# summed cross-entropy is computed here (ignore_index=-1 for the padding of the last window).
SCORE_SCRIPT = """\
import json, sys
import numpy as np
import torch
import torch.nn.functional as F
from model import GPT, GPTConfig

ckpt_path, val_path, batch_windows = sys.argv[1], sys.argv[2], int(sys.argv[3])
ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
model = GPT(GPTConfig(**ckpt["model_args"]))
prefix = "_orig_mod."
model.load_state_dict({(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in ckpt["model"].items()})
model.eval()
block = ckpt["model_args"]["block_size"]
stream = torch.from_numpy(np.fromfile(val_path, dtype=np.uint16).astype(np.int64))
inputs, targets = stream[:-1], stream[1:]
n = len(targets)
pad = (-n) % block  # the last window is padded; its padded targets are -1 and ignored
inputs = torch.cat([inputs, torch.zeros(pad, dtype=torch.int64)]).view(-1, block)
targets = torch.cat([targets, torch.full((pad,), -1, dtype=torch.int64)]).view(-1, block)
total = 0.0
with torch.no_grad():
    for i in range(0, len(inputs), batch_windows):
        x, y = inputs[i:i + batch_windows], targets[i:i + batch_windows]
        logits, _ = model(x, y)
        total += F.cross_entropy(logits.view(-1, logits.size(-1)).double(), y.reshape(-1),
                                 ignore_index=-1, reduction="sum").item()
cfg = ckpt["config"]
print("RESULT_TAG" + json.dumps({
    "total_nats": total, "predicted": n, "params": sum(p.numel() for p in model.parameters()),
    "iter_num": int(ckpt["iter_num"]), "best_val_loss": float(ckpt["best_val_loss"]),
    "block_size": int(cfg["block_size"]), "batch_size": int(cfg["batch_size"]),
    "grad_accum": int(cfg["gradient_accumulation_steps"]), "vocab_size": int(ckpt["model_args"]["vocab_size"])}))
""".replace("RESULT_TAG", RESULT_TAG)


def find_anchor() -> Path:
    """`$LLMFORGE_SHARED_DATA/../anchors/nanogpt-3adf61e`, else `<repo>/../shared/anchors/nanogpt-3adf61e`."""
    env = os.environ.get("LLMFORGE_SHARED_DATA")
    base = Path(env).parent if env else REPO_ROOT.parent / "shared"
    path = base / "anchors" / ANCHOR_NAME
    if not (path / "train.py").is_file() or not (path / "model.py").is_file():
        raise SystemExit(f"nanoGPT anchor not found at {path} (expected train.py and model.py there; "
                         "set LLMFORGE_SHARED_DATA to the shared data folder whose parent holds anchors/)")
    return path


def split_text(text: str) -> tuple[str, str]:
    cut = int(len(text) * 0.9)  # shakespeare_char's split: characters, not bytes
    return text[:cut], text[cut:]


def prepare_char_data(text: str, data_dir: Path) -> dict[str, Any]:
    """Our own writer of prepare.py's format: uint16 ids, vocabulary = sorted characters of the whole text."""
    chars = sorted(set(text))
    if len(chars) > 65536:
        raise ValueError(f"{len(chars)} distinct characters do not fit nanoGPT's uint16 ids")
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = {i: ch for i, ch in enumerate(chars)}
    train_text, val_text = split_text(text)
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, part in (("train.bin", train_text), ("val.bin", val_text)):
        np.array([stoi[c] for c in part], dtype=np.uint16).tofile(data_dir / name)
    with open(data_dir / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": itos, "stoi": stoi}, f)
    return {"vocab_size": len(chars), "train_chars": len(train_text), "val_chars": len(val_text),
            "val_bytes": len(val_text.encode("utf-8"))}


def _child_env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # so that its log lines stream as they are printed
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def run_nanogpt(text_path: Path, *, max_iters: int = 2000, extra_args: list[str] | None = None,
                threads: int | None = None, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Train nanoGPT's CPU recipe on `text_path` in a scratch copy and score its checkpoint on the whole val split."""
    anchor = find_anchor()
    # The text exactly as llmforge's .txt reader gives it (BOM dropped, line ends made "\n"), so both
    # runs cut the same characters at 90 % and score the same validation bytes.
    text = Path(text_path).read_text(encoding="utf-8", errors="replace").removeprefix("\ufeff")
    dataset = "char_" + re.sub(r"\W", "_", Path(text_path).stem)  # a plain name: its configurator literal_evals values
    args = [*README_ARGS, f"--max_iters={max_iters}", f"--lr_decay_iters={max_iters}",
            f"--dataset={dataset}", "--out_dir=out-reference"]
    if max_iters < EVAL_INTERVAL:
        # No eval after iter 0 would happen, so no checkpoint would be saved: evaluate at the end instead.
        args.append(f"--eval_interval={max_iters}")
    if max_iters <= WARMUP_ITERS:
        # Keep the README's warmup fraction (100 of 2000) so the schedule has a decay and no 0/0.
        args.append(f"--warmup_iters={max_iters * WARMUP_ITERS // 2000}")
    args += extra_args or []
    env = _child_env(threads)
    with tempfile.TemporaryDirectory(prefix="nanogpt-ref-") as tmp:
        work = Path(tmp) / ANCHOR_NAME
        shutil.copytree(anchor, work)
        data = prepare_char_data(text, work / "data" / dataset)
        log(f"nanoGPT: {Path(text_path).name}: vocab {data['vocab_size']}, {data['train_chars']:,} train / "
            f"{data['val_chars']:,} val chars, {max_iters} iters")

        iters, last_loss, iter_ms, steps, tail, times = 0, math.nan, 0.0, [], [], []
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "train.py", *args], cwd=work, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail = (tail + [line])[-40:]
            if m := ITER_RE.match(line):
                iters, last_loss, iter_ms = iters + 1, float(m[2]), iter_ms + float(m[3])
                times.append(float(m[3]))
            elif m := STEP_RE.match(line):
                steps.append({"iter": int(m[1]), "train_loss": float(m[2]), "val_loss": float(m[3])})
                log(f"nanoGPT: {line} ({time.perf_counter() - t0:.0f}s)")
        rc = proc.wait()
        wall = time.perf_counter() - t0
        if rc != 0:
            raise RuntimeError(f"nanoGPT train.py exited with {rc}:\n" + "\n".join(tail))
        ckpt = work / "out-reference" / "ckpt.pt"
        if not ckpt.is_file():
            raise RuntimeError("nanoGPT saved no checkpoint (no eval after iter 0 improved val loss)")

        (work / "llmforge_score.py").write_text(SCORE_SCRIPT, encoding="utf-8")
        t1 = time.perf_counter()
        done = subprocess.run([sys.executable, "llmforge_score.py", str(ckpt), str(work / "data" / dataset / "val.bin"),
                               "256"], cwd=work, env=env, text=True, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"scoring exited with {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        score = json.loads(next(ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_TAG))[len(RESULT_TAG):])
        score_s = time.perf_counter() - t1

    tokens = score["batch_size"] * score["grad_accum"] * score["block_size"] * iters
    bits_per_byte = score["total_nats"] / math.log(2) / data["val_bytes"]
    result = {
        "text": Path(text_path).name, "params": score["params"], "vocab_size": score["vocab_size"],
        "iters": iters, "last_train_loss": last_loss, "steps": steps,
        "wall_seconds": round(wall, 2), "train_seconds": round(iter_ms / 1000, 2),
        "tokens_per_s": round(tokens / (iter_ms / 1000)) if iter_ms else None,
        "tokens_per_s_wall": round(tokens / wall),
        # Robust to other processes on a shared machine, and free of the eval iterations' cost.
        "median_iter_ms": round(statistics.median(times), 2) if times else None,
        "checkpoint_iter": score["iter_num"], "nanogpt_best_val_loss": round(score["best_val_loss"], 4),
        "val_chars": data["val_chars"], "val_bytes": data["val_bytes"],
        # The first validation character has no context inside the split, so it is the one not predicted.
        "val_predicted_chars": score["predicted"],
        "val_nats_per_char": round(score["total_nats"] / score["predicted"], 4),
        "bits_per_byte": round(bits_per_byte, 4), "score_seconds": round(score_s, 2),
        "command": shlex.join(["python", "train.py", *args]), "threads": threads, "cpu_count": os.cpu_count(),
    }
    log(f"nanoGPT: checkpoint of iter {result['checkpoint_iter']} scores {result['val_nats_per_char']} nats/char "
        f"= {result['bits_per_byte']} bits/byte on all {data['val_chars']:,} val chars ({score_s:.1f}s)")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, required=True, help="UTF-8 text file (90 %% train / 10 %% val by characters)")
    parser.add_argument("--max-iters", type=int, default=2000, help="the README's 2000 by default")
    parser.add_argument("--threads", type=int, default=None, help="OMP/MKL threads for the nanoGPT processes")
    parser.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    ns = parser.parse_args(argv)
    if not ns.text.is_file():
        raise SystemExit(f"{ns.text} not found")
    r = run_nanogpt(ns.text, max_iters=ns.max_iters, threads=ns.threads,
                    log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(f"nanoGPT {r['text']}: {r['params'] / 1e6:.2f}M params, {r['iters']} iters in {r['wall_seconds']:.1f}s wall "
          f"({r['train_seconds']:.1f}s in iters, {r['tokens_per_s']} tokens/s), ckpt iter {r['checkpoint_iter']} "
          f"(its val {r['nanogpt_best_val_loss']}): {r['val_nats_per_char']} nats/char, {r['bits_per_byte']} bits/byte")
    if ns.json:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
