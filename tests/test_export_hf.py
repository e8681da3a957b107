"""The HF export computes the same logits as our GPT and tokenizes chats like `model.chat_format`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.export_hf import export_hf
from model.gpt import GPT, GPTConfig
from model.tokenizer import BpeTokenizer, train_bpe

transformers = pytest.importorskip("transformers")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello there! How are you doing today?",
    "Tokenizers split text into pieces; 12345 numbers too.",
    "A chat model answers questions in turns, one after another.",
    "Héllo wörld — unicode text, emoji 🙂 and tabs\tand\nnewlines.",
] * 4


@pytest.fixture(scope="module")
def tokenizer_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train_bpe(SENTENCES, vocab_size=300).save(path)
    return path


def _model(vocab_size: int, seed: int, perturb_norms: bool) -> GPT:
    torch.manual_seed(seed)
    # head_dim 16 (> 2) so a wrong rotary pairing would show; seq_len small for speed.
    model = GPT(GPTConfig(vocab_size=vocab_size, n_layer=2, n_head=4, n_embd=64, seq_len=48, rope_theta=500.0))
    with torch.no_grad():
        # Larger weights than the 0.02 init make attention patterns (and so any
        # rotary/position mismatch) visible in the logits.
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(10.0)
        if perturb_norms:
            for m in model.modules():
                if isinstance(m, torch.nn.RMSNorm):
                    m.weight.copy_(1.0 + 0.5 * torch.randn_like(m.weight))
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("perturb_norms", [False, True])
def test_logits_match(tmp_path: Path, tokenizer_path: Path, perturb_norms: bool) -> None:
    vocab = BpeTokenizer.from_file(tokenizer_path).vocab_size
    model = _model(vocab + 4, seed=1 + perturb_norms, perturb_norms=perturb_norms)  # +4: padded vocab is fine
    export_hf(model, tokenizer_path, tmp_path / "hf")

    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", torch_dtype=torch.float32).eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    cfg = hf.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (64, 2, 4, 4)
    assert cfg.intermediate_size == model.config.mlp_hidden
    assert cfg.vocab_size == vocab + 4 and cfg.max_position_embeddings == 48
    assert cfg.rms_norm_eps == 1e-6 and not cfg.tie_word_embeddings

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab + 4, (3, 48), generator=g)
    with torch.no_grad():
        ours, _ = model(ids)
        theirs = hf(input_ids=ids).logits
        short = hf(input_ids=ids[:, :7]).logits  # a prefix gives the prefix's logits (causal, positions from 0)
    assert (ours - theirs).abs().max().item() < 1e-4
    assert (ours[:, :7] - short).abs().max().item() < 1e-4


def test_exported_files(tmp_path: Path, tokenizer_path: Path) -> None:
    tok = BpeTokenizer.from_file(tokenizer_path)
    export_hf(_model(tok.vocab_size, 0, False), tokenizer_path, tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "generation_config.json"} <= names  # fmt: skip
    assert not any(n.startswith(".") for n in names)  # no temp files left behind
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["bos_token_id"] == tok.bos_id
    gen = json.loads((tmp_path / "generation_config.json").read_text())
    assert tok.token_id("<|assistant_end|>") in gen["eos_token_id"]


def test_rejects_tokenizer_larger_than_model(tmp_path: Path, tokenizer_path: Path) -> None:
    tok = BpeTokenizer.from_file(tokenizer_path)
    with pytest.raises(ValueError, match="embeddings"):
        export_hf(_model(tok.vocab_size - 1, 0, False), tokenizer_path, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_tokenizer_and_chat_template(tmp_path: Path, tokenizer_path: Path) -> None:
    from model.chat_format import render_conversation, render_prompt

    ours = BpeTokenizer.from_file(tokenizer_path)
    export_hf(_model(ours.vocab_size, 0, False), tokenizer_path, tmp_path)
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)

    assert (hf_tok.bos_token, hf_tok.eos_token) == ("<|bos|>", "<|assistant_end|>")
    assert hf_tok.pad_token_id == ours.token_id("<|reserved_0|>")

    for text in SENTENCES[:5] + ["  leading spaces and trailing  ", "x=1+22*333/4444"]:
        assert hf_tok.encode(text, add_special_tokens=False) == ours.encode(text)

    def chat_ids(messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
        out = hf_tok.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True)
        # Depending on the transformers version this is a list or a BatchEncoding.
        return list(out["input_ids"] if hasattr(out, "keys") else out)

    assert chat_ids([{"role": "user", "content": "Hi"}]) == render_prompt(ours, [{"role": "user", "content": "Hi"}])
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there!"},
                {"role": "assistant", "content": " Hi. "}, {"role": "user", "content": "12345?"}]
    assert chat_ids(messages) == render_prompt(ours, messages)
    # Without the generation prompt: exactly the training ids.
    assert chat_ids(messages[:3], add_generation_prompt=False) == render_conversation(ours, messages[:3]).ids

    # Assistant turns with tool parts, in both spellings (OpenAI arguments as a dict).
    calc = {"type": "function", "function": {"name": "calculator", "arguments": {"expression": "12*7"}}}
    internal = [
        {"role": "user", "content": "What is 12 times 7?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me see. "}, {"type": "tool_call", "text": "12*7"},
            {"type": "tool_output", "text": "84"}, {"type": "text", "text": "\nAnswer: 84"}]},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": [{"type": "text", "text": "Bye"}]},
    ]  # fmt: skip
    openai = [
        internal[0],
        {"role": "assistant", "content": "Let me see. ", "tool_calls": [calc]},
        {"role": "tool", "content": "84"},
        {"role": "assistant", "content": "\nAnswer: 84"},
        internal[2],
        {"role": "assistant", "content": "Bye"},  # string content: the same tokens as one text part
    ]
    for conv in (internal, openai):
        assert chat_ids(conv[:-1]) == render_prompt(ours, conv[:-1])
        assert chat_ids(conv, add_generation_prompt=False) == render_conversation(ours, conv).ids
        # The generation blocks give our loss mask (tool outputs excluded).
        conv_ids, conv_mask = render_conversation(ours, conv)
        out = hf_tok.apply_chat_template(conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        assert list(out["input_ids"]) == conv_ids and list(out["assistant_masks"]) == conv_mask
    # A conversation waiting for the model after a tool output stays open.
    assert chat_ids(openai[:3]) == render_prompt(ours, openai[:3])
    assert chat_ids(openai[:3])[-1] == ours.token_id("<|tool_output_end|>")

    # Without the generation prompt, the text ends after the last turn.
    text = hf_tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    assert text == "<|bos|><|user_start|>Hi<|user_end|>"
    # Jinja cannot parse JSON: string arguments are refused loudly rather than rendered wrong.
    as_string = [openai[0], {"role": "assistant", "tool_calls": [{"type": "function", "function": {
        "name": "calculator", "arguments": '{"expression": "12*7"}'}}]}, openai[2]]  # fmt: skip
    with pytest.raises(Exception, match="not a JSON string"):
        hf_tok.apply_chat_template(as_string, tokenize=False)
    with pytest.raises(Exception, match="unsupported chat role"):
        hf_tok.apply_chat_template([{"role": "robot", "content": "Hi"}], tokenize=False)
