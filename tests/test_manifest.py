"""Up-to-date checks: config, outputs, upstream runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmforge import atomic
from llmforge.config import EvaluateConfig, TokenizeConfig, load_pipeline_config
from llmforge.fingerprint import library_versions, sha256_file, source_digest
from llmforge.manifest import StageRun, check_freshness, read_manifest
from llmforge.stages import STAGES, downstream_of


def _fake_run(workdir: Path, name: str, config=None) -> dict:
    """A stage run that writes placeholder outputs, to exercise the bookkeeping alone."""
    spec = STAGES[name]
    run = StageRun(name, workdir, config or spec.config_class())
    for output, rel in spec.outputs.items():
        target = run.path(output) if Path(rel).suffix else run.path(output) / "part-00000.parquet"
        atomic.write_text(target, output)
    return run.finish(counts={}, metrics={})


def _fake_tokenize_run(workdir: Path, config: TokenizeConfig) -> dict:
    if not (workdir / STAGES["data"].manifest).exists():
        _fake_run(workdir, "data")
    return _fake_run(workdir, "tokenize", config)


def test_a_finished_stage_is_up_to_date_until_something_changes(tmp_path: Path) -> None:
    config = TokenizeConfig()
    assert check_freshness(STAGES["tokenize"], tmp_path, config)[0].state == "missing"
    assert _fake_tokenize_run(tmp_path, config)["status"] == "ran"
    assert check_freshness(STAGES["tokenize"], tmp_path, config)[0].state == "up to date"

    changed = check_freshness(STAGES["tokenize"], tmp_path, TokenizeConfig(vocab_size=999))[0]
    assert changed.state == "stale" and "config changed" in changed.reasons

    (tmp_path / "tokens" / "val" / "part-00000.parquet").write_bytes(b"tampered")
    modified = check_freshness(STAGES["tokenize"], tmp_path, config)[0]
    assert modified.state == "stale" and any("modified" in r for r in modified.reasons)

    (tmp_path / "tokens" / "val" / "part-00000.parquet").unlink()
    assert any("missing" in r for r in check_freshness(STAGES["tokenize"], tmp_path, config)[0].reasons)


def test_touching_an_output_without_changing_it_is_not_a_change(tmp_path: Path) -> None:
    config = TokenizeConfig()
    _fake_tokenize_run(tmp_path, config)
    path = tmp_path / "tokens" / "train" / "part-00000.parquet"
    path.write_bytes(path.read_bytes())
    assert check_freshness(STAGES["tokenize"], tmp_path, config)[0].state == "up to date"


def test_an_upstream_rerun_makes_dependents_stale_even_with_identical_output(tmp_path: Path) -> None:
    tok_config, eval_config = TokenizeConfig(), EvaluateConfig()
    _fake_tokenize_run(tmp_path, tok_config)
    _fake_run(tmp_path, "evaluate", eval_config)
    freshness = check_freshness(STAGES["evaluate"], tmp_path, eval_config)[0]
    assert freshness.state == "stale" and "upstream pretrain has not run" in freshness.reasons

    _fake_run(tmp_path, "pretrain")
    _fake_run(tmp_path, "evaluate", eval_config)
    assert check_freshness(STAGES["evaluate"], tmp_path, eval_config)[0].state == "up to date"

    _fake_tokenize_run(tmp_path, tok_config)  # byte-identical outputs, new run
    reasons = check_freshness(STAGES["evaluate"], tmp_path, eval_config)[0].reasons
    assert reasons == ["upstream tokenize re-ran"]


def test_downstream_order() -> None:
    assert downstream_of("data") == ["tokenize", "pretrain", "evaluate", "sft", "rl"]
    assert downstream_of("pretrain") == ["evaluate", "sft", "rl"]
    assert downstream_of("sft") == ["rl"]


def test_config_file_sections_override_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  source: /x/*.warc.gz\n  language: {min_score: 0.5}\ntokenize: {vocab_size: 4096}\n")
    config = load_pipeline_config(path)
    assert config.data.source == "/x/*.warc.gz" and config.data.language.min_score == 0.5
    assert config.data.language.languages == ["en"] and config.tokenize.vocab_size == 4096
    path.write_text("tokenize: {vocab_sise: 4096}\n")
    with pytest.raises(ValueError, match="vocab_sise"):
        load_pipeline_config(path)


def test_the_sample_gets_a_small_vocabulary_unless_one_is_asked_for(tmp_path: Path) -> None:
    from llmforge.config import SAMPLE_VOCAB_SIZE

    assert load_pipeline_config(None).tokenize.vocab_size == SAMPLE_VOCAB_SIZE
    assert load_pipeline_config(None, {"data": {"source": "crawl/*.warc.gz"}}).tokenize.vocab_size == 32_768
    path = tmp_path / "c.yaml"
    path.write_text("tokenize: {vocab_size: 4096}\n")
    assert load_pipeline_config(path).tokenize.vocab_size == 4096



def test_the_data_manifest_records_asset_digests_and_library_owners(tmp_path: Path, lid_model_path: Path) -> None:
    from llmforge.config import DataConfig

    model = tmp_path / "lid.176.ftz"
    model.write_bytes(lid_model_path.read_bytes())
    config = DataConfig()
    config.language.model_path = str(model)
    work = tmp_path / "work"
    _fake_run(work, "data", config)
    recorded = read_manifest(work, "data")["inputs"]
    assert recorded["assets"]["lid_model"]["sha256"] == sha256_file(model)
    assert {"url_lists", "public_suffix_list"} <= set(recorded["assets"])
    assert recorded["libraries"]["fasttext"].startswith("fasttext-numpy2==")
    assert recorded["libraries"]["magic"].startswith("python-magic==")
    assert "datatrove" not in recorded["libraries"] and "tld" not in recorded["libraries"]
    assert check_freshness(STAGES["data"], work, config)[0].state == "up to date"

    model.write_bytes(model.read_bytes() + b"\0")  # another model under the same path
    assert check_freshness(STAGES["data"], work, config)[0].reasons == ["asset lid_model changed"]


def test_a_library_from_another_distribution_is_a_named_reason(tmp_path: Path) -> None:
    config = TokenizeConfig()
    _fake_tokenize_run(tmp_path, config)
    manifest = read_manifest(tmp_path, "tokenize")
    manifest["inputs"]["libraries"]["tiktoken"] = "tiktoken==0.0.1"
    atomic.write_json(tmp_path / STAGES["tokenize"].manifest, manifest)
    reasons = check_freshness(STAGES["tokenize"], tmp_path, config)[0].reasons
    assert reasons == [f"library tiktoken changed: tiktoken==0.0.1 -> {library_versions(['tiktoken'])['tiktoken']}"]


def test_the_code_digest_covers_what_the_flow_imports(tmp_path: Path) -> None:
    _fake_run(tmp_path, "data")
    recorded = read_manifest(tmp_path, "data")["inputs"]["code"]["source_sha256"]
    assert recorded == source_digest(STAGES["data"].code_modules)
    assert "tasks.data.accel.stand_ins" in STAGES["data"].code_modules
