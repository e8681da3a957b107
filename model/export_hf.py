"""Export a GPT and its tokenizer as a Hugging Face `LlamaForCausalLM` directory.

The result loads with `transformers.AutoModelForCausalLM.from_pretrained(out_dir)` and
`AutoTokenizer.from_pretrained(out_dir)`, so the model can be used with the wider
ecosystem (transformers, vLLM, llama.cpp's converter, ...) without this project.

Why a plain rename of weights is enough (no numeric changes):

* rotary: `apply_rotary` rotates the pairs (x[i], x[i + d/2]) -- the "two halves"
  layout that HF Llama's `rotate_half` uses, with the same inverse frequencies
  theta^(-2i/d) -- so q/k rows need *no* permutation. (Meta's original checkpoints
  rotate interleaved pairs (x[2i], x[2i+1]) and need one; we don't.)
* attention: no QK-norm, no biases, scale 1/sqrt(head_dim) (SDPA default) -- HF's too;
  one KV head per query head (num_key_value_heads = n_head).
* RMSNorm: `nn.RMSNorm(eps=1e-6)` with a learnable weight, applied pre-attention,
  pre-MLP and before the head; HF's LlamaRMSNorm computes x * rsqrt(mean(x^2) + eps) * w,
  the same function, so the weights copy over and rms_norm_eps is 1e-6.
* SwiGLU: down(silu(gate(x)) * up(x)) is HF's LlamaMLP with hidden_act "silu".

This module only writes files (json + safetensors); it does not import transformers,
which stays an optional dependency for the export's consumers.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from model.checkpoint import give_default_permissions
from model.gpt import GPT
from model.tokenizer import SPECIAL_TOKENS, BpeTokenizer

BOS_TOKEN = "<|bos|>"
# A chat reply ends with <|assistant_end|>; that is what generation should stop on.
EOS_TOKEN = "<|assistant_end|>"
# No dedicated pad token exists. A reserved (never-trained, never-emitted) token is
# used rather than EOS/BOS so that collators which mask labels equal to pad_token_id
# do not also mask the real end-of-reply or document-separator tokens.
PAD_TOKEN = "<|reserved_0|>"

# Roles the chat format knows (`model/chat_format.py` builds "<|{role}_start|>" from them).
CHAT_ROLES: tuple[str, ...] = ("system", "user", "assistant")

# Jinja template mirroring `model.chat_format.render_prompt` (with add_generation_prompt)
# and `render_conversation`'s ids (without it): BOS, each turn wrapped in its role's
# start/end tokens, content inserted verbatim (no stripping, no added whitespace).
# Assistant turns may hold tool parts, in either spelling `chat_format` accepts:
# * content as a list of {"type": "text"|"tool_call"|"tool_output", "text": ...} parts;
# * OpenAI style: `tool_calls` (function "calculator", arguments as a dict with
#   "expression": Jinja cannot parse a JSON string, so string arguments are refused),
#   answered by the `tool` messages that follow, in order; an assistant message right
#   after them continues the same turn (no new <|assistant_start|>).
# With add_generation_prompt, a conversation that ends waiting for the model after a
# tool output is left open instead of starting a new turn, as render_prompt does.
# What the model writes (text, tool calls, <|assistant_end|>; not tool outputs) sits in
# {% generation %} blocks, so `apply_chat_template(..., return_assistant_tokens_mask=True)`
# gives render_conversation's loss mask.
CHAT_TEMPLATE = (
    "{%- set ns = namespace(open=false, last='none') -%}"
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- set i = loop.index0 -%}"
    "{%- set role = message['role'] -%}"
    "{%- set content = message['content'] if 'content' in message else none -%}"
    "{%- if role == 'tool' -%}"
    # Nothing here: rendered with the tool_calls of the assistant message before it.
    "{%- elif role not in ['system', 'user', 'assistant'] -%}"
    "{{- raise_exception('unsupported chat role: ' + role) -}}"
    "{%- elif role != 'assistant' -%}"
    "{{- '<|' + role + '_start|>' -}}"
    "{%- if content is string -%}{{- content -}}"
    "{%- elif content is not none -%}{%- for part in content -%}{{- part['text'] -}}{%- endfor -%}{%- endif -%}"
    "{{- '<|' + role + '_end|>' -}}"
    "{%- else -%}"
    # A new turn, unless this message continues the turn whose tool outputs precede it.
    "{%- if i == 0 or messages[i - 1]['role'] != 'tool' -%}"
    "{{- '<|assistant_start|>' -}}{%- set ns.last = 'none' -%}"
    "{%- endif -%}"
    "{%- if content is string -%}"
    "{%- generation -%}{{- content -}}{%- endgeneration -%}{%- if content -%}{%- set ns.last = 'text' -%}{%- endif -%}"
    "{%- elif content is not none -%}"
    "{%- for part in content -%}"
    "{%- if part['type'] == 'tool_call' -%}"
    "{%- generation -%}{{- '<|tool_call_start|>' + part['text'] + '<|tool_call_end|>' -}}{%- endgeneration -%}"
    "{%- elif part['type'] == 'tool_output' -%}{{- '<|tool_output_start|>' + part['text'] + '<|tool_output_end|>' -}}"
    "{%- else -%}{%- generation -%}{{- part['text'] -}}{%- endgeneration -%}{%- endif -%}"
    "{%- if part['type'] != 'text' or part['text'] -%}{%- set ns.last = part['type'] -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- set calls = message['tool_calls'] if 'tool_calls' in message and message['tool_calls'] else [] -%}"
    "{%- for call in calls -%}"
    "{%- set args = call['function']['arguments'] -%}"
    "{%- if args is string -%}"
    "{{- raise_exception('tool_calls arguments must be a dict with an expression, not a JSON string') -}}"
    "{%- endif -%}"
    "{%- set reply = messages[i + 1 + loop.index0]['content'] -%}"
    "{%- generation -%}{{- '<|tool_call_start|>' + args['expression'] + '<|tool_call_end|>' -}}{%- endgeneration -%}"
    "{{- '<|tool_output_start|>' -}}"
    "{%- if reply is string -%}{{- reply -}}"
    "{%- elif reply is not none -%}{%- for part in reply -%}{{- part['text'] -}}{%- endfor -%}{%- endif -%}"
    "{{- '<|tool_output_end|>' -}}"
    "{%- set ns.last = 'tool_output' -%}"
    "{%- endfor -%}"
    "{%- set nxt = i + 1 + calls | length -%}"
    "{%- if calls and nxt < messages | length and messages[nxt]['role'] == 'assistant' -%}"
    # The turn goes on in the next message.
    "{%- elif nxt >= messages | length and add_generation_prompt and ns.last == 'tool_output' -%}"
    "{%- set ns.open = true -%}"
    "{%- else -%}"
    "{%- generation -%}{{- '<|assistant_end|>' -}}{%- endgeneration -%}"
    "{%- endif -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt and not ns.open -%}{{- '<|assistant_start|>' -}}{%- endif -%}"
)

WEIGHTS_FILE = "model.safetensors"


def hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Our weights under HF Llama parameter names, float32 on CPU, each with its own storage."""
    c = model.config
    C = c.n_embd

    def t(x: torch.Tensor) -> torch.Tensor:
        # clone(): the q/k/v slices share qkv's storage, and safetensors refuses
        # to save tensors that share memory.
        return x.detach().to(device="cpu", dtype=torch.float32).clone().contiguous()

    out: dict[str, torch.Tensor] = {"model.embed_tokens.weight": t(model.embed.weight)}
    for i, block in enumerate(model.blocks):
        p = f"model.layers.{i}."
        qkv = block.attn.qkv.weight  # [3C, C]: rows q | k | v, each head-major like HF
        out[p + "self_attn.q_proj.weight"] = t(qkv[:C])
        out[p + "self_attn.k_proj.weight"] = t(qkv[C : 2 * C])
        out[p + "self_attn.v_proj.weight"] = t(qkv[2 * C :])
        out[p + "self_attn.o_proj.weight"] = t(block.attn.proj.weight)
        out[p + "mlp.gate_proj.weight"] = t(block.mlp.gate.weight)
        out[p + "mlp.up_proj.weight"] = t(block.mlp.up.weight)
        out[p + "mlp.down_proj.weight"] = t(block.mlp.down.weight)
        out[p + "input_layernorm.weight"] = t(_norm_weight(block.attn_norm, C))
        out[p + "post_attention_layernorm.weight"] = t(_norm_weight(block.mlp_norm, C))
    out["model.norm.weight"] = t(_norm_weight(model.norm, C))
    out["lm_head.weight"] = t(model.lm_head.weight)
    return out


def _norm_weight(norm: nn.RMSNorm, dim: int) -> torch.Tensor:
    # nn.RMSNorm(elementwise_affine=False) has weight None; HF always multiplies by a
    # weight, so ones make it the identical function.
    if norm.weight is None:
        return torch.ones(dim)
    return norm.weight


def _norm_eps(model: GPT) -> float:
    """The single eps HF needs; all our norms must agree on it."""
    eps_values = {m.eps for m in model.modules() if isinstance(m, nn.RMSNorm)}
    if len(eps_values) != 1 or None in eps_values:
        # eps=None means torch.finfo(dtype).eps, which HF cannot express exactly.
        raise ValueError(f"RMSNorm layers need one explicit eps for export, found {sorted(map(str, eps_values))}")
    return float(eps_values.pop())  # type: ignore[arg-type]


def hf_config(model: GPT, tokenizer: BpeTokenizer) -> dict[str, Any]:
    c = model.config
    bos, eos, pad = (tokenizer.token_id(s) for s in (BOS_TOKEN, EOS_TOKEN, PAD_TOKEN))
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c.vocab_size,
        "hidden_size": c.n_embd,
        "intermediate_size": c.mlp_hidden,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "num_key_value_heads": c.n_head,  # plain multi-head attention, no GQA
        "head_dim": c.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": c.seq_len,
        "rms_norm_eps": _norm_eps(model),
        # transformers 4.x reads rope_theta/rope_scaling; 5.x reads rope_parameters.
        "rope_theta": c.rope_theta,
        "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "pretraining_tp": 1,
        "initializer_range": 0.02,
        "use_cache": True,
        # 4.x reads torch_dtype, 5.x dtype.
        "torch_dtype": "float32",
        "dtype": "float32",
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
    }


def generation_config(tokenizer: BpeTokenizer) -> dict[str, Any]:
    # Stop on the end of the reply, and on BOS (a new document), as `ChatSession.reply` does.
    return {
        "bos_token_id": tokenizer.token_id(BOS_TOKEN),
        "eos_token_id": [tokenizer.token_id(EOS_TOKEN), tokenizer.token_id(BOS_TOKEN)],
        "pad_token_id": tokenizer.token_id(PAD_TOKEN),
    }


def tokenizer_config(tokenizer: BpeTokenizer, seq_len: int, chat_template: str) -> dict[str, Any]:
    added = {
        str(tokenizer.token_id(s)): {
            "content": s,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "single_word": False,
            "special": True,
        }
        for s in SPECIAL_TOKENS
    }
    return {
        # Explicit class: otherwise AutoTokenizer picks LlamaTokenizer from config.json's
        # model_type, which may rebuild its own (SentencePiece-style) pipeline around our vocab.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "pad_token": PAD_TOKEN,
        "additional_special_tokens": [s for s in SPECIAL_TOKENS if s not in (BOS_TOKEN, EOS_TOKEN, PAD_TOKEN)],
        "added_tokens_decoder": added,
        "model_max_length": seq_len,
        "clean_up_tokenization_spaces": False,
        # Special-token strings in text are recognised as control tokens (transformers'
        # default), which the chat template needs. Note: unlike BpeTokenizer.encode,
        # user text containing e.g. "<|user_end|>" then becomes a control token.
        "split_special_tokens": False,
        "chat_template": chat_template,
    }


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    # Each file appears whole or not at all: a crashed export never leaves a
    # truncated model.safetensors that a loader would half-read.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        give_default_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    text = json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    _write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def export_hf(model: GPT, tokenizer_path: Path, out_dir: Path, chat_template: str | None = None) -> None:
    """Write `out_dir` as a HF Llama model directory: config, weights, tokenizer, generation config.

    `chat_template` overrides the default Jinja template (`CHAT_TEMPLATE`, which renders
    `model.chat_format`'s format). Files already in `out_dir` with the same names
    are replaced; other files are left alone.
    """
    tokenizer_path, out_dir = Path(tokenizer_path), Path(out_dir)
    tokenizer = BpeTokenizer.from_file(tokenizer_path)  # also checks the special-token layout
    if tokenizer.vocab_size > model.config.vocab_size:
        # Ids past the embedding table would index out of range in the exported model.
        raise ValueError(
            f"tokenizer has {tokenizer.vocab_size} tokens but the model only {model.config.vocab_size} embeddings"
        )
    # Everything that can fail on content is computed before anything is written.
    config = hf_config(model, tokenizer)
    tensors = hf_state_dict(model)
    tok_config = tokenizer_config(tokenizer, model.config.seq_len, chat_template or CHAT_TEMPLATE)

    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(out_dir / WEIGHTS_FILE, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    _write_json(out_dir / "config.json", config)
    _write_json(out_dir / "generation_config.json", generation_config(tokenizer))
    _write_atomic(out_dir / "tokenizer.json", lambda p: shutil.copyfile(tokenizer_path, p))
    _write_json(out_dir / "tokenizer_config.json", tok_config)
    _write_json(
        out_dir / "special_tokens_map.json",
        {k: tok_config[k] for k in ("bos_token", "eos_token", "pad_token", "additional_special_tokens")},
    )
