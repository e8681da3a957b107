"""Byte-level BPE tokenizer built on Hugging Face `tokenizers`.

Layout of the vocabulary, which the rest of the project relies on:

* ids 0..15 are the special tokens below, always in this order, whatever the
  vocabulary size, so chat formatting code can hard-wire nothing but the names;
* then the 256 byte-level symbols, so every string is encodable (no <unk>);
* then the learned merges.

Pre-tokenisation uses the GPT-4 split pattern, except that digits are grouped
in runs of 1-3, and then maps bytes to printable symbols (GPT-2 style byte level).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS: tuple[str, ...] = (
    "<|bos|>",
    "<|system_start|>", "<|system_end|>",
    "<|user_start|>", "<|user_end|>",
    "<|assistant_start|>", "<|assistant_end|>",
    "<|tool_call_start|>", "<|tool_call_end|>",
    "<|tool_output_start|>", "<|tool_output_end|>",
    "<|reserved_0|>", "<|reserved_1|>", "<|reserved_2|>", "<|reserved_3|>", "<|reserved_4|>",
)  # fmt: skip

NUM_BYTE_TOKENS = 256
MIN_VOCAB_SIZE = len(SPECIAL_TOKENS) + NUM_BYTE_TOKENS

# GPT-4 (cl100k) style split: English contractions, words with one optional
# leading non-letter, numbers in groups of at most three digits (keeps the
# number vocabulary small and regular), punctuation runs, and whitespace where
# a trailing space stays attached to the following word.
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}"""
    r"""| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)


def _empty_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(pattern=Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
            # use_regex=False: the split above already did the GPT-2 regex's job.
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


class BpeTokenizer:
    """Thin wrapper that fixes the project's conventions on top of `tokenizers.Tokenizer`."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        _check_special_ids(tokenizer, source="tokenizer")
        # Text from the web or from users may literally contain "<|bos|>"; it must
        # never become a control token, or a document could forge a chat turn.
        tokenizer.encode_special_tokens = True
        self._tok = tokenizer

    @classmethod
    def from_file(cls, path: str | Path) -> BpeTokenizer:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises a bare Exception
            raise ValueError(f"cannot load tokenizer from {path}: {exc}") from exc
        _check_special_ids(tok, source=str(path))
        return cls(tok)

    def save(self, path: str | Path) -> None:
        # Writes exactly `path`; callers wanting atomicity save to a temp name and rename.
        self._tok.save(str(path))

    @property
    def tokenizer(self) -> Tokenizer:
        """The underlying Hugging Face tokenizer (for inspection, not for encoding)."""
        return self._tok

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        encodings = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [e.ids for e in encodings]

    def decode(self, ids: Sequence[int]) -> str:
        # skip_special_tokens=False so a chat transcript shows its turn markers.
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_id(self, special: str) -> int:
        if special not in SPECIAL_TOKENS:
            raise ValueError(f"{special!r} is not one of the special tokens {SPECIAL_TOKENS}")
        return SPECIAL_TOKENS.index(special)

    @property
    def bos_id(self) -> int:
        return self.token_id("<|bos|>")

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def id_to_token(self, i: int) -> str:
        token = self._tok.id_to_token(int(i))
        if token is None:
            raise ValueError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return token


def train_bpe(texts: Iterable[str], vocab_size: int) -> BpeTokenizer:
    """Learn a byte-level BPE vocabulary of `vocab_size` tokens (specials and bytes included).

    The result can be smaller than `vocab_size` only when the corpus runs out of
    pairs to merge (a tiny corpus); callers should size the model from
    `BpeTokenizer.vocab_size`, not from the request.
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size must be at least {MIN_VOCAB_SIZE} "
            f"({len(SPECIAL_TOKENS)} special + {NUM_BYTE_TOKENS} byte tokens), got {vocab_size}"
        )
    tok = _empty_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=0,
        special_tokens=list(SPECIAL_TOKENS),
        # All 256 byte symbols, even those absent from the corpus, so any text encodes.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return BpeTokenizer(tok)


def _check_special_ids(tok: Tokenizer, source: str) -> None:
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        actual = tok.token_to_id(token)
        if actual != expected_id:
            raise ValueError(f"{source}: special token {token!r} has id {actual}, expected {expected_id}")
