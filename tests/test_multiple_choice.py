"""HellaSwag-style multiple choice: loading and skipping bad lines, scoring, batching, left-cropping."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.gpt import GPT, GPTConfig
from model.tokenizer import MIN_VOCAB_SIZE, BpeTokenizer, train_bpe
from tasks.train.multiple_choice import (
    continuation_text,
    evaluate_multiple_choice,
    load_examples,
    score_endings,
)

FIXTURE = Path(__file__).parent / "data" / "hellaswag_tiny.jsonl"


@pytest.fixture(scope="module")
def byte_tokenizer() -> BpeTokenizer:
    # No merges: every ASCII character is exactly one token, so token counts in the tests are character counts.
    return train_bpe(["abc"], MIN_VOCAB_SIZE)


@dataclass
class _StubConfig:
    seq_len: int


class UnigramStub(nn.Module):
    """Same forward signature as GPT; every position predicts the same fixed distribution."""

    def __init__(self, logits: torch.Tensor, seq_len: int = 128) -> None:
        super().__init__()
        self.config = _StubConfig(seq_len)
        self.register_buffer("table", logits)
        self.max_width = 0

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        self.max_width = max(self.max_width, idx.shape[1])
        return self.table.expand(idx.shape[0], idx.shape[1], -1).clone(), None


class OracleStub(nn.Module):
    """Knows the right answers: strongly predicts the next token of any memorised sequence the prefix matches."""

    def __init__(self, sequences: list[list[int]], vocab_size: int) -> None:
        super().__init__()
        self.config = _StubConfig(512)
        self.sequences = sequences
        self.vocab_size = vocab_size

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        B, T = idx.shape
        logits = torch.zeros(B, T, self.vocab_size)
        rows = idx.tolist()
        for b in range(B):
            for t in range(T):
                prefix = rows[b][: t + 1]
                for seq in self.sequences:
                    if len(seq) > t + 1 and seq[: t + 1] == prefix:
                        logits[b, t, seq[t + 1]] = 10.0
        return logits, None


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"context": "A cat sits.", "endings": ["It purrs.", "It flies."], "label": 0})


# --- loading -------------------------------------------------------------------------------------


def test_fixture_loads_twelve_examples_and_reports_two_bad_lines() -> None:
    examples, skipped = load_examples(FIXTURE)
    assert len(examples) == 12
    assert all(len(e.endings) == 4 for e in examples)
    assert [e.label for e in examples] == [0, 1, 2, 3] * 3
    # HellaSwag's own field names: "ctx", and the label as a string.
    assert examples[4].context.startswith("Two kids build a sandcastle")
    assert examples[4].source == f"{FIXTURE}:5"
    assert len(skipped) == 2
    assert skipped[0].startswith(f"{FIXTURE}:13: invalid JSON")
    assert skipped[1] == f"{FIXTURE}:14: label 7 is out of range for 4 endings"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("[1, 2, 3]", "expected a JSON object, got list"),
        ('{"endings": ["a", "b"], "label": 0}', "missing field 'context' (or 'ctx')"),
        ('{"context": 5, "endings": ["a", "b"], "label": 0}', "context must be a string"),
        ('{"context": "c", "label": 0}', "missing field 'endings'"),
        ('{"context": "c", "endings": "ab", "label": 0}', "endings must be a list of strings"),
        ('{"context": "c", "endings": ["a", 3], "label": 0}', "endings must be a list of strings"),
        ('{"context": "c", "endings": ["only"], "label": 0}', "need at least 2 endings"),
        ('{"context": "c", "endings": ["a", "  "], "label": 0}', "ending 1 is empty"),
        ('{"context": "c", "endings": ["a", "b"]}', "missing field 'label'"),
        ('{"context": "c", "endings": ["a", "b"], "label": true}', "label must be an integer"),
        ('{"context": "c", "endings": ["a", "b"], "label": "one"}', "label must be an integer or a string"),
        ('{"context": "c", "endings": ["a", "b"], "label": -1}', "label -1 is out of range"),
        ('{"context": "c", "endings": ["a", "b"], "label": "2"}', "label 2 is out of range"),
        ("{not json", "invalid JSON"),
    ],
)
def test_each_kind_of_bad_line_is_skipped_with_file_line_and_reason(tmp_path: Path, line: str, reason: str) -> None:
    path = _write(tmp_path / "mc.jsonl", [GOOD, "", line, GOOD])
    examples, skipped = load_examples(path)
    assert len(examples) == 2
    assert [e.source for e in examples] == [f"{path}:1", f"{path}:4"]
    assert len(skipped) == 1
    assert skipped[0].startswith(f"{path}:3: ")
    assert reason in skipped[0]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_examples(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("lines", [[], [""], ["{bad", '{"context": "c"}']])
def test_file_without_a_valid_line_is_a_clear_error(tmp_path: Path, lines: list[str]) -> None:
    path = _write(tmp_path / "empty.jsonl", lines)
    with pytest.raises(ValueError, match=r"no valid multiple-choice example in .*empty\.jsonl"):
        load_examples(path)


def test_continuation_rule_adds_exactly_one_space_where_needed() -> None:
    assert continuation_text("He", "runs.") == " runs."
    assert continuation_text("He ", "runs.") == "runs."
    assert continuation_text("He", " runs.") == " runs."
    assert continuation_text("He\n", "runs.") == "runs."
    assert continuation_text("", "runs.") == "runs."


# --- scoring logic -------------------------------------------------------------------------------


def test_acc_and_acc_norm_disagree_when_lengths_differ(tmp_path: Path, byte_tokenizer: BpeTokenizer) -> None:
    space, x, y = (byte_tokenizer.encode(ch)[0] for ch in (" ", "x", "y"))
    logits = torch.zeros(byte_tokenizer.vocab_size)
    logits[space], logits[x], logits[y] = 6.0, 3.0, 4.5
    logprob = F.log_softmax(logits, dim=-1)
    s, a, b = float(logprob[space]), float(logprob[x]), float(logprob[y])
    # " x" is 2 tokens, " yyyy" is 5: the short ending wins on the sum, the long one on the mean.
    assert s + a > s + 4 * b and (s + a) / 2 < (s + 4 * b) / 5
    model = UnigramStub(logits)

    context_ids = [byte_tokenizer.bos_id, *byte_tokenizer.encode("c")]
    scores = score_endings(model, context_ids, [byte_tokenizer.encode(" x"), byte_tokenizer.encode(" yyyy")])
    assert [n for _, n in scores] == [2, 5]
    assert scores[0][0] == pytest.approx(s + a, abs=1e-5)
    assert scores[1][0] == pytest.approx(s + 4 * b, abs=1e-5)

    path = _write(
        tmp_path / "len.jsonl",
        [
            json.dumps({"context": "c", "endings": ["x", "yyyy"], "label": 1}),  # acc wrong, acc_norm right
            json.dumps({"context": "c", "endings": ["x", "yyyy"], "label": 0}),  # acc right, acc_norm wrong
            json.dumps({"context": "c", "endings": ["yyyy", "yyyy"], "label": 0}),  # tie: first index wins both
        ],
    )
    result = evaluate_multiple_choice(model, byte_tokenizer, path)
    assert result.examples == 3
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.accuracy_norm == pytest.approx(2 / 3)
    assert result.skipped == []

    only_first = evaluate_multiple_choice(model, byte_tokenizer, path, max_examples=1)
    assert (only_first.examples, only_first.accuracy, only_first.accuracy_norm) == (1, 0.0, 1.0)


def test_oracle_model_gets_every_fixture_example_right(byte_tokenizer: BpeTokenizer) -> None:
    examples, _ = load_examples(FIXTURE)
    answers = [
        [byte_tokenizer.bos_id, *byte_tokenizer.encode(e.context + continuation_text(e.context, e.endings[e.label]))]
        for e in examples
    ]
    model = OracleStub(answers, byte_tokenizer.vocab_size)
    result = evaluate_multiple_choice(model, byte_tokenizer, FIXTURE)
    assert (result.examples, result.accuracy, result.accuracy_norm) == (12, 1.0, 1.0)
    assert len(result.skipped) == 2 and all("hellaswag_tiny.jsonl:1" in s for s in result.skipped)
    assert result.as_metrics() == {
        "hellaswag_examples": 12,
        "hellaswag_acc": 1.0,
        "hellaswag_acc_norm": 1.0,
        "hellaswag_skipped": 2,
    }
    assert evaluate_multiple_choice(model, byte_tokenizer, FIXTURE, max_examples=5).examples == 5
    with pytest.raises(ValueError, match="max_examples"):
        evaluate_multiple_choice(model, byte_tokenizer, FIXTURE, max_examples=0)


# --- a real GPT: batching and cropping ----------------------------------------------------------


def _gpt(vocab_size: int, seq_len: int) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab_size, n_layer=2, n_head=2, n_embd=32, seq_len=seq_len)).eval()


def _reference_score(model: GPT, sequence: list[int], n_ending: int) -> float:
    """Unbatched, unpadded log-likelihood of the last `n_ending` tokens of `sequence`."""
    with torch.no_grad():
        logits, _ = model(torch.tensor([sequence[:-1]]))
    logprob = F.log_softmax(logits[0], dim=-1)
    targets = torch.tensor(sequence[1:])
    per_token = logprob.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return float(per_token[-n_ending:].sum())


@pytest.mark.slow
def test_batched_scoring_matches_one_by_one(byte_tokenizer: BpeTokenizer) -> None:
    model = _gpt(byte_tokenizer.vocab_size, seq_len=64)
    context_ids = [byte_tokenizer.bos_id, *byte_tokenizer.encode("The chef chops onions.")]
    endings = [byte_tokenizer.encode(t) for t in [" He", " He stirs the pan slowly.", " Then", " A long ending here"]]
    batched = score_endings(model, context_ids, endings)
    for ending, (total, n) in zip(endings, batched):
        (alone, n_alone), = score_endings(model, context_ids, [ending])
        assert n == n_alone == len(ending)
        assert total == pytest.approx(alone, abs=1e-5)
        assert total == pytest.approx(_reference_score(model, context_ids + ending, len(ending)), abs=1e-5)


@pytest.mark.slow
def test_long_context_is_cropped_from_the_left(tmp_path: Path, byte_tokenizer: BpeTokenizer) -> None:
    seq_len = 16
    model = _gpt(byte_tokenizer.vocab_size, seq_len=seq_len)
    context = "word " * 40  # 200 tokens, far beyond the 16-token context
    context_ids = [byte_tokenizer.bos_id, *byte_tokenizer.encode(context)]
    endings = [byte_tokenizer.encode("ends."), byte_tokenizer.encode("stops here.")]
    scores = score_endings(model, context_ids, endings)  # GPT.forward raises if a row exceeds seq_len
    for ending, (total, n) in zip(endings, scores):
        kept = (context_ids + ending)[-(seq_len + 1) :]  # the newest seq_len + 1 tokens: BOS and old context dropped
        assert n == len(ending)
        assert total == pytest.approx(_reference_score(model, kept, len(ending)), abs=1e-5)

    # An ending longer than the model's context: only its last seq_len tokens can be predicted and scored.
    long_ending = byte_tokenizer.encode(" and then it goes on and on for a while")
    assert len(long_ending) > seq_len
    ((total, n),) = score_endings(model, context_ids, [long_ending])
    assert n == seq_len
    assert total == pytest.approx(_reference_score(model, long_ending[-(seq_len + 1) :], seq_len), abs=1e-5)

    # End to end through the JSONL path, with the stub recording the widest batch it was given.
    stub = UnigramStub(torch.zeros(byte_tokenizer.vocab_size), seq_len=seq_len)
    path = _write(tmp_path / "long.jsonl", [json.dumps({"context": context, "endings": ["a b", "c"], "label": 0})])
    assert evaluate_multiple_choice(stub, byte_tokenizer, path).examples == 1
    assert stub.max_width == seq_len


def test_training_mode_is_restored(byte_tokenizer: BpeTokenizer) -> None:
    model = _gpt(byte_tokenizer.vocab_size, seq_len=64).train()
    evaluate_multiple_choice(model, byte_tokenizer, FIXTURE, max_examples=2)
    assert model.training
