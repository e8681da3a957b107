"""One chat reply from the most post-trained checkpoint in a work directory."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from llmforge.config import ChatConfig
from model import chat_format
from model.checkpoint import load_checkpoint
from model.engine import GenerationParams, ToolCall, ToolUse, stream
from model.gpt import GPT
from model.tokenizer import BpeTokenizer

# Most post-trained first: a later stage's checkpoint supersedes the earlier ones.
CHECKPOINT_PREFERENCE = ("rl", "sft", "base")


def latest_checkpoint(workdir: Path) -> Path:
    for name in CHECKPOINT_PREFERENCE:
        candidate = Path(workdir) / "checkpoints" / name
        if (candidate / "model.safetensors").is_file():
            return candidate
    raise FileNotFoundError(f"no checkpoint in {Path(workdir) / 'checkpoints'}: run `llmforge pretrain` first")


Turn = Mapping[str, Any] | tuple[str, str]

# Tool calls allowed within one reply: a model stuck in a call loop must still answer.
MAX_TOOL_CALLS_PER_REPLY = 4


def _as_message(turn: Turn) -> Mapping[str, Any]:
    # (role, text) pairs were this module's history format before `messages`; still accepted.
    if isinstance(turn, tuple):
        role, text = turn
        return {"role": role, "content": text}
    return turn


def render_prompt(tokenizer: BpeTokenizer, history: Sequence[Turn]) -> list[int]:
    """The conversation so far in the chat format (`model.chat_format`), ending where the assistant's turn begins."""
    return chat_format.render_prompt(tokenizer, [_as_message(t) for t in history])


def _complete_parts(parts: list[dict[str, str]]) -> list[dict[str, str]]:
    """`parts` without a trailing tool call that got no output (generation cut mid-call):
    the history must stay a valid conversation for the next prompt."""
    parts = list(parts)
    while parts and parts[-1]["type"] == "tool_call":
        parts.pop()
    return parts


class ChatSession:
    def __init__(self, checkpoint: Path, tokenizer_path: Path, config: ChatConfig):
        self.model: GPT
        self.model, _ = load_checkpoint(checkpoint)
        self.model.eval()
        self.tokenizer = BpeTokenizer.from_file(tokenizer_path)
        self.config = config
        # Two views of the conversation: `history` as (role, text) pairs for display (and for
        # callers written before tool calls existed), `messages` in full (tool parts included,
        # see model.chat_format), which is what the next prompt is rendered from.
        self.history: list[tuple[str, str]] = []
        self.messages: list[dict[str, Any]] = []
        self.last_parts: list[dict[str, str]] = []  # the last reply's text/tool parts
        self.generator = torch.Generator().manual_seed(config.seed)

    def reply(self, message: str, on_text: Callable[[str], None] | None = None) -> str:
        """Generate the assistant's answer to `message`, running calculator calls along the way.

        `on_text` receives the reply as it is produced (whole characters; a calculator call
        shows as "[calculator: E = R]"), for a terminal or any other streaming display.
        """
        tok = self.tokenizer
        self.messages.append({"role": "user", "content": message})
        self.history.append(("user", message))
        calls = 0

        def run_tool(call: ToolCall) -> list[int]:
            nonlocal calls
            calls += 1
            if calls > MAX_TOOL_CALLS_PER_REPLY:
                # The answer the model sees, so it stops calling and answers.
                return [tok.token_id("<|tool_output_start|>"),
                        *tok.encode(f"error: more than {MAX_TOOL_CALLS_PER_REPLY} calculator calls in one reply"),
                        tok.token_id("<|tool_output_end|>")]  # fmt: skip
            return chat_format.tool_feedback(tok, call.body)

        tool = ToolUse(tok.token_id("<|tool_call_start|>"), tok.token_id("<|tool_call_end|>"), run_tool)
        params = GenerationParams(max_new_tokens=self.config.max_new_tokens, temperature=self.config.temperature,
                                  top_k=self.config.top_k, stop_ids={tok.token_id("<|assistant_end|>"), tok.bos_id},
                                  overflow="slide")
        decoder = chat_format.ReplyDecoder(tok)
        out: list[int] = []
        for token in stream(self.model, render_prompt(tok, self.messages), params, self.generator, tool):
            out.append(token)
            if on_text is not None:
                delta = decoder.feed(token)
                if delta:
                    on_text(delta)
        if on_text is not None and (rest := decoder.finish()):
            on_text(rest)
        parts = _complete_parts(chat_format.parse_assistant(tok, out))
        self.last_parts = parts
        self.messages.append({"role": "assistant", "content": parts})
        text = chat_format.assistant_text(parts).strip()
        self.history.append(("assistant", text))
        return text
