"""One page that says how the whole run went: each stage's headline numbers and wall time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmforge import atomic


def _data(m: dict[str, Any]) -> str:
    removed = sum((m.get("removed") or {}).values())
    errors = sum((m.get("errors") or {}).values())
    funnel = f"of {m.get('responses')} responses ({removed} removed, {errors} unreadable)"
    if (m.get("version") or 1) <= 1:
        return f"{m.get('documents')} documents kept {funnel}"
    return f"version {m['version']}: {m.get('new_documents')} new documents kept {funnel}; {m.get('documents')} in all"


def _tokenize(m: dict[str, Any]) -> str:
    return (f"vocabulary {m.get('vocab_size')}, {m.get('train_tokens')} train / {m.get('val_tokens')} val tokens, "
            f"{m.get('val_bytes_per_token')} bytes per token")


def _pretrain(m: dict[str, Any]) -> str:
    text = (f"{m.get('parameters')} parameters, {m.get('tokens_seen')} tokens seen, loss {m.get('initial_loss')} → "
            f"{m.get('final_loss')}, {m.get('tokens_per_s')} tokens/s")
    if m.get("val_bits_per_byte") is not None:
        text += f", val {m['val_bits_per_byte']} bits/byte"
    return text


def _evaluate(m: dict[str, Any]) -> str:
    text = f"val loss {m.get('val_loss')}, {m.get('val_bits_per_byte')} bits/byte"
    if "multiple_choice_accuracy" in m:
        text += f", multiple choice {m['multiple_choice_accuracy']}"
    return text


def _sft(m: dict[str, Any]) -> str:
    return (f"{m.get('examples')} conversations, loss {m.get('initial_loss')} → {m.get('final_loss')}, held-out "
            f"accuracy {m.get('heldout_accuracy_before')} → {m.get('heldout_accuracy')} (greedy, "
            f"{m.get('heldout_problems')} problems)")


def _rl(m: dict[str, Any]) -> str:
    before, after = m.get("before") or {}, m.get("after") or {}
    k = before.get("samples_per_problem")

    def ci(row: dict[str, Any], key: str) -> str:
        return f"{row.get(key)} [{row.get(key + '_ci95_low')}, {row.get(key + '_ci95_high')}]"

    text = f"pass@1 {ci(before, 'pass@1')} → {ci(after, 'pass@1')}"
    if k and k > 1:
        text += f"; pass@{k} {ci(before, f'pass@{k}')} → {ci(after, f'pass@{k}')}"
    return text + f" ({before.get('problems')} held-out problems of {m.get('family')})"


HEADLINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "data": _data, "tokenize": _tokenize, "pretrain": _pretrain, "evaluate": _evaluate, "sft": _sft, "rl": _rl,
}


def headline_message(outcome: dict[str, Any]) -> str:
    """One line for a flow run's final state: the stage's status and headline, or the pipeline's stage count."""
    if "stages" in outcome:
        stages = outcome["stages"]
        return f"{sum(o['status'] == 'ran' for o in stages)} of {len(stages)} stages ran, the others were up to date"
    text = HEADLINES.get(outcome["stage"], lambda m: "")(outcome.get("metrics") or {})
    return f"{outcome['status']}: {text}" if text else str(outcome["status"])


def report_card(outcomes: list[dict[str, Any]]) -> str:
    lines = ["# Report card", "", "| stage | status | wall s | headline |", "|---|---|---:|---|"]
    for o in outcomes:
        headline = HEADLINES.get(o["stage"], lambda m: "")(o.get("metrics") or {})
        seconds = "" if o.get("seconds") is None else f"{o['seconds']:.1f}"
        lines.append(f"| {o['stage']} | {o['status']} | {seconds} | {headline} |")
    total = sum(o.get("seconds") or 0.0 for o in outcomes if o["status"] == "ran")
    lines += ["", f"Stages run now: {sum(o['status'] == 'ran' for o in outcomes)} of {len(outcomes)}, "
              f"{total:.1f} s of stage time (a skipped stage shows the wall time of the run that made its outputs)."]
    return "\n".join(lines) + "\n"


def write_report_card(path: Path, outcomes: list[dict[str, Any]]) -> str:
    text = report_card(outcomes)
    atomic.write_text(path, text)
    return text
