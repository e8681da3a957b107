"""The RL stage's logic: GRPO-style reinforcement learning on problems with checkable answers.

Each step draws fresh training problems of the family, samples K replies per
problem from the current policy (calculator included), rewards a reply 1 when its
final answer is right (a tool call alone earns nothing: only the answer counts),
and takes one policy-gradient step with group-relative advantages
(`model.grpo`). Tokens the engine injected (tool outputs) are not the policy's
and get no gradient. Before and after, the model answers the family's fixed
held-out problems, sampled `eval_samples` times each: pass@1 and pass@k with 95%
intervals show what RL changed.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmforge import atomic
from llmforge.config import RlConfig
from model.checkpoint import load_checkpoint_for, save_checkpoint
from model.distributed import pick_device
from model.engine import GenerationParams
from model.gpt import GPT
from model.grpo import RolloutBatch, group_advantages, make_rollout_batch, policy_gradient_loss
from model.threads import governor_for
from model.tokenizer import BpeTokenizer
from tasks.posttrain.problems import Attempts, attempt, pass_metrics, problem_prompt_ids, reply_params
from tasks.posttrain.sft_data import Problem, generate_problem, heldout_set
from tasks.progress import Progress, phase

log = logging.getLogger(__name__)


@dataclass
class RlStepLog:
    step: int
    mean_reward: float
    loss: float
    groups_with_signal: int  # groups whose K rewards were not all equal
    policy_tokens: int
    seconds: float


def held_out_metrics(
    model: Any, tokenizer: BpeTokenizer, config: RlConfig, on_done: Callable[[int], None] | None = None
) -> dict[str, float | int]:
    problems = heldout_set(config.family, n=config.eval_problems)
    return pass_metrics(model, tokenizer, problems, config.eval_samples, config.eval_temperature, config.top_k,
                        config.max_new_tokens, seed=config.seed + 1, on_done=on_done)


def rollout_batch(
    tokenizer: BpeTokenizer, problems: list[Problem], rollouts: Attempts, advantages: torch.Tensor
) -> RolloutBatch:
    """Prompt + reply of every sample; only the tokens the policy sampled (not tool outputs) are trained."""
    sequences, masks = [], []
    for problem, row in zip(problems, rollouts.completions, strict=True):
        prompt = problem_prompt_ids(tokenizer, problem)
        for completion in row:
            sequences.append(prompt + completion.tokens)
            masks.append([0] * len(prompt) + [0 if forced else 1 for forced in completion.forced])
    return make_rollout_batch(sequences, masks, advantages)


def policy_step(model: GPT, optimizer: torch.optim.Optimizer, batch: RolloutBatch, grad_clip: float) -> float:
    """One policy-gradient update on the batch; returns its loss."""
    model.train()
    loss = policy_gradient_loss(model, batch)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.item())


@dataclass
class RlRun:
    """The policy, its optimizer and the random streams of one RL run."""

    model: GPT
    tokenizer: BpeTokenizer
    config: RlConfig
    optimizer: torch.optim.Optimizer
    problem_rng: random.Random
    sample_generator: torch.Generator
    params: GenerationParams

    def step(self, step: int) -> RlStepLog:
        """Fresh problems, K rollouts each, rewards, and an update where some group's rewards differ."""
        step_start = time.perf_counter()
        config, k = self.config, self.config.samples_per_prompt
        problems = [generate_problem(self.problem_rng, config.family, "train") for _ in range(config.prompts_per_step)]
        rollouts = attempt(self.model, self.tokenizer, problems, k, self.params, self.sample_generator)
        rewards = torch.tensor([float(ok) for row in rollouts.correct for ok in row])
        batch = rollout_batch(self.tokenizer, problems, rollouts, group_advantages(rewards, k))
        signal = int((rewards.view(-1, k).std(dim=1) > 0).sum())
        # All-equal groups have zero advantage: no gradient to take.
        loss = policy_step(self.model, self.optimizer, batch, config.grad_clip) if signal else 0.0
        return RlStepLog(step=step, mean_reward=float(rewards.mean()), loss=loss, groups_with_signal=signal,
                         policy_tokens=int(batch.policy_mask.sum()), seconds=time.perf_counter() - step_start)


def start_rl_run(model: GPT, tokenizer: BpeTokenizer, config: RlConfig) -> RlRun:
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.95),
                                  weight_decay=config.weight_decay)
    return RlRun(model, tokenizer, config, optimizer, random.Random(config.seed),
                 torch.Generator().manual_seed(config.seed),
                 reply_params(tokenizer, config.max_new_tokens, config.temperature, config.top_k))


def mean_reward(history: list[RlStepLog]) -> float:
    return round(sum(h.mean_reward for h in history) / len(history), 4)


def rl(
    sft_dir: Path,
    tokenizer_path: Path,
    out_dir: Path,
    config: RlConfig,
    on_log: Callable[[RlStepLog], None] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    tokenizer = BpeTokenizer.from_file(tokenizer_path)
    model, sft_state = load_checkpoint_for(sft_dir, tokenizer.vocab_size, str(tokenizer_path))
    model.to(pick_device(config.device))
    torch.manual_seed(config.seed)
    before = held_out_metrics(model, tokenizer, config, phase(progress, "pass@k before", config.eval_problems, "problem"))
    run = start_rl_run(model, tokenizer, config)
    history: list[RlStepLog] = []
    threads = governor_for(pick_device(config.device), config.adapt_threads, log.warning)
    on_step = phase(progress, "training", config.steps)
    started = time.perf_counter()
    try:
        for step in range(config.steps):
            history.append(run.step(step))
            if threads is not None:
                threads.after_step(step + 1)
            if on_step is not None:
                on_step(step + 1)
            if on_log is not None and (step % config.log_every == 0 or step == config.steps - 1):
                on_log(history[-1])
    finally:
        if threads is not None:
            threads.restore()
    train_seconds = time.perf_counter() - started
    after = held_out_metrics(model, tokenizer, config, phase(progress, "pass@k after", config.eval_problems, "problem"))
    if progress is not None:
        progress.finish()
    metrics: dict[str, Any] = {
        "family": config.family,
        "steps": config.steps,
        "samples_per_prompt": config.samples_per_prompt,
        "train_seconds": round(train_seconds, 2),
        "mean_reward_first_steps": mean_reward(history[:5]),
        "mean_reward_last_steps": mean_reward(history[-5:]),
        "before": before,
        "after": after,
        "pass@1_gain": round(float(after["pass@1"]) - float(before["pass@1"]), 4),
    }
    if threads is not None:
        metrics["threads"] = threads.summary()
    result = {"metrics": metrics, "history": [vars(h) for h in history]}
    save_checkpoint(out_dir, model.cpu(), {
        "stage": "rl",
        "step": config.steps,
        "sft_step": sft_state.get("step"),
        "tokenizer_vocab_size": tokenizer.vocab_size,
        "rl_config": config.model_dump(mode="json"),
        "history": result["history"],
        "metrics": metrics,
    })
    return result


def rl_report(result: dict[str, Any]) -> str:
    m = result["metrics"]
    before, after = m["before"], m["after"]
    k = before["samples_per_problem"]
    lines = ["# Reinforcement learning (GRPO on verifiable problems)", "",
             f"Family `{m['family']}`, {before['problems']} held-out problems, {k} samples each.", "",
             "| | pass@1 | 95% CI | " + (f"pass@{k} | 95% CI |" if k > 1 else ""),
             "|---|---:|---|" + ("---:|---|" if k > 1 else "")]
    for name, row in (("before (SFT)", before), ("after RL", after)):
        cells = f"| {name} | {row['pass@1']} | {row['pass@1_ci95_low']}–{row['pass@1_ci95_high']} |"
        if k > 1:
            cells += f" {row[f'pass@{k}']} | {row[f'pass@{k}_ci95_low']}–{row[f'pass@{k}_ci95_high']} |"
        lines.append(cells)
    lines += ["", f"pass@1 gain: {m['pass@1_gain']:+.4f}; mean reward {m['mean_reward_first_steps']} (first steps) → "
              f"{m['mean_reward_last_steps']} (last steps); {m['steps']} steps in {m['train_seconds']} s.", "",
              "| step | mean reward | loss | groups with signal | policy tokens |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {h['step']} | {h['mean_reward']:.3f} | {h['loss']:.4f} | {h['groups_with_signal']} | {h['policy_tokens']} |"
              for h in result["history"]]
    return "\n".join(lines) + "\n"


def write_rl_report(path: Path, result: dict[str, Any]) -> None:
    atomic.write_text(path, rl_report(result))
