"""Conversation files load through `datasets`, errors name file and line, long conversations follow the policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.chat_format import render_conversation
from model.tokenizer import BpeTokenizer, train_bpe
from model.sft_batches import render_examples
from tasks.posttrain.conversations import load_conversations

DATA = Path(__file__).parent / "data" / "conversations_tiny.jsonl"


@pytest.fixture(scope="module")
def tok() -> BpeTokenizer:
    return train_bpe([DATA.read_text(encoding="utf-8")] * 3, vocab_size=400)


def test_load_jsonl(tmp_path: Path) -> None:
    convs = load_conversations(DATA, cache_dir=tmp_path / "cache")
    assert len(convs) == 4
    assert [c.source for c in convs] == [f"{DATA}:{n}" for n in (1, 2, 3, 4)]
    tool_turn = convs[1].messages[-1]["content"]
    assert [p["type"] for p in tool_turn] == ["tool_call", "tool_output", "text"]
    # Both spellings of a tool call normalise alike.
    assert convs[2].messages[-1]["content"][0] == {"type": "tool_call", "text": "3+4"}


def test_load_parquet_matches_jsonl(tmp_path: Path, tok: BpeTokenizer) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    # Parquet needs one schema: store the messages as JSON text, which the loader also accepts.
    path = tmp_path / "conv.parquet"
    pq.write_table(pa.table({"messages": [json.dumps(r["messages"]) for r in rows]}), path)
    from_parquet = load_conversations(path, cache_dir=tmp_path / "cache")
    from_jsonl = load_conversations(DATA, cache_dir=tmp_path / "cache")
    assert [c.messages for c in from_parquet] == [c.messages for c in from_jsonl]
    assert from_parquet[3].source == f"{path}: row 3"


def test_parquet_error_names_row(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    good = json.dumps([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    bad = json.dumps([{"role": "robot", "content": "a"}])
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"messages": [good, good, bad]}), path)
    with pytest.raises(ValueError, match=r"bad.parquet: row 2: message 0: unknown role 'robot'"):
        load_conversations(path, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('{"messages": [{"role": "user", "content": "a"}', r"bad.jsonl:2: invalid JSON"),
        ('{"messages": [{"role": "bot", "content": "a"}]}', r"bad.jsonl:2: message 0: unknown role 'bot'"),
        ('{"text": "no messages"}', r"bad.jsonl:2: missing 'messages'"),
        ('[1, 2]', r"bad.jsonl:2: expected a JSON object"),
        ("   ", r"bad.jsonl:2: blank line"),
        ('{"messages": []}', r"bad.jsonl:2: empty conversation"),
        ('{"messages": [{"role": "assistant", "tool_calls": [{"type": "function", "function": '
         '{"name": "calculator", "arguments": "{oops"}}]}, {"role": "tool", "content": "1"}]}',
         r"bad.jsonl:2: message 0: tool_calls\[0\]: function.arguments is not valid JSON"),
    ],
)  # fmt: skip
def test_malformed_jsonl_names_file_and_line(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
    path.write_text(f"{good}\n{line}\n{good}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=error):
        load_conversations(path, cache_dir=tmp_path / "cache")


def test_assistantless_conversation_named_at_render(tmp_path: Path, tok: BpeTokenizer) -> None:
    path = tmp_path / "noreply.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "a"}]}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"noreply.jsonl:1: conversation has no assistant message"):
        render_examples(tok, load_conversations(path, cache_dir=tmp_path / "cache"), max_tokens=64)


def test_missing_file_and_bad_policy(tmp_path: Path, tok: BpeTokenizer) -> None:
    with pytest.raises(FileNotFoundError):
        load_conversations(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="too_long"):
        render_examples(tok, [], 10, too_long="drop")  # type: ignore[arg-type]


def test_too_long_policies(tmp_path: Path, tok: BpeTokenizer) -> None:
    convs = load_conversations(DATA, cache_dir=tmp_path / "cache")
    lengths = [len(render_conversation(tok, c.messages).ids) for c in convs]
    limit = max(lengths) - 5  # only the longest conversation is too long, cut inside its reply
    assert sorted(lengths)[-2] <= limit
    kept = render_examples(tok, convs, limit, too_long="truncate")
    assert kept.counts["conversations"] == 4 and kept.counts["examples"] == 4 and kept.counts["truncated"] == 1
    assert all(len(e.ids) <= limit for e in kept.examples)
    assert [e.truncated for e in kept.examples] == [n > limit for n in lengths]
    skipped = render_examples(tok, convs, limit, too_long="skip")
    assert skipped.counts["examples"] == 3 and skipped.counts["skipped_too_long"] == 1
    assert skipped.counts["tokens"] == sum(n for n in lengths if n <= limit)
    assert skipped.counts["target_tokens"] == sum(sum(e.mask[1:]) for e in skipped.examples)
    # Truncated before the reply starts: nothing to learn from, dropped and counted.
    tiny = render_examples(tok, convs, 3, too_long="truncate")
    assert tiny.counts["skipped_no_target"] == 4 and tiny.examples == []
