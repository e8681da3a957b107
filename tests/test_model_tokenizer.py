"""Byte-level BPE tokenizer: id layout, exact vocab size, lossless round trips, no special-token injection,
the tiktoken fast path giving the reference ids, loading in standard tools, and the vocabulary report."""

from __future__ import annotations

import json
import pickle
import random
import unicodedata
from pathlib import Path

import pytest
import tokenizers

from model.tokenizer import (
    BYTE_TO_CHAR,
    MIN_VOCAB_SIZE,
    SPECIAL_TOKENS,
    SPLIT_PATTERN,
    BpeTokenizer,
    describe_token,
    symbols_to_bytes,
    train_bpe,
    transformers_tokenizer,
    vocab_report,
)

VOCAB_SIZE = 400

WORDS = (
    "the quick brown fox jumps over lazy dog while seven wizards quietly boxed jugs of "
    "liquid tokenizer training data model language chat assistant user system Grüße aus "
    "München Straße schön Käse 你好 世界 数据 模型 hello world don't can't we'll they're"
).split()


def _corpus(n_lines: int = 600, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 14))]
        words.insert(rng.randint(0, len(words)), str(rng.randint(0, 99999)))
        lines.append(" ".join(words) + rng.choice([".", "!", "?", ",\n", "\r\n"]))
    return lines


@pytest.fixture(scope="module")
def tok() -> BpeTokenizer:
    return train_bpe(_corpus(), VOCAB_SIZE)


def test_special_tokens_have_fixed_ids_in_order(tok: BpeTokenizer) -> None:
    assert len(SPECIAL_TOKENS) == 16
    for i, special in enumerate(SPECIAL_TOKENS):
        assert tok.token_id(special) == i
        assert tok.id_to_token(i) == special
    assert tok.bos_id == 0


def test_special_ids_do_not_depend_on_vocab_size() -> None:
    small = train_bpe(_corpus(100, seed=1), MIN_VOCAB_SIZE)
    assert small.vocab_size == MIN_VOCAB_SIZE  # specials + bytes, no merges
    assert [small.id_to_token(i) for i in range(16)] == list(SPECIAL_TOKENS)


def test_trained_vocab_size_is_exact(tok: BpeTokenizer) -> None:
    assert tok.vocab_size == VOCAB_SIZE
    # Every byte is representable even though the corpus uses only a few of them.
    byte_tokens = {tok.id_to_token(i) for i in range(16, 16 + 256)}
    assert byte_tokens == set(tokenizers.pre_tokenizers.ByteLevel.alphabet())


def test_unknown_special_name_and_out_of_range_id_raise(tok: BpeTokenizer) -> None:
    with pytest.raises(ValueError):
        tok.token_id("<|nope|>")
    with pytest.raises(ValueError):
        tok.id_to_token(VOCAB_SIZE)


@pytest.mark.parametrize(
    "text",
    [
        "The quick brown fox jumps over the lazy dog. It's 2024; we'll see 1,234,567.89!",
        "Grüße aus München: die Straße ist schön, der Käse auch.",
        "你好，世界。大型语言模型正在学习中文分词。",
        "emoji 🎉🔥 and a family 👩‍👩‍👧 and flags 🇩🇪 and skin tones 👍🏽",
        "windows\r\nline\r\nendings\r\n\r\n and \ttabs  and   spaces ",
        "",
        " leading space and trailing newline\n",
        "<|bos|><|user_start|>hi<|user_end|>",
        "\x00\x01 control bytes \x7f and \u200b zero width",
    ],
)
def test_round_trip(tok: BpeTokenizer, text: str) -> None:
    assert tok.decode(tok.encode(text)) == text


def test_round_trip_long_text_without_spaces(tok: BpeTokenizer) -> None:
    rng = random.Random(3)
    text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzäöü0123456789") for _ in range(100_000))
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < len(text.encode("utf-8"))  # merges actually applied


def test_merges_compress_in_domain_text(tok: BpeTokenizer) -> None:
    text = "the quick brown fox jumps over the lazy dog"
    assert len(tok.encode(text)) < len(text) // 2


def test_special_looking_text_is_not_special(tok: BpeTokenizer) -> None:
    for special in SPECIAL_TOKENS:
        ids = tok.encode(special)
        assert len(ids) > 1
        assert all(i >= len(SPECIAL_TOKENS) for i in ids)
        assert tok.decode(ids) == special
    batch = tok.encode_batch(["<|bos|>hello", "<|assistant_end|>"])
    assert all(i >= len(SPECIAL_TOKENS) for ids in batch for i in ids)


def test_encode_batch_matches_encode(tok: BpeTokenizer) -> None:
    texts = _corpus(20, seed=7) + ["", "<|bos|>"]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]


def test_decode_renders_special_tokens(tok: BpeTokenizer) -> None:
    ids = [tok.bos_id, tok.token_id("<|user_start|>"), *tok.encode("hi there"), tok.token_id("<|user_end|>")]
    assert tok.decode(ids) == "<|bos|><|user_start|>hi there<|user_end|>"


def test_digits_are_split_in_groups_of_at_most_three(tok: BpeTokenizer) -> None:
    pieces = [tok.decode([i]) for i in tok.encode("1234567")]
    assert "".join(pieces) == "1234567"
    assert all(len(p) <= 3 for p in pieces)


def test_save_load_gives_identical_ids(tok: BpeTokenizer, tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    assert path.is_file() and list(tmp_path.iterdir()) == [path]
    loaded = BpeTokenizer.from_file(path)
    texts = _corpus(50, seed=9) + ["<|bos|> Grüße 你好 🎉", "12345678"]
    assert loaded.encode_batch(texts) == tok.encode_batch(texts)
    assert loaded.vocab_size == tok.vocab_size
    # Loading must also keep special-looking text plain, not only fresh training.
    assert all(i >= 16 for i in loaded.encode("<|bos|>"))

    # The file is a plain tokenizers file with the specials registered as special added tokens.
    raw = tokenizers.Tokenizer.from_file(str(path))
    assert raw.token_to_id("<|assistant_end|>") == 6
    added = {t["content"]: t for t in json.loads(path.read_text())["added_tokens"]}
    assert all(added[s]["special"] for s in SPECIAL_TOKENS)


def test_pickled_copy_keeps_special_looking_text_plain(tok: BpeTokenizer) -> None:
    # Worker processes receive pickled objects; the `tokenizers` flag that keeps
    # "<|bos|>" plain is not part of its pickled state and must be restored.
    copy = pickle.loads(pickle.dumps(tok))
    text = "<|bos|>hello<|assistant_end|>"
    assert copy.encode(text) == copy.encode_reference(text) == tok.encode(text)
    assert all(i >= 16 for i in copy.encode_reference(text))
    assert copy.encoder_backend == "tiktoken"


def test_from_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        BpeTokenizer.from_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        BpeTokenizer.from_file(bad)


def test_vocab_size_too_small_raises() -> None:
    with pytest.raises(ValueError, match="272"):
        train_bpe(["hello"], 271)


# --- The fast (tiktoken) encoder must give exactly the reference (tokenizers) ids -------------

# Files in shared/data/text that are not UTF-8 (see shared/data/SOURCES.md). The BOM of
# zh/hongloumeng.txt is deliberately kept: it is the character U+FEFF, part of the text.
SHARED_TEXT_ENCODINGS = {"fr/germinal-zola-latin1-crlf.txt": "latin-1"}
SAMPLE_BYTES = 200_000


def _shared_texts(shared_data: Path) -> dict[str, str]:
    root = shared_data / "text"
    texts = {}
    for path in sorted(root.rglob("*.txt")):
        name = path.relative_to(root).as_posix()
        texts[name] = path.read_bytes().decode(SHARED_TEXT_ENCODINGS.get(name, "utf-8"))
    assert len(texts) >= 9, texts.keys()
    return texts


def _prefix(text: str, n_bytes: int) -> str:
    """The longest prefix of `text` that is at most `n_bytes` of UTF-8 (never half a character)."""
    return text.encode("utf-8")[:n_bytes].decode("utf-8", errors="ignore")


@pytest.fixture(scope="module")
def shared_texts(shared_data: Path) -> dict[str, str]:
    return _shared_texts(shared_data)


@pytest.fixture(scope="module")
def shared_tok(shared_texts: dict[str, str]) -> BpeTokenizer:
    # Trained on a slice *after* the first 200 KB of every file, so the comparisons below
    # run on text the merges were not learned from, and with enough merges (8k) that
    # long words, numbers, CJK and Cyrillic all get multi-byte tokens.
    corpus = [t.encode("utf-8")[SAMPLE_BYTES : SAMPLE_BYTES + 250_000].decode("utf-8", "ignore") for t in shared_texts.values()]
    return train_bpe(corpus, 8192)


def _merges(tok: BpeTokenizer) -> list[tuple[str, str]]:
    merges = json.loads(tok.tokenizer.to_str())["model"]["merges"]
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges]


def test_fast_path_is_used_for_trained_and_loaded_tokenizers(tok: BpeTokenizer, shared_tok: BpeTokenizer, tmp_path: Path) -> None:
    for t in (tok, shared_tok):
        assert t.encoder_backend == "tiktoken", t.fast_path_problem
        assert t.fast_path_problem is None
    shared_tok.save(tmp_path / "t.json")
    assert BpeTokenizer.from_file(tmp_path / "t.json").encoder_backend == "tiktoken"


def test_ids_increase_in_merge_order_and_parts_come_first(shared_tok: BpeTokenizer) -> None:
    # tiktoken's rank of a token is its id, and BPE merges the lowest-ranked pair first.
    # That equals `tokenizers`' merge order only if merge k creates id 272 + k and both
    # parts of every merge are older tokens: check on a real trained vocabulary.
    vocab = shared_tok.tokenizer.get_vocab()
    merges = _merges(shared_tok)
    assert len(merges) == shared_tok.vocab_size - MIN_VOCAB_SIZE
    for k, (left, right) in enumerate(merges):
        made = vocab[left + right]
        assert made == MIN_VOCAB_SIZE + k
        assert vocab[left] < made and vocab[right] < made


def test_byte_tokens_cover_every_byte_but_not_in_byte_order(shared_tok: BpeTokenizer) -> None:
    raw = [shared_tok.token_bytes(i) for i in range(16, MIN_VOCAB_SIZE)]
    assert sorted(raw) == [bytes([b]) for b in range(256)]
    # The trainer orders the byte tokens by their printable symbol, so '!' (byte 33) comes
    # first and the space (byte 32, symbol 'Ġ') much later. Harmless for tiktoken ranks:
    # BPE starts from all single bytes, which never compete, and every merged token has a
    # higher id than its parts (test above).
    assert raw[0] == b"!" and raw != sorted(raw)


def test_byte_level_symbols_agree_with_tokenizers(shared_tok: BpeTokenizer) -> None:
    assert set(BYTE_TO_CHAR.values()) == set(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    # Our bytes of every token must be what `tokenizers`' own decoder makes of it.
    for i in range(16, shared_tok.vocab_size):
        raw = shared_tok.token_bytes(i)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue  # part of a character: the decoder would give U+FFFD, nothing to compare
        assert shared_tok.decode([i]) == text, i
    for i, special in enumerate(SPECIAL_TOKENS):
        assert shared_tok.token_bytes(i) == special.encode()
    with pytest.raises(ValueError):
        shared_tok.token_bytes(shared_tok.vocab_size)


@pytest.mark.slow
def test_fast_path_matches_reference_on_every_shared_text(shared_tok: BpeTokenizer, shared_texts: dict[str, str]) -> None:
    names = list(shared_texts)
    samples = [_prefix(shared_texts[n], SAMPLE_BYTES) for n in names]
    fast = shared_tok.encode_batch(samples)
    reference = shared_tok.encode_batch_reference(samples)
    for name, sample, ids, ref in zip(names, samples, fast, reference):
        assert ids == ref, name
        assert shared_tok.decode(ids) == sample, name
        # The regex engines (fancy-regex in tiktoken, onig in tokenizers) cut the same
        # pieces: every piece boundary of `tokenizers`' pre-tokenizer is a token boundary.
        ends, offset = set(), 0
        for i in ids:
            offset += len(shared_tok.token_bytes(i))
            ends.add(offset)
        offset = 0
        for piece, _ in shared_tok.tokenizer.pre_tokenizer.pre_tokenize_str(sample):
            offset += len(symbols_to_bytes(piece))
            assert offset in ends, (name, piece)
        assert offset == len(sample.encode("utf-8"))


EDGE_CASES = {
    "empty": "",
    "specials": "".join(SPECIAL_TOKENS),
    "special_in_words": "a<|bos|>b <|user_start|> <|bos| <|bos|><|bos|>\n<|assistant_end|>.",
    "no_space_100k": "".join(random.Random(5).choice("abcdefghijklmnopqrstuvwxyzäöüß") for _ in range(100_000)),
    "no_space_one_letter": "a" * 100_000,
    "digits_100k": "".join(random.Random(6).choice("0123456789") for _ in range(100_000)),
    "emoji": "emoji 🎉🔥 family 👩‍👩‍👧 flags 🇩🇪🇫🇷 skin 👍🏽 keycap 1️⃣ 🏳️‍🌈",
    "crlf": "line one\r\nline two\r\n\r\n  indented\r\n\tand tab\r\n",
    "lone_cr": "a\rb\r\rc \r d\r",
    "cr_runs": "\r\r\n\n\r\n \r \n  \r\n\r",
    "nul_and_controls": "\x00\x00a\x00 b\x01\x02\x1b[31mred\x7f\x85\x9b",
    "unicode_spaces": "a\u00a0b\u2003c\u3000d\u2028e\u2029f\u0085g\u200bh\u202fi\u205fj\u1680k\ufeffl \u00a0 \n\u00a0",
    "contractions": "I'm we'LL they'Ve it'S she'd 'D 'ſ 'K x'rE don’t ''s '''",
    "combining_marks": "e\u0301 a\u0308\u0304 \u0301start Z\u0351\u0325\u0330a\u0317l\u0358g\u0336o",
    "other_digits": "٣٤٥٦ ١٢ ²³ ½ Ⅻ ⑦ 𝟘𝟙𝟚 ٠١٢٣٤٥٦٧٨٩ 1,234,567.89 3.14159265358979",
    "scripts": "Привет мир! Γειά σου. שלום עולם. مرحبا بالعالم. नमस्ते दुनिया. こんにちは世界。안녕하세요 세계",
    "bidi_and_bom": "\ufeffabc \u202eevil\u202c \u2066iso\u2069",
    "whitespace_only": " \t \n\n   \t\t\n ",
    "trailing_spaces": "word    ",
    "punctuation_runs": "!!!??? ... ---->>> (((x))) \"quoted\" «guillemets» ¿qué? ¡sí!",
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_fast_path_matches_reference_on_edge_cases(shared_tok: BpeTokenizer, name: str) -> None:
    text = EDGE_CASES[name]
    ids = shared_tok.encode(text)
    assert ids == shared_tok.encode_reference(text)
    assert shared_tok.decode(ids) == text
    # Nothing in plain text ever becomes a special token.
    assert all(i >= len(SPECIAL_TOKENS) for i in ids)


@pytest.mark.slow
def test_fast_path_matches_reference_on_every_character(shared_tok: BpeTokenizer) -> None:
    # Every assigned code point (by this Python's Unicode tables) and every 64th unassigned
    # or private-use one, each inside a word, after a digit, after a space and after an
    # apostrophe, so the character classes \p{L}, \p{N}, \s and (?i:...) of both regex
    # engines are compared. (A sweep of all 1.1M code points agreed too; too slow for a test.)
    points = [
        c
        for c in range(0x110000)
        if not 0xD800 <= c < 0xE000 and (unicodedata.category(chr(c)) not in ("Cn", "Co") or c % 64 == 0)
    ]
    texts = []
    for start in range(0, len(points), 4096):
        texts.append("".join(f"a{chr(c)}b1{chr(c)} {chr(c)}'{chr(c)}\n" for c in points[start : start + 4096]))
    assert shared_tok.encode_batch(texts) == shared_tok.encode_batch_reference(texts)


def test_encode_batch_with_threads_matches_encode(shared_tok: BpeTokenizer, shared_texts: dict[str, str]) -> None:
    texts = [_prefix(t, 20_000) for t in shared_texts.values()] * 3 + ["", "<|bos|>", "x"]
    one_by_one = [shared_tok.encode(t) for t in texts]
    for threads in (None, 1, 2, 4):
        assert shared_tok.encode_batch(texts, num_threads=threads) == one_by_one
    assert shared_tok.encode_batch(iter(texts), num_threads=3) == one_by_one  # any iterable
    assert shared_tok.encode_batch([]) == []


def test_lone_surrogates_are_rejected_by_both_paths(tok: BpeTokenizer) -> None:
    # tiktoken alone would silently turn them into U+FFFD, breaking decode(encode(x)) == x.
    for encode in (tok.encode, tok.encode_reference, lambda t: tok.encode_batch(["ok", t])):
        with pytest.raises(ValueError, match="offset 1"):
            encode("a\ud800b")


def _edited(tok: BpeTokenizer, edit) -> BpeTokenizer:
    config = json.loads(tok.tokenizer.to_str())
    edit(config)
    return BpeTokenizer(tokenizers.Tokenizer.from_str(json.dumps(config)))


def test_falls_back_to_reference_when_fast_path_conditions_fail(tok: BpeTokenizer) -> None:
    def other_pattern(config: dict) -> None:
        config["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = SPLIT_PATTERN.replace("{1,3}", "{1,2}")

    def duplicate_merge(config: dict) -> None:
        # A second merge making an existing token from other parts (the HF trainer can
        # produce these): one rank per token, as tiktoken has, cannot express it.
        vocab, merges = config["model"]["vocab"], config["model"]["merges"]
        made = {"".join(m) if isinstance(m, list) else m.replace(" ", "") for m in merges}
        for token in made:
            for cut in range(1, len(token)):
                left, right = token[:cut], token[cut:]
                if left in vocab and right in vocab and [left, right] not in merges and f"{left} {right}" not in merges:
                    merges.append([left, right] if isinstance(merges[0], list) else f"{left} {right}")
                    return
        raise AssertionError("no token with a second split")

    def swapped_ids(config: dict) -> None:
        vocab = config["model"]["vocab"]
        a, b = (k for k, v in vocab.items() if v in (300, 301))
        vocab[a], vocab[b] = vocab[b], vocab[a]

    text = "the quick brown fox 1234567 <|bos|> don't Grüße 你好"
    for edit, reason in ((other_pattern, "pre-tokenizer"), (duplicate_merge, "merges"), (swapped_ids, "merge")):
        edited = _edited(tok, edit)
        assert edited.encoder_backend == "tokenizers"
        assert reason in (edited.fast_path_problem or "")
        assert edited.encode(text) == edited.encode_reference(text)
        assert edited.encode_batch([text, ""]) == [edited.encode_reference(text), []]
        assert edited.decode(edited.encode(text)) == text


# --- tokenizer.json in standard tools --------------------------------------------------------


def test_tokenizer_json_loads_in_tokenizers(shared_tok: BpeTokenizer, tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    shared_tok.save(path)
    raw = tokenizers.Tokenizer.from_file(str(path))
    text = "Plain text, 12345 numbers, Grüße, 你好世界 and emoji 🎉.\r\n"
    ours = shared_tok.encode(text)
    assert raw.encode(text, add_special_tokens=False).ids == ours
    # By default standard tools add a BOS (our post-processor), like every document in our shards.
    assert raw.encode(text).ids == [shared_tok.bos_id, *ours]
    assert raw.decode(ours) == text
    # Difference: `encode_special_tokens` is not stored in tokenizer.json, so a plain
    # `tokenizers` load turns "<|bos|>" in text into the control token unless told not to.
    assert raw.encode("<|bos|>", add_special_tokens=False).ids == [0]
    raw.encode_special_tokens = True
    assert raw.encode("<|bos|>", add_special_tokens=False).ids == shared_tok.encode("<|bos|>")


def test_tokenizer_json_loads_in_transformers(shared_tok: BpeTokenizer, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from transformers import PreTrainedTokenizerFast

    path = tmp_path / "tokenizer.json"
    shared_tok.save(path)
    text = "Plain text , with spaces . don't 12345 Grüße 你好 🎉\n\n  end "
    ours = shared_tok.encode(text)

    hf = transformers_tokenizer(path)
    assert hf.bos_token_id == shared_tok.bos_id
    assert hf.eos_token_id == shared_tok.token_id("<|assistant_end|>")
    assert len(hf) == shared_tok.vocab_size
    assert hf.encode(text, add_special_tokens=False) == ours
    assert hf.encode(text) == [shared_tok.bos_id, *ours]
    assert hf.decode(ours) == text  # no clean-up of spaces before punctuation
    assert hf.encode("<|bos|>x", add_special_tokens=False) == shared_tok.encode("<|bos|>x")
    assert hf.decode([0, 3, *shared_tok.encode("hi")], skip_special_tokens=True) == "hi"

    # transformers' own default recognises special tokens in text: the difference to know.
    plain = PreTrainedTokenizerFast(tokenizer_file=str(path))
    assert plain.encode(text, add_special_tokens=False) == ours
    assert plain.encode("<|bos|>x", add_special_tokens=False)[0] == 0


# --- vocabulary report -----------------------------------------------------------------------


def test_vocab_report_without_counts(shared_tok: BpeTokenizer) -> None:
    report = vocab_report(shared_tok)
    json.dumps(report)  # JSON-ready
    assert report["vocab_size"] == shared_tok.vocab_size == 8192
    assert report["special_tokens"] + report["byte_tokens"] + report["merged_tokens"] == 8192
    assert sum(report["merged_token_bytes_histogram"].values()) == report["merged_tokens"]
    longest = report["longest_tokens"]
    assert len(longest) == 10
    lengths = [entry["bytes"] for entry in longest]
    assert lengths == sorted(lengths, reverse=True)
    all_lengths = sorted((len(shared_tok.token_bytes(i)) for i in range(MIN_VOCAB_SIZE, 8192)), reverse=True)
    assert lengths == all_lengths[:10]
    for entry in longest:
        assert entry["text"] == describe_token(shared_tok.token_bytes(entry["id"]))
    assert "counted_tokens" not in report


def test_vocab_report_with_counts(tok: BpeTokenizer) -> None:
    text = "the quick brown fox jumps over the lazy dog 你好"
    ids = tok.encode(text)
    counts: dict[int, int] = {}
    for i in [tok.bos_id, *ids]:
        counts[i] = counts.get(i, 0) + 1
    report = vocab_report(tok, counts)
    json.dumps(report)
    assert report["counted_tokens"] == len(ids)
    assert report["counted_special_tokens"] == 1
    assert report["ids_used"] == len(set(ids))
    assert report["vocab_usage"] == round(len(set(ids)) / (VOCAB_SIZE - 16), 4)
    assert report["merged_tokens_used"] + report["merged_tokens_unused"] == report["merged_tokens"]
    assert report["bytes_per_token"] == round(len(text.encode()) / len(ids), 4)
    assert report["top_tokens"][0]["count"] == max(c for i, c in counts.items() if i >= 16)
    # 你好 is not in this tiny vocabulary's merges: it comes out as single bytes.
    assert report["byte_token_share"] > 0
    assert vocab_report(tok, {})["counted_tokens"] == 0
    with pytest.raises(ValueError):
        vocab_report(tok, {VOCAB_SIZE: 1})
