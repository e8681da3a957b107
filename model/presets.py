"""Model sizes from one dial: depth.

Width grows with depth (``n_embd = aspect_ratio * depth``) and heads keep a
fixed width (``n_head = n_embd // head_dim``), so one number moves a model from
a laptop toy to GPT-2 scale while its proportions stay sane. The named presets
pin the dial and the two proportions, and name a training recipe (``RECIPES``); any
field can still be set by hand.

| preset | depth | n_embd | heads | context | meant for |
|---|---:|---:|---:|---:|---|
| tiny | 4 | 128 | 4 × 32 | 256 | CPU, minutes |
| small | 8 | 512 | 8 × 64 | 1024 | one GPU, hours |
| gpt2 | 12 | 768 | 12 × 64 | 1024 | GPT-2 124M class, several GPUs |
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShapePreset:
    depth: int
    aspect_ratio: int  # n_embd per layer of depth
    head_dim: int
    seq_len: int
    batch_size: int  # sequences per device per micro-step, a starting point for the hardware named

    @property
    def n_embd(self) -> int:
        return self.aspect_ratio * self.depth


PRESETS: dict[str, ShapePreset] = {
    "tiny": ShapePreset(depth=4, aspect_ratio=32, head_dim=32, seq_len=256, batch_size=16),
    "small": ShapePreset(depth=8, aspect_ratio=64, head_dim=64, seq_len=1024, batch_size=32),
    "gpt2": ShapePreset(depth=12, aspect_ratio=64, head_dim=64, seq_len=1024, batch_size=32),
}


@dataclass(frozen=True)
class Recipe:
    """How a preset trains: optimizer, schedule and rates (PretrainConfig's fields of the same names)."""

    optimizer: str
    schedule: str
    learning_rate: float  # AdamW's peak: embeddings, head and gains under muon
    muon_lr: float
    weight_decay: float
    muon_weight_decay: float
    warmdown_frac: float


# tiny: the best measured on tinyshakespeare at a 95-second budget on 2 CPU cores
# (BENCHMARKS.md, "Training"): Muon on the hidden matrices, a long linear warmdown, and weight
# decay, which pays once a run sees its data several times. small and gpt2 have no recipe yet:
# they keep PretrainConfig's defaults until one is measured on GPUs.
RECIPES: dict[str, Recipe] = {
    "tiny": Recipe(optimizer="muon", schedule="wsd", learning_rate=6e-3, muon_lr=0.04, weight_decay=0.2,
                   muon_weight_decay=0.2, warmdown_frac=0.8),
}


def shape_from_depth(depth: int, aspect_ratio: int, head_dim: int) -> tuple[int, int, int]:
    """(n_layer, n_head, n_embd) for a depth; raises when the proportions do not divide."""
    if depth <= 0 or aspect_ratio <= 0 or head_dim <= 0:
        raise ValueError(f"depth, aspect_ratio and head_dim must be positive, got {depth}, {aspect_ratio}, {head_dim}")
    n_embd = aspect_ratio * depth
    if n_embd % head_dim != 0:
        raise ValueError(f"n_embd {n_embd} (= {aspect_ratio} x depth {depth}) is not a multiple of head_dim {head_dim}")
    return depth, n_embd // head_dim, n_embd


def preset_shape(name: str) -> tuple[int, int, int]:
    """(n_layer, n_head, n_embd) of a named preset."""
    try:
        p = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}") from None
    return shape_from_depth(p.depth, p.aspect_ratio, p.head_dim)
