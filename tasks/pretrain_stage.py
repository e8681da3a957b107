"""The pretrain stage's logic: token shards in, a base GPT checkpoint and a training report out."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from llmforge import atomic
from llmforge.config import PretrainConfig
from model.checkpoint import save_checkpoint
from model.gpt import GPT, GPTConfig
from model.tokenizer import BpeTokenizer
from model.train import BatchSampler, StepLog, TrainConfig, pack_documents, train
from tasks.tokenize_stage import read_token_documents


def pick_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def model_config(config: PretrainConfig, vocab_size: int) -> GPTConfig:
    return GPTConfig(
        vocab_size=vocab_size, n_layer=config.n_layer, n_head=config.n_head, n_embd=config.n_embd, seq_len=config.seq_len
    )


def train_config(config: PretrainConfig) -> TrainConfig:
    return TrainConfig(
        steps=config.steps,
        batch_size=config.batch_size,
        seq_len=config.seq_len,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        grad_clip=config.grad_clip,
        seed=config.seed,
        log_every=config.log_every,
    )


def pretrain(
    tokens_dir: Path,
    tokenizer_path: Path,
    checkpoint_dir: Path,
    config: PretrainConfig,
    on_log: Callable[[StepLog], None] | None = None,
) -> dict[str, Any]:
    """Train a GPT from scratch on the train token shards and save it as the base checkpoint."""
    tokenizer = BpeTokenizer.from_file(tokenizer_path)
    stream = pack_documents(read_token_documents(tokens_dir / "train"), config.seq_len)
    if int(stream.max()) >= tokenizer.vocab_size:
        raise ValueError(
            f"token id {int(stream.max())} in {tokens_dir / 'train'} is outside the tokenizer's vocabulary "
            f"({tokenizer.vocab_size}): the shards and {tokenizer_path} do not belong together"
        )
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    model = GPT(model_config(config, tokenizer.vocab_size)).to(device)
    sampler = BatchSampler(stream, config.batch_size, config.seq_len, seed=config.seed)
    started = time.perf_counter()
    history, _ = train(model, sampler, train_config(config), device=device, on_log=on_log)
    seconds = time.perf_counter() - started
    metrics = {
        "parameters": model.num_parameters(),
        "train_tokens_available": int(stream.numel()),
        "steps": config.steps,
        "tokens_seen": config.steps * config.batch_size * config.seq_len,
        "initial_loss": round(history[0].loss, 4),
        "final_loss": round(history[-1].loss, 4),
        "tokens_per_s": round(config.steps * config.batch_size * config.seq_len / seconds, 1),
        "train_seconds": round(seconds, 2),
        "device": device,
    }
    save_checkpoint(
        checkpoint_dir,
        model.cpu(),
        {
            "stage": "base",
            "step": config.steps,
            "tokenizer_vocab_size": tokenizer.vocab_size,
            "pretrain_config": config.model_dump(mode="json"),
            "history": [vars(h) for h in history],
            "metrics": metrics,
        },
    )
    return {"metrics": metrics, "history": [vars(h) for h in history]}


def training_report(metrics: dict[str, Any], history: list[dict[str, Any]]) -> str:
    lines = ["# Pretraining", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in metrics.items()]
    lines += ["", "## Loss curve", "", "| step | loss | lr | tokens/s |", "|---|---|---|---|"]
    lines += [f"| {h['step']} | {h['loss']:.4f} | {h['lr']:.2e} | {h['tokens_per_s']:.0f} |" for h in history]
    return "\n".join(lines) + "\n"


def write_training_report(path: Path, result: dict[str, Any]) -> None:
    atomic.write_text(path, training_report(result["metrics"], result["history"]))
