"""The evaluate stage's logic: validation loss, bits per byte, and samples from a checkpoint."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from llmforge import atomic
from llmforge.config import EvaluateConfig
from llmforge.fingerprint import file_record
from model.checkpoint import load_checkpoint
from model.generate import generate
from model.gpt import GPT
from model.tokenizer import SPECIAL_TOKENS, BpeTokenizer
from tasks.multiple_choice import evaluate_multiple_choice
from tasks.tokenize_stage import read_token_documents


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
def bits_per_byte(model: GPT, docs: list[np.ndarray], byte_lengths: torch.Tensor, max_tokens: int) -> dict[str, float]:
    """Loss over non-overlapping context windows of the packed validation stream.

    Bits per byte = summed loss in nats / ln 2 / bytes of the predicted tokens: it
    does not depend on the tokenizer, so models with different vocabularies compare.
    """
    stream = torch.from_numpy(np.concatenate(docs)[: max_tokens + 1].astype(np.int64))
    seq_len = model.config.seq_len
    total_nats, total_bytes, total_tokens = 0.0, 0, 0
    for start in range(0, len(stream) - 1, seq_len):
        window = stream[start : start + seq_len + 1]
        x, y = window[:-1].unsqueeze(0), window[1:].unsqueeze(0)
        logits, _ = model(x)
        losses = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1), reduction="none")
        counted = byte_lengths[y.view(-1)]
        # Predicting a BOS (a document boundary) is not text; it counts neither loss nor bytes.
        mask = counted > 0
        total_nats += float(losses[mask].sum())
        total_bytes += int(counted.sum())
        total_tokens += int(mask.sum())
    if total_tokens == 0:
        raise ValueError("the validation split holds no text tokens to score")
    return {
        "val_loss": total_nats / total_tokens,
        "val_bits_per_byte": total_nats / math.log(2) / total_bytes,
        "val_tokens": total_tokens,
        "val_bytes": total_bytes,
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


def evaluate(checkpoint_dir: Path, tokenizer_path: Path, val_dir: Path, config: EvaluateConfig) -> dict[str, Any]:
    model, state = load_checkpoint(checkpoint_dir)
    model.eval()
    tokenizer = BpeTokenizer.from_file(tokenizer_path)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(
            f"tokenizer {tokenizer_path} has {tokenizer.vocab_size} tokens but the checkpoint in {checkpoint_dir} "
            f"was trained with {model.config.vocab_size}"
        )
    docs = read_token_documents(val_dir, config.max_val_tokens + 1)
    metrics = bits_per_byte(model, docs, token_byte_lengths(tokenizer), config.max_val_tokens)
    metrics = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
    metrics["checkpoint_step"] = state.get("step")
    result: dict[str, Any] = {"metrics": metrics, "samples": samples(model, tokenizer, config)}
    if config.multiple_choice_path:
        choice = evaluate_multiple_choice(
            model, tokenizer, Path(config.multiple_choice_path), config.multiple_choice_max_examples
        )
        metrics.update(choice.as_metrics())
        result["multiple_choice_skipped"] = choice.skipped
    return result


def describe_evaluate_inputs(workdir: Path, config: EvaluateConfig, known: dict[str, Any] | None) -> dict[str, Any]:
    """The multiple-choice file is an input too: editing it makes the evaluation stale."""
    if not config.multiple_choice_path:
        return {}
    path = Path(config.multiple_choice_path)
    if not path.is_file():
        return {"multiple_choice": {"missing": str(path)}}
    return {"multiple_choice": file_record(path, (known or {}).get("multiple_choice"))}


def report_markdown(result: dict[str, Any]) -> str:
    lines = ["# Evaluation of the base model", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in result["metrics"].items()]
    lines += ["", "## Samples", ""]
    for s in result["samples"]:
        completion = s["completion"].replace("\n", " ⏎ ")
        lines += [f"- **{s['prompt']!r}** (temperature {s['temperature']}): {completion}"]
    return "\n".join(lines) + "\n"


def write_reports(report_path: Path, metrics_path: Path, result: dict[str, Any]) -> None:
    atomic.write_json(metrics_path, result)
    atomic.write_text(report_path, report_markdown(result))
