"""Every setting carries its range, and a bad configuration is one line naming the key path and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmforge.config import (
    MIN_VOCAB_SIZE,
    SAMPLE_MIN_PAGES,
    PipelineConfig,
    PretrainConfig,
    load_pipeline_config,
)
from llmforge.config_errors import ConfigError
from conftest import tiny_pipeline_config


def write_config(tmp_path: Path, settings: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def rejection(tmp_path: Path, settings: dict) -> str:
    path = write_config(tmp_path, settings)
    with pytest.raises(ConfigError) as raised:
        load_pipeline_config(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        # The reproductions: each used to pass validation and fail (or silently produce nothing) later.
        ({"data": {"dedup": {"buckets": 0}}}, "data.dedup.buckets: must be >= 1 (got 0)"),
        ({"tokenize": {"val_fraction": 2.0}}, "tokenize.val_fraction: must be < 1 (got 2)"),
        ({"data": {"records_per_shard": -3}}, "data.records_per_shard: must be >= 0 (got -3)"),
        ({"data": {"max_workers": 0}}, "data.max_workers: must be >= 1 (got 0)"),
        # Both splits need documents: pretraining reads train, the evaluate stage reads val.
        ({"tokenize": {"val_fraction": 0.0}}, "tokenize.val_fraction: must be > 0 (got 0)"),
        ({"tokenize": {"val_fraction": 1.0}}, "tokenize.val_fraction: must be < 1 (got 1)"),
        ({"data": {"dedup": {"hashes_per_bucket": 0}}}, "data.dedup.hashes_per_bucket: must be >= 1 (got 0)"),
        ({"data": {"dedup": {"n_grams": 0}}}, "data.dedup.n_grams: must be >= 1 (got 0)"),
        ({"data": {"dedup": {"seed": -1}}}, "data.dedup.seed: must be >= 0 (got -1)"),
        ({"data": {"sample_pages": 5}}, f"data.sample_pages: must be >= {SAMPLE_MIN_PAGES} (got 5)"),
        ({"data": {"cc_max_files": 0}}, "data.cc_max_files: must be >= 1 (got 0)"),
        ({"data": {"cc_timeout_seconds": 0}}, "data.cc_timeout_seconds: must be > 0 (got 0)"),
        ({"data": {"max_records_per_file": 0}}, "data.max_records_per_file: must be >= 1 (got 0)"),
        ({"data": {"language": {"min_score": 1.5}}}, "data.language.min_score: must be <= 1 (got 1.5)"),
        ({"data": {"extraction": {"timeout_seconds": 0}}}, "data.extraction.timeout_seconds: must be > 0 (got 0)"),
        ({"data": {"url_filter": {"soft_word_threshold": 0}}}, "data.url_filter.soft_word_threshold: must be >= 1 (got 0)"),
        ({"data": {"gopher_repetition": {"dup_line_frac": 1.2}}}, "data.gopher_repetition.dup_line_frac: must be <= 1 (got 1.2)"),
        ({"data": {"gopher_repetition": {"top_n_grams": [[2, 0.2], [0, 0.1]]}}},
         "data.gopher_repetition.top_n_grams[1][0]: must be >= 1 (got 0)"),
        ({"data": {"fineweb_quality": {"short_line_thr": -0.1}}}, "data.fineweb_quality.short_line_thr: must be >= 0 (got -0.1)"),
        ({"data": {"c4_quality": {"max_word_length": 0}}},
         "data.c4_quality.max_word_length: must be >= 1, or -1 for no limit (got 0)"),
        ({"tokenize": {"vocab_size": 100}}, f"tokenize.vocab_size: must be >= {MIN_VOCAB_SIZE} (got 100)"),
        ({"pretrain": {"steps": 0}}, "pretrain.steps: must be >= 1 (got 0)"),
        ({"pretrain": {"learning_rate": 0}}, "pretrain.learning_rate: must be > 0 (got 0)"),
        ({"pretrain": {"checkpoint_every": -1}}, "pretrain.checkpoint_every: must be >= 0 (got -1)"),
        ({"evaluate": {"max_val_tokens": 0}}, "evaluate.max_val_tokens: must be >= 1 (got 0)"),
        ({"evaluate": {"temperatures": [0.0, -1.0]}}, "evaluate.temperatures[1]: must be >= 0 (got -1)"),
        ({"rl": {"top_k": 0}}, "rl.top_k: must be >= 1 (got 0)"),
        ({"chat": {"top_k": 0}}, "chat.top_k: must be >= 1 (got 0)"),
    ],
)
def test_out_of_range_settings_name_the_key_path_and_the_rule(tmp_path: Path, settings: dict, expected: str) -> None:
    assert rejection(tmp_path, settings) == expected


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"pretrain": {"n_embd": 128, "n_head": 3}}, "pretrain.n_head: must divide n_embd (128 is not a multiple of 3)"),
        ({"pretrain": {"n_embd": 96, "n_head": 32}}, "pretrain.n_head: must leave an even head width"),
        ({"pretrain": {"total_batch_tokens": 1000}},
         "pretrain.total_batch_tokens: must be a multiple of batch_size x seq_len x nproc = 16 x 256 x 1 = 4096 (got 1000)"),
        ({"data": {"dedup": {"verify": True, "minhash": False}}}, "data.dedup.verify: checks MinHash candidate pairs"),
        ({"data": {"gopher_quality": {"min_doc_words": 500, "max_doc_words": 100}}},
         "data.gopher_quality.min_doc_words: must be <= max_doc_words (500 > 100)"),
        ({"data": {"language": {"languages": []}}}, "data.language.languages: name at least one language"),
        ({"data": {"dask_address": "tcp://127.0.0.1:8786"}}, "data.dask_address: is only used with task_runner: dask"),
        ({"sft": {"arithmetic_fraction": 0, "multi_step_fraction": 0, "identity_fraction": 0, "refusal_fraction": 0}},
         "sft.arithmetic_fraction: the four *_fraction weights are all 0"),
        ({"sft": {"generated_conversations": 0}}, "sft.generated_conversations: is 0 and no conversation_files"),
        ({"rl": {"family": "multi_step"}}, "rl.family: must be 'two_number_lt100' (got 'multi_step')"),
    ],
)
def test_settings_that_do_not_fit_together_are_rejected(tmp_path: Path, settings: dict, expected: str) -> None:
    assert rejection(tmp_path, settings).startswith(expected)


def test_unknown_keys_are_named_with_a_suggestion(tmp_path: Path) -> None:
    assert rejection(tmp_path, {"data": {"dedupe": {"buckets": 4}}}) == "data.dedupe: unknown setting (did you mean data.dedup?)"
    assert rejection(tmp_path, {"data": {"dedup": {"bukets": 4}}}) == (
        "data.dedup.bukets: unknown setting (did you mean data.dedup.buckets?)")
    assert rejection(tmp_path, {"pretrian": {}}) == "pretrian: unknown setting (did you mean pretrain?)"
    assert rejection(tmp_path, {"data": {"zzz": 1}}) == "data.zzz: unknown setting"


def test_wrong_types_say_what_was_expected(tmp_path: Path) -> None:
    assert rejection(tmp_path, {"data": 5}) == "data: must be a mapping of settings (got 5)"
    assert rejection(tmp_path, {"data": {"sample_pages": "many"}}).startswith(
        "data.sample_pages: must be a valid integer")


def test_several_problems_are_one_line_that_lists_the_others(tmp_path: Path) -> None:
    message = rejection(tmp_path, {"data": {"dedup": {"buckets": 0}, "max_workers": 0}, "tokenize": {"val_fraction": 2}})
    first, others = message.split("; ")
    assert first.startswith("data.") and "2 more problems" in others
    assert {"data.max_workers", "data.dedup.buckets", "tokenize.val_fraction"} == {
        first.split(":")[0], *others.split(": ", 1)[1].split(", ")}


def test_yaml_syntax_errors_name_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("data:\n  source: sample\n  dedup: {buckets: 4\ntokenize:\n  vocab_size: 512\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_pipeline_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: line ") and "column" in message and "invalid YAML" in message
    assert "<unicode string>" not in message and "\n" not in message


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.yaml: config file not found"):
        load_pipeline_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not a file"):
        load_pipeline_config(tmp_path)
    (tmp_path / "list.yaml").write_text("- data\n")
    with pytest.raises(ConfigError, match="expected a mapping with one section per stage, got list"):
        load_pipeline_config(tmp_path / "list.yaml")
    (tmp_path / "latin1.yaml").write_bytes("data: {source: caf\xe9}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_pipeline_config(tmp_path / "latin1.yaml")


def test_command_line_overrides_are_checked_and_named_as_such(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"data": {"sample_pages": 60}})
    with pytest.raises(ConfigError, match=r"^command line: pretrain\.nproc: must be >= 1 \(got 0\)$"):
        load_pipeline_config(path, {"pretrain": {"nproc": 0}})
    with pytest.raises(ConfigError, match=r"^command line: pretrain\.depth: must be >= 1 \(got 0\)$"):
        load_pipeline_config(None, {"pretrain": {"depth": 0}})
    merged = load_pipeline_config(path, {"data": {"source": "x.warc.gz"}, "pretrain": {}})
    assert merged.data.sample_pages == 60 and merged.data.source == "x.warc.gz"


def test_an_empty_section_means_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty-section.yaml"
    path.write_text("data:\n  # source: sample\ntokenize: {vocab_size: 4096}\n", encoding="utf-8")
    config = load_pipeline_config(path)
    assert config.data == PipelineConfig().data and config.tokenize.vocab_size == 4096


def test_defaults_the_test_pipeline_and_the_presets_are_valid() -> None:
    PipelineConfig()
    tiny = tiny_pipeline_config()
    assert PipelineConfig.model_validate(tiny.model_dump(mode="json")) == tiny
    for preset in ("tiny", "small", "gpt2"):
        PretrainConfig(preset=preset)
    PretrainConfig(total_batch_tokens=16 * 256 * 4)


def test_zero_still_turns_the_optional_checks_off(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"data": {
        "gopher_quality": {"min_doc_words": 0, "max_doc_words": 0, "min_stop_words": 0},
        "gopher_repetition": {"dup_line_frac": 0},
        "c4_quality": {"max_word_length": -1},
        "records_per_shard": 0,
    }, "pretrain": {"grad_clip": 0, "warmup_steps": 0}})
    config = load_pipeline_config(path)
    assert config.data.c4_quality.max_word_length == -1 and config.pretrain.grad_clip == 0


def test_the_mirrored_limits_match_the_code_that_needs_them() -> None:
    from model.tokenizer import MIN_VOCAB_SIZE as tokenizer_minimum
    from tasks.data.sample_corpus import MIN_PAGES
    from tasks.posttrain.sft_data import FAMILY

    assert MIN_VOCAB_SIZE == tokenizer_minimum
    assert SAMPLE_MIN_PAGES == MIN_PAGES
    assert PipelineConfig().rl.family == FAMILY
