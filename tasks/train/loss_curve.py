"""The training loss curve as a PNG a person can look at."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmforge import atomic


def plot_loss_curve(history: Sequence[dict[str, Any]], destination: Path, title: str = "Pretraining loss") -> None:
    """Loss (and learning rate, on a second axis) against step, written atomically."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and workers
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    figure, loss_axis = plt.subplots(figsize=(7, 4), dpi=110)
    loss_axis.plot(steps, [h["loss"] for h in history], color="tab:blue", marker="o", markersize=3, label="loss")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("loss (nats/token)", color="tab:blue")
    loss_axis.grid(alpha=0.3)
    lr_axis = loss_axis.twinx()
    lr_axis.plot(steps, [h["lr"] for h in history], color="tab:orange", linewidth=1, label="learning rate")
    lr_axis.set_ylabel("learning rate", color="tab:orange")
    loss_axis.set_title(title)
    figure.tight_layout()
    atomic.write_with(destination, lambda tmp: figure.savefig(tmp, format="png", metadata={"Software": None}))
    plt.close(figure)
