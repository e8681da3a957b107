"""Muon for hidden matrices, AdamW for everything else, as one `torch.optim.Optimizer`.

Muon (Keller Jordan et al., 2024, "Muon: an optimizer for hidden layers in neural
networks") keeps an SGD-momentum buffer per weight matrix and, instead of stepping
along the raw (momentum) gradient, steps along its nearest semi-orthogonal matrix:
for an update G = U S V^T it applies roughly U V^T, i.e. every singular direction
moves by the same amount. That stops a few dominant directions from eating the
whole step, which in practice lets matrix weights learn faster at a fixed budget.

U V^T is approximated by a few Newton-Schulz iterations of an odd quintic
polynomial p(X) = a X + b (X X^T) X + c (X X^T)^2 X, which pushes every singular
value of the (Frobenius-normalised) input towards ~1 without an SVD.

Muon only makes sense for 2-D weights inside the network. Embeddings (a lookup,
not a linear map of activations), the output head and norm gains stay on AdamW;
that split is the caller's (see `model.optim.make_optimizer`), expressed as
param groups with ``"kind": "muon"`` or ``"kind": "adamw"``. Being a single
Optimizer subclass gives one ``param_groups`` list for the schedule to set learning
rates on, and one ``state_dict()`` for checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

# Coefficients of the quintic Newton-Schulz step from the Muon write-up: chosen to
# make the slope at zero large (small singular values grow fast) while the
# iteration still maps [0, 1] into a band around 1. Exact orthogonality is not
# needed, only "all singular values about the same size".
NS_COEFFICIENTS: tuple[float, float, float] = (3.4445, -4.7750, 2.0315)


def orthogonalize(update: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Approximate U V^T of a 2-D `update` = U S V^T with `steps` Newton-Schulz iterations.

    Runs in bfloat16 on CUDA (the iteration is robust to it and it is the costly
    part of a Muon step) and in float32 elsewhere; returns the input's dtype.
    """
    if update.dim() != 2:
        raise ValueError(f"orthogonalize expects a matrix, got shape {tuple(update.shape)}")
    a, b, c = NS_COEFFICIENTS
    x = update.to(torch.bfloat16 if update.is_cuda else torch.float32)
    # Work with the wide orientation so X X^T is the smaller Gram matrix.
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.mT
    # Frobenius norm >= spectral norm, so this puts every singular value in [0, 1],
    # the range where the polynomial iteration converges.
    x = x / (x.norm() + eps)
    for _ in range(steps):
        gram = x @ x.mT
        poly = b * gram + c * (gram @ gram)
        x = a * x + poly @ x
    if tall:
        x = x.mT
    return x.to(update.dtype)


class MuonAdamW(torch.optim.Optimizer):
    """Muon on groups with ``kind="muon"``, AdamW on groups with ``kind="adamw"``.

    Group options (defaults in brackets):

    * muon: ``lr``, ``momentum`` [0.95], ``nesterov`` [True], ``ns_steps`` [5],
      ``weight_decay`` [0] (decoupled, scaled by lr like AdamW's);
    * adamw: ``lr``, ``betas`` [(0.9, 0.95)], ``eps`` [1e-8], ``weight_decay`` [0].

    Any other key (``lr_scale`` for the schedule, for instance) is kept and ignored.
    """

    def __init__(self, param_groups: Iterable[dict[str, Any]], lr: float = 1e-3) -> None:
        groups = [dict(g) for g in param_groups]
        for group in groups:
            kind = group.setdefault("kind", "adamw")
            if kind == "muon":
                for p in group["params"]:
                    if p.dim() != 2:
                        raise ValueError(f"Muon groups take only matrices, got a parameter of shape {tuple(p.shape)}")
                group.setdefault("momentum", 0.95)
                group.setdefault("nesterov", True)
                group.setdefault("ns_steps", 5)
            elif kind == "adamw":
                group.setdefault("betas", (0.9, 0.95))
                group.setdefault("eps", 1e-8)
            else:
                raise ValueError(f"unknown param group kind {kind!r}; expected 'muon' or 'adamw'")
            group.setdefault("weight_decay", 0.0)
        super().__init__(groups, defaults={"lr": lr})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["kind"] == "muon":
                self._muon_group(group)
            else:
                self._adamw_group(group)
        return loss

    def _muon_group(self, group: dict[str, Any]) -> None:
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buf = state["momentum_buffer"]
            buf.mul_(momentum).add_(p.grad)
            # Nesterov: look one momentum step ahead, which the Muon write-up found
            # to help; plain heavy-ball momentum otherwise.
            update = p.grad.add(buf, alpha=momentum) if group["nesterov"] else buf
            ortho = orthogonalize(update, steps=group["ns_steps"])
            # An orthogonal m x n matrix has RMS entry 1/sqrt(max(m, n)); scaling by
            # sqrt(max(1, m/n)) keeps the per-entry step comparable between square
            # and tall matrices (e.g. the MLP's up projection vs its down one).
            scale = math.sqrt(max(1.0, p.size(0) / p.size(1)))
            if wd:
                p.mul_(1.0 - lr * wd)
            p.add_(ortho, alpha=-lr * scale)

    def _adamw_group(self, group: dict[str, Any]) -> None:
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad
            state = self.state[p]
            if "step" not in state:
                # A tensor step keeps torch's load_state_dict happy and saves exactly.
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            t = float(state["step"].item())
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.lerp_(grad, 1.0 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
            bias1 = 1.0 - beta1**t
            bias2 = 1.0 - beta2**t
            denom = (exp_avg_sq.sqrt() / math.sqrt(bias2)).add_(eps)
            if wd:
                p.mul_(1.0 - lr * wd)
            p.addcdiv_(exp_avg, denom, value=-lr / bias1)
