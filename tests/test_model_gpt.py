"""GPT architecture contract: shapes, no biases, untied head, causality, loss semantics, init; and sampling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.generate import generate
from model.gpt import GPT, GPTConfig, apply_rotary, config_from_dict, config_to_dict, rotary_tables

VOCAB = 512


def _model(seed: int = 0, n_layer: int = 2) -> GPT:
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=VOCAB, n_layer=n_layer, n_head=4, n_embd=64, seq_len=32)
    return GPT(cfg).eval()


def _tokens(b: int, t: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (b, t), generator=torch.Generator().manual_seed(seed))


def test_output_shapes_and_dtype() -> None:
    model = _model()
    idx = _tokens(3, 17)
    logits, loss = model(idx)
    assert logits.shape == (3, 17, VOCAB)
    assert logits.dtype == torch.float32
    assert loss is None
    logits, loss = model(idx, idx)
    assert loss is not None and loss.dim() == 0


def test_context_longer_than_seq_len_is_rejected() -> None:
    model = _model()
    with pytest.raises(ValueError, match="context"):
        model(_tokens(1, 33))


def test_no_bias_parameters_anywhere() -> None:
    model = _model()
    assert not [name for name, _ in model.named_parameters() if "bias" in name]
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Linear))
    # Norms are RMSNorm (gain only): two per block plus the final one.
    assert not any(isinstance(m, nn.LayerNorm) for m in model.modules())
    assert sum(isinstance(m, nn.RMSNorm) for m in model.modules()) == 2 * model.config.n_layer + 1


def test_head_is_not_tied_to_embedding() -> None:
    model = _model()
    assert model.lm_head.weight is not model.embed.weight
    assert model.lm_head.weight.data_ptr() != model.embed.weight.data_ptr()
    before = model.lm_head.weight.clone()
    with torch.no_grad():
        model.embed.weight.add_(1.0)
    assert torch.equal(model.lm_head.weight, before)


def test_parameter_count_matches_architecture() -> None:
    model = _model()
    c = model.config
    hidden = c.mlp_hidden
    assert hidden % 32 == 0 and 8 * c.n_embd / 3 <= hidden < 8 * c.n_embd / 3 + 32
    per_block = 4 * c.n_embd * c.n_embd + 3 * c.n_embd * hidden + 2 * c.n_embd
    expected = 2 * c.vocab_size * c.n_embd + c.n_layer * per_block + c.n_embd
    assert model.num_parameters() == expected


def test_attention_is_causal() -> None:
    model = _model()
    idx = _tokens(2, 20)
    changed = idx.clone()
    changed[:, 12] = (changed[:, 12] + 1) % VOCAB
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    torch.testing.assert_close(a[:, :12], b[:, :12], rtol=0, atol=1e-5)
    assert not torch.allclose(a[:, 12:], b[:, 12:], atol=1e-3)


def test_rotary_positions_are_applied() -> None:
    # With one layer and no position signal, the last token's output would be a
    # function of the *set* of earlier tokens, so swapping two of them would not
    # change it. Sharper attention (scaled q/k) makes the rotary effect large.
    model = _model(n_layer=1)
    with torch.no_grad():
        model.blocks[0].attn.qkv.weight.mul_(10.0)
    idx = _tokens(1, 8)
    swapped = idx.clone()
    swapped[0, [2, 5]] = idx[0, [5, 2]]
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(swapped)
    assert (a[0, -1] - b[0, -1]).abs().max() > 1e-3


def test_rotary_depends_only_on_relative_position() -> None:
    head_dim = 16
    cos, sin = rotary_tables(64, head_dim, 10000.0)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(head_dim, generator=g), torch.randn(head_dim, generator=g)

    def rot(x: torch.Tensor, pos: int) -> torch.Tensor:
        return apply_rotary(x.view(1, 1, 1, -1), cos[pos : pos + 1], sin[pos : pos + 1]).view(-1)

    assert torch.allclose(rot(q, 7).norm(), q.norm(), atol=1e-5)  # a rotation keeps lengths
    score = torch.dot(rot(q, 9), rot(k, 4))
    for shift in (1, 13, 40):
        assert torch.allclose(torch.dot(rot(q, 9 + shift), rot(k, 4 + shift)), score, atol=1e-4)
    assert not torch.allclose(torch.dot(rot(q, 9), rot(k, 5)), score, atol=1e-4)


def test_loss_at_init_is_close_to_uniform() -> None:
    model = _model()
    idx = _tokens(4, 32)
    _, loss = model(idx[:, :-1], idx[:, 1:])
    assert loss is not None
    assert abs(loss.item() - math.log(VOCAB)) < 0.1


def test_loss_mask_and_ignore_index_semantics() -> None:
    model = _model()
    idx, targets = _tokens(2, 10, seed=2), _tokens(2, 10, seed=3)
    logits, full = model(idx, targets)
    per_token = F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1), reduction="none").view(2, 10)
    assert full is not None
    torch.testing.assert_close(full, per_token.mean())

    mask = torch.zeros(2, 10)
    mask[0, 3:7] = 1
    mask[1, 9] = 1
    _, masked = model(idx, targets, loss_mask=mask)
    torch.testing.assert_close(masked, per_token[mask.bool()].mean())

    # targets == -1 are ignored, and combine with the mask.
    ignored = targets.clone()
    ignored[0, 3] = -1
    _, both = model(idx, ignored, loss_mask=mask)
    keep = mask.bool().clone()
    keep[0, 3] = False
    torch.testing.assert_close(both, per_token[keep].mean())

    _, ones = model(idx, targets, loss_mask=torch.ones(2, 10, dtype=torch.long))
    torch.testing.assert_close(ones, full)


def test_fully_masked_batch_gives_zero_loss_with_zero_grads() -> None:
    model = _model().train()
    idx = _tokens(1, 6)
    _, loss = model(idx, idx, loss_mask=torch.zeros(1, 6))
    assert loss is not None and loss.item() == 0.0
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_init_is_deterministic_given_seed() -> None:
    a, b, c = _model(seed=5), _model(seed=5), _model(seed=6)
    for (name, pa), (_, pb), (_, pc) in zip(
        a.state_dict().items(), b.state_dict().items(), c.state_dict().items(), strict=True
    ):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.embed.weight, c.embed.weight)


def test_residual_output_projections_are_scaled_down() -> None:
    model = _model()
    block = model.blocks[0]
    assert block.attn.proj.weight.std() < 0.7 * block.attn.qkv.weight.std()
    assert block.mlp.down.weight.std() < 0.7 * block.mlp.up.weight.std()


def test_config_dict_round_trip_and_validation() -> None:
    cfg = GPTConfig(vocab_size=300, n_layer=3, n_head=2, n_embd=32, seq_len=64, rope_theta=500.0)
    d = config_to_dict(cfg)
    assert d == {"vocab_size": 300, "n_layer": 3, "n_head": 2, "n_embd": 32, "seq_len": 64, "rope_theta": 500.0}
    assert config_from_dict(d) == cfg
    with pytest.raises(ValueError, match="unknown"):
        config_from_dict({**d, "dropout": 0.1})
    with pytest.raises(ValueError):
        GPTConfig(vocab_size=100, n_head=3, n_embd=128)


# ---------------------------------------------------------------- generate


@pytest.mark.slow
def test_greedy_generation_matches_argmax_and_returns_only_new_ids() -> None:
    model = _model()
    prompt = [0, 5, 9]
    out = generate(model, prompt, max_new_tokens=6, temperature=0.0)
    assert len(out) == 6
    ids = list(prompt)
    for _ in range(6):
        logits, _ = model(torch.tensor([ids]))
        ids.append(int(logits[0, -1].argmax()))
    assert out == ids[len(prompt) :]


def test_generation_stops_after_stop_id_and_includes_it() -> None:
    model = _model()
    free = generate(model, [0, 1], max_new_tokens=10, temperature=0.0)
    stop = free[3]
    first = free.index(stop)
    out = generate(model, [0, 1], max_new_tokens=10, temperature=0.0, stop_ids={stop})
    assert out == free[: first + 1]


def test_generation_crops_context_to_seq_len() -> None:
    model = _model()
    long_prompt = _tokens(1, 50)[0].tolist()
    out = generate(model, long_prompt, max_new_tokens=3, temperature=0.0)
    cropped = generate(model, long_prompt[-32:], max_new_tokens=3, temperature=0.0)
    assert out == cropped


def test_sampling_is_reproducible_with_generator_and_top_k() -> None:
    model = _model()
    runs = [
        generate(model, [0], 12, temperature=1.0, top_k=50, generator=torch.Generator().manual_seed(s))
        for s in (1, 1, 2)
    ]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert generate(model, [0, 3], 5, top_k=1, generator=torch.Generator().manual_seed(9)) == generate(
        model, [0, 3], 5, temperature=0.0
    )


def test_generate_rejects_bad_arguments() -> None:
    model = _model()
    with pytest.raises(ValueError):
        generate(model, [], 3)
    with pytest.raises(ValueError):
        generate(model, [0], 3, temperature=-1.0)
    assert generate(model, [0], 0) == []
