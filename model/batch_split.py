"""How one optimizer step's global batch is spread over processes and micro-batches.

Every sampler of this package draws the rows of step s as one global batch of
``batch_size * grad_accum_steps * world_size`` rows and hands rank r, on its
micro-batch m, the slice starting at ``(m * world_size + r) * batch_size``. The
data of a step then does not depend on how it is split: one process
accumulating two micro-batches trains on exactly the rows two processes share,
and a run may resume with another split of the same global batch.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class TrainingBatches(Protocol):
    """What the training loop needs from a sampler: its shape, its split, the next micro-batch,
    and a state to checkpoint (`BatchSampler`, `PackedLoader`, `ConversationBatches`)."""

    batch_size: int
    seq_len: int
    world_size: int
    grad_accum_steps: int

    @property
    def steps_done(self) -> int: ...

    def next(self) -> tuple[torch.Tensor, torch.Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class GlobalBatchSplit:
    """The bookkeeping the samplers share: this rank's position and its slice of each step."""

    def __init__(self, batch_size: int, rank: int = 0, world_size: int = 1, grad_accum_steps: int = 1) -> None:
        if batch_size <= 0 or grad_accum_steps <= 0 or world_size <= 0:
            raise ValueError("batch_size, grad_accum_steps and world_size must be positive")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of {world_size}")
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.grad_accum_steps = grad_accum_steps
        self.position = 0  # micro-batches handed out by this rank

    @property
    def global_rows(self) -> int:
        return self.batch_size * self.grad_accum_steps * self.world_size

    @property
    def steps_done(self) -> int:
        return self.position // self.grad_accum_steps

    def _next_slot(self) -> tuple[int, int, int]:
        """(step, micro-batch, first row of this rank's slice within the step), and advance."""
        step, micro = divmod(self.position, self.grad_accum_steps)
        self.position += 1
        return step, micro, (micro * self.world_size + self.rank) * self.batch_size

    def _resume_at_step(self, step: int) -> None:
        self.position = step * self.grad_accum_steps

    def _check_global_rows(self, state: dict, what: str) -> None:
        if "global_rows" in state and int(state["global_rows"]) != self.global_rows:
            raise ValueError(
                f"{what} state has a global batch of {state['global_rows']} rows (batch_size x grad_accum_steps "
                f"x world_size), this one has {self.global_rows}"
            )
