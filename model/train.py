"""Pretraining loop: packed token stream, random windows, AdamW with warmup + cosine decay.

Nothing here knows about files or orchestration; a caller hands in a model, a
sampler and a config, and gets back the logged steps and the optimizer (whose
state it may checkpoint and pass back in with `start_step` to resume).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from model import distributed
from model.batch_split import GlobalBatchSplit, TrainingBatches
from model.flops import model_flops_per_token, peak_flops
from model.gpt import GPT, autocast_context
from model.optim import LrSchedule, TrainingClock, apply_lr, make_optimizer
from model.threads import ThreadGovernor


@dataclass
class TrainConfig:
    steps: int
    batch_size: int
    seq_len: int
    learning_rate: float = 3e-3
    warmup_steps: int = 20
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # max global grad norm; <= 0 disables clipping
    min_lr_ratio: float = 0.1  # cosine decay ends at learning_rate * min_lr_ratio
    # Not consumed by train() (which has no randomness of its own); callers use it
    # to seed model init and the BatchSampler so a run is reproducible from its config.
    seed: int = 1337
    log_every: int = 25
    # Micro-batches per optimizer step on each rank: the global batch is
    # batch_size * seq_len * grad_accum_steps * world_size tokens.
    grad_accum_steps: int = 1
    # CUDA only: compile the model (minutes of start-up, then faster steps).
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "seq_len", "log_every", "grad_accum_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainConfig.{name} must be positive, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"TrainConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class StepLog:
    step: int
    loss: float
    lr: float
    tokens_per_s: float
    # Model FLOPs utilisation against the accelerator's peak; None where the peak is unknown (CPU).
    mfu: float | None = None


def _concat(docs: Iterable[Sequence[int]]) -> torch.Tensor:
    parts = [np.asarray(doc, dtype=np.int64).reshape(-1) for doc in docs]
    parts = [p for p in parts if p.size]
    if not parts:
        return torch.empty(0, dtype=torch.long)
    return torch.from_numpy(np.concatenate(parts))


def pack_documents(docs: Iterable[Sequence[int]], seq_len: int) -> torch.Tensor:
    """Concatenate tokenized documents (each starting with BOS) into one 1-D LongTensor.

    Documents are not padded or split: a training window may span a document
    boundary, and the BOS at the boundary tells the model that context resets.
    """
    stream = _concat(docs)
    if stream.numel() < seq_len + 1:
        raise ValueError(
            f"packed stream has {stream.numel()} tokens; need at least seq_len + 1 = {seq_len + 1}"
        )
    return stream


class BatchSampler(GlobalBatchSplit):
    """Random windows of seq_len + 1 tokens from a stream, as (inputs, next-token targets).

    Each optimizer step draws one global batch of windows from a generator seeded by
    (seed, step) and every rank takes its slice (`model.batch_split`), so resuming needs
    only the step counter.
    """

    def __init__(
        self,
        stream: torch.Tensor,
        batch_size: int,
        seq_len: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        grad_accum_steps: int = 1,
    ) -> None:
        super().__init__(batch_size, rank, world_size, grad_accum_steps)
        if stream.dim() != 1:
            raise ValueError(f"stream must be 1-D, got shape {tuple(stream.shape)}")
        if seq_len <= 0:
            raise ValueError("seq_len must be positive")
        if stream.numel() < seq_len + 1:
            raise ValueError(f"stream has {stream.numel()} tokens; need at least {seq_len + 1}")
        self.stream = stream.long()
        self.seq_len = seq_len
        self.seed = seed
        self._offsets = torch.arange(seq_len + 1)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        step, _, first = self._next_slot()
        # SeedSequence mixes (seed, step) well, so neighbouring seeds or steps
        # give unrelated windows.
        rng = np.random.default_rng([self.seed, step])
        max_start = self.stream.numel() - (self.seq_len + 1)
        starts = rng.integers(0, max_start, size=self.global_rows, endpoint=True)
        mine = torch.from_numpy(starts[first : first + self.batch_size])
        windows = self.stream[mine[:, None] + self._offsets]
        return windows[:, :-1], windows[:, 1:]

    def __iter__(self) -> BatchSampler:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.next()

    def state_dict(self) -> dict[str, int]:
        return {
            "seed": self.seed,
            "position": self.position,
            "step": self.steps_done,
            "batch_size": self.batch_size,
            "global_rows": self.global_rows,
            "seq_len": self.seq_len,
            "stream_len": int(self.stream.numel()),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        # The same position over a different stream or shape would be a different
        # sequence of batches, silently breaking "resume continues the same run".
        # The split over ranks and micro-steps may change: a step's windows do not depend on it.
        self._check_global_rows(state, "sampler")
        for key, mine in (
            ("seq_len", self.seq_len),
            ("stream_len", int(self.stream.numel())),
        ):
            if key in state and int(state[key]) != mine:
                raise ValueError(f"sampler state has {key}={state[key]}, this sampler has {mine}")
        if "global_rows" not in state and int(state.get("batch_size", self.batch_size)) != self.batch_size:
            raise ValueError(f"sampler state has batch_size={state['batch_size']}, this sampler has {self.batch_size}")
        self.seed = int(state["seed"])
        self._resume_at_step(int(state["step"]) if "step" in state else int(state["position"]))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _check_batches_fit(model: GPT, batches: TrainingBatches, cfg: TrainConfig, world: distributed.DistInfo) -> None:
    """Raise ValueError when the model, the sampler and the config disagree on the batch shape or split."""
    if cfg.seq_len > model.config.seq_len:
        raise ValueError(f"TrainConfig.seq_len {cfg.seq_len} exceeds model context {model.config.seq_len}")
    if batches.batch_size != cfg.batch_size or batches.seq_len != cfg.seq_len:
        raise ValueError(
            f"sampler yields [{batches.batch_size}, {batches.seq_len}] batches, "
            f"config asks for [{cfg.batch_size}, {cfg.seq_len}]"
        )
    if batches.grad_accum_steps != cfg.grad_accum_steps or batches.world_size != world.world_size:
        raise ValueError(
            f"sampler is set up for {batches.grad_accum_steps} micro-batches x "
            f"{batches.world_size} ranks, the run has {cfg.grad_accum_steps} x {world.world_size}"
        )


def _forward_module(model: GPT, cfg: TrainConfig, device: torch.device, world: distributed.DistInfo) -> torch.nn.Module:
    """What the micro-batches run through: the model, wrapped in DDP inside a process group, compiled on request."""
    runner: torch.nn.Module = model
    if world.enabled:
        runner = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile and device.type == "cuda":
        runner = torch.compile(runner)
    return runner


def _accumulate_gradients(
    runner: torch.nn.Module, batches: TrainingBatches, accum: int, device: torch.device, world: distributed.DistInfo
) -> float:
    """Forward and backward over one step's micro-batches; returns their mean loss on this rank."""
    loss_sum = 0.0
    for micro in range(accum):
        x, y = batches.next()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        # Gradients are all-reduced only on the last micro-batch of a step.
        last = micro == accum - 1
        sync = contextlib.nullcontext() if last or not world.enabled else runner.no_sync()  # type: ignore[operator]
        with sync:
            with autocast_context(device):
                _, loss = runner(x, y)
            assert loss is not None
            (loss / accum).backward()
        # .item() syncs every micro-step; at these sizes that is cheap, and it
        # lets every rank stop on the first bad step instead of training on garbage.
        loss_sum += loss.item()
    return loss_sum / accum


def _apply_gradients(model: GPT, optimizer: torch.optim.Optimizer, grad_clip: float) -> None:
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


class _Throughput:
    """Tokens per second (and MFU) over the steps since the last logged one."""

    def __init__(self, model: GPT, cfg: TrainConfig, device: torch.device, world_size: int) -> None:
        self.device = device
        self.world_size = world_size
        self.tokens_per_step = cfg.batch_size * cfg.seq_len * cfg.grad_accum_steps * world_size
        self.flops_per_token = model_flops_per_token(model.config, cfg.seq_len)
        self.peak = peak_flops(device)
        _sync(device)
        self.window_start, self.window_steps = time.perf_counter(), 0

    def step_done(self) -> None:
        self.window_steps += 1

    def log_entry(self, step: int, loss: float, lr: float) -> StepLog:
        """The step's log line; starts a new measuring window."""
        _sync(self.device)
        elapsed = max(time.perf_counter() - self.window_start, 1e-9)
        tokens_per_s = self.window_steps * self.tokens_per_step / elapsed
        mfu = None if self.peak is None else tokens_per_s * self.flops_per_token / (self.peak * self.world_size)
        self.window_start, self.window_steps = time.perf_counter(), 0
        return StepLog(step=step, loss=loss, lr=lr, tokens_per_s=tokens_per_s, mfu=mfu)


def _run_clock(optimizer: torch.optim.Optimizer, clock: TrainingClock | None) -> TrainingClock:
    """The clock the loop advances: the one the optimizer's schedule reads, which must be `clock` if both exist."""
    schedule: LrSchedule | None = getattr(optimizer, "lr_schedule", None)
    if schedule is None:
        return clock if clock is not None else TrainingClock()
    if clock is not None and clock is not schedule.clock:
        raise ValueError("train() was given another clock than the one its optimizer's schedule reads; "
                         "pass the same TrainingClock to make_optimizer and train")
    return schedule.clock


def _rank0_reading(device: torch.device) -> Callable[[float], float]:
    """Replaces each rank's clock reading with rank 0's, so time-based decisions agree on every rank."""

    def agree(seconds: float) -> float:
        t = torch.tensor([seconds], dtype=torch.float64, device=device)
        dist.broadcast(t, src=0)
        return float(t.item())

    return agree


def _budget_spent(optimizer: torch.optim.Optimizer) -> bool:
    schedule: LrSchedule | None = getattr(optimizer, "lr_schedule", None)
    return schedule is not None and schedule.budget_spent()


def train(
    model: GPT,
    sampler: TrainingBatches,
    cfg: TrainConfig,
    device: str | torch.device = "cpu",
    on_log: Callable[[StepLog], None] | None = None,
    start_step: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    on_step_end: Callable[[int, torch.optim.Optimizer], None] | None = None,
    clock: TrainingClock | None = None,
    threads: ThreadGovernor | None = None,
) -> tuple[list[StepLog], torch.optim.Optimizer]:
    """Run steps start_step .. cfg.steps - 1 and return (logged steps, optimizer).

    Each step accumulates `grad_accum_steps` micro-batches; inside a torchrun
    process group the model is wrapped in DistributedDataParallel, which averages
    gradients over ranks, so the step's gradient is the mean over the global batch.
    Logs step 0, every `log_every`-th step and the last step (the loss is the mean
    over the global batch). Raises FloatingPointError as soon as a step's loss is
    NaN or infinite, on every rank. `on_step_end(steps_done, optimizer)` runs
    after every optimizer step (and after that step's log), when model, optimizer
    and sampler all sit exactly between steps: the one safe point to checkpoint.

    `clock` (or the one of the optimizer's schedule) is ticked after every step,
    before the log and `on_step_end`, with rank 0's reading on every rank. An
    optimizer whose schedule has a time budget ends the run after the step that
    spends it (and runs no step if a resumed clock has already spent it).
    `threads` looks at the machine after every step and adapts torch's threads to
    what other processes leave free (`model.threads`).
    """
    device = torch.device(device)
    world = distributed.current()
    _check_batches_fit(model, sampler, cfg, world)
    model.to(device)
    model.train()
    if optimizer is None:
        optimizer = make_optimizer(model, cfg)
    run_clock = _run_clock(optimizer, clock)
    agree = _rank0_reading(device) if world.enabled else None
    runner = _forward_module(model, cfg, device, world)
    logs: list[StepLog] = []
    throughput = _Throughput(model, cfg, device, world.world_size)
    run_clock.start()
    if _budget_spent(optimizer):
        return logs, optimizer
    for step in range(start_step, cfg.steps):
        lr = apply_lr(optimizer, step, cfg)
        loss_value = distributed.mean_across_ranks(
            _accumulate_gradients(runner, sampler, cfg.grad_accum_steps, device, world), device
        )
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"loss became {loss_value} at step {step} (lr {lr:.3g})")
        _apply_gradients(model, optimizer, cfg.grad_clip)
        throughput.step_done()
        run_clock.tick(agree)
        if threads is not None:
            threads.after_step(step + 1)
        last = step == cfg.steps - 1 or _budget_spent(optimizer)
        if step % cfg.log_every == 0 or last:
            entry = throughput.log_entry(step, loss_value, lr)
            logs.append(entry)
            if on_log is not None:
                on_log(entry)
        if on_step_end is not None:
            on_step_end(step + 1, optimizer)
        if last:
            break
    return logs, optimizer


@torch.no_grad()
def evaluate_loss(
    model: GPT,
    docs: Iterable[Sequence[int]],
    seq_len: int,
    batch_size: int,
    device: str | torch.device = "cpu",
    max_tokens: int | None = None,
) -> tuple[float, int]:
    """Mean cross-entropy (nats/token) over the packed stream, and the number of tokens scored.

    The stream is cut into consecutive, non-overlapping windows so each token
    (after the first) is scored exactly once; the last, short window is padded
    with ignored targets. Deterministic, unlike the training sampler.
    """
    device = torch.device(device)
    if seq_len > model.config.seq_len:
        raise ValueError(f"seq_len {seq_len} exceeds model context {model.config.seq_len}")
    stream = _concat(docs)
    n_targets = stream.numel() - 1
    if max_tokens is not None:
        n_targets = min(n_targets, max_tokens)
    if n_targets <= 0:
        raise ValueError("evaluation data has fewer than 2 tokens; nothing to score")

    n_windows = math.ceil(n_targets / seq_len)
    inputs = torch.zeros(n_windows * seq_len, dtype=torch.long)
    targets = torch.full((n_windows * seq_len,), -1, dtype=torch.long)
    inputs[:n_targets] = stream[:n_targets]
    targets[:n_targets] = stream[1 : n_targets + 1]
    inputs, targets = inputs.view(n_windows, seq_len), targets.view(n_windows, seq_len)

    was_training = model.training
    model.eval()
    total_nll, total_tokens = 0.0, 0
    try:
        for i in range(0, n_windows, batch_size):
            x = inputs[i : i + batch_size].to(device)
            y = targets[i : i + batch_size].to(device)
            with autocast_context(device):
                _, loss = model(x, y)
            assert loss is not None
            count = int((y != -1).sum().item())
            total_nll += loss.item() * count
            total_tokens += count
    finally:
        model.train(was_training)
    return total_nll / total_tokens, total_tokens

