"""Conversations in, padded batches out: the data side of supervised fine-tuning.

`render_examples` turns conversations into examples, each a conversation's token
ids and its loss mask (1 where the assistant speaks, `model.chat_format`), cut or
skipped where longer than the context, with counts of what happened. A batch pads its rows to one length; the targets are the next
token where the mask says the assistant produced it and -1 (ignored by the loss)
everywhere else, padding included. So the training loop is the pretraining loop,
unchanged: only the targets differ.

Examples are visited in an order shuffled per epoch; like the pretraining
samplers, each step draws one global batch (``batch_size * grad_accum_steps *
world_size`` examples) and rank r's micro-batch m is its slice
``(m * world_size + r) * batch_size``, so the data of a step does not depend on
the number of processes, and the state is just the step counter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from model.batch_split import GlobalBatchSplit
from model.chat_format import render_conversation
from model.tokenizer import BpeTokenizer

PAD_ID = 0  # any valid id: padded positions are never predicted from, nor predicted

TooLongPolicy = Literal["truncate", "skip"]


@dataclass(frozen=True)
class SourcedConversation:
    messages: list[dict[str, Any]]
    source: str  # where it came from, for error messages: "file.jsonl:17", "file.parquet: row 16", ...


@dataclass(frozen=True)
class SFTExample:
    ids: list[int]
    mask: list[int]  # 1 where ids[i] is a training target (see model.chat_format)
    truncated: bool
    source: str


@dataclass
class RenderResult:
    examples: list[SFTExample] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("conversations", "examples", "truncated", "skipped_too_long", "skipped_no_target",
             "tokens", "target_tokens"), 0)  # fmt: skip
    )


def render_examples(
    tokenizer: BpeTokenizer,
    conversations: Iterable[SourcedConversation | Sequence[Mapping[str, Any]]],
    max_tokens: int,
    too_long: TooLongPolicy = "truncate",
) -> RenderResult:
    """SFT examples of at most `max_tokens` tokens, with counts of what was truncated or skipped.

    "truncate" keeps a longer conversation's first `max_tokens` tokens, "skip" drops it;
    a conversation whose truncation left no assistant token to learn from is always dropped.
    Plain message lists are named by their position ("#3") in errors.
    """
    if too_long not in ("truncate", "skip"):
        raise ValueError(f"too_long must be 'truncate' or 'skip', got {too_long!r}")
    result = RenderResult()
    counts = result.counts
    for n, conv in enumerate(conversations):
        messages, source = (conv.messages, conv.source) if isinstance(conv, SourcedConversation) else (conv, f"#{n}")
        counts["conversations"] += 1
        try:
            rendered = render_conversation(tokenizer, messages, max_tokens=max_tokens)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
        if rendered.truncated:
            if too_long == "skip":
                counts["skipped_too_long"] += 1
                continue
            counts["truncated"] += 1
        # Mask position 0 is never a target (nothing predicts the first token).
        targets = sum(rendered.mask[1:])
        if targets == 0:
            counts["skipped_no_target"] += 1
            continue
        counts["examples"] += 1
        counts["tokens"] += len(rendered.ids)
        counts["target_tokens"] += targets
        result.examples.append(SFTExample(rendered.ids, rendered.mask, rendered.truncated, source))
    return result


def example_targets(ids: Sequence[int], mask: Sequence[int]) -> tuple[list[int], list[int]]:
    """(inputs, targets) of one example: target t is ids[t + 1] if the assistant produced it, else -1."""
    if len(ids) != len(mask):
        raise ValueError(f"ids ({len(ids)}) and mask ({len(mask)}) differ in length")
    if len(ids) < 2:
        raise ValueError("an example needs at least two tokens")
    inputs = list(ids[:-1])
    targets = [int(t) if m else -1 for t, m in zip(ids[1:], mask[1:], strict=True)]
    return inputs, targets


class ConversationBatches(GlobalBatchSplit):
    """This rank's padded micro-batches of (inputs, targets), with the samplers' interface."""

    def __init__(
        self,
        examples: Sequence[tuple[Sequence[int], Sequence[int]]],
        batch_size: int,
        seq_len: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        grad_accum_steps: int = 1,
    ) -> None:
        super().__init__(batch_size, rank, world_size, grad_accum_steps)
        if not examples:
            raise ValueError("no examples to train on")
        if seq_len <= 0:
            raise ValueError("seq_len must be positive")
        self.pairs = [example_targets(ids, mask) for ids, mask in examples]
        too_long = [i for i, (x, _) in enumerate(self.pairs) if len(x) > seq_len]
        if too_long:
            raise ValueError(f"{len(too_long)} examples exceed seq_len {seq_len} (first: #{too_long[0]}); "
                             "truncate or skip them when rendering")
        self.seq_len = seq_len
        self.seed = seed

    def _example_index(self, k: int) -> int:
        """The k-th example of the endless, per-epoch-shuffled sequence."""
        epoch, offset = divmod(k, len(self.pairs))
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.pairs))
        return int(order[offset])

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        step, _, first = self._next_slot()
        start = step * self.global_rows + first
        rows = [self.pairs[self._example_index(start + i)] for i in range(self.batch_size)]
        width = max(len(x) for x, _ in rows)
        x = torch.full((self.batch_size, width), PAD_ID, dtype=torch.long)
        y = torch.full((self.batch_size, width), -1, dtype=torch.long)
        for i, (inputs, targets) in enumerate(rows):
            x[i, : len(inputs)] = torch.tensor(inputs)
            y[i, : len(targets)] = torch.tensor(targets)
        return x, y

    def __iter__(self) -> ConversationBatches:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.next()

    def state_dict(self) -> dict[str, int | str]:
        return {"kind": "conversations", "seed": self.seed, "step": self.steps_done, "position": self.position,
                "global_rows": self.global_rows, "examples": len(self.pairs)}

    def load_state_dict(self, state: dict[str, int | str]) -> None:
        for key, mine in (("kind", "conversations"), ("global_rows", self.global_rows), ("examples", len(self.pairs))):
            if state.get(key) != mine:
                raise ValueError(f"batch state has {key}={state.get(key)!r}, these batches have {mine!r}")
        self.seed = int(state["seed"])
        self._resume_at_step(int(state["step"]))
