"""A small Llama-shaped decoder-only transformer.

Pre-norm blocks with RMSNorm, rotary position embeddings, SwiGLU MLP, no biases,
and an output head that is *not* tied to the input embedding. Attention goes
through `scaled_dot_product_attention`, which picks a fused kernel when one exists.

Inference adds a key/value cache (`KVCache`, `GPT.forward_cached`). It is a
separate path: the training forward (`GPT.forward`) never sees the cache, so its
speed and results do not depend on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Sequence
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

    def forward_cached(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        k_buf: torch.Tensor,
        v_buf: torch.Tensor,
        step: _CacheStep,
    ) -> torch.Tensor:
        """Attention of the new tokens `x` over the cached ones and themselves.

        The new keys/values are written into this layer's buffers first, so the
        attention below reads one contiguous history per row (cached + new).
        """
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        step.write(k_buf, k)
        step.write(v_buf, v)
        keys, values = k_buf[:, :, : step.kv_len], v_buf[:, :, : step.kv_len]
        if keys.dtype != q.dtype:  # a cache kept in another dtype than the activations
            keys, values = keys.to(q.dtype), values.to(q.dtype)
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=step.mask, is_causal=step.is_causal)
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

    def forward_cached(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        k_buf: torch.Tensor,
        v_buf: torch.Tensor,
        step: _CacheStep,
    ) -> torch.Tensor:
        x = x + self.attn.forward_cached(self.attn_norm(x), cos, sin, k_buf, v_buf, step)
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

    @torch.no_grad()
    def forward_cached(
        self,
        idx: torch.Tensor,
        cache: KVCache,
        n_tokens: Sequence[int] | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Run new tokens through the model on top of what `cache` holds; inference only (no grad).

        `idx` is [B, T]; row b appends its first `n_tokens[b]` tokens (all T when
        `n_tokens` is None; the rest of the row is padding, which is computed but
        never stored in the history nor attended to) at absolute positions
        `cache.lengths[b]`, `cache.lengths[b] + 1`, ... Rows may start at different
        positions and append different counts, so one call serves a multi-token
        prefill, a single-token decode step, and a ragged mix of both.

        Returns float32 logits [B, T, V], or [B, V] at each row's last appended
        token when `last_only` (what sampling needs; skips the head elsewhere).
        """
        B, T = idx.shape
        if B != cache.batch_size:
            raise ValueError(f"idx has {B} rows but the cache holds {cache.batch_size}")
        counts = [T] * B if n_tokens is None else [int(n) for n in n_tokens]
        if len(counts) != B or any(not 0 <= n <= T for n in counts):
            raise ValueError(f"n_tokens must give 0..{T} tokens for each of the {B} rows, got {counts}")
        starts = list(cache.lengths)
        kv_len = max(s + n for s, n in zip(starts, counts))
        if kv_len > cache.max_len:
            raise ValueError(
                f"appending would hold {kv_len} tokens, over the cache's limit of {cache.max_len} "
                f"(the model's context is {self.config.seq_len})"
            )
        cache.ensure_capacity(kv_len)
        step = _CacheStep.plan(starts, counts, T, kv_len, cache.capacity, idx.device)
        if step.positions is None:
            cos, sin = self.rope_cos[starts[0] : starts[0] + T], self.rope_sin[starts[0] : starts[0] + T]
        else:
            # Per-row positions: [B, 1, T, D/2] broadcasts over the heads.
            cos, sin = self.rope_cos[step.positions].unsqueeze(1), self.rope_sin[step.positions].unsqueeze(1)
        x = self.embed(idx)
        for i, block in enumerate(self.blocks):
            x = block.forward_cached(x, cos, sin, cache.k[i], cache.v[i], step)
        cache.lengths = [s + n for s, n in zip(starts, counts)]
        if last_only:
            last = torch.tensor([max(n - 1, 0) for n in counts], device=idx.device)
            x = x[torch.arange(B, device=idx.device), last]
        return self.lm_head(self.norm(x)).float()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


@dataclass
class _CacheStep:
    """How one `forward_cached` call writes into and reads from the cache, shared by all layers.

    Two shapes of call:
    * uniform: every row starts at the same position and appends all T tokens
      (a single prompt, K samples of one prompt, lock-step decoding). Writes are
      slice copies and the mask is the cheapest one that is right: none for one
      new token (it may see the whole history), `is_causal` for a prefill into
      an empty cache (exactly the training attention), otherwise explicit;
    * ragged: rows start at different positions and/or append different counts.
      Writes scatter each token to its own slot, padding goes to the trash slot
      (index `capacity`, never read), and an explicit mask lets the query at
      absolute position p see keys 0..p of its own row only.
    """

    kv_len: int
    uniform_start: int | None
    slots: torch.Tensor | None  # [B, T] slot of each token (ragged only)
    rows: torch.Tensor | None  # [B, T] row index matching `slots`
    positions: torch.Tensor | None  # [B, T] rotary position of each token (ragged only)
    mask: torch.Tensor | None  # boolean, True = may attend
    is_causal: bool

    @staticmethod
    def plan(
        starts: list[int], counts: list[int], T: int, kv_len: int, capacity: int, device: torch.device
    ) -> _CacheStep:
        if len(set(starts)) == 1 and all(n == T for n in counts):
            start = starts[0]
            if T == 1 or start == 0:
                return _CacheStep(kv_len, start, None, None, None, None, is_causal=T > 1)
            q_pos = start + torch.arange(T, device=device)
            mask = torch.arange(kv_len, device=device)[None, :] <= q_pos[:, None]
            return _CacheStep(kv_len, start, None, None, None, mask, is_causal=False)
        B = len(starts)
        t = torch.arange(T, device=device)
        q_pos = torch.tensor(starts, device=device)[:, None] + t[None, :]
        real = t[None, :] < torch.tensor(counts, device=device)[:, None]
        slots = torch.where(real, q_pos, capacity)
        # Padding queries still need an in-range rotary position; their outputs are discarded.
        positions = torch.where(real, q_pos, 0)
        mask = (torch.arange(kv_len, device=device)[None, None, :] <= q_pos[:, :, None]).unsqueeze(1)
        rows = torch.arange(B, device=device)[:, None].expand(B, T)
        return _CacheStep(kv_len, None, slots, rows, positions, mask, is_causal=False)

    def write(self, buf: torch.Tensor, new: torch.Tensor) -> None:
        """Store new keys or values [B, H, T, D] into one layer's buffer [B, H, capacity + 1, D]."""
        if self.uniform_start is not None:
            buf[:, :, self.uniform_start : self.uniform_start + new.shape[2]] = new
        else:
            # Advanced indices around a slice put their dims first: the target is [B, T, H, D].
            buf[self.rows, :, self.slots] = new.transpose(1, 2).to(buf.dtype)


class KVCache:
    """Keys and values of every layer for a batch of sequences, preallocated.

    `k`/`v` are [n_layer, B, n_head, capacity + 1, head_dim]: slot s of row b holds
    the token at absolute position s of that row (so rotary positions and the
    causal mask follow from slot indices); `lengths[b]` says how many slots of row
    b are valid. The extra last slot is scratch space where padding tokens of a
    ragged call are written, so they never overwrite history.

    Storage starts at `capacity` slots and grows (doubling, up to `max_len`, at
    most the model's context) when a call needs more, so a caller can size it for
    the expected output without giving up on longer ones.
    """

    def __init__(
        self,
        config: GPTConfig,
        batch_size: int,
        capacity: int | None = None,
        max_len: int | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.max_len = config.seq_len if max_len is None else max_len
        if not 0 < self.max_len <= config.seq_len:
            raise ValueError(f"max_len must be in 1..{config.seq_len} (the model's context), got {self.max_len}")
        capacity = self.max_len if capacity is None else max(1, min(capacity, self.max_len))
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        shape = (config.n_layer, batch_size, config.n_head, capacity + 1, config.head_dim)
        # Zeros, not empty: stale slots are masked out, but masked garbage must not be NaN.
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.lengths: list[int] = [0] * batch_size

    @property
    def batch_size(self) -> int:
        return self.k.shape[1]

    @property
    def capacity(self) -> int:
        return self.k.shape[3] - 1

    def ensure_capacity(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        if needed > self.max_len:
            raise ValueError(f"{needed} slots requested, over the cache's limit of {self.max_len}")
        new_cap = min(self.max_len, max(needed, 2 * self.capacity))
        old = self.capacity
        for name in ("k", "v"):
            buf = getattr(self, name)
            grown = buf.new_zeros((*buf.shape[:3], new_cap + 1, buf.shape[4]))
            grown[:, :, :, :old] = buf[:, :, :, :old]
            setattr(self, name, grown)

    def select_rows(self, rows: Sequence[int]) -> None:
        """Keep only these rows, in this order (drop finished sequences from a batch)."""
        index = torch.tensor(list(rows), dtype=torch.long, device=self.k.device)
        self.k, self.v = self.k.index_select(1, index), self.v.index_select(1, index)
        self.lengths = [self.lengths[r] for r in rows]

    def repeat_rows(self, times: int) -> None:
        """Each row becomes `times` consecutive copies: prefill a prompt once, then decode many samples."""
        self.k = self.k.repeat_interleave(times, dim=1)
        self.v = self.v.repeat_interleave(times, dim=1)
        self.lengths = [n for n in self.lengths for _ in range(times)]

    def reset_row(self, row: int) -> None:
        """Forget row `row`'s history; its stale slots are overwritten or masked from then on."""
        self.lengths[row] = 0


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
