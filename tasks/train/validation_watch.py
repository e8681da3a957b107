"""Scoring the validation split while pretraining: keep the best weights, stop when it stops improving.

A small dataset seen many times is memorised: the training loss keeps falling while the
validation loss turns up. With `pretrain.eval_every`, the run scores the first
`pretrain.eval_tokens` validation tokens every that many steps, keeps a copy of the
weights that scored best, and, with `pretrain.patience`, stops once that many scores in a
row brought no new best. The base checkpoint then holds the best weights. The scores, the
best step and the best weights are part of the resumable training state, so a resumed run
ends with the same checkpoint as an unbroken one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmforge.config import PretrainConfig
from model import distributed
from model.gpt import GPT
from model.tokenizer import BpeTokenizer


class StopEarly(Exception):
    """Raised after a step whose score used up the patience; the run ends there."""


@dataclass
class ValidationWatch:
    every: int
    patience: int
    max_tokens: int
    val_docs: list[np.ndarray]
    byte_lengths: torch.Tensor
    scores: list[list[float]] = field(default_factory=list)  # [step, validation loss in nats/token]
    best_step: int | None = None
    best_loss: float | None = None
    best_weights: dict[str, torch.Tensor] | None = None
    bad_scores: int = 0  # scores in a row without a new best
    stopped_early: bool = False

    def due(self, step: int) -> bool:
        return step % self.every == 0 and (not self.scores or self.scores[-1][0] != step)

    def score(self, model: GPT, step: int) -> bool:
        """Score the weights after `step`; keep them if best. True when the run should stop now."""
        from tasks.train.evaluate import bits_per_byte

        was_training = model.training
        model.eval()
        try:
            loss = bits_per_byte(model, self.val_docs, self.byte_lengths, self.max_tokens)["val_loss"]
        finally:
            model.train(was_training)
        # Under torchrun every rank must take the same decision (a rank that stops alone would leave
        # the others waiting in the next all-reduce): all decide on the mean, which is the same everywhere.
        loss = distributed.mean_across_ranks(loss, next(model.parameters()).device)
        self.scores.append([step, round(loss, 6)])
        if self.best_loss is None or loss < self.best_loss:
            self.best_step, self.best_loss, self.bad_scores = step, loss, 0
            self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            return False
        self.bad_scores += 1
        return 0 < self.patience <= self.bad_scores

    def exhausted(self) -> bool:
        """The patience was used up before the state was saved: a resumed run has nothing left to train."""
        return 0 < self.patience <= self.bad_scores

    def finish(self, model: GPT, step: int, planned_steps: int) -> None:
        """Score the last weights if they were not, then put the best weights in the model. A run that
        ended before its planned steps stopped early (the patience was used up)."""
        self.stopped_early = step < planned_steps and self.exhausted()
        if not self.scores or self.scores[-1][0] != step:
            self.score(model, step)
        if self.best_weights is not None and self.best_step != step:
            model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {"scores": self.scores, "best_step": self.best_step, "best_loss": self.best_loss,
                "bad_scores": self.bad_scores}

    def load_state_dict(self, state: dict[str, Any] | None, best_weights: dict[str, torch.Tensor] | None) -> None:
        if not state:
            return
        if state.get("best_step") is not None and best_weights is None:
            raise ValueError("the training state names a best step but holds no best weights (best.safetensors)")
        self.scores = [list(s) for s in state["scores"]]
        self.best_step, self.best_loss, self.bad_scores = state["best_step"], state["best_loss"], state["bad_scores"]
        self.best_weights = best_weights

    def metrics(self) -> dict[str, Any]:
        # best_step: the step whose weights the base checkpoint holds (its "step" is where training ended).
        return {"validation_scores": len(self.scores), "best_step": self.best_step,
                "best_scored_val_loss": None if self.best_loss is None else round(self.best_loss, 4),
                "stopped_early": self.stopped_early}


def validation_watch(config: PretrainConfig, val_dir: Path, tokenizer: BpeTokenizer) -> ValidationWatch | None:
    """The watch `config` asks for (None without eval_every); an error when there is no validation split."""
    if not config.eval_every:
        return None
    from tasks.tokenize.stage import read_token_documents
    from tasks.train.evaluate import token_byte_lengths

    if not any(Path(val_dir).glob("*.parquet")):
        raise FileNotFoundError(f"pretrain.eval_every needs the validation split, and {val_dir} has no token shards")
    docs = read_token_documents(val_dir, config.eval_tokens + 1)
    return ValidationWatch(config.eval_every, config.patience, config.eval_tokens, docs, token_byte_lengths(tokenizer))
