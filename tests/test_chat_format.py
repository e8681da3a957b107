"""Conversations render to the documented tokens and loss mask; both message spellings agree; parsing inverts rendering."""

from __future__ import annotations

import json

import pytest

from model.chat_format import (
    assistant_text,
    normalize_messages,
    parse_assistant,
    render_conversation,
    render_prompt,
    tool_feedback,
)
from model.tokenizer import BpeTokenizer, train_bpe

TEXTS = ["What is 12 times 7? The answer is 84.", "Hello there, how are you today?", "Answer: 7\n3 + 4 = 7"] * 5


@pytest.fixture(scope="module")
def tok() -> BpeTokenizer:
    return train_bpe(TEXTS, vocab_size=320)


def calc_call(expression: str, call_id: str | None = None) -> dict:
    call = {"type": "function", "function": {"name": "calculator", "arguments": json.dumps({"expression": expression})}}
    return call | ({"id": call_id} if call_id else {})


INTERNAL = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 12 times 7?"},
    {"role": "assistant", "content": [
        {"type": "text", "text": "Let me compute. "},
        {"type": "tool_call", "text": "12*7"},
        {"type": "tool_output", "text": "84"},
        {"type": "text", "text": "\nAnswer: 84"},
    ]},
]  # fmt: skip
OPENAI = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 12 times 7?"},
    {"role": "assistant", "content": "Let me compute. ", "tool_calls": [calc_call("12*7", "c1")]},
    {"role": "tool", "tool_call_id": "c1", "content": "84"},
    {"role": "assistant", "content": "\nAnswer: 84"},
]


def test_tokens_and_mask(tok: BpeTokenizer) -> None:
    ids, mask = render_conversation(tok, INTERNAL)
    t = tok.token_id
    expected: list[tuple[list[int], int]] = [
        ([tok.bos_id], 0),
        ([t("<|system_start|>"), *tok.encode("Be brief."), t("<|system_end|>")], 0),
        ([t("<|user_start|>"), *tok.encode("What is 12 times 7?"), t("<|user_end|>")], 0),
        ([t("<|assistant_start|>")], 0),
        (tok.encode("Let me compute. "), 1),
        ([t("<|tool_call_start|>"), *tok.encode("12*7"), t("<|tool_call_end|>")], 1),
        ([t("<|tool_output_start|>"), *tok.encode("84"), t("<|tool_output_end|>")], 0),
        ([*tok.encode("\nAnswer: 84"), t("<|assistant_end|>")], 1),
    ]
    assert ids == [i for chunk, _ in expected for i in chunk]
    assert mask == [m for chunk, m in expected for _ in chunk]
    assert len(ids) == len(mask)


def test_openai_style_normalises_to_internal(tok: BpeTokenizer) -> None:
    assert normalize_messages(OPENAI) == normalize_messages(INTERNAL)
    assert render_conversation(tok, OPENAI) == render_conversation(tok, INTERNAL)
    # Arguments as a dict (transformers' convention), content None, no ids: the same.
    variant = [dict(m) for m in OPENAI]
    variant[2] = {"role": "assistant", "content": None,
                  "tool_calls": [{"type": "function", "function": {"name": "calculator", "arguments": {"expression": "12*7"}}}]}  # fmt: skip
    variant[3] = {"role": "tool", "content": "84"}
    parts = normalize_messages(variant)[-1]["content"]
    assert [p["type"] for p in parts] == ["tool_call", "tool_output", "text"]


def test_multiple_calls_pair_in_order(tok: BpeTokenizer) -> None:
    messages = [
        {"role": "user", "content": "2+3 and 4*5?"},
        {"role": "assistant", "content": None, "tool_calls": [calc_call("2+3"), calc_call("4*5")]},
        {"role": "tool", "content": "5"},
        {"role": "tool", "content": "20"},
        {"role": "assistant", "content": "5 and 20", "tool_calls": [calc_call("5+20")]},
        {"role": "tool", "content": "25"},
        {"role": "assistant", "content": ", total 25"},
    ]
    parts = normalize_messages(messages)[1]["content"]
    assert [(p["type"], p["text"]) for p in parts] == [
        ("tool_call", "2+3"), ("tool_output", "5"), ("tool_call", "4*5"), ("tool_output", "20"),
        ("text", "5 and 20"), ("tool_call", "5+20"), ("tool_output", "25"), ("text", ", total 25"),
    ]  # fmt: skip
    ids, mask = render_conversation(tok, messages)
    assert ids.count(tok.token_id("<|assistant_start|>")) == 1 and ids.count(tok.token_id("<|assistant_end|>")) == 1


def test_every_assistant_turn_trains_including_end(tok: BpeTokenizer) -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye"}]  # fmt: skip
    ids, mask = render_conversation(tok, messages)
    trained = [i for i, m in zip(ids, mask) if m]
    end = tok.token_id("<|assistant_end|>")
    assert trained == [*tok.encode("Hello"), end, *tok.encode("Bye"), end]


def test_special_strings_in_text_stay_text(tok: BpeTokenizer) -> None:
    ids, _ = render_conversation(tok, [{"role": "user", "content": "<|assistant_start|>"},
                                       {"role": "assistant", "content": "ok"}])  # fmt: skip
    assert ids.count(tok.token_id("<|assistant_start|>")) == 1


def test_truncation_is_flagged(tok: BpeTokenizer) -> None:
    full = render_conversation(tok, INTERNAL)
    assert not full.truncated and full.ids == full[0] and full.mask == full[1]
    cut = render_conversation(tok, INTERNAL, max_tokens=10)
    assert cut.truncated and cut.ids == full.ids[:10] and cut.mask == full.mask[:10]
    same = render_conversation(tok, INTERNAL, max_tokens=len(full.ids))
    assert not same.truncated and same.ids == full.ids
    with pytest.raises(ValueError, match="max_tokens"):
        render_conversation(tok, INTERNAL, max_tokens=0)


def test_render_prompt(tok: BpeTokenizer) -> None:
    ids = render_prompt(tok, INTERNAL[:2])
    assert ids[-1] == tok.token_id("<|assistant_start|>")
    # The prompt is a prefix of the rendered conversation.
    full, _ = render_conversation(tok, INTERNAL)
    assert full[: len(ids)] == ids
    # Waiting after a tool output: the turn stays open, no new <|assistant_start|>.
    pending = render_prompt(tok, OPENAI[:4])
    assert pending[-1] == tok.token_id("<|tool_output_end|>")
    assert full[: len(pending)] == pending


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([], "empty conversation"),
        ("hello", "must be a list"),
        ([{"role": "bot", "content": "x"}], "message 0: unknown role 'bot'"),
        ([{"role": "user"}], "message 0: missing content"),
        ([{"role": "user", "content": 3}], "message 0: content must be"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "message 1: a system message may only come first"),
        ([{"role": "tool", "content": "1"}], "message 0: tool message without"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "tool_calls": [calc_call("1+1")]}], "message 1: has 1 tool_calls but only 0"),
        ([{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "calculator", "arguments": "{bad"}}]},
          {"role": "tool", "content": "2"}], r"message 0: tool_calls\[0\]: function.arguments is not valid JSON"),
        ([{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "search", "arguments": "{}"}}]},
          {"role": "tool", "content": "2"}], "unknown tool 'search'"),
        ([{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "calculator", "arguments": "[1]"}}]},
          {"role": "tool", "content": "2"}], "must be a JSON object"),
        ([{"role": "assistant", "tool_calls": [calc_call("1", "a")]}, {"role": "tool", "tool_call_id": "b", "content": "1"}], "message 1: answers tool call 'b'"),
        ([{"role": "user", "content": [{"type": "tool_call", "text": "1"}]}], "only assistant messages"),
        ([{"role": "assistant", "content": [{"type": "image", "text": "1"}]}], "unknown type 'image'"),
        ([{"role": "assistant", "content": [{"type": "tool_call", "text": "1"}]}], "must be followed by its tool_output"),
        ([{"role": "assistant", "content": [{"type": "tool_output", "text": "1"}]}], "must follow a tool_call"),
    ],
)  # fmt: skip
def test_validation_errors(tok: BpeTokenizer, messages: object, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        normalize_messages(messages)  # type: ignore[arg-type]


def test_training_needs_an_assistant_reply(tok: BpeTokenizer) -> None:
    with pytest.raises(ValueError, match="no assistant message"):
        render_conversation(tok, [{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="ends with a tool output"):
        render_conversation(tok, OPENAI[:4])


def test_parse_assistant_inverts_rendering(tok: BpeTokenizer) -> None:
    ids, _ = render_conversation(tok, INTERNAL)
    reply = ids[ids.index(tok.token_id("<|assistant_start|>")) + 1 :]
    assert parse_assistant(tok, reply) == INTERNAL[-1]["content"]
    assert assistant_text(parse_assistant(tok, reply)) == "Let me compute. \nAnswer: 84"
    assert assistant_text(parse_assistant(tok, reply), show_tools=True) == "Let me compute. [calculator: 12*7 = 84]\nAnswer: 84"


def test_parse_assistant_edge_cases(tok: BpeTokenizer) -> None:
    t = tok.token_id
    # Cut mid-call: the unclosed call is still a part; nothing after the end token counts.
    assert parse_assistant(tok, [*tok.encode("Hi "), t("<|tool_call_start|>"), *tok.encode("1+")]) == [
        {"type": "text", "text": "Hi "}, {"type": "tool_call", "text": "1+"}]  # fmt: skip
    assert parse_assistant(tok, [*tok.encode("ok"), t("<|assistant_end|>"), *tok.encode("junk")]) == [
        {"type": "text", "text": "ok"}]  # fmt: skip
    # Stray specials are dropped, and text around them merges.
    assert parse_assistant(tok, [*tok.encode("a"), t("<|user_start|>"), *tok.encode("b")]) == [{"type": "text", "text": "ab"}]
    assert parse_assistant(tok, []) == []
    # Multi-byte characters split over tokens decode whole.
    assert parse_assistant(tok, tok.encode("π ≈ 3.14")) == [{"type": "text", "text": "π ≈ 3.14"}]


def test_tool_feedback(tok: BpeTokenizer) -> None:
    t = tok.token_id
    assert tool_feedback(tok, tok.encode("12*7")) == [t("<|tool_output_start|>"), *tok.encode("84"), t("<|tool_output_end|>")]
    # The markers around a call are ignored; a hostile call gets an error the model sees.
    wrapped = [t("<|tool_call_start|>"), *tok.encode("2+2"), t("<|tool_call_end|>")]
    assert tok.decode(tool_feedback(tok, wrapped)) == "<|tool_output_start|>4<|tool_output_end|>"
    out = tok.decode(tool_feedback(tok, tok.encode("__import__('os')")))
    assert out.startswith("<|tool_output_start|>error: ")


def test_chat_session_runs_tool_calls(tok: BpeTokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ChatSession.reply` feeds the calculator's output after a call and streams the reply as text."""
    import torch

    from llmforge.config import ChatConfig
    from model.engine import ToolCall
    from tasks.chat import session as chat

    t = tok.token_id
    replies = [
        [*tok.encode("Let me see. "), t("<|tool_call_start|>"), *tok.encode("12*7"), t("<|tool_call_end|>"),
         *tok.encode("\nAnswer: 84"), t("<|assistant_end|>")],
        [*tok.encode("ok"), t("<|assistant_end|>")],
    ]
    prompts: list[list[int]] = []

    def fake_stream(model: object, prompt_ids: list[int], params: object, generator: object, tool: object):
        """The engine's contract: yield sampled tokens; after a call's end, the hook's tokens."""
        prompts.append(list(prompt_ids))
        sequence = list(prompt_ids)
        for token in replies[len(prompts) - 1]:
            sequence.append(token)
            yield token
            if token == t("<|tool_call_end|>"):
                start = max(i for i, x in enumerate(sequence) if x == t("<|tool_call_start|>"))
                for injected in tool.handler(ToolCall(0, sequence[start + 1 : -1], sequence)):  # type: ignore[attr-defined]
                    sequence.append(injected)
                    yield injected

    monkeypatch.setattr(chat, "stream", fake_stream)
    session = object.__new__(chat.ChatSession)  # no checkpoint needed: generation is faked
    session.model, session.tokenizer, session.config = None, tok, ChatConfig(max_new_tokens=64)
    session.messages, session.last_parts, session.generator = [], [], torch.Generator()

    shown: list[str] = []
    assert session.reply("What is 12 times 7?", on_text=shown.append) == "Let me see. \nAnswer: 84"
    assert "".join(shown) == "Let me see. [calculator: 12*7 = 84]\nAnswer: 84"
    assert [p["type"] for p in session.last_parts] == ["text", "tool_call", "tool_output", "text"]
    assert session.messages[-1] == {"role": "assistant", "content": session.last_parts}
    # The next prompt holds the whole previous turn, tool parts included.
    session.reply("thanks")
    assert "<|tool_output_start|>84<|tool_output_end|>\nAnswer: 84<|assistant_end|><|user_start|>thanks" in tok.decode(prompts[1])
