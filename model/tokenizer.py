"""Byte-level BPE tokenizer: trained and stored with Hugging Face `tokenizers`, encoded with `tiktoken`.

Layout of the vocabulary, which the rest of the project relies on:

* ids 0..15 are the special tokens below, always in this order, whatever the
  vocabulary size, so chat formatting code can hard-wire nothing but the names;
* then the 256 byte-level symbols, so every string is encodable (no <unk>);
* then the learned merges, each new token's id one more than the previous one's.

Pre-tokenisation uses the GPT-4 split pattern, except that digits are grouped
in runs of 1-3, and then maps bytes to printable symbols (GPT-2 style byte level).

Two encoders give the same ids:

* the reference: the `tokenizers` pipeline itself (onig regex, merges applied by
  merge rank). Training and the saved `tokenizer.json` use it, and so can any
  standard tool that loads that file;
* the fast path: a `tiktoken.Encoding` built from the same vocabulary, where a
  token's rank is its id. It is several times faster, so `encode` and
  `encode_batch` use it whenever the tokenizer meets the conditions under which
  it was checked to give identical ids (`_fast_path_problem`); otherwise they
  fall back to the reference and `fast_path_problem` says why.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import tiktoken
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

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
#
# Every character is matched by one alternative (letters, numbers, whitespace,
# and "anything else" via [^\s\p{L}\p{N}]). That matters for the fast path:
# `tokenizers` (behavior="isolated") keeps unmatched gaps as pieces, while
# tiktoken only encodes matches and would silently drop anything unmatched.
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}"""
    r"""| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)

# How `transformers` should name the roles when it loads tokenizer.json (see
# `transformers_tokenizer`). Documents are separated by BOS in pretraining, and
# a chat reply ends with <|assistant_end|>, which is what generation stops on.
TRANSFORMERS_SPECIAL_TOKENS: dict[str, str] = {"bos_token": "<|bos|>", "eos_token": "<|assistant_end|>"}


def _byte_to_char() -> dict[int, str]:
    """GPT-2's byte-level alphabet: byte value -> the printable character that stands for it.

    Bytes that are printable Latin-1 characters ('!'..'~', '¡'..'¬', '®'..'ÿ')
    stand for themselves; the other 68 (controls, space, DEL, NBSP, soft hyphen)
    are shifted, in byte order, to U+0100 onwards. `tokenizers`' ByteLevel
    pre-tokenizer and decoder use this mapping; tokenizer.json stores tokens in it.
    """
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    mapping = {b: chr(b) for b in printable}
    shifted = (b for b in range(256) if b not in mapping)
    for offset, b in enumerate(shifted):
        mapping[b] = chr(0x100 + offset)
    return mapping


BYTE_TO_CHAR: dict[int, str] = _byte_to_char()
CHAR_TO_BYTE: dict[str, int] = {c: b for b, c in BYTE_TO_CHAR.items()}
# str.translate table from byte-level symbols to the Latin-1 character of the
# same byte value, so `.encode("latin-1")` yields the raw bytes in C speed. The
# 68 Latin-1 characters that are not symbols map to U+FFFF, which Latin-1 cannot
# encode, so a string that is not pure byte-level symbols raises instead of
# passing through unchanged.
_SYMBOLS_TO_LATIN1 = {ord(c): chr(b) for b, c in BYTE_TO_CHAR.items()}
_SYMBOLS_TO_LATIN1.update({b: "\uffff" for b in range(256) if chr(b) not in CHAR_TO_BYTE})


def symbols_to_bytes(token: str) -> bytes:
    """The raw bytes of a token written in byte-level symbols (as tokenizer.json stores them)."""
    try:
        return token.translate(_SYMBOLS_TO_LATIN1).encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{token!r} is not made of byte-level symbols") from None


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
    # Only used by standard tools that call encode(..., add_special_tokens=True)
    # (their default): they then get a leading BOS, like every document in our
    # token shards. BpeTokenizer never adds special tokens implicitly.
    tok.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", pair="<|bos|> $A <|bos|> $B:1", special_tokens=[("<|bos|>", 0)]
    )
    return tok


class BpeTokenizer:
    """Thin wrapper that fixes the project's conventions on top of `tokenizers.Tokenizer`."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        _check_special_ids(tokenizer, source="tokenizer")
        # Text from the web or from users may literally contain "<|bos|>"; it must
        # never become a control token, or a document could forge a chat turn.
        tokenizer.encode_special_tokens = True
        self._tok = tokenizer
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        self._token_bytes: list[bytes] = _token_bytes_table(vocab, max(vocab.values()) + 1)
        self._fast: tiktoken.Encoding | None = None
        self._fast_problem = _fast_path_problem(tokenizer, vocab)
        if self._fast_problem is None:
            self._fast = _tiktoken_encoding(self._token_bytes)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # `encode_special_tokens` is not part of a `tokenizers.Tokenizer`'s pickled (or
        # saved) state: without this, an unpickled copy (e.g. sent to a worker process)
        # would turn "<|bos|>" in text into the control token on the reference path.
        self.__dict__.update(state)
        self._tok.encode_special_tokens = True

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

    @property
    def encoder_backend(self) -> str:
        """Which encoder `encode` uses: "tiktoken" (the fast path) or "tokenizers" (the reference)."""
        return "tiktoken" if self._fast is not None else "tokenizers"

    @property
    def tiktoken_encoding(self) -> tiktoken.Encoding | None:
        """The fast path's `tiktoken.Encoding` (ranks = our ids), or None when it is off.

        Use only its `encode_ordinary*` methods: its `encode` would accept special tokens in text.
        """
        return self._fast

    @property
    def fast_path_problem(self) -> str | None:
        """Why this tokenizer cannot use the tiktoken fast path, or None when it does."""
        return self._fast_problem

    def encode(self, text: str) -> list[int]:
        """Ids of `text` as plain text: special-looking strings such as "<|bos|>" stay plain text."""
        if self._fast is None:
            return self.encode_reference(text)
        _require_utf8(text)
        return self._fast.encode_ordinary(text)

    def encode_batch(self, texts: Sequence[str], num_threads: int | None = None) -> list[list[int]]:
        """`encode` of each text, in order, on `num_threads` threads (default: the usable cores).

        tiktoken releases the GIL while it encodes, so threads help (though less than
        processes: taking the text in and building the id lists still hold it).
        Callers that already run one process per core (a process pool) should pass 1.
        """
        texts = list(texts)
        if self._fast is None:
            return self.encode_batch_reference(texts)
        for text in texts:
            _require_utf8(text)
        threads = min(num_threads or available_cores(), max(len(texts), 1))
        if threads <= 1:
            return [self._fast.encode_ordinary(text) for text in texts]
        return self._fast.encode_ordinary_batch(texts, num_threads=threads)

    def encode_reference(self, text: str) -> list[int]:
        """The `tokenizers` pipeline's ids: the definition `encode` must match, and much slower."""
        _require_utf8(text)
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch_reference(self, texts: Sequence[str]) -> list[list[int]]:
        """`tokenizers`' own `encode_batch` (its Rayon thread pool, all cores)."""
        texts = list(texts)
        for text in texts:
            _require_utf8(text)
        encodings = self._tok.encode_batch(texts, add_special_tokens=False)
        return [e.ids for e in encodings]

    def decode(self, ids: Sequence[int]) -> str:
        # skip_special_tokens=False so a chat transcript shows its turn markers.
        # Ids that end or start in the middle of a UTF-8 character decode to U+FFFD.
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
        """The token as stored in tokenizer.json: the special token's name, or its byte-level symbols."""
        token = self._tok.id_to_token(int(i))
        if token is None:
            raise ValueError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return token

    def token_bytes(self, i: int) -> bytes:
        """The raw bytes a token stands for (a special token: its name in UTF-8).

        A token may hold part of a multi-byte character, so this is bytes, not str.
        """
        i = int(i)
        if not 0 <= i < len(self._token_bytes):
            raise ValueError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return self._token_bytes[i]


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count, where known)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


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


def transformers_tokenizer(path: str | Path, split_special_tokens: bool = True) -> Any:
    """tokenizer.json loaded as a `transformers.PreTrainedTokenizerFast`, with our special-token roles.

    `split_special_tokens=True` makes it treat "<|bos|>" in input text as plain
    text, as `BpeTokenizer.encode` does; transformers' own default (False) turns
    it into the control token. Its `encode` adds a leading BOS by default (the
    post-processor), like our token shards; pass add_special_tokens=False for
    exactly `BpeTokenizer.encode`'s ids. Needs the optional `transformers` package.
    """
    from transformers import PreTrainedTokenizerFast  # optional, heavy: imported only here

    return PreTrainedTokenizerFast(
        tokenizer_file=str(path), split_special_tokens=split_special_tokens, **TRANSFORMERS_SPECIAL_TOKENS
    )


def describe_token(token: bytes) -> str:
    """A token's bytes as readable text: the characters where they are valid UTF-8, \\xNN for the rest."""
    return token.decode("utf-8", errors="backslashreplace")


def vocab_report(tokenizer: BpeTokenizer, token_counts: Mapping[int, int] | None = None) -> dict[str, Any]:
    """A JSON-ready summary of the vocabulary, and of how `token_counts` (id -> occurrences) uses it.

    Without counts: the layout, token byte lengths and the longest tokens. With
    counts (e.g. over the validation split): how much of the vocabulary the text
    actually uses, its most frequent tokens, bytes per token, and how often it
    had to fall back to single-byte tokens (high for scripts the training data
    lacked). Special tokens (BOS and friends) carry no text and are counted apart.
    """
    lengths = {i: len(tokenizer.token_bytes(i)) for i in range(len(SPECIAL_TOKENS), tokenizer.vocab_size)}
    report = _layout_report(tokenizer, lengths)
    if token_counts is not None:
        report.update(_usage_report(tokenizer, lengths, _checked_counts(token_counts, tokenizer.vocab_size)))
    return report


def _layout_report(tokenizer: BpeTokenizer, lengths: Mapping[int, int]) -> dict[str, Any]:
    """The vocabulary's layout, how long its merged tokens are, and the longest of them."""
    merged = [i for i in lengths if i >= MIN_VOCAB_SIZE]
    histogram: dict[str, int] = {}
    for i in merged:
        key = str(lengths[i]) if lengths[i] < 16 else "16+"
        histogram[key] = histogram.get(key, 0) + 1
    # Longest first; among equals the earlier merge (more frequent in training) first.
    longest = sorted(merged, key=lambda i: (-lengths[i], i))[:10]
    return {
        "vocab_size": tokenizer.vocab_size,
        "special_tokens": len(SPECIAL_TOKENS),
        "byte_tokens": NUM_BYTE_TOKENS,
        "merged_tokens": len(merged),
        "encoder_backend": tokenizer.encoder_backend,
        "mean_merged_token_bytes": round(sum(lengths[i] for i in merged) / len(merged), 3) if merged else None,
        "merged_token_bytes_histogram": dict(sorted(histogram.items(), key=lambda kv: (kv[0] == "16+", int(kv[0].rstrip("+"))))),
        "longest_tokens": [_token_entry(tokenizer, i) for i in longest],
    }


def _checked_counts(token_counts: Mapping[int, int], size: int) -> dict[int, int]:
    """Non-zero counts by integer id; raises ValueError on an id outside the vocabulary or a negative count."""
    counts: dict[int, int] = {}
    for key, count in token_counts.items():
        i, count = int(key), int(count)
        if not 0 <= i < size:
            raise ValueError(f"token id {i} in token_counts is outside the vocabulary (size {size})")
        if count < 0:
            raise ValueError(f"token id {i} has a negative count {count}")
        if count:
            counts[i] = counts.get(i, 0) + count
    return counts


def _usage_report(tokenizer: BpeTokenizer, lengths: Mapping[int, int], counts: Mapping[int, int]) -> dict[str, Any]:
    """How counted text uses the vocabulary: coverage, bytes per token, byte fallback, most frequent tokens."""
    n_special = len(SPECIAL_TOKENS)
    text_counts = {i: c for i, c in counts.items() if i >= n_special}
    total = sum(text_counts.values())
    used_merged = sum(1 for i in text_counts if i >= MIN_VOCAB_SIZE)
    top = sorted(text_counts, key=lambda i: (-text_counts[i], i))[:10]
    return {
        "counted_tokens": total,
        "counted_special_tokens": sum(c for i, c in counts.items() if i < n_special),
        "ids_used": len(text_counts),
        # The share of the non-special vocabulary that occurs at least once.
        "vocab_usage": round(len(text_counts) / (tokenizer.vocab_size - n_special), 4),
        "merged_tokens_used": used_merged,
        "merged_tokens_unused": sum(1 for i in lengths if i >= MIN_VOCAB_SIZE) - used_merged,
        "bytes_per_token": round(sum(lengths[i] * c for i, c in text_counts.items()) / total, 4) if total else None,
        "byte_token_share": round(sum(c for i, c in text_counts.items() if i < MIN_VOCAB_SIZE) / total, 4) if total else None,
        "top_tokens": [
            {**_token_entry(tokenizer, i), "count": text_counts[i], "share": round(text_counts[i] / total, 4)}
            for i in top
        ],
    }


def _token_entry(tokenizer: BpeTokenizer, i: int) -> dict[str, Any]:
    raw = tokenizer.token_bytes(i)
    return {"id": i, "bytes": len(raw), "text": describe_token(raw)}


def _require_utf8(text: str) -> None:
    # A lone surrogate cannot be encoded as UTF-8. `tokenizers` rejects it with
    # an obscure TypeError and tiktoken silently replaces it with U+FFFD, which
    # would break decode(encode(x)) == x; make both paths fail the same clear way.
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    if text.isascii():  # the common case, checked without copying
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"text contains a character that cannot be encoded as UTF-8 at offset {err.start} "
            f"({text[err.start]!r}, a lone surrogate?)"
        ) from err


def _token_bytes_table(vocab: Mapping[str, int], size: int) -> list[bytes]:
    table = [b""] * size
    for token, i in vocab.items():
        if i < len(SPECIAL_TOKENS):
            table[i] = token.encode("utf-8")
            continue
        try:
            table[i] = symbols_to_bytes(token)
        except ValueError:  # an added non-byte-level token (not made by train_bpe); _fast_path_problem rejects it
            table[i] = token.encode("utf-8")
    return table


def _tiktoken_encoding(token_bytes: Sequence[bytes]) -> tiktoken.Encoding:
    # The rank of a token is its id. The merges were learned in id order, so a
    # lower id is exactly a higher merge priority, and every merged token has a
    # larger id than its two parts (`_fast_path_problem` checks both). The byte
    # tokens' ranks (16..271, ordered by their byte-level symbol, not by byte
    # value) never compete with each other: BPE starts from all single bytes.
    n_special = len(SPECIAL_TOKENS)
    ranks = {token_bytes[i]: i for i in range(n_special, len(token_bytes))}
    return tiktoken.Encoding(
        name=f"llmforge-bpe-{len(token_bytes)}",
        pat_str=SPLIT_PATTERN,
        mergeable_ranks=ranks,
        # Registered so the encoding knows their ids; encode_ordinary never matches them in text.
        special_tokens={token: i for i, token in enumerate(SPECIAL_TOKENS)},
        explicit_n_vocab=len(token_bytes),
    )


def _fast_path_problem(tok: Tokenizer, vocab: Mapping[str, int]) -> str | None:
    """None if tiktoken built from this vocabulary gives the same ids as `tokenizers`, else the reason not.

    Checks the structure that makes the two algorithms agree: same pre-tokenisation
    (our split pattern, byte level, nothing else), a plain byte-level BPE model,
    ids 16..271 being the 256 bytes, and merges whose result ids increase by one
    in merge order with both parts earlier. tiktoken also returns a whole regex
    piece that is itself in the vocabulary as that one token, without running the
    merges, so every token must be what `tokenizers` makes of its own bytes.
    What it cannot prove (the two regex engines agreeing on every input) the
    tests check on every character and on real text in many languages.
    """
    config = json.loads(tok.to_str())
    return (
        _pipeline_problem(config)
        or _byte_layout_problem(vocab)
        or _merge_order_problem(config["model"], vocab)
        or _self_encoding_problem(tok, vocab)
    )


def _pipeline_problem(config: Mapping[str, Any]) -> str | None:
    """Anything in the saved pipeline beyond our split pattern, byte level and a plain BPE model."""
    if config.get("normalizer") is not None:
        return "the tokenizer has a normalizer"
    expected_pre = [
        {"type": "Split", "pattern": {"Regex": SPLIT_PATTERN}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False},
    ]
    pre = config.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else None
    if not steps or len(steps) != 2 or any(
        any(step.get(key) != value for key, value in want.items()) for step, want in zip(steps, expected_pre)
    ):
        return "the pre-tokenizer is not the project's split pattern followed by byte level"
    model = config["model"]
    if model.get("type") != "BPE":
        return f"the model is {model.get('type')}, not BPE"
    if model.get("dropout") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        return "the BPE model uses dropout or subword affixes"
    if model.get("byte_fallback") or model.get("unk_token") is not None:
        return "the BPE model uses byte fallback or an unknown token"
    added = {t["content"] for t in config.get("added_tokens", [])}
    if added != set(SPECIAL_TOKENS):
        return f"added tokens other than the special tokens: {sorted(added - set(SPECIAL_TOKENS))[:5]}"
    return None


def _byte_layout_problem(vocab: Mapping[str, int]) -> str | None:
    """Ids must be contiguous, 16..271 the 256 single bytes, and no two tokens the same bytes."""
    size = len(vocab)
    if sorted(vocab.values()) != list(range(size)):
        return "token ids are not contiguous"
    by_id = {i: token for token, i in vocab.items()}
    try:
        raw = [symbols_to_bytes(by_id[i]) for i in range(len(SPECIAL_TOKENS), size)]
    except ValueError as err:
        return str(err)
    if sorted(raw[: NUM_BYTE_TOKENS]) != [bytes([b]) for b in range(256)]:
        return "ids 16..271 are not the 256 single-byte tokens"
    if len(set(raw)) != len(raw):
        return "two tokens stand for the same bytes"
    return None


def _merge_order_problem(model: Mapping[str, Any], vocab: Mapping[str, int]) -> str | None:
    """Merge r must make token MIN_VOCAB_SIZE + r, from two older tokens: then a token's id is its merge rank."""
    size = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model.get("merges", [])]
    if len(merges) != size - MIN_VOCAB_SIZE:
        # More merges than new tokens: one token made by two different merges,
        # which a rank per token (tiktoken) cannot express.
        return f"{len(merges)} merges for {size - MIN_VOCAB_SIZE} merged tokens"
    for rank, (left, right) in enumerate(merges):
        expected = MIN_VOCAB_SIZE + rank
        if vocab.get(left + right) != expected:
            return f"merge {rank} ({left!r} + {right!r}) does not make token id {expected}"
        if vocab.get(left, size) >= expected or vocab.get(right, size) >= expected:
            return f"merge {rank} ({left!r} + {right!r}) uses a token that is not older than its result"
    return None


def _self_encoding_problem(tok: Tokenizer, vocab: Mapping[str, int]) -> str | None:
    """tiktoken returns a regex piece that is a whole token as that token: BPE must agree on every one."""
    by_id = {i: token for token, i in vocab.items()}
    for i in range(MIN_VOCAB_SIZE, len(vocab)):
        got = [t.id for t in tok.model.tokenize(by_id[i])]
        if got != [i]:
            return f"token {i} ({by_id[i]!r}) is not what BPE makes of its own bytes ({got})"
    return None


def _check_special_ids(tok: Tokenizer, source: str) -> None:
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        actual = tok.token_to_id(token)
        if actual != expected_id:
            raise ValueError(f"{source}: special token {token!r} has id {actual}, expected {expected_id}")
