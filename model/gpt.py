"""A small Llama-shaped decoder-only transformer.

Pre-norm blocks with RMSNorm, rotary position embeddings, SwiGLU MLP, no biases,
and an output head that is *not* tied to the input embedding. Attention goes
through `scaled_dot_product_attention`, which picks a fused kernel when one exists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class GPTConfig:
    vocab_size: int
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    seq_len: int = 256  # max context
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "n_head", "n_embd", "seq_len"):
            if getattr(self, name) <= 0:
                raise ValueError(f"GPTConfig.{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if (self.n_embd // self.n_head) % 2 != 0:
            raise ValueError("head dimension (n_embd / n_head) must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def mlp_hidden(self) -> int:
        # 8/3 keeps SwiGLU's three matrices at the parameter cost of a 4x GELU MLP;
        # a multiple of 32 keeps matmul shapes friendly to vectorised kernels.
        return 32 * math.ceil(8 * self.n_embd / 3 / 32)


def config_to_dict(c: GPTConfig) -> dict[str, Any]:
    return dataclasses.asdict(c)


def config_from_dict(d: dict[str, Any]) -> GPTConfig:
    known = {f.name for f in dataclasses.fields(GPTConfig)}
    unknown = set(d) - known
    if unknown:
        # A state file from a newer/other model family should fail loudly, not half-load.
        raise ValueError(f"unknown GPTConfig keys: {sorted(unknown)}")
    return GPTConfig(**d)


def rotary_tables(seq_len: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables of shape [seq_len, head_dim // 2], computed in float32."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[..., i], x[..., i + d/2]) by position-dependent angles; x is [B, H, T, D]."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    out = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    # Rotate in float32 for accuracy at long positions, then return to the
    # activation dtype so attention runs in bf16 under autocast.
    return out.to(x.dtype)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.head_dim = config.head_dim
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class SwiGLU(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        hidden = config.mlp_hidden
        self.gate = nn.Linear(config.n_embd, hidden, bias=False)
        self.up = nn.Linear(config.n_embd, hidden, bias=False)
        self.down = nn.Linear(hidden, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(config.n_embd, eps=1e-6)
        self.attn = CausalSelfAttention(config)
        self.mlp_norm = nn.RMSNorm(config.n_embd, eps=1e-6)
        self.mlp = SwiGLU(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = nn.RMSNorm(config.n_embd, eps=1e-6)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        cos, sin = rotary_tables(config.seq_len, config.head_dim, config.rope_theta)
        # Non-persistent: derived from the config, so checkpoints hold only learned weights.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        std = 0.02
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, nn.RMSNorm):
                nn.init.ones_(module.weight)
        # Each block adds two outputs to the residual stream; shrinking them keeps
        # the stream's variance roughly depth-independent at init (GPT-2 recipe).
        residual_std = std / math.sqrt(2 * self.config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.down.weight, mean=0.0, std=residual_std)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        loss_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits [B, T, V] in float32, and the mean next-token loss when `targets` is given.

        The loss averages over positions whose target is not -1 and, if given,
        whose `loss_mask` is non-zero. With no such position it is 0 (still part of
        the graph), so a fully masked batch is a no-op rather than a NaN.
        """
        B, T = idx.shape
        if T > self.config.seq_len:
            raise ValueError(f"sequence length {T} exceeds the model's context of {self.config.seq_len}")
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, cos, sin)
        # Float32 logits: softmax/cross-entropy over a large vocab is where bf16 hurts.
        logits = self.lm_head(self.norm(x)).float()
        if targets is None:
            return logits, None
        return logits, masked_cross_entropy(logits, targets, loss_mask)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def masked_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, loss_mask: torch.Tensor | None = None
) -> torch.Tensor:
    per_token = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1, reduction="none"
    )
    weight = (targets.reshape(-1) != -1).to(per_token.dtype)
    if loss_mask is not None:
        if loss_mask.shape != targets.shape:
            raise ValueError(f"loss_mask shape {tuple(loss_mask.shape)} != targets shape {tuple(targets.shape)}")
        weight = weight * (loss_mask.reshape(-1) != 0).to(per_token.dtype)
    return (per_token * weight).sum() / weight.sum().clamp(min=1.0)


def autocast_context(device: str | torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA (matmuls in bf16, master weights float32); a no-op elsewhere.

    CPU stays in full float32: CPU bf16 matmuls are rarely faster and lose precision.
    """
    if torch.device(device).type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
