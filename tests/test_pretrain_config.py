"""Model size from one dial: presets and depth fill the shape; explicit fields win."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmforge.config import PretrainConfig
from model.presets import PRESETS, preset_shape, shape_from_depth


def test_presets_set_the_shape_and_context() -> None:
    for name, preset in PRESETS.items():
        cfg = PretrainConfig(preset=name)
        assert (cfg.n_layer, cfg.n_head, cfg.n_embd) == preset_shape(name)
        assert cfg.seq_len == preset.seq_len and cfg.batch_size == preset.batch_size
    gpt2 = PretrainConfig(preset="gpt2")
    assert (gpt2.n_layer, gpt2.n_embd, gpt2.n_head) == (12, 768, 12)


def test_tiny_preset_is_the_default_shape() -> None:
    default, tiny = PretrainConfig(), PretrainConfig(preset="tiny")
    assert (default.n_layer, default.n_head, default.n_embd, default.seq_len) == (
        tiny.n_layer, tiny.n_head, tiny.n_embd, tiny.seq_len)


def test_depth_is_the_one_dial() -> None:
    cfg = PretrainConfig(depth=6)  # tiny's proportions: 32 wide per layer, 32-wide heads
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd) == (6, 6, 192)
    deeper = PretrainConfig(preset="small", depth=10)
    assert (deeper.n_layer, deeper.n_head, deeper.n_embd) == (10, 10, 640)


def test_explicit_fields_win_over_the_preset_and_survive_a_round_trip() -> None:
    cfg = PretrainConfig(preset="small", seq_len=128, n_head=4)
    assert cfg.seq_len == 128 and cfg.n_head == 4 and cfg.n_embd == 512
    assert PretrainConfig.model_validate(cfg.model_dump()) == cfg


def test_bad_sizes_are_rejected() -> None:
    with pytest.raises(ValidationError):
        PretrainConfig(preset="huge")
    with pytest.raises(ValidationError):
        PretrainConfig(depth=0)
    with pytest.raises(ValueError, match="head_dim"):
        shape_from_depth(3, 10, 4)


def test_the_tiny_preset_brings_its_recipe_unless_another_optimizer_is_named() -> None:
    from llmforge.config import PretrainConfig
    from model.presets import RECIPES

    tiny = PretrainConfig(preset="tiny", learning_rate=1e-3)
    recipe = RECIPES["tiny"]
    assert (tiny.optimizer, tiny.schedule, tiny.muon_lr, tiny.warmdown_frac) == (
        recipe.optimizer, recipe.schedule, recipe.muon_lr, recipe.warmdown_frac)
    assert tiny.learning_rate == 1e-3  # set explicitly: it wins
    adamw = PretrainConfig(preset="tiny", optimizer="adamw")
    plain = PretrainConfig()
    assert (adamw.learning_rate, adamw.weight_decay, adamw.schedule) == (plain.learning_rate, plain.weight_decay, plain.schedule)
    small = PretrainConfig(preset="small")  # no recipe measured yet: the defaults
    assert (small.optimizer, small.learning_rate) == (plain.optimizer, plain.learning_rate)


def test_patience_without_scores_is_refused() -> None:
    import pytest
    from pydantic import ValidationError

    from llmforge.config import PretrainConfig

    with pytest.raises(ValidationError, match="patience"):
        PretrainConfig(patience=3)
    assert PretrainConfig(patience=3, eval_every=50).patience == 3
