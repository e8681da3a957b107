"""The model answers word problems in the chat format, with the calculator, and the answers are checked.

Shared by SFT (held-out accuracy), RL (rollouts and rewards) and their reports:
a prompt is the problem as a user turn; the assistant's reply is sampled with the
KV-cached engine, calculator calls are executed by the safe evaluator and fed
back, and the reply is correct when its final "Answer: N" equals the problem's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from model.chat_format import assistant_text, calculator_tool, parse_assistant, render_prompt
from model.engine import Completion, GenerationParams, generate_batch
from model.gpt import GPT
from model.tokenizer import BpeTokenizer
from tasks.posttrain.pass_at_k import pass_at_k
from tasks.posttrain.sft_data import Problem, is_correct, problem_prompt


def reply_params(tokenizer: BpeTokenizer, max_new_tokens: int, temperature: float, top_k: int | None) -> GenerationParams:
    return GenerationParams(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                            stop_ids={tokenizer.token_id("<|assistant_end|>"), tokenizer.bos_id})


def problem_prompt_ids(tokenizer: BpeTokenizer, problem: Problem) -> list[int]:
    return render_prompt(tokenizer, problem_prompt(problem))


def reply_text(tokenizer: BpeTokenizer, completion: Completion) -> str:
    return assistant_text(parse_assistant(tokenizer, completion.tokens))


def is_solved(tokenizer: BpeTokenizer, problem: Problem, completion: Completion) -> bool:
    return is_correct(reply_text(tokenizer, completion), problem.answer)


@dataclass
class Attempts:
    """K sampled replies per problem, and which were right."""

    problems: list[Problem]
    completions: list[list[Completion]]
    correct: list[list[bool]]

    @property
    def correct_counts(self) -> list[int]:
        return [sum(row) for row in self.correct]


@torch.no_grad()
def attempt(
    model: GPT,
    tokenizer: BpeTokenizer,
    problems: Sequence[Problem],
    samples: int,
    params: GenerationParams,
    generator: torch.Generator | None = None,
    prompts_per_batch: int = 16,
    on_done: Callable[[int], None] | None = None,
) -> Attempts:
    """`samples` replies to each problem (each prompt prefilled once, its samples decoded together);
    `on_done(problems answered so far)` after each batch of prompts."""
    was_training = model.training
    model.eval()
    tool = calculator_tool(tokenizer)
    completions: list[list[Completion]] = []
    try:
        for i in range(0, len(problems), prompts_per_batch):
            chunk = problems[i : i + prompts_per_batch]
            prompts = [problem_prompt_ids(tokenizer, p) for p in chunk]
            flat = generate_batch(model, prompts, params, num_samples=samples, generator=generator, tool=tool)
            completions += [flat[j * samples : (j + 1) * samples] for j in range(len(chunk))]
            if on_done is not None:
                on_done(len(completions))
    finally:
        model.train(was_training)
    correct = [[is_solved(tokenizer, p, c) for c in row] for p, row in zip(problems, completions, strict=True)]
    return Attempts(list(problems), completions, correct)


def pass_metrics(
    model: GPT,
    tokenizer: BpeTokenizer,
    problems: Sequence[Problem],
    samples: int,
    temperature: float,
    top_k: int | None,
    max_new_tokens: int,
    seed: int,
    on_done: Callable[[int], None] | None = None,
) -> dict[str, float | int]:
    """pass@1 and pass@samples (with 95% intervals) from `samples` sampled replies per problem."""
    generator = torch.Generator().manual_seed(seed)
    params = reply_params(tokenizer, max_new_tokens, temperature, top_k)
    result = attempt(model, tokenizer, problems, samples, params, generator, on_done=on_done)
    counts = result.correct_counts
    metrics: dict[str, float | int] = {"problems": len(problems), "samples_per_problem": samples}
    metrics.update(pass_at_k(counts, samples, 1).as_dict())
    if samples > 1:
        metrics.update(pass_at_k(counts, samples, samples).as_dict())
    return metrics


def greedy_accuracy(
    model: GPT, tokenizer: BpeTokenizer, problems: Sequence[Problem], max_new_tokens: int,
    on_done: Callable[[int], None] | None = None,
) -> tuple[float, list[dict[str, str | bool]]]:
    """Share of problems answered right by the most likely reply, and a few examples for the report."""
    params = reply_params(tokenizer, max_new_tokens, 0.0, None)
    result = attempt(model, tokenizer, problems, 1, params, on_done=on_done)
    flags = [row[0] for row in result.correct]
    examples = [
        {"question": p.question, "answer": p.answer, "reply": reply_text(tokenizer, row[0]), "correct": ok}
        for p, row, ok in list(zip(result.problems, result.completions, flags, strict=True))[:8]
    ]
    return sum(flags) / len(flags), examples
