"""The pretrain stage's logic: token shards in, a base GPT checkpoint and a training report out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from llmforge import atomic
from llmforge.config import PretrainConfig
from llmforge.fingerprint import sha256_file
from model import distributed
from model.checkpoint import (
    load_best_weights,
    load_training_state,
    read_training_state,
    recover_interrupted_save,
    save_checkpoint,
    save_training_state,
)
from model.gpt import GPT, GPTConfig
from model.optim import OptimizerSettings, TrainingClock
from model.packed_loader import PackedLoader
from model.threads import ThreadGovernor, governor_for
from model.tokenizer import BpeTokenizer
from model.train import BatchSampler, StepLog, TrainConfig, make_optimizer, pack_documents, train
from tasks.progress import Progress, phase
from tasks.train.evaluate import bits_per_byte, token_byte_lengths
from tasks.train.validation_watch import StopEarly, ValidationWatch, validation_watch
from tasks.tokenize.stage import read_token_documents

log = logging.getLogger(__name__)

Sampler = BatchSampler | PackedLoader


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


def optimizer_settings(config: PretrainConfig) -> OptimizerSettings | None:
    """The optimizer and schedule the config names; None for the historic default (AdamW, cosine by
    steps, no budget), which `make_optimizer` builds without a schedule object."""
    schedule = config.schedule or ("wsd" if config.time_budget_s is not None else "cosine")
    if config.optimizer == "adamw" and schedule == "cosine" and config.time_budget_s is None:
        return None
    return OptimizerSettings(
        kind=config.optimizer, schedule=schedule, warmdown_frac=config.warmdown_frac,
        final_lr_ratio=config.final_lr_ratio, time_budget_s=config.time_budget_s, muon_lr=config.muon_lr,
        muon_momentum=config.muon_momentum, muon_weight_decay=config.muon_weight_decay,
        embed_lr_scale=config.embed_lr_scale, head_lr_scale=config.head_lr_scale,
    )


# Fields that change how a run is executed or logged but not the weights it
# produces, so they may differ between an interrupted run and its resumption.
# nproc may change too when total_batch_tokens is fixed: the steps see the same windows.
RESUME_FREE_FIELDS = frozenset(
    {"device", "log_every", "checkpoint_every", "checkpoint_every_seconds", "compile", "nproc", "adapt_threads"}
)


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
    # A setting added after the state was saved had its default then (new settings
    # default to the old behaviour), so an older state still resumes.
    defaults = PretrainConfig.model_construct().model_dump(mode="json")
    saved_view = {k: v for k, v in {**defaults, **saved}.items() if k not in RESUME_FREE_FIELDS}
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


def check_train_split(split_dir: Path, tokenizer_path: Path, vocab_size: int, seq_len: int) -> int:
    """The split's token count, after checking that its ids fit the vocabulary and that it fills a row."""
    train_tokens, max_id = scan_train_split(split_dir)
    if max_id >= vocab_size:
        raise ValueError(
            f"token id {max_id} in {split_dir} is outside the tokenizer's vocabulary "
            f"({vocab_size}): the shards and {tokenizer_path} do not belong together"
        )
    if train_tokens < seq_len + 1:
        raise ValueError(f"the train split {split_dir} has {train_tokens} tokens; "
                         f"a training row needs seq_len + 1 = {seq_len + 1}")
    return train_tokens


def make_sampler(split_dir: Path, config: PretrainConfig, world: distributed.DistInfo, grad_accum_steps: int) -> Sampler:
    """This rank's batches of the train split, as `config.data_loader` says."""
    if config.data_loader == "packed":
        return PackedLoader(
            train_shards(split_dir), config.batch_size, config.seq_len, seed=config.seed,
            rank=world.rank, world_size=world.world_size, grad_accum_steps=grad_accum_steps,
            long_documents=config.long_documents,
        )
    return BatchSampler(
        pack_documents(read_token_documents(split_dir), config.seq_len), config.batch_size,
        config.seq_len, seed=config.seed,
        rank=world.rank, world_size=world.world_size, grad_accum_steps=grad_accum_steps,
    )


@dataclass
class PretrainRun:
    """A pretraining run between optimizer steps: what its resumable state holds, and where that is saved.

    The state is saved every `checkpoint_every` steps, after every `checkpoint_every_seconds`
    of training and at the end. Time is the run's `TrainingClock`, which the training loop
    ticks with rank 0's reading on every rank, so all ranks take the same decisions.
    """

    config: PretrainConfig
    vocab_size: int
    state_dir: Path
    is_main: bool
    model: GPT
    sampler: Sampler
    optimizer: torch.optim.Optimizer
    clock: TrainingClock
    on_log: Callable[[StepLog], None] | None = None
    history: list[StepLog] = field(default_factory=list)
    start_step: int = 0
    steps_done: int = 0
    last_saved_step: int | None = None
    last_saved_seconds: float = 0.0  # the clock's seconds at the last save (or the start)
    threads: ThreadGovernor | None = None
    on_step: Callable[[int], None] | None = None  # progress: steps done, after every step
    watch: ValidationWatch | None = None  # pretrain.eval_every: scores, best weights, early stop

    def resume(self) -> None:
        """Load the saved state in place: weights, optimizer moments, RNG, sampler position, clock and history."""
        saved = load_training_state(self.state_dir, self.model, self.optimizer)
        try:
            self.sampler.load_state_dict(saved["sampler"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"training state {self.state_dir} has no valid sampler state: {exc}") from exc
        except ValueError as exc:
            raise ValueError(f"cannot resume from {self.state_dir}: {exc}") from exc
        if self.sampler.steps_done != saved["step"]:
            raise ValueError(f"training state {self.state_dir} is inconsistent: step {saved['step']}, "
                             f"sampler at step {self.sampler.steps_done}")
        try:
            # States saved before the clock was recorded resume with none spent: their runs had no time budget.
            self.clock.load_state_dict({"seconds": saved.get("train_seconds", 0.0)})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"training state {self.state_dir} has no valid train_seconds: {exc}") from exc
        if self.watch is not None:
            self.watch.load_state_dict(saved.get("validation"), load_best_weights(self.state_dir))
        self.start_step = self.steps_done = self.last_saved_step = saved["step"]
        self.last_saved_seconds = self.clock.seconds
        self.history = [StepLog(**h) for h in saved.get("history", [])]

    def record(self, entry: StepLog) -> None:
        self.history.append(entry)
        if self.on_log is not None:
            self.on_log(entry)

    def budget_spent(self) -> bool:
        return self.config.time_budget_s is not None and self.clock.seconds >= self.config.time_budget_s

    def save_due(self, steps_done: int) -> bool:
        """Whether a periodic save falls after this step; the same answer on every rank."""
        if steps_done >= self.config.steps or self.budget_spent():
            return False  # the run ends here, and its end state is saved anyway
        every, every_s = self.config.checkpoint_every, self.config.checkpoint_every_seconds
        by_steps = every > 0 and steps_done % every == 0
        by_time = every_s > 0 and self.clock.seconds - self.last_saved_seconds >= every_s
        return by_steps or by_time

    def after_step(self, steps_done: int, optimizer: torch.optim.Optimizer) -> None:
        self.steps_done = steps_done
        if self.on_step is not None:
            self.on_step(steps_done)
        stop = self.watch is not None and self.watch.due(steps_done) and self.watch.score(self.model, steps_done)
        if stop:
            raise StopEarly
        if self.save_due(steps_done):
            self.save_state(steps_done, optimizer)

    def save_state(self, steps_done: int, optimizer: torch.optim.Optimizer) -> None:
        # Every rank keeps the bookkeeping, so the next decision is the same everywhere.
        self.last_saved_seconds = self.clock.seconds
        if not self.is_main:
            self.last_saved_step = steps_done
            return  # ranks hold identical weights and optimizer state; one writer suffices
        # A step's update can turn weights non-finite before any loss shows it;
        # saving them would make the "last good checkpoint" a bad one.
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            where = f"{self.state_dir} (step {self.last_saved_step})" if self.last_saved_step is not None else "none"
            raise FloatingPointError(
                f"weights became non-finite by step {steps_done - 1}; not saved. Last good checkpoint: {where}"
            )
        save_training_state(self.state_dir, self.model, optimizer, {
            "step": steps_done,
            "sampler": self.sampler.state_dict(),
            "tokenizer_vocab_size": self.vocab_size,
            "pretrain_config": self.config.model_dump(mode="json"),
            "history": [vars(h) for h in self.history],
            "train_seconds": self.clock.seconds,
            **({"validation": self.watch.state_dict()} if self.watch is not None else {}),
        }, best_weights=None if self.watch is None else self.watch.best_weights)
        self.last_saved_step = steps_done

    def run_steps(self, tcfg: TrainConfig, device: str) -> float:
        """Run the remaining steps; returns the seconds they took. A non-finite loss names the last good state."""
        started = time.perf_counter()
        if self.watch is not None and self.watch.exhausted():
            return 1e-9
        try:
            train(self.model, self.sampler, tcfg, device=device, on_log=self.record, start_step=self.start_step,
                  optimizer=self.optimizer, on_step_end=self.after_step, clock=self.clock, threads=self.threads)
        except StopEarly:
            log.info("pretrain: validation loss has not improved for %d scores: stopping at step %d (best: step %d)",
                     self.config.patience, self.steps_done, self.watch.best_step if self.watch else -1)
        except FloatingPointError as exc:
            where = (
                f"last good checkpoint: {self.state_dir} (step {self.last_saved_step}); "
                "lower the learning rate or fix the data"
                if self.last_saved_step is not None else "no checkpoint was saved before it"
            )
            raise FloatingPointError(f"{exc}; {where}") from exc
        finally:
            if self.threads is not None:
                self.threads.restore()
        return max(time.perf_counter() - started, 1e-9)


def initial_weights(
    checkpoint_dir: Path, config: PretrainConfig, vocab_size: int, tokenizer_sha256: str | None = None
) -> tuple[dict[str, Any], dict] | None:
    """With `continue_from: latest`, the weights of the base checkpoint to start from and what it records of
    itself (None when there is none yet: the run starts from scratch, and says so). A checkpoint of another
    shape or vocabulary, or one trained on the ids of another tokenizer (`tokenizer_sha256`: the one in use),
    is an error, not a silent fresh start or a model fed ids that mean other tokens."""
    if config.continue_from != "latest":
        return None
    if not (Path(checkpoint_dir) / "state.json").is_file():
        log.warning("pretrain: continue_from is 'latest' but %s holds no checkpoint yet: training from scratch",
                    checkpoint_dir)
        return None
    from model.checkpoint import load_checkpoint_for

    model, state = load_checkpoint_for(checkpoint_dir, vocab_size, "in use")
    recorded = state.get("tokenizer_sha256")
    if tokenizer_sha256 is not None and recorded is not None and recorded != tokenizer_sha256:
        raise ValueError(f"cannot continue from {checkpoint_dir}: it was trained with another tokenizer (sha256 "
                         f"{recorded[:12]}, now {tokenizer_sha256[:12]}: the same ids mean other tokens); set "
                         "pretrain.continue_from: scratch to train a new one")
    if recorded is None:
        log.warning("pretrain: %s does not record its tokenizer; continuing on the assumption that it is the one in "
                    "use", checkpoint_dir)
    wanted = model_config(config, vocab_size)
    if model.config != wanted:
        raise ValueError(f"cannot continue from {checkpoint_dir}: its model is {model.config}, the config asks for "
                         f"{wanted}; set pretrain.continue_from: scratch to train a new one")
    return model.state_dict(), state


def start_run(
    tokens_dir: Path, vocab_size: int, state_dir: Path, config: PretrainConfig, tcfg: TrainConfig, device: str,
    on_log: Callable[[StepLog], None] | None, initial: dict[str, Any] | None = None,
) -> PretrainRun:
    """A model (seeded by the config, or with `initial` weights), its sampler, optimizer and clock."""
    world = distributed.current()
    torch.manual_seed(config.seed)
    model = GPT(model_config(config, vocab_size))
    if initial is not None:
        model.load_state_dict(initial)
    model = model.to(device)
    sampler = make_sampler(tokens_dir / "train", config, world, tcfg.grad_accum_steps)
    clock = TrainingClock()
    optimizer = make_optimizer(model, tcfg, optimizer_settings(config), clock)
    run = PretrainRun(config, vocab_size, state_dir, world.is_main, model, sampler, optimizer, clock, on_log)
    run.threads = governor_for(device, config.adapt_threads, log.warning)
    return run


def run_metrics(run: PretrainRun, train_tokens: int, grad_accum_steps: int, seconds: float, device: str) -> dict[str, Any]:
    config, world_size = run.config, distributed.current().world_size
    tokens_per_step = config.batch_size * config.seq_len * grad_accum_steps * world_size
    metrics: dict[str, Any] = {
        "parameters": run.model.num_parameters(),
        "train_tokens_available": train_tokens,
        "steps": run.steps_done,
        "tokens_seen": run.steps_done * tokens_per_step,
        "tokens_per_step": tokens_per_step,
        "processes": world_size,
        "grad_accum_steps": grad_accum_steps,
        "initial_loss": round(run.history[0].loss, 4),
        "final_loss": round(run.history[-1].loss, 4),
        "tokens_per_s": round((run.steps_done - run.start_step) * tokens_per_step / seconds, 1),
        "train_seconds": round(seconds, 2),
        "device": device,
        "resumed_from_step": run.start_step,
    }
    if config.time_budget_s is not None:
        metrics["time_budget_s"] = config.time_budget_s
        metrics["budget_seconds_spent"] = round(run.clock.seconds, 2)  # over all segments of a resumed run
    if isinstance(run.sampler, PackedLoader):
        metrics["packing"] = run.sampler.rows.stats.as_dict()
    if run.threads is not None:
        metrics["threads"] = run.threads.summary()
    return metrics


def validation_scores(model: GPT, val_dir: Path, tokenizer: BpeTokenizer, max_tokens: int) -> dict[str, float]:
    """Validation loss and bits per byte of the trained model over the first `max_tokens` tokens of `val_dir`."""
    model.eval()
    scores = bits_per_byte(model, read_token_documents(val_dir, max_tokens + 1), token_byte_lengths(tokenizer),
                           max_tokens)
    return {"val_loss": round(scores["val_loss"], 4), "val_bits_per_byte": round(scores["val_bits_per_byte"], 4)}


def mean_mfu(history: list[StepLog]) -> float | None:
    """Mean model FLOPs utilisation of the logged steps, leaving out step 0 (it includes warm-up)."""
    mfus = [h.mfu for h in history if h.mfu is not None]
    if not mfus:
        return None
    return round(sum(mfus[1:] or mfus) / len(mfus[1:] or mfus), 4)


def pretrain(
    tokens_dir: Path,
    tokenizer_path: Path,
    checkpoint_dir: Path,
    config: PretrainConfig,
    on_log: Callable[[StepLog], None] | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train a GPT from scratch on the train token shards and save it as the base checkpoint.

    The full training state is saved to `<checkpoint_dir>.train/` every `checkpoint_every`
    steps, after every `checkpoint_every_seconds` of training and at the end; with
    `resume=True` the run continues from there and ends with the same weights as an
    uninterrupted run (a time-budgeted run trains for the time its budget has left).
    """
    tokenizer = BpeTokenizer.from_file(tokenizer_path)
    state_dir = training_state_dir(checkpoint_dir)
    recovered = recover_state_dir(state_dir)
    if resume:
        # Check the settings before reading shards or building anything, so a
        # mismatch fails fast and nothing is trained on a wrong basis.
        check_resumable(read_training_state(state_dir), config, tokenizer.vocab_size, state_dir)
    train_tokens = check_train_split(tokens_dir / "train", tokenizer_path, tokenizer.vocab_size, config.seq_len)
    device = distributed.pick_device(config.device, distributed.current().local_rank)
    if device.startswith("cuda"):
        # TF32 matmuls for the float32 parts (bf16 autocast covers the rest): free speed on Ampere+.
        torch.set_float32_matmul_precision("high")
    tcfg = train_config(config)
    tokenizer_sha256 = sha256_file(tokenizer_path)
    start = None if resume else initial_weights(checkpoint_dir, config, tokenizer.vocab_size, tokenizer_sha256)
    run = start_run(tokens_dir, tokenizer.vocab_size, state_dir, config, tcfg, device, on_log, start and start[0])
    run.watch = validation_watch(config, Path(tokens_dir) / "val", tokenizer)
    if resume:
        run.resume()
    budget_left = None if config.time_budget_s is None else max(0.0, config.time_budget_s - run.clock.seconds)
    run.on_step = phase(progress, "training", config.steps, budget_s=budget_left, initial=run.start_step)
    seconds = run.run_steps(tcfg, device)
    if progress is not None:
        progress.finish()
    # The end state is saved even when it coincides with a periodic one, so a
    # resume after a crash while writing the base checkpoint has nothing left to redo.
    run.save_state(run.steps_done, run.optimizer)
    if run.watch is not None:
        run.watch.finish(run.model, run.steps_done, config.steps)  # the base checkpoint gets the best weights
    metrics = run_metrics(run, train_tokens, tcfg.grad_accum_steps, seconds, device)
    if run.watch is not None:
        metrics.update(run.watch.metrics())
    if start is not None:
        earlier = start[1]
        metrics["continued_from"] = {"steps": earlier.get("total_steps", earlier.get("step")),
                                     "final_loss": earlier.get("metrics", {}).get("final_loss")}
        metrics["total_steps"] = (metrics["continued_from"]["steps"] or 0) + run.steps_done
    if recovered:
        metrics["interrupted_save_cleanup"] = recovered
    val_dir = Path(tokens_dir) / "val"
    if run.is_main and config.final_eval_tokens > 0 and any(val_dir.glob("*.parquet")):
        metrics.update(validation_scores(run.model, val_dir, tokenizer, config.final_eval_tokens))
    if (mfu := mean_mfu(run.history)) is not None:
        metrics["mfu"] = mfu
    result = {"metrics": metrics, "history": [vars(h) for h in run.history]}
    if run.is_main:
        save_base_checkpoint(checkpoint_dir, run, result, tokenizer_sha256)
    return result


def recover_state_dir(state_dir: Path) -> list[str]:
    """Rank 0 tidies what a kill during a save left (see `recover_interrupted_save`) before any rank reads the state."""
    notes = recover_interrupted_save(state_dir) if distributed.current().is_main else []
    for note in notes:
        log.warning("pretrain: %s", note)
    distributed.barrier()
    return notes


def save_base_checkpoint(checkpoint_dir: Path, run: PretrainRun, result: dict[str, Any], tokenizer_sha256: str) -> None:
    save_checkpoint(checkpoint_dir, run.model.cpu(), {
        "stage": "base",
        "step": run.steps_done,
        "total_steps": result["metrics"].get("total_steps", run.steps_done),  # with the runs it continued
        # The weights' own step: the best one by validation when the run kept its best weights.
        "weights_step": run.watch.best_step if run.watch is not None and run.watch.best_step else run.steps_done,
        "tokenizer_vocab_size": run.vocab_size,
        "tokenizer_sha256": tokenizer_sha256,  # continue_from: latest refuses weights trained on other ids
        "pretrain_config": run.config.model_dump(mode="json"),
        "history": result["history"],
        "metrics": result["metrics"],
    })


def training_report(metrics: dict[str, Any], history: list[dict[str, Any]]) -> str:
    lines = ["# Pretraining", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in metrics.items()]
    lines += ["", "## Loss curve", "", "| step | loss | lr | tokens/s |", "|---|---|---|---|"]
    lines += [f"| {h['step']} | {h['loss']:.4f} | {h['lr']:.2e} | {h['tokens_per_s']:.0f} |" for h in history]
    return "\n".join(lines) + "\n"


def write_training_report(path: Path, result: dict[str, Any]) -> None:
    atomic.write_text(path, training_report(result["metrics"], result["history"]))
