"""SFT generators: valid conversations, answers readable back, and a fixed held-out set disjoint from training."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from model.chat_format import normalize_messages, render_conversation
from model.tokenizer import BpeTokenizer, train_bpe
from tasks.posttrain.sft_data import (
    FAMILY,
    HELDOUT_SIZE,
    IdentityConfig,
    build_sft_mix,
    extract_answer,
    generate_problem,
    heldout_set,
    is_correct,
    make_two_number_problem,
    problem_conversation,
    split_of,
    two_number_keys,
)


@pytest.fixture(scope="module")
def tok() -> BpeTokenizer:
    rng = random.Random(0)
    return train_bpe([str(c) for c in build_sft_mix(rng, 200)], vocab_size=600)


def test_family_definition() -> None:
    rng = random.Random(1)
    for _ in range(400):
        p = generate_problem(rng)
        a, b = p.operands
        assert p.family == FAMILY and 1 <= a <= 99 and 1 <= b <= 99
        value = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b}[p.op]
        assert value == int(value) >= 0 and p.answer == str(int(value))
        assert str(a) in p.question and str(b) in p.question
    assert len(two_number_keys("add")) == 99 * 99
    assert all(b >= 2 and a % b == 0 and a // b >= 2 for a, b in two_number_keys("div"))
    with pytest.raises(ValueError):
        make_two_number_problem("div", 7, 2, rng)


def test_heldout_set_is_fixed_and_disjoint_from_training() -> None:
    first, again = heldout_set(), heldout_set()
    assert len(first) == HELDOUT_SIZE >= 500
    assert first == again  # deterministic, wording included
    keys = [p.key for p in first]
    assert len(set(keys)) == len(keys)
    assert all(split_of(k) == "heldout" for k in keys)
    assert set(Counter(p.op for p in first)) == {"add", "sub", "mul", "div"}
    rng = random.Random(7)
    train_keys = {generate_problem(rng).key for _ in range(3000)}
    assert not train_keys & set(keys)
    # The mix uses training problems only: recover each problem's key from its (single) step.
    ops = {"+": "add", "-": "sub", "*": "mul", "/": "div"}
    mix = build_sft_mix(random.Random(3), 300, fractions={"arithmetic": 1.0})
    for conv in mix:
        step = conv[-1]["content"][0]["text"].split(" = ")[0]
        a, symbol, b = step.split()
        assert split_of(f"{FAMILY}:{ops[symbol]}:{a}:{b}") == "train"


def test_answers_are_correct_and_extractable(tok: BpeTokenizer) -> None:
    rng = random.Random(2)
    for use_tool in (False, True):
        for family in (FAMILY, "multi_step"):
            for _ in range(30):
                p = generate_problem(rng, family)
                conv = problem_conversation(p, use_tool)
                parts = normalize_messages(conv)[-1]["content"]
                text = "".join(x["text"] for x in parts if x["type"] == "text")
                assert text.splitlines()[-1] == f"Answer: {p.answer}"
                assert is_correct(text, p.answer)
                # Tool outputs are exactly what the calculator gives, so every step checks out.
                outputs = [x["text"] for x in parts if x["type"] == "tool_output"]
                assert outputs == ([r for _, r in p.steps] if use_tool else [])
                ids, _ = render_conversation(tok, conv)
                assert len(ids) <= 128  # fits a 256-token context with room to spare


def test_extract_answer() -> None:
    assert extract_answer("3 + 4 = 7\nAnswer: 7") == "7"
    assert extract_answer("Answer: 1\nAnswer: 2") == "2"  # the last one counts
    assert extract_answer("Answer: 1,000") == "1000"
    assert extract_answer("Answer: $12.50") == "12.5"
    assert extract_answer("Answer: -3") == "-3"
    assert extract_answer("Answer: 7.0") == "7"
    assert extract_answer("the answer is 7") is None and extract_answer("Answer: seven") is None
    assert is_correct("Answer: 7", "7") and is_correct("Answer: 7.0", "7") and not is_correct("Answer: 8", "7")
    assert not is_correct("no answer", "7")


def test_mix(tok: BpeTokenizer) -> None:
    identity = IdentityConfig(name="Pico", maker="Ada's lab")
    fractions = {"arithmetic": 0.5, "multi_step": 0.1, "identity": 0.2, "refusal": 0.2}
    mix = build_sft_mix(random.Random(5), 100, fractions, identity)
    assert len(mix) == 100
    assert mix == build_sft_mix(random.Random(5), 100, fractions, identity)  # seeded
    for conv in mix:
        render_conversation(tok, conv)  # every conversation is valid
    replies = [c[-1]["content"] for c in mix if isinstance(c[-1]["content"], str)]
    assert sum("Pico" in r for r in replies) == 20
    assert sum("don't know" in r for r in replies) == 20
    assert any("Ada's lab" in r for r in replies)
    tool_uses = sum(any(p["type"] == "tool_call" for p in c[-1]["content"]) for c in mix if isinstance(c[-1]["content"], list))
    assert 0 < tool_uses < 60
    with pytest.raises(ValueError, match="unknown kinds"):
        build_sft_mix(random.Random(0), 10, {"poetry": 1.0})


def test_identity_and_refusal_variety() -> None:
    mix = build_sft_mix(random.Random(9), 300, {"identity": 0.5, "refusal": 0.5})
    questions = {c[0]["content"] for c in mix}
    assert len(questions) > 25
