"""Data-parallel plumbing: who am I (rank), how many are we, and a few collectives.

Runs under `torchrun`, which sets RANK / WORLD_SIZE / LOCAL_RANK and the
rendezvous address; without those variables everything degrades to a single
process, so the same training code serves a laptop and a GPU cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_info() -> DistInfo:
    """What torchrun told this process (a single process when run without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(rank=int(os.environ["RANK"]), world_size=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def init(device_type: str) -> DistInfo:
    """Join the process group torchrun set up: NCCL between GPUs, gloo on CPU."""
    info = env_info()
    if info.enabled and not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return info


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def current() -> DistInfo:
    """The process group this process is in, or a single process."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=env_info().local_rank)
    return DistInfo()


def pick_device(requested: str, local_rank: int = 0) -> str:
    """The device this process computes on ("auto": CUDA when available, else CPU);
    under torchrun on CUDA each process takes its own GPU."""
    device = requested
    if requested == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and env_info().enabled:
        return f"cuda:{local_rank}"
    return device


def mean_across_ranks(value: float, device: torch.device) -> float:
    """The mean of a per-rank scalar over every rank (the value itself in a single process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / dist.get_world_size()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
