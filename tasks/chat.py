"""One chat reply from the most post-trained checkpoint in a work directory."""

from __future__ import annotations

from pathlib import Path

import torch

from llmforge.config import ChatConfig
from model.checkpoint import load_checkpoint
from model.generate import generate
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


def render_prompt(tokenizer: BpeTokenizer, history: list[tuple[str, str]]) -> list[int]:
    """The conversation so far in the chat format, ending where the assistant's turn begins."""
    ids = [tokenizer.bos_id]
    for role, text in history:
        ids += [tokenizer.token_id(f"<|{role}_start|>"), *tokenizer.encode(text), tokenizer.token_id(f"<|{role}_end|>")]
    ids.append(tokenizer.token_id("<|assistant_start|>"))
    return ids


class ChatSession:
    def __init__(self, checkpoint: Path, tokenizer_path: Path, config: ChatConfig):
        self.model: GPT
        self.model, _ = load_checkpoint(checkpoint)
        self.model.eval()
        self.tokenizer = BpeTokenizer.from_file(tokenizer_path)
        self.config = config
        self.history: list[tuple[str, str]] = []
        self.generator = torch.Generator().manual_seed(config.seed)

    def reply(self, message: str) -> str:
        self.history.append(("user", message))
        end = self.tokenizer.token_id("<|assistant_end|>")
        ids = generate(self.model, render_prompt(self.tokenizer, self.history), self.config.max_new_tokens,
                       temperature=self.config.temperature, top_k=self.config.top_k,
                       stop_ids={end, self.tokenizer.bos_id}, generator=self.generator)
        text = self.tokenizer.decode([i for i in ids if i not in (end, self.tokenizer.bos_id)]).strip()
        self.history.append(("assistant", text))
        return text
