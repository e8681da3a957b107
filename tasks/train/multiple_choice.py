"""HellaSwag-style multiple-choice evaluation from a local JSONL file.

Each line is one example: ``{"context": str, "endings": [str, ...], "label": int}``.
HellaSwag's own files use ``ctx`` for the context and may store ``label`` as a
string ("2"); both are accepted. A bad line is skipped and reported as
``"file:line: reason"`` instead of aborting the run, because public dumps of such
data sets routinely carry a few damaged rows and one of them should not cost the
whole evaluation.

Scoring (the usual zero-shot recipe for completion-style benchmarks):

* every ending is scored as a continuation of ``[BOS] + context tokens``: the sum
  of the log-probabilities the model gives to the ending's tokens;
* ``accuracy`` takes the ending with the highest sum; ``accuracy_norm`` the one
  with the highest *mean* per ending token, so a long but fluent ending is not
  penalised merely for having more tokens to pay for;
* ties go to the lowest ending index, so results are deterministic.

Tokenisation rule for the ending: the ending is encoded on its own, after a single
space is prepended when the context is non-empty, does not end with whitespace,
and the ending does not start with whitespace. The project's split pattern keeps
a word's leading space in the word's token (" word"), so this gives the tokens the
ending would have inside running text, while the context's tokens stay exactly
the same for all endings (only the ending differs between the candidates).

Long inputs: when ``1 + len(context) + len(ending)`` tokens exceed what one
forward pass can predict (``model.config.seq_len`` inputs, hence ``seq_len + 1``
tokens), the sequence is cropped from the left: first the BOS and the context's
oldest tokens go. Should an ending alone be longer than ``seq_len`` tokens, only
its last ``seq_len`` tokens can be predicted, and only those are scored (and
counted for the normalisation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from model.gpt import GPT
from model.tokenizer import BpeTokenizer


@dataclass(frozen=True)
class Example:
    context: str
    endings: list[str]
    label: int
    source: str  # "file:line", so a surprising prediction can be traced back to its row


@dataclass
class MultipleChoiceResult:
    examples: int
    accuracy: float
    accuracy_norm: float
    skipped: list[str] = field(default_factory=list)  # "file:line: reason"

    def as_metrics(self, prefix: str = "hellaswag") -> dict[str, Any]:
        """Flat, JSON-ready metrics in the style of the evaluate stage's metrics.json."""
        return {
            f"{prefix}_examples": self.examples,
            f"{prefix}_acc": round(self.accuracy, 4),
            f"{prefix}_acc_norm": round(self.accuracy_norm, 4),
            f"{prefix}_skipped": len(self.skipped),
        }


def _parse_line(obj: Any) -> tuple[str, list[str], int]:
    """The (context, endings, label) of one decoded JSON line; ValueError with a readable reason."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    if "context" in obj:
        context = obj["context"]
    elif "ctx" in obj:  # HellaSwag's own field name
        context = obj["ctx"]
    else:
        raise ValueError("missing field 'context' (or 'ctx')")
    if not isinstance(context, str):
        raise ValueError(f"context must be a string, got {type(context).__name__}")

    endings = obj.get("endings")
    if endings is None:
        raise ValueError("missing field 'endings'")
    if not isinstance(endings, list) or not all(isinstance(e, str) for e in endings):
        raise ValueError("endings must be a list of strings")
    if len(endings) < 2:
        raise ValueError(f"need at least 2 endings to choose from, got {len(endings)}")
    for i, ending in enumerate(endings):
        # An empty ending has no tokens to score, so it would have no defined mean log-likelihood.
        if not ending.strip():
            raise ValueError(f"ending {i} is empty")

    if "label" not in obj:
        raise ValueError("missing field 'label'")
    raw_label = obj["label"]
    # bool is an int subclass; `true` as a label is a data error, not ending 1.
    if isinstance(raw_label, bool):
        raise ValueError(f"label must be an integer, got {raw_label!r}")
    if isinstance(raw_label, int):
        label = raw_label
    elif isinstance(raw_label, str) and raw_label.strip().lstrip("-").isdigit():
        label = int(raw_label.strip())  # HellaSwag stores labels as strings in some releases
    else:
        raise ValueError(f"label must be an integer or a string of one, got {raw_label!r}")
    if not 0 <= label < len(endings):
        raise ValueError(f"label {label} is out of range for {len(endings)} endings")
    return context, endings, label


def load_examples(path: Path) -> tuple[list[Example], list[str]]:
    """The valid examples of a JSONL file, and one ``"file:line: reason"`` per skipped line.

    Blank lines are ignored silently (trailing newlines are common and harmless).
    Raises FileNotFoundError when the file is missing, and ValueError naming the
    file (and the first reasons) when no line is valid.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"multiple-choice data file not found: {path}")
    examples: list[Example] = []
    skipped: list[str] = []
    # errors="replace": a line with broken UTF-8 must become one skipped line, not a crash of the whole file.
    with path.open("r", encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                skipped.append(f"{where}: invalid JSON ({err.msg} at column {err.colno})")
                continue
            try:
                context, endings, label = _parse_line(obj)
            except ValueError as err:
                skipped.append(f"{where}: {err}")
                continue
            examples.append(Example(context=context, endings=endings, label=label, source=where))
    if not examples:
        detail = "; ".join(skipped[:3]) if skipped else "the file is empty"
        raise ValueError(f"no valid multiple-choice example in {path} ({detail})")
    return examples, skipped


def continuation_text(context: str, ending: str) -> str:
    """The ending as it follows the context in running text (see the module docstring for the rule)."""
    if context and not context[-1].isspace() and not ending[:1].isspace():
        return " " + ending
    return ending


def _crop(context_ids: list[int], ending_ids: list[int], seq_len: int) -> tuple[list[int], int]:
    """The token sequence to feed (inputs + final target), cropped from the left, and how many ending tokens it scores."""
    sequence = context_ids + ending_ids
    sequence = sequence[-(seq_len + 1) :]
    # The first token of the (cropped) sequence is never a target, so at most len - 1 ending tokens are scored.
    return sequence, min(len(ending_ids), len(sequence) - 1)


def _device_of(model: torch.nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def score_endings(model: GPT, context_ids: list[int], endings_ids: list[list[int]]) -> list[tuple[float, int]]:
    """(summed log-likelihood, scored token count) of each ending after `context_ids`, in one forward pass.

    `context_ids` already holds the BOS. The candidates are right-padded to the
    same length; causal attention means padding after a position cannot change
    that position's logits, and the padding's own predictions are masked out.
    """
    if not endings_ids:
        return []
    seq_len = model.config.seq_len
    device = _device_of(model)
    cropped = [_crop(context_ids, ending, seq_len) for ending in endings_ids]
    width = max(len(seq) for seq, _ in cropped) - 1
    inputs = torch.zeros((len(cropped), width), dtype=torch.long)
    targets = torch.zeros((len(cropped), width), dtype=torch.long)
    mask = torch.zeros((len(cropped), width), dtype=torch.bool)
    for row, (seq, n_scored) in enumerate(cropped):
        n = len(seq) - 1
        inputs[row, :n] = torch.tensor(seq[:-1])
        targets[row, :n] = torch.tensor(seq[1:])
        # Only the last n_scored targets are ending tokens; earlier ones are the context.
        mask[row, n - n_scored : n] = True
    logits, _ = model(inputs.to(device))
    logprobs = F.log_softmax(logits.float(), dim=-1)
    token_lp = logprobs.gather(-1, targets.to(device).unsqueeze(-1)).squeeze(-1)
    sums = (token_lp * mask.to(device)).sum(dim=-1).cpu()
    return [(float(sums[row]), n_scored) for row, (_, n_scored) in enumerate(cropped)]


def _argmax(values: list[float]) -> int:
    # First index among equals: deterministic ties, independent of torch's argmax conventions.
    return max(range(len(values)), key=lambda i: (values[i], -i))


def evaluate_multiple_choice(
    model: GPT, tokenizer: BpeTokenizer, path: Path, max_examples: int | None = None
) -> MultipleChoiceResult:
    """Zero-shot accuracy (acc: summed log-likelihood; acc_norm: per-token mean) on the JSONL file at `path`.

    `max_examples` evaluates only the first that many valid examples (a quick look
    during training). The model is put in eval mode for the run and restored after.
    """
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples must be at least 1, got {max_examples}")
    examples, skipped = load_examples(Path(path))
    if max_examples is not None:
        examples = examples[:max_examples]
    was_training = model.training
    model.eval()
    correct = correct_norm = 0
    try:
        for example in examples:
            context_ids = [tokenizer.bos_id, *tokenizer.encode(example.context)]
            endings_ids = [tokenizer.encode(continuation_text(example.context, e)) for e in example.endings]
            scores = score_endings(model, context_ids, endings_ids)
            sums = [total for total, _ in scores]
            means = [total / max(n, 1) for total, n in scores]
            correct += _argmax(sums) == example.label
            correct_norm += _argmax(means) == example.label
    finally:
        model.train(was_training)
    n = len(examples)
    return MultipleChoiceResult(examples=n, accuracy=correct / n, accuracy_norm=correct_norm / n, skipped=skipped)
