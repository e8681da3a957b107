"""Optimizers and the learning-rate schedule for pretraining.

Kept apart from the loop so the choice of optimizer (and its schedule) can grow
without touching how steps, logging and checkpoints work.

The default, used whenever no `OptimizerSettings` is given, is AdamW with linear
warmup and cosine decay (`lr_at`). `OptimizerSettings` opts into Muon for the hidden
matrices (`model.muon.MuonAdamW`) and/or a warmup-stable-decay schedule whose
progress can be measured in wall-clock time (`TrainingClock`), for runs with a time budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from model.gpt import GPT
from model.muon import MuonAdamW

if TYPE_CHECKING:
    from model.train import TrainConfig


@dataclass(frozen=True)
class OptimizerSettings:
    """Which optimizer and schedule `make_optimizer` builds; the defaults are the historic AdamW + cosine.

    The AdamW peak learning rate (and warmup steps, weight decay) stay in
    `TrainConfig`; these are the knobs that exist only for the other choices.
    """

    kind: Literal["adamw", "muon"] = "adamw"
    # "cosine": `lr_at` (warmup, cosine to min_lr_ratio). "wsd": warmup, constant,
    # then a linear warmdown to final_lr_ratio over the last warmdown_frac of the run.
    schedule: Literal["cosine", "wsd"] = "cosine"
    warmdown_frac: float = 0.4
    final_lr_ratio: float = 0.0
    # With a budget the wsd progress is max(step / steps, training seconds / time_budget_s):
    # the warmdown then ends on time however fast the machine is (and still ends by the
    # last step if the steps run out first), and `train()` stops once the budget is spent.
    # The seconds come from a `TrainingClock`, which a resumed run restores.
    time_budget_s: float | None = None
    # Muon (kind="muon"): peak lr of the hidden matrices, and its momentum.
    muon_lr: float = 0.02
    muon_momentum: float = 0.95
    muon_nesterov: bool = True
    muon_ns_steps: int = 5
    muon_weight_decay: float = 0.0
    # Multipliers on TrainConfig.learning_rate for the AdamW parts under kind="muon"
    # (embeddings tolerate a larger step than the output head).
    embed_lr_scale: float = 1.0
    head_lr_scale: float = 1.0
    adam_betas: tuple[float, float] = (0.9, 0.95)

    def __post_init__(self) -> None:
        if self.kind not in ("adamw", "muon"):
            raise ValueError(f"OptimizerSettings.kind must be 'adamw' or 'muon', got {self.kind!r}")
        if self.schedule not in ("cosine", "wsd"):
            raise ValueError(f"OptimizerSettings.schedule must be 'cosine' or 'wsd', got {self.schedule!r}")
        if not 0.0 <= self.warmdown_frac <= 1.0 or not 0.0 <= self.final_lr_ratio <= 1.0:
            raise ValueError("warmdown_frac and final_lr_ratio must be in [0, 1]")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError(f"time_budget_s must be positive, got {self.time_budget_s}")
        if self.time_budget_s is not None and self.schedule != "wsd":
            # The cosine schedule is a function of steps only; a budget there would be ignored silently.
            raise ValueError("time_budget_s needs schedule='wsd'")


def lr_at(step: int, cfg: "TrainConfig") -> float:
    """Linear warmup to learning_rate, then cosine decay to learning_rate * min_lr_ratio at the last step."""
    peak = cfg.learning_rate
    if step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    floor = peak * cfg.min_lr_ratio
    decay_steps = cfg.steps - 1 - cfg.warmup_steps
    if decay_steps <= 0:
        return peak
    progress = min(1.0, (step - cfg.warmup_steps) / decay_steps)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def wsd_multiplier(progress: float, step: int, warmup_steps: int, warmdown_frac: float, final_lr_ratio: float) -> float:
    """Warmup-stable-decay as a fraction of the peak: `progress` in [0, 1] is how far the run is."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    progress = min(max(progress, 0.0), 1.0)
    start = 1.0 - warmdown_frac
    if warmdown_frac <= 0.0 or progress <= start:
        return warm
    # Linear from 1 at `start` to final_lr_ratio at progress 1: linear-to-zero
    # decay has been found to beat cosine for a fixed budget (it spends longer at
    # a high rate and anneals the noise away at the end).
    return warm * (1.0 - (1.0 - final_lr_ratio) * (progress - start) / warmdown_frac)


class TrainingClock:
    """Seconds a run has trained, counted over all its segments, as of the last step boundary.

    The training loop calls `start()` before its first step and `tick()` after every
    step; everything time-based (a wsd schedule's progress, the budget, saves by time)
    reads `seconds`, so within a step they all see the same value, and inside a process
    group `tick` is handed rank 0's reading, so every rank decides alike. A resumed run
    restores the seconds of its earlier segments with `load_state_dict`; time between
    segments (a crash, the restart) is not counted.
    """

    def __init__(self, now: Callable[[], float] = time.perf_counter) -> None:
        self._now = now
        self._spent_before = 0.0  # seconds of earlier segments of a resumed run
        self._segment_start: float | None = None
        self.seconds = 0.0

    @property
    def started(self) -> bool:
        return self._segment_start is not None

    def start(self) -> None:
        """Begin counting this segment (again from `seconds`, should it have been started before)."""
        self._spent_before = self.seconds
        self._segment_start = self._now()

    def tick(self, agree: Callable[[float], float] | None = None) -> float:
        """Read the clock at a step boundary; `agree` turns this rank's reading into the one all ranks use."""
        if self._segment_start is None:
            raise RuntimeError("TrainingClock.tick() before start()")
        reading = self._spent_before + (self._now() - self._segment_start)
        self.seconds = agree(reading) if agree is not None else reading
        return self.seconds

    def state_dict(self) -> dict[str, float]:
        return {"seconds": self.seconds}

    def load_state_dict(self, state: dict[str, float]) -> None:
        if self.started:
            raise RuntimeError("a TrainingClock restores its seconds before it starts, not while it runs")
        seconds = float(state["seconds"])
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"training clock state has seconds={state['seconds']!r}; expected a finite value >= 0")
        self.seconds = seconds


class LrSchedule:
    """The schedule `make_optimizer` attaches to an optimizer built from non-default settings.

    Lives on the optimizer (as ``optimizer.lr_schedule``) so that `apply_lr`, which
    the training loop already calls every step, follows it without the loop knowing.
    Its time is `clock`'s, which the loop advances at step boundaries.
    """

    def __init__(self, settings: OptimizerSettings, clock: TrainingClock | None = None) -> None:
        self.settings = settings
        self.clock = clock if clock is not None else TrainingClock()

    def elapsed_s(self) -> float:
        return self.clock.seconds

    def progress(self, step: int, cfg: "TrainConfig") -> float:
        by_steps = step / cfg.steps
        budget = self.settings.time_budget_s
        if budget is None:
            return by_steps
        return max(by_steps, self.elapsed_s() / budget)

    def budget_spent(self) -> bool:
        """True once a time-budgeted run has used its time (lr is then 0 when final_lr_ratio is 0)."""
        budget = self.settings.time_budget_s
        return budget is not None and self.elapsed_s() >= budget

    def lr(self, step: int, cfg: "TrainConfig") -> float:
        if self.settings.schedule == "cosine":
            return lr_at(step, cfg)
        s = self.settings
        return cfg.learning_rate * wsd_multiplier(
            self.progress(step, cfg), step, cfg.warmup_steps, s.warmdown_frac, s.final_lr_ratio
        )


def make_optimizer(
    model: GPT, cfg: "TrainConfig", settings: OptimizerSettings | None = None, clock: TrainingClock | None = None
) -> torch.optim.Optimizer:
    """AdamW that decays only matrices (the default), or Muon + AdamW when `settings.kind == "muon"`.

    With settings given, the optimizer carries an `LrSchedule` that `apply_lr` follows,
    timed by `clock` (a fresh one if None; pass the run's clock to `train()` as well).
    """
    if settings is None or settings.kind == "adamw":
        optimizer: torch.optim.Optimizer = _adamw(model, cfg, settings.adam_betas if settings else (0.9, 0.95))
    else:
        optimizer = _muon_adamw(model, cfg, settings)
    if settings is not None:
        optimizer.lr_schedule = LrSchedule(settings, clock)  # type: ignore[attr-defined]
    return optimizer


def _adamw(model: GPT, cfg: "TrainConfig", betas: tuple[float, float]) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    on_cuda = bool(params) and all(p.is_cuda for p in params)
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=betas, eps=1e-8, fused=on_cuda or None)


def _muon_adamw(model: GPT, cfg: "TrainConfig", s: OptimizerSettings) -> MuonAdamW:
    embed, head = model.embed.weight, model.lm_head.weight
    special = {id(embed), id(head)}
    params = [p for p in model.parameters() if p.requires_grad]
    matrices = [p for p in params if p.dim() == 2 and id(p) not in special]
    gains = [p for p in params if p.dim() < 2]
    base = cfg.learning_rate
    # lr_scale makes apply_lr's single schedule value land on each group's own peak.
    groups = [
        {"params": matrices, "kind": "muon", "lr_scale": s.muon_lr / base, "momentum": s.muon_momentum,
         "nesterov": s.muon_nesterov, "ns_steps": s.muon_ns_steps, "weight_decay": s.muon_weight_decay},
        {"params": [embed], "kind": "adamw", "lr_scale": s.embed_lr_scale, "betas": s.adam_betas,
         "weight_decay": cfg.weight_decay},
        {"params": [head], "kind": "adamw", "lr_scale": s.head_lr_scale, "betas": s.adam_betas,
         "weight_decay": cfg.weight_decay},
        {"params": gains, "kind": "adamw", "lr_scale": 1.0, "betas": s.adam_betas, "weight_decay": 0.0},
    ]  # fmt: skip
    groups = [g for g in groups if g["params"]]  # e.g. a frozen embedding leaves its group empty
    optimizer = MuonAdamW(groups, lr=base)
    for g in optimizer.param_groups:
        g["lr"] = base * g["lr_scale"]
    return optimizer


def apply_lr(optimizer: torch.optim.Optimizer, step: int, cfg: "TrainConfig") -> float:
    """Set every group's learning rate for this step and return the schedule's base value.

    A group may carry an ``lr_scale`` (for instance matrices under another
    optimizer rule than embeddings); the logged value is the unscaled one. An
    optimizer from `make_optimizer(..., settings)` brings its own `LrSchedule`.
    """
    schedule: LrSchedule | None = getattr(optimizer, "lr_schedule", None)
    lr = schedule.lr(step, cfg) if schedule is not None else lr_at(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return lr
