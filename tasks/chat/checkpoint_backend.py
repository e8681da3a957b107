"""Our GPT checkpoint and BPE tokenizer as a `ChatBackend`, sampling on the KV-cached engine."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from model.chat_format import ReplyDecoder, calculator_tool, normalize_messages, render_prompt
from model.checkpoint import load_checkpoint
from model.engine import GenerationParams, TokenEvent, stream_batch
from model.tokenizer import BpeTokenizer
from tasks.chat.backend import Generation


class CheckpointBackend:
    """Everything model-specific lives here (rendering, sampling, stopping, decoding),
    so a change of engine API touches this class only. Not thread-safe by itself:
    the server runs one generation at a time.
    """

    def __init__(
        self,
        checkpoint_dir: str | Path,
        tokenizer_path: str | Path,
        device: str | None = None,
        top_k: int | None = 50,
        model_name: str | None = None,
    ) -> None:
        checkpoint_dir = Path(checkpoint_dir)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model, _ = load_checkpoint(checkpoint_dir, device=self.device)
        self.model.eval()
        self.tokenizer = BpeTokenizer.from_file(tokenizer_path)
        if self.tokenizer.vocab_size > self.model.config.vocab_size:
            raise ValueError(
                f"tokenizer {tokenizer_path} has {self.tokenizer.vocab_size} tokens but the model only "
                f"{self.model.config.vocab_size}: they do not belong together"
            )
        self.top_k = top_k
        # The checkpoint's stage (base/sft/rl) names the model, so clients see which one answers.
        self.model_name = model_name or f"llmforge-{checkpoint_dir.resolve().name}"
        self._stop_ids = frozenset({self.tokenizer.token_id("<|assistant_end|>"), self.tokenizer.bos_id})
        self._tool = calculator_tool(self.tokenizer)  # the model may call it mid-reply

    def validate(self, messages: list[dict[str, Any]]) -> None:
        normalize_messages(messages)

    def stream(
        self,
        messages: list[dict[str, Any]],
        temperature: float,
        max_tokens: int,
        top_p: float | None,
        seed: int | None,
    ) -> Generation:
        prompt = render_prompt(self.tokenizer, messages)  # ValueError -> 400
        params = GenerationParams(
            max_new_tokens=max_tokens, temperature=temperature, top_k=self.top_k, top_p=top_p,
            stop_ids=self._stop_ids,
            # A conversation longer than the context keeps its most recent tokens instead of failing.
            overflow="slide",
        )  # fmt: skip
        # Any integer seed works (torch takes 64-bit seeds only); none = a fresh random one.
        generator = torch.Generator().manual_seed(seed % (1 << 63) if seed is not None else secrets.randbits(63))
        events = stream_batch(self.model, [prompt], params, 1, generator, self._tool)
        generation = Generation(prompt_tokens=len(prompt))
        generation.attach(self._deltas(generation, events))
        return generation

    def _deltas(self, generation: Generation, events: Iterator[TokenEvent]) -> Iterator[str]:
        """Text of the sampled tokens, one delta per token; fills in the generation's counts and finish reason."""
        decoder = ReplyDecoder(self.tokenizer)
        finish: str | None = None
        try:
            for event in events:
                generation.completion_tokens += 1
                finish = event.finish or finish
                if event.token in self._stop_ids:
                    continue
                # Yield every token, even without text, so a cancelled reply stops promptly.
                yield decoder.feed(event.token)
        finally:
            events.close()  # type: ignore[attr-defined]  # a generator: frees the KV cache now if the client left
        tail = decoder.finish()
        if tail:
            yield tail
        # "context" cannot happen with overflow="slide"; if it did, the reply was cut short.
        generation.finish_reason = "stop" if finish == "stop" else "length"
