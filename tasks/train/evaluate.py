"""The evaluate stage's logic: validation loss, bits per byte, and samples from a checkpoint."""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from llmforge import atomic
from llmforge.config import EvaluateConfig
from llmforge.fingerprint import file_record
from model.checkpoint import load_checkpoint_for
from model.generate import generate
from model.gpt import GPT, autocast_context
from model.tokenizer import SPECIAL_TOKENS, BpeTokenizer
from tasks.tokenize.stage import read_token_documents
from tasks.train import out_of_domain
from tasks.train.multiple_choice import evaluate_multiple_choice
from tasks.train.out_of_domain import score_text, unigram_log2_probs


def token_byte_lengths(tokenizer: BpeTokenizer) -> torch.Tensor:
    """UTF-8 bytes each token stands for (special tokens: none).

    Byte-level BPE spells every byte as one character, so a token's length in
    characters is its length in bytes; this makes bits per byte exact even for
    tokens that hold half of a multi-byte character.
    """
    lengths = torch.zeros(tokenizer.vocab_size, dtype=torch.long)
    for i in range(len(SPECIAL_TOKENS), tokenizer.vocab_size):
        lengths[i] = len(tokenizer.id_to_token(i))
    return lengths


@torch.no_grad()
def bits_per_byte(
    model: GPT, docs: list[np.ndarray], byte_lengths: torch.Tensor, max_tokens: int, batch_size: int = 8
) -> dict[str, float]:
    """Loss over non-overlapping context windows of the packed validation stream.

    Bits per byte = summed loss in nats / ln 2 / bytes of the predicted tokens: it
    does not depend on the tokenizer, so models with different vocabularies compare.
    """
    device = next(model.parameters()).device
    stream = torch.from_numpy(np.concatenate(docs)[: max_tokens + 1].astype(np.int64))
    seq_len = model.config.seq_len
    n_targets = len(stream) - 1
    n_windows = math.ceil(n_targets / seq_len) if n_targets > 0 else 0
    # Windows as rows; the last one is padded with an ignored target (-1).
    inputs = torch.zeros(n_windows * seq_len, dtype=torch.long)
    targets = torch.full((n_windows * seq_len,), -1, dtype=torch.long)
    inputs[:n_targets], targets[:n_targets] = stream[:-1], stream[1:]
    inputs, targets = inputs.view(n_windows, seq_len), targets.view(n_windows, seq_len)
    total_nats, total_bytes, total_tokens = 0.0, 0, 0
    started = time.perf_counter()
    for i in range(0, n_windows, batch_size):
        x, y = inputs[i : i + batch_size].to(device), targets[i : i + batch_size].to(device)
        with autocast_context(device):
            logits, _ = model(x)
        losses = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1), ignore_index=-1,
                                 reduction="none").cpu()
        flat = y.view(-1).cpu()
        counted = torch.where(flat >= 0, byte_lengths[flat.clamp(min=0)], 0)
        # Predicting a BOS (a document boundary) is not text; it counts neither loss nor bytes.
        mask = counted > 0
        total_nats += float(losses[mask].sum())
        total_bytes += int(counted.sum())
        total_tokens += int(mask.sum())
    seconds = max(time.perf_counter() - started, 1e-9)
    if total_tokens == 0:
        raise ValueError("the validation split holds no text tokens to score")
    return {
        "val_loss": total_nats / total_tokens,
        "val_bits_per_byte": total_nats / math.log(2) / total_bytes,
        "val_tokens": total_tokens,
        "val_bytes": total_bytes,
        "eval_tokens_per_s": n_targets / seconds,
    }


def samples(model: GPT, tokenizer: BpeTokenizer, config: EvaluateConfig) -> list[dict[str, Any]]:
    out = []
    for prompt in config.prompts:
        for temperature in config.temperatures:
            generator = torch.Generator().manual_seed(config.seed)
            ids = generate(model, [tokenizer.bos_id, *tokenizer.encode(prompt)], config.max_new_tokens,
                           temperature=temperature, top_k=50, stop_ids={tokenizer.bos_id}, generator=generator)
            ids = [i for i in ids if i != tokenizer.bos_id]
            out.append({"prompt": prompt, "temperature": temperature, "completion": tokenizer.decode(ids)})
    return out


def _rounded(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}


def checkpoint_row(checkpoint_dir: Path, model: GPT, state: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """One line of the comparison table: which weights, how big, how trained, how good."""
    weights = Path(checkpoint_dir) / "model.safetensors"
    return {
        "checkpoint": str(checkpoint_dir),
        "weights": hashlib.sha256(weights.read_bytes()).hexdigest()[:12],
        "stage": state.get("stage"),
        "step": state.get("step"),
        "parameters": model.num_parameters(),
        "tokens_seen": (state.get("metrics") or {}).get("tokens_seen"),
        "val_loss": metrics["val_loss"],
        "val_bits_per_byte": metrics["val_bits_per_byte"],
    }


def evaluate(checkpoint_dir: Path, tokenizer_path: Path, val_dir: Path, config: EvaluateConfig) -> dict[str, Any]:
    """`config.extra_texts`' unigram baseline counts the training split beside `val_dir`."""
    tokenizer = BpeTokenizer.from_file(tokenizer_path)
    model, state = load_checkpoint_for(checkpoint_dir, tokenizer.vocab_size, str(tokenizer_path))
    docs = read_token_documents(val_dir, config.max_val_tokens + 1)
    byte_lengths = token_byte_lengths(tokenizer)
    metrics = _rounded(bits_per_byte(model, docs, byte_lengths, config.max_val_tokens))
    metrics["checkpoint_step"] = state.get("step")
    comparison = [checkpoint_row(checkpoint_dir, model, state, metrics)]
    for other in config.compare_checkpoints:
        other_model, other_state = load_checkpoint_for(Path(other), tokenizer.vocab_size, str(tokenizer_path))
        other_metrics = _rounded(bits_per_byte(other_model, docs, byte_lengths, config.max_val_tokens))
        comparison.append(checkpoint_row(Path(other), other_model, other_state, other_metrics))
    result: dict[str, Any] = {"metrics": metrics, "samples": samples(model, tokenizer, config),
                              "comparison": comparison}
    if config.extra_texts:
        unigram = unigram_log2_probs(val_dir.parent / "train", tokenizer.vocab_size)
        result["out_of_domain"] = [score_text(model, tokenizer, byte_lengths, unigram, Path(path), config.max_val_tokens)
                                   for path in config.extra_texts]
        for row in result["out_of_domain"]:
            metrics[f"ood_bits_per_byte[{row['text']}]"] = row["bits_per_byte"]
    if config.multiple_choice_path:
        choice = evaluate_multiple_choice(
            model, tokenizer, Path(config.multiple_choice_path), config.multiple_choice_max_examples
        )
        metrics.update(choice.as_metrics())
        result["multiple_choice_skipped"] = choice.skipped
    return result


def describe_evaluate_inputs(workdir: Path, config: EvaluateConfig, known: dict[str, Any] | None) -> dict[str, Any]:
    """The multiple-choice file and the extra texts are inputs too: editing one makes the evaluation stale."""
    known = known or {}
    inputs: dict[str, Any] = {}
    if config.multiple_choice_path:
        path = Path(config.multiple_choice_path)
        inputs["multiple_choice"] = (file_record(path, known.get("multiple_choice")) if path.is_file()
                                     else {"missing": str(path)})
    if config.extra_texts:
        earlier = known.get("extra_texts", {})
        inputs["extra_texts"] = {
            str(p): file_record(Path(p), earlier.get(str(p))) if Path(p).is_file() else {"missing": str(p)}
            for p in config.extra_texts
        }
    return inputs


def update_history(path: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge this evaluation's rows into the run's evaluation history (one row per set of weights).

    Re-evaluating the same weights replaces their row, so the table compares
    checkpoints, not evaluation runs. Rows keep the order they first appeared in.
    """
    history: list[dict[str, Any]] = []
    if path.is_file():
        history = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_weights = {row["weights"]: i for i, row in enumerate(history)}
    for row in rows:
        if row["weights"] in by_weights:
            history[by_weights[row["weights"]]] = row
        else:
            by_weights[row["weights"]] = len(history)
            history.append(row)
    atomic.write_text(path, "".join(json.dumps(row) + "\n" for row in history))
    return history


def comparison_markdown(rows: list[dict[str, Any]]) -> str:
    columns = ["checkpoint", "weights", "stage", "step", "parameters", "tokens_seen", "val_loss", "val_bits_per_byte"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if row.get(c) is None else str(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def report_markdown(result: dict[str, Any]) -> str:
    lines = ["# Evaluation of the base model", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in result["metrics"].items()]
    if result.get("history"):
        lines += ["", "## Checkpoints compared (same validation data)", "", comparison_markdown(result["history"])]
    if result.get("out_of_domain"):
        lines += ["", *out_of_domain.markdown(result["out_of_domain"])]
    lines += ["", "## Samples", ""]
    for s in result["samples"]:
        completion = s["completion"].replace("\n", " ⏎ ")
        lines += [f"- **{s['prompt']!r}** (temperature {s['temperature']}): {completion}"]
    return "\n".join(lines) + "\n"


def write_reports(report_path: Path, metrics_path: Path, result: dict[str, Any]) -> None:
    atomic.write_json(metrics_path, result)
    atomic.write_text(report_path, report_markdown(result))
