"""How much arithmetic a training token costs, and how much the accelerator can do.

Model FLOPs utilisation (MFU) = achieved model FLOPs / peak FLOPs. The model
FLOPs per token follow the usual accounting (Kaplan et al.; PaLM appendix B):
6 per weight of every matrix multiply (2 forward, 4 backward) plus the
attention scores and weighted sums, 12 * layers * width * context, counted
over the full (not causally halved) score matrix as most published MFU figures do.
"""

from __future__ import annotations

import torch

from model.gpt import GPTConfig

# Dense bf16 peaks (no sparsity) from the vendors' data sheets, in FLOP/s.
_PEAK_BF16 = (
    ("H200", 989.4e12),
    ("GH200", 989.4e12),
    ("H100", 989.4e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("A10G", 125e12),
    ("L4", 121e12),
)


def matmul_parameters(config: GPTConfig) -> int:
    """Weights that take part in a matrix multiply per token: every block, plus the output head.

    The input embedding is a lookup, not a multiply, so it is left out.
    """
    c, hidden = config.n_embd, config.mlp_hidden
    per_block = 4 * c * c + 3 * c * hidden  # qkv + proj, gate + up + down
    return config.n_layer * per_block + c * config.vocab_size


def model_flops_per_token(config: GPTConfig, seq_len: int) -> float:
    """Training FLOPs (forward + backward) per token at a context of seq_len."""
    return 6.0 * matmul_parameters(config) + 12.0 * config.n_layer * config.n_embd * seq_len


def peak_flops(device: torch.device | str) -> float | None:
    """The bf16 peak of a known CUDA device, else None (CPU peaks vary too much to guess)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(device)
    for marker, peak in _PEAK_BF16:
        if marker in name:
            return peak
    return None
