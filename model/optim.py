"""Optimizers and the learning-rate schedule for pretraining.

Kept apart from the loop so the choice of optimizer (and its schedule) can grow
without touching how steps, logging and checkpoints work.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from model.gpt import GPT

if TYPE_CHECKING:
    from model.train import TrainConfig


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


def make_optimizer(model: GPT, cfg: "TrainConfig") -> torch.optim.AdamW:
    """AdamW that decays only matrices (linear and embedding weights), not norm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    on_cuda = bool(params) and all(p.is_cuda for p in params)
    return torch.optim.AdamW(
        groups, lr=cfg.learning_rate, betas=(0.9, 0.95), eps=1e-8, fused=on_cuda or None
    )


def apply_lr(optimizer: torch.optim.Optimizer, step: int, cfg: "TrainConfig") -> float:
    """Set every group's learning rate for this step and return the schedule's base value.

    A group may carry an ``lr_scale`` (for instance matrices under another
    optimizer rule than embeddings); the logged value is the unscaled one.
    """
    lr = lr_at(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return lr
