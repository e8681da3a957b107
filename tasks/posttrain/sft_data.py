"""Built-in SFT conversations: arithmetic word problems, identity, and "I don't know" refusals.

Everything here is generated from short, regular templates, because the model that
learns from it is tiny (a few million parameters, a 256-token context): it can pick
up a fixed answer form, not a varied one.

Arithmetic answers end with a last line `Answer: N` (`ANSWER_PREFIX`), which
`extract_answer` / `is_correct` read back for evaluation and RL rewards. Some answers
compute through the calculator tool (tool_call / tool_output parts, whose output is
produced by `model.calculator.evaluate`, exactly what the engine will inject).

The RL evaluation family
------------------------
`family="two_number_lt100"`: one operation on two integers a, b with 1 <= a, b <= 99,
with an integer answer:

* add: a + b;  sub: a - b with a >= b;  mul: a * b;
* div: a / b with b >= 2, a = b * q for an integer q >= 2 (so a <= 99).

A problem's identity is its key "two_number_lt100:op:a:b" (the numbers, not the
wording). A key is held out when the first 8 bytes of sha256(key), as an integer,
are below HELDOUT_FRACTION of 2**64: a fixed split that does not depend on seeds,
Python's hash randomisation, or the order problems are drawn in. Training problems
(`generate_problem(..., split="train")`, and so `build_sft_mix`) only ever use
non-held-out keys; `heldout_set` picks its problems only among held-out keys, so
the two are disjoint by construction whatever wording each gets.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Literal

from model import calculator

Conversation = list[dict[str, Any]]
Split = Literal["train", "heldout"]

FAMILY = "two_number_lt100"
FAMILIES: tuple[str, ...] = (FAMILY, "multi_step")
OPERATIONS: tuple[str, ...] = ("add", "sub", "mul", "div")
HELDOUT_FRACTION = 0.15
HELDOUT_SIZE = 600
HELDOUT_SEED = 1234
ANSWER_PREFIX = "Answer: "

_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}

NAMES = ("Emily", "Sam", "Mia", "Leo", "Ava", "Ben", "Zoe", "Max", "Lily", "Tom", "Nora", "Jack")
ITEMS = ("apples", "pens", "books", "stickers", "cookies", "marbles", "cards", "shells", "eggs", "coins")
CONTAINERS = ("boxes", "bags", "packs", "jars", "baskets")

# Question wordings per operation: {n}/{m} are two different names, {x} an item,
# {c} a container, {a}/{b} the operands. Short and regular on purpose.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "add": (
        "{n} has {a} {x}. {m} gives {n} {b} more. How many {x} does {n} have now?",
        "There are {a} {x} in one box and {b} in another. How many {x} are there in total?",
        "{n} found {a} {x} on Monday and {b} on Tuesday. How many {x} did {n} find?",
        "What is {a} plus {b}?",
        "{n} had {a} {x} and bought {b} more. How many {x} does {n} have?",
    ),
    "sub": (
        "{n} has {a} {x} and gives {b} to {m}. How many {x} does {n} have left?",
        "A shop had {a} {x}. It sold {b}. How many {x} are left?",
        "{n} had {a} {x} and lost {b}. How many {x} are left?",
        "What is {a} minus {b}?",
        "There were {a} {x} in a jar. {n} took {b}. How many {x} are in the jar now?",
    ),
    "mul": (
        "{n} has {a} {c} with {b} {x} in each. How many {x} does {n} have?",
        "Each of the {c} holds {b} {x}. How many {x} are in {a} {c}?",
        "{n} buys {a} {c} of {x}. Each has {b} {x}. How many {x} is that?",
        "What is {a} times {b}?",
        "There are {a} rows of {x} with {b} {x} in each row. How many {x} are there?",
    ),
    "div": (
        "{n} shares {a} {x} equally among {b} friends. How many {x} does each friend get?",
        "{a} {x} are packed {b} to a box. How many boxes are filled?",
        "{n} puts {a} {x} into {b} equal groups. How many {x} are in each group?",
        "What is {a} divided by {b}?",
        "{b} children share {a} {x} equally. How many {x} does each child get?",
    ),
}


@dataclass(frozen=True)
class Problem:
    """One word problem: its family, operation and operands (the key), wording, and answer."""

    family: str
    op: str
    operands: tuple[int, ...]
    question: str
    answer: str  # canonical integer text, as `extract_answer` returns it
    steps: tuple[tuple[str, str], ...]  # (expression, result) in the order an answer computes them

    @property
    def key(self) -> str:
        return problem_key(self.family, self.op, self.operands)


def problem_key(family: str, op: str, operands: tuple[int, ...]) -> str:
    return ":".join([family, op, *map(str, operands)])


def split_of(key: str) -> Split:
    """The fixed split of a problem key (see the module docstring)."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    return "heldout" if h < HELDOUT_FRACTION * 2**64 else "train"


# --- The two-number family --------------------------------------------------------------------


@lru_cache(maxsize=None)
def two_number_keys(op: str) -> tuple[tuple[int, int], ...]:
    """Every (a, b) of the family for `op`, in a fixed order."""
    r = range(1, 100)
    if op == "add":
        return tuple((a, b) for a in r for b in r)
    if op == "sub":
        return tuple((a, b) for a in r for b in r if a >= b)
    if op == "mul":
        return tuple((a, b) for a in r for b in r)
    if op == "div":
        return tuple((b * q, b) for b in range(2, 50) for q in range(2, 100) if b * q <= 99)
    raise ValueError(f"unknown operation {op!r} (expected one of {OPERATIONS})")


@lru_cache(maxsize=None)
def _key_set(op: str) -> frozenset[tuple[int, int]]:
    return frozenset(two_number_keys(op))


@lru_cache(maxsize=None)
def _split_keys(op: str, split: Split) -> tuple[tuple[int, int], ...]:
    return tuple(ab for ab in two_number_keys(op) if split_of(problem_key(FAMILY, op, ab)) == split)


def _exact(op: str, a: int, b: int) -> int:
    return {"add": a + b, "sub": a - b, "mul": a * b, "div": a // b}[op]


def make_two_number_problem(op: str, a: int, b: int, rng: random.Random) -> Problem:
    """The problem (op, a, b) in a wording drawn from `rng`."""
    if op not in OPERATIONS or (a, b) not in _key_set(op):
        raise ValueError(f"({a}, {b}) is not a {FAMILY} {op} problem")
    n, m = rng.sample(NAMES, 2)
    question = rng.choice(TEMPLATES[op]).format(
        n=n, m=m, x=rng.choice(ITEMS), c=rng.choice(CONTAINERS), a=a, b=b
    )
    answer = str(_exact(op, a, b))
    return Problem(FAMILY, op, (a, b), question, answer, ((f"{a} {_SYMBOL[op]} {b}", answer),))


# --- Multi-step problems (training only: not part of the evaluation family) --------------------


def _multi_step(rng: random.Random) -> Problem:
    n = rng.choice(NAMES)
    kind = rng.randrange(3)
    if kind == 0:
        # Emily buys 3 apples and 2 oranges for $13; oranges cost $2 each -> apple price.
        apples, oranges, apple, orange = rng.randint(2, 6), rng.randint(2, 5), rng.randint(1, 9), rng.randint(1, 9)
        total = apples * apple + orange * oranges
        question = (
            f"{n} buys {apples} apples and {oranges} oranges for ${total}. "
            f"Oranges cost ${orange} each. How much does one apple cost?"
        )
        spent = oranges * orange
        steps = ((f"{oranges} * {orange}", str(spent)), (f"{total} - {spent}", str(total - spent)),
                 (f"{total - spent} / {apples}", str(apple)))  # fmt: skip
        return Problem("multi_step", "price", (apples, oranges, total, orange), question, str(apple), steps)
    if kind == 1:
        start, packs, per, given = rng.randint(1, 20), rng.randint(2, 5), rng.randint(2, 10), rng.randint(1, 10)
        x = rng.choice(ITEMS)
        question = (
            f"{n} has {start} {x}, buys {packs} packs of {per} {x}, and gives away {given}. How many {x} are left?"
        )
        bought = packs * per
        steps = ((f"{packs} * {per}", str(bought)), (f"{start} + {bought}", str(start + bought)),
                 (f"{start + bought} - {given}", str(start + bought - given)))  # fmt: skip
        return Problem("multi_step", "buy_give", (start, packs, per, given), question, steps[-1][1], steps)
    a, b, people = rng.randint(2, 30), rng.randint(2, 30), rng.randint(2, 6)
    total = (a + b) * people
    x = rng.choice(ITEMS)
    question = (
        f"{n} has {a * people} {x} and {b * people} more arrive. They are shared by {people} people. How many each?"
    )
    steps = ((f"{a * people} + {b * people}", str(total)), (f"{total} / {people}", str(a + b)))
    return Problem("multi_step", "share", (a * people, b * people, people), question, str(a + b), steps)


# --- Generators ---------------------------------------------------------------------------------


def generate_problem(rng: random.Random, family: str = FAMILY, split: Split = "train") -> Problem:
    """A random problem of `family`; for the two-number family only keys of `split`."""
    if family == FAMILY:
        op = rng.choice(OPERATIONS)
        a, b = rng.choice(_split_keys(op, split))
        return make_two_number_problem(op, a, b, rng)
    if family == "multi_step":
        if split != "train":
            raise ValueError("the multi_step family has no held-out split (it is not used for evaluation)")
        return _multi_step(rng)
    raise ValueError(f"unknown problem family {family!r} (expected one of {FAMILIES})")


def heldout_set(family: str = FAMILY, n: int = HELDOUT_SIZE, seed: int = HELDOUT_SEED) -> list[Problem]:
    """The fixed evaluation set: `n` held-out problems, as balanced over operations as the pools allow.

    Deterministic for given arguments (sha256 split, `random.Random(seed)` for the
    choice and the wording), so every run evaluates on the same problems.
    """
    if family != FAMILY:
        raise ValueError(f"only {FAMILY!r} has a held-out set, not {family!r}")
    rng = random.Random(seed)
    pools = {op: list(_split_keys(op, "heldout")) for op in OPERATIONS}
    if n > sum(map(len, pools.values())):
        raise ValueError(f"only {sum(map(len, pools.values()))} held-out problems exist, asked for {n}")
    # Equal quotas; an operation with a smaller pool (div) gives its shortfall to the others.
    quota = dict.fromkeys(OPERATIONS, 0)
    remaining = n
    while remaining:
        open_ops = [op for op in OPERATIONS if quota[op] < len(pools[op])]
        share = max(remaining // len(open_ops), 1)
        for op in open_ops:
            take = min(share, len(pools[op]) - quota[op], remaining)
            quota[op] += take
            remaining -= take
    problems = []
    for op in OPERATIONS:
        for a, b in rng.sample(pools[op], quota[op]):
            problems.append(make_two_number_problem(op, a, b, rng))
    rng.shuffle(problems)
    return problems


def problem_prompt(problem: Problem) -> Conversation:
    """The conversation to generate an answer from (for evaluation and RL)."""
    return [{"role": "user", "content": problem.question}]


def solution_parts(problem: Problem, use_tool: bool) -> list[dict[str, str]]:
    """The assistant's answer: one line per step, then `Answer: N`.

    Without the tool a step is "a + b = c"; with it, the step is a calculator call
    whose output is what `model.calculator.evaluate` gives (the engine's answer).
    """
    parts: list[dict[str, str]] = []
    text = ""
    for expression, result in problem.steps:
        if use_tool:
            parts += [{"type": "text", "text": text}] if text else []
            parts += [{"type": "tool_call", "text": expression},
                      {"type": "tool_output", "text": calculator.evaluate(expression)}]  # fmt: skip
            text = "\n"
        else:
            text += f"{expression} = {result}\n"
    parts.append({"type": "text", "text": f"{text}{ANSWER_PREFIX}{problem.answer}"})
    return parts


def problem_conversation(problem: Problem, use_tool: bool) -> Conversation:
    return [*problem_prompt(problem), {"role": "assistant", "content": solution_parts(problem, use_tool)}]


_ANSWER_RE = re.compile(r"Answer:\s*\$?\s*(-?[\d,]*\.?\d+)")


def _canonical_number(text: str) -> str | None:
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    value = value.normalize()
    # "7.0" and "7" are the same answer; Decimal.normalize would write 70 as 7E+1.
    return str(int(value)) if value == value.to_integral_value() else format(value, "f")


def extract_answer(text: str) -> str | None:
    """The number after the last "Answer:" in `text`, canonical ("7", "-3", "2.5"), or None."""
    matches = _ANSWER_RE.findall(text)
    return _canonical_number(matches[-1]) if matches else None


def is_correct(text: str, answer: str) -> bool:
    """Whether `text`'s final answer equals `answer` (as numbers: "7.0" matches "7")."""
    got = extract_answer(text)
    return got is not None and got == _canonical_number(answer)


# --- Identity and refusals ----------------------------------------------------------------------


@dataclass(frozen=True)
class IdentityConfig:
    name: str = "llmforge"
    maker: str = "the llmforge project"
    description: str = "a small language model"


IDENTITY_QUESTIONS: tuple[str, ...] = (
    "Who are you?", "who are you", "What are you?", "What is your name?", "What's your name?",
    "Tell me about yourself.", "Introduce yourself.", "Are you a person?", "Hi! Who am I talking to?",
    "What should I call you?", "Are you human?", "Do you have a name?", "Who is this?",
)  # fmt: skip
MAKER_QUESTIONS: tuple[str, ...] = (
    "Who made you?", "who created you", "Who built you?", "Who trained you?", "Where do you come from?",
    "Which company made you?", "Who is your creator?", "Who developed you?", "Who designed you?",
)  # fmt: skip
IDENTITY_ANSWERS: tuple[str, ...] = (
    "I am {name}, {description} made by {maker}.",
    "My name is {name}. I am {description} made by {maker}.",
    "I'm {name}, {description}. I was made by {maker}.",
)
MAKER_ANSWERS: tuple[str, ...] = (
    "I was made by {maker}. I am {name}.",
    "{maker_cap} made me. My name is {name}.",
    "I am {name}, and I was built by {maker}.",
)


def identity_conversation(rng: random.Random, identity: IdentityConfig) -> Conversation:
    if rng.random() < 0.6:
        question, answer = rng.choice(IDENTITY_QUESTIONS), rng.choice(IDENTITY_ANSWERS)
    else:
        question, answer = rng.choice(MAKER_QUESTIONS), rng.choice(MAKER_ANSWERS)
    maker_cap = identity.maker[:1].upper() + identity.maker[1:]
    text = answer.format(
        name=identity.name, maker=identity.maker, maker_cap=maker_cap, description=identity.description
    )
    return [{"role": "user", "content": question}, {"role": "assistant", "content": text}]


# Questions nobody could answer from training data: (question templates, reason).
_UNKNOWABLE: tuple[tuple[tuple[str, ...], str], ...] = (
    (("What is my name?", "What did I eat for breakfast?", "How old am I?", "Where do I live?",
      "What is my favorite color?", "What is my dog's name?", "What am I thinking about right now?"),
     "I have no way to know personal facts about you."),
    (("Who will win the next World Cup?", "What will the weather be next week?",
      "What will the price of gold be next year?", "Which team will win the game tomorrow?",
      "What numbers will win the lottery this week?"),
     "I cannot know the future."),
    (("What is {n}'s phone number?", "What is my password?", "What is {n}'s home address?",
      "What is in {n}'s bank account?", "What did {n} write in her diary?"),
     "That is private information I do not have."),
)  # fmt: skip
REFUSAL_OPENINGS: tuple[str, ...] = ("I don't know.", "I don't know that.", "Sorry, I don't know.")


def refusal_conversation(rng: random.Random) -> Conversation:
    questions, reason = rng.choice(_UNKNOWABLE)
    question = rng.choice(questions).format(n=rng.choice(NAMES))
    return [{"role": "user", "content": question},
            {"role": "assistant", "content": f"{rng.choice(REFUSAL_OPENINGS)} {reason}"}]  # fmt: skip


# --- The mix ------------------------------------------------------------------------------------

DEFAULT_FRACTIONS: dict[str, float] = {"arithmetic": 0.6, "multi_step": 0.2, "identity": 0.1, "refusal": 0.1}
TOOL_FRACTION = 0.5


def _allocate(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Counts summing to `n` in proportion to `fractions` (largest remainders get the rest)."""
    total = sum(fractions.values())
    if total <= 0 or any(f < 0 for f in fractions.values()):
        raise ValueError(f"fractions must be non-negative and not all zero, got {dict(fractions)}")
    exact = {k: n * f / total for k, f in fractions.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def build_sft_mix(
    rng: random.Random,
    n: int,
    fractions: Mapping[str, float] | None = None,
    identity: IdentityConfig | None = None,
    tool_fraction: float = TOOL_FRACTION,
) -> list[Conversation]:
    """`n` shuffled conversations; `fractions` over "arithmetic" (the two-number family, training
    keys only), "multi_step", "identity" and "refusal" (normalised to sum to 1); `tool_fraction`
    of the arithmetic answers use the calculator tool."""
    fractions = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    identity = identity or IdentityConfig()
    makers: dict[str, Callable[[], Conversation]] = {
        "arithmetic": lambda: problem_conversation(generate_problem(rng, FAMILY), rng.random() < tool_fraction),
        "multi_step": lambda: problem_conversation(generate_problem(rng, "multi_step"), rng.random() < tool_fraction),
        "identity": lambda: identity_conversation(rng, identity),
        "refusal": lambda: refusal_conversation(rng),
    }
    unknown = set(fractions) - set(makers)
    if unknown:
        raise ValueError(f"unknown kinds in fractions: {sorted(unknown)} (known: {sorted(makers)})")
    out = [makers[kind]() for kind, count in _allocate(n, fractions).items() for _ in range(count)]
    rng.shuffle(out)
    return out
