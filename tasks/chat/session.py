"""One chat reply from the most post-trained checkpoint in a work directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from llmforge.config import ChatConfig
from model import chat_format
from model.checkpoint import load_checkpoint
from model.engine import GenerationParams, ToolCall, stream
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


# Tool calls allowed within one reply: a model stuck in a call loop must still answer.
MAX_TOOL_CALLS_PER_REPLY = 4


def _complete_parts(parts: list[dict[str, str]]) -> list[dict[str, str]]:
    """`parts` without a trailing tool call that got no output (generation cut mid-call):
    the history must stay a valid conversation for the next prompt."""
    parts = list(parts)
    while parts and parts[-1]["type"] == "tool_call":
        parts.pop()
    return parts


class _ReplyCalculator:
    """The calculator hook for one reply: past MAX_TOOL_CALLS_PER_REPLY calls it answers with an error,
    which the model sees, so it stops calling and answers."""

    def __init__(self, tokenizer: BpeTokenizer) -> None:
        self.tokenizer = tokenizer
        self.calls = 0

    def __call__(self, call: ToolCall) -> list[int]:
        tok = self.tokenizer
        self.calls += 1
        if self.calls > MAX_TOOL_CALLS_PER_REPLY:
            return [tok.token_id("<|tool_output_start|>"),
                    *tok.encode(f"error: more than {MAX_TOOL_CALLS_PER_REPLY} calculator calls in one reply"),
                    tok.token_id("<|tool_output_end|>")]  # fmt: skip
        return chat_format.tool_feedback(tok, call.body)


class ChatSession:
    def __init__(self, checkpoint: Path, tokenizer_path: Path, config: ChatConfig):
        self.model: GPT
        self.model, _ = load_checkpoint(checkpoint)
        self.model.eval()
        self.tokenizer = BpeTokenizer.from_file(tokenizer_path)
        self.config = config
        # The conversation in full (tool parts included, see model.chat_format): the next prompt is rendered from it.
        self.messages: list[dict[str, Any]] = []
        self.last_parts: list[dict[str, str]] = []  # the last reply's text/tool parts
        self.generator = torch.Generator().manual_seed(config.seed)

    def reply(self, message: str, on_text: Callable[[str], None] | None = None) -> str:
        """Generate the assistant's answer to `message`, running calculator calls along the way.

        `on_text` receives the reply as it is produced (whole characters; a calculator call
        shows as "[calculator: E = R]"), for a terminal or any other streaming display.
        """
        self.messages.append({"role": "user", "content": message})
        parts = _complete_parts(chat_format.parse_assistant(self.tokenizer, self._generate(on_text)))
        self.last_parts = parts
        self.messages.append({"role": "assistant", "content": parts})
        return chat_format.assistant_text(parts).strip()

    def _generate(self, on_text: Callable[[str], None] | None) -> list[int]:
        """The reply's tokens (tool outputs included), sampled after the conversation so far."""
        tok = self.tokenizer
        tool = chat_format.calculator_tool(tok, _ReplyCalculator(tok))
        params = GenerationParams(max_new_tokens=self.config.max_new_tokens, temperature=self.config.temperature,
                                  top_k=self.config.top_k, stop_ids={tok.token_id("<|assistant_end|>"), tok.bos_id},
                                  overflow="slide")
        decoder = chat_format.ReplyDecoder(tok)
        out: list[int] = []
        prompt = chat_format.render_prompt(tok, self.messages)
        for token in stream(self.model, prompt, params, self.generator, tool):
            out.append(token)
            if on_text is not None and (delta := decoder.feed(token)):
                on_text(delta)
        if on_text is not None and (rest := decoder.finish()):
            on_text(rest)
        return out
