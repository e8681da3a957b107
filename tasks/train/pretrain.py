"""The pretrain stage's logic: token shards in, a base GPT checkpoint and a training report out."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from llmforge import atomic
from llmforge.config import PretrainConfig
from model import distributed
from model.checkpoint import load_training_state, read_training_state, save_checkpoint, save_training_state
from model.gpt import GPT, GPTConfig
from model.packed_loader import PackedLoader
from model.tokenizer import BpeTokenizer
from model.train import BatchSampler, StepLog, TrainConfig, make_optimizer, pack_documents, train
from tasks.train.evaluate import bits_per_byte, token_byte_lengths
from tasks.tokenize.stage import read_token_documents


def pick_device(requested: str, local_rank: int = 0) -> str:
    """The device this process trains on; under torchrun on CUDA each process takes its own GPU."""
    device = requested
    if requested == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and distributed.env_info().enabled:
        return f"cuda:{local_rank}"
    return device


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
        grad_accum_steps=config.grad_accum_steps(),
        compile=config.compile,
    )


# Fields that change how a run is executed or logged but not the weights it
# produces, so they may differ between an interrupted run and its resumption.
# nproc may change too when total_batch_tokens is fixed: the steps see the same windows.
RESUME_FREE_FIELDS = frozenset({"device", "log_every", "checkpoint_every", "compile", "nproc"})


def training_state_dir(checkpoint_dir: Path) -> Path:
    """Where the resumable state lives: beside the base checkpoint, not inside it.

    `checkpoints/base/` stays exactly what evaluation and chat read (and what the
    stage manifest fingerprints); optimizer moments are 2x the model and belong
    to training only.
    """
    checkpoint_dir = Path(checkpoint_dir)
    return checkpoint_dir.with_name(checkpoint_dir.name + ".train")


def resume_view(config: PretrainConfig) -> dict[str, Any]:
    """The settings a resumed run must share with the saved one for the result to be the same run."""
    dumped = config.model_dump(mode="json")
    return {k: v for k, v in dumped.items() if k not in RESUME_FREE_FIELDS}


def check_resumable(state: dict[str, Any], config: PretrainConfig, vocab_size: int, path: Path) -> None:
    """Raise ValueError naming every setting that differs between the saved state and this run."""
    saved = state.get("pretrain_config")
    if not isinstance(saved, dict):
        raise ValueError(f"training state {path} has no 'pretrain_config' object")
    saved_view = {k: v for k, v in saved.items() if k not in RESUME_FREE_FIELDS}
    current = resume_view(config)
    diffs = [
        f"{key}: saved {saved_view.get(key, '<absent>')!r}, now {current.get(key, '<absent>')!r}"
        for key in sorted(set(saved_view) | set(current))
        if saved_view.get(key) != current.get(key)
    ]
    if state.get("tokenizer_vocab_size") != vocab_size:
        diffs.append(f"tokenizer_vocab_size: saved {state.get('tokenizer_vocab_size')!r}, now {vocab_size!r}")
    if diffs:
        raise ValueError(f"cannot resume from {path}: the run's settings changed ({'; '.join(diffs)})")


def train_shards(split_dir: Path) -> list[Path]:
    shards = sorted(Path(split_dir).glob("*.parquet"))
    if not shards:
        raise FileNotFoundError(f"no token shards in {split_dir}: run the tokenize stage first")
    return shards


def scan_train_split(split_dir: Path) -> tuple[int, int]:
    """(tokens, largest token id) of a split, read once before training so bad shards fail early."""
    total, largest = 0, -1
    for path in train_shards(split_dir):
        try:
            flat = pq.read_table(path, columns=["tokens"]).column("tokens").combine_chunks().flatten()
        except (OSError, KeyError, pa.ArrowException) as exc:
            raise ValueError(f"token shard {path} cannot be read: {exc}") from exc
        total += len(flat)
        if len(flat):
            largest = max(largest, int(pc.max(flat).as_py()))
    if total == 0:
        raise ValueError(f"the token shards in {split_dir} are empty")
    return total, largest


def pretrain(
    tokens_dir: Path,
    tokenizer_path: Path,
    checkpoint_dir: Path,
    config: PretrainConfig,
    on_log: Callable[[StepLog], None] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train a GPT from scratch on the train token shards and save it as the base checkpoint.

    Every `checkpoint_every` steps (0: only at the end) the full training state
    is saved to `<checkpoint_dir>.train/`; with `resume=True` the run continues
    from there and ends with the same weights as an uninterrupted run.
    """
    tokenizer = BpeTokenizer.from_file(tokenizer_path)
    state_dir = training_state_dir(checkpoint_dir)
    saved: dict[str, Any] | None = None
    if resume:
        # Check the settings before reading shards or building anything, so a
        # mismatch fails fast and nothing is trained on a wrong basis.
        saved = read_training_state(state_dir)
        check_resumable(saved, config, tokenizer.vocab_size, state_dir)
    train_tokens, max_id = scan_train_split(tokens_dir / "train")
    if max_id >= tokenizer.vocab_size:
        raise ValueError(
            f"token id {max_id} in {tokens_dir / 'train'} is outside the tokenizer's vocabulary "
            f"({tokenizer.vocab_size}): the shards and {tokenizer_path} do not belong together"
        )
    if train_tokens < config.seq_len + 1:
        raise ValueError(f"the train split {tokens_dir / 'train'} has {train_tokens} tokens; "
                         f"a training row needs seq_len + 1 = {config.seq_len + 1}")
    world = distributed.current()
    device = pick_device(config.device, world.local_rank)
    if device.startswith("cuda"):
        # TF32 matmuls for the float32 parts (bf16 autocast covers the rest): free speed on Ampere+.
        torch.set_float32_matmul_precision("high")
    tcfg = train_config(config)
    torch.manual_seed(config.seed)
    model = GPT(model_config(config, tokenizer.vocab_size)).to(device)
    sampler: BatchSampler | PackedLoader
    if config.data_loader == "packed":
        sampler = PackedLoader(
            train_shards(tokens_dir / "train"), config.batch_size, config.seq_len, seed=config.seed,
            rank=world.rank, world_size=world.world_size, grad_accum_steps=tcfg.grad_accum_steps,
            long_documents=config.long_documents,
        )
    else:
        sampler = BatchSampler(
            pack_documents(read_token_documents(tokens_dir / "train"), config.seq_len), config.batch_size,
            config.seq_len, seed=config.seed,
            rank=world.rank, world_size=world.world_size, grad_accum_steps=tcfg.grad_accum_steps,
        )
    optimizer = make_optimizer(model, tcfg)
    history: list[StepLog] = []
    start_step = 0
    if saved is not None:
        saved = load_training_state(state_dir, model, optimizer)
        try:
            sampler.load_state_dict(saved["sampler"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"training state {state_dir} has no valid sampler state: {exc}") from exc
        except ValueError as exc:
            raise ValueError(f"cannot resume from {state_dir}: {exc}") from exc
        start_step = saved["step"]
        if sampler.steps_done != start_step:
            raise ValueError(
                f"training state {state_dir} is inconsistent: step {start_step}, sampler at step {sampler.steps_done}"
            )
        history = [StepLog(**h) for h in saved.get("history", [])]

    checkpoint_every = config.checkpoint_every
    last_saved: list[int] = [start_step] if saved is not None else []

    def save_state(steps_done: int, opt: torch.optim.Optimizer) -> None:
        if not world.is_main:
            return  # ranks hold identical weights and optimizer state; one writer suffices
        # A step's update can turn weights non-finite before any loss shows it;
        # saving them would make the "last good checkpoint" a bad one.
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            where = f"{state_dir} (step {last_saved[0]})" if last_saved else "none"
            raise FloatingPointError(
                f"weights became non-finite by step {steps_done - 1}; not saved. Last good checkpoint: {where}"
            )
        save_training_state(
            state_dir,
            model,
            opt,
            {
                "step": steps_done,
                "sampler": sampler.state_dict(),
                "tokenizer_vocab_size": tokenizer.vocab_size,
                "pretrain_config": config.model_dump(mode="json"),
                "history": [vars(h) for h in history],
            },
        )
        last_saved[:] = [steps_done]

    def log(entry: StepLog) -> None:
        history.append(entry)
        if on_log is not None:
            on_log(entry)

    def step_end(steps_done: int, opt: torch.optim.Optimizer) -> None:
        if checkpoint_every > 0 and steps_done % checkpoint_every == 0 and steps_done < config.steps:
            save_state(steps_done, opt)

    started = time.perf_counter()
    try:
        train(model, sampler, tcfg, device=device, on_log=log, start_step=start_step, optimizer=optimizer,
              on_step_end=step_end)
    except FloatingPointError as exc:
        where = (
            f"last good checkpoint: {state_dir} (step {last_saved[0]}); lower the learning rate or fix the data"
            if last_saved else "no checkpoint was saved before it"
        )
        raise FloatingPointError(f"{exc}; {where}") from exc
    seconds = max(time.perf_counter() - started, 1e-9)
    # The end state is saved even when it coincides with a periodic one, so a
    # resume after a crash while writing the base checkpoint has nothing left to redo.
    save_state(config.steps, optimizer)
    steps_run = config.steps - start_step
    tokens_per_step = config.batch_size * config.seq_len * tcfg.grad_accum_steps * world.world_size
    metrics = {
        "parameters": model.num_parameters(),
        "train_tokens_available": train_tokens,
        "steps": config.steps,
        "tokens_seen": config.steps * tokens_per_step,
        "tokens_per_step": tokens_per_step,
        "processes": world.world_size,
        "grad_accum_steps": tcfg.grad_accum_steps,
        "initial_loss": round(history[0].loss, 4),
        "final_loss": round(history[-1].loss, 4),
        "tokens_per_s": round(steps_run * tokens_per_step / seconds, 1),
        "train_seconds": round(seconds, 2),
        "device": device,
        "resumed_from_step": start_step,
    }
    if isinstance(sampler, PackedLoader):
        metrics["packing"] = sampler.rows.stats.as_dict()
    val_dir = Path(tokens_dir) / "val"
    if world.is_main and config.final_eval_tokens > 0 and any(val_dir.glob("*.parquet")):
        model.eval()
        scores = bits_per_byte(model, read_token_documents(val_dir, config.final_eval_tokens + 1),
                               token_byte_lengths(tokenizer), config.final_eval_tokens)
        metrics["val_loss"] = round(scores["val_loss"], 4)
        metrics["val_bits_per_byte"] = round(scores["val_bits_per_byte"], 4)
    mfus = [h.mfu for h in history if h.mfu is not None]
    if mfus:
        metrics["mfu"] = round(sum(mfus[1:] or mfus) / len(mfus[1:] or mfus), 4)  # step 0 includes warm-up
    result = {"metrics": metrics, "history": [vars(h) for h in history]}
    if not world.is_main:
        return result
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
    return result


def training_report(metrics: dict[str, Any], history: list[dict[str, Any]]) -> str:
    lines = ["# Pretraining", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in metrics.items()]
    lines += ["", "## Loss curve", "", "| step | loss | lr | tokens/s |", "|---|---|---|---|"]
    lines += [f"| {h['step']} | {h['loss']:.4f} | {h['lr']:.2e} | {h['tokens_per_s']:.0f} |" for h in history]
    return "\n".join(lines) + "\n"


def write_training_report(path: Path, result: dict[str, Any]) -> None:
    atomic.write_text(path, training_report(result["metrics"], result["history"]))
