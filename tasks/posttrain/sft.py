"""The SFT stage's logic: the base model learns to be an assistant from conversations.

The data is the built-in generated mix (arithmetic word problems answered step by
step, many through the calculator; identity; refusals) plus any conversation files
the config names. Only the assistant's tokens are trained (the chat format's
mask); the loop is the pretraining loop with masked targets. Afterwards the model
answers held-out problems of the RL family greedily: the accuracy is SFT's headline.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from llmforge import atomic
from llmforge.config import SftConfig
from llmforge.fingerprint import file_record
from model.checkpoint import load_checkpoint_for, save_checkpoint
from model.distributed import pick_device
from model.gpt import GPT
from model.sft_batches import ConversationBatches, SFTExample, render_examples
from model.threads import governor_for
from model.tokenizer import BpeTokenizer
from model.train import StepLog, TrainConfig, train
from tasks.posttrain.conversations import load_conversations
from tasks.posttrain.problems import greedy_accuracy
from tasks.posttrain.sft_data import FAMILY, IdentityConfig, build_sft_mix, heldout_set
from tasks.progress import Progress, phase

log = logging.getLogger(__name__)


def sft_examples(tokenizer: BpeTokenizer, config: SftConfig, max_tokens: int) -> tuple[list[SFTExample], dict[str, Any]]:
    """The generated mix plus the configured files, rendered; counts per source."""
    rng = random.Random(config.seed)
    fractions = {"arithmetic": config.arithmetic_fraction, "multi_step": config.multi_step_fraction,
                 "identity": config.identity_fraction, "refusal": config.refusal_fraction}
    identity = IdentityConfig(name=config.identity.model_name, maker=config.identity.maker)
    generated = build_sft_mix(rng, config.generated_conversations, fractions, identity, config.tool_fraction)
    rendered = render_examples(tokenizer, generated, max_tokens, config.too_long)
    examples = list(rendered.examples)
    counts: dict[str, Any] = {"generated": dict(rendered.counts)}
    if config.conversation_files:
        from_files = render_examples(tokenizer, load_conversations(config.conversation_files), max_tokens,
                                     config.too_long)
        examples += from_files.examples
        counts["files"] = dict(from_files.counts)
    if not examples:
        raise ValueError("no SFT examples: the generated mix is empty and no conversation file gave any")
    return examples, counts


def describe_sft_inputs(workdir: Path, config: SftConfig, known: dict[str, Any] | None) -> dict[str, Any]:
    """Local conversation files are inputs too: editing one makes the SFT model stale."""
    records: dict[str, Any] = {}
    for i, name in enumerate(config.conversation_files):
        path = Path(name)
        key = f"conversations_{i}"
        if path.is_file():
            records[key] = file_record(path, (known or {}).get(key))
        else:
            records[key] = {"not_a_local_file": name}
    return records


def sft_train_config(config: SftConfig, seq_len: int) -> TrainConfig:
    return TrainConfig(steps=config.steps, batch_size=config.batch_size, seq_len=seq_len,
                       learning_rate=config.learning_rate, warmup_steps=config.warmup_steps,
                       weight_decay=config.weight_decay, grad_clip=config.grad_clip, seed=config.seed,
                       log_every=config.log_every)


def sft(
    base_dir: Path,
    tokenizer_path: Path,
    out_dir: Path,
    config: SftConfig,
    on_log: Callable[[StepLog], None] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    tokenizer = BpeTokenizer.from_file(tokenizer_path)
    model, base_state = load_checkpoint_for(base_dir, tokenizer.vocab_size, str(tokenizer_path))
    seq_len = model.config.seq_len
    # A rendered example of seq_len + 1 tokens gives seq_len (input, target) pairs.
    examples, counts = sft_examples(tokenizer, config, seq_len + 1)
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    batches = ConversationBatches([(e.ids, e.mask) for e in examples], config.batch_size, seq_len, seed=config.seed)
    problems = heldout_set(FAMILY, n=config.eval_problems)
    model.to(device)
    before, _ = greedy_accuracy(model, tokenizer, problems, config.eval_max_new_tokens,
                                phase(progress, "held-out problems before", len(problems), "problem"))
    threads = governor_for(device, config.adapt_threads, log.warning)
    on_step = phase(progress, "training", config.steps)
    started = time.perf_counter()
    try:
        history, _ = train(model, batches, sft_train_config(config, seq_len), device=device, on_log=on_log,
                           threads=threads, on_step_end=None if on_step is None else lambda done, _opt: on_step(done))
    finally:
        if threads is not None:
            threads.restore()
    seconds = time.perf_counter() - started
    accuracy, examples_shown = greedy_accuracy(model, tokenizer, problems, config.eval_max_new_tokens,
                                               phase(progress, "held-out problems after", len(problems), "problem"))
    if progress is not None:
        progress.finish()
    metrics = {
        "examples": len(examples),
        "target_tokens": sum(sum(e.mask[1:]) for e in examples),
        "steps": config.steps,
        "initial_loss": round(history[0].loss, 4),
        "final_loss": round(history[-1].loss, 4),
        "train_seconds": round(seconds, 2),
        "heldout_problems": len(problems),
        "heldout_accuracy_before": round(before, 4),
        "heldout_accuracy": round(accuracy, 4),
    }
    if threads is not None:
        metrics["threads"] = threads.summary()
    result = {"metrics": metrics, "counts": counts, "history": [vars(h) for h in history], "examples": examples_shown}
    save_sft_checkpoint(out_dir, model, base_state, tokenizer.vocab_size, config, result)
    return result


def save_sft_checkpoint(
    out_dir: Path, model: GPT, base_state: dict[str, Any], vocab_size: int, config: SftConfig, result: dict[str, Any]
) -> None:
    save_checkpoint(out_dir, model.cpu(), {
        "stage": "sft",
        "step": config.steps,
        "base_step": base_state.get("step"),
        "tokenizer_vocab_size": vocab_size,
        "sft_config": config.model_dump(mode="json"),
        "history": result["history"],
        "metrics": result["metrics"],
    })


def sft_report(result: dict[str, Any]) -> str:
    lines = ["# Supervised fine-tuning", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in result["metrics"].items()]
    lines += ["", "## Data", ""]
    for source, counts in result["counts"].items():
        lines.append(f"- {source}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    lines += ["", "## Held-out problems (greedy)", ""]
    for ex in result["examples"]:
        reply = str(ex["reply"]).replace("\n", " ⏎ ")
        lines.append(f"- {'✅' if ex['correct'] else '❌'} {ex['question']} (answer {ex['answer']}) → {reply}")
    return "\n".join(lines) + "\n"


def write_sft_report(path: Path, result: dict[str, Any]) -> None:
    atomic.write_text(path, sft_report(result))
