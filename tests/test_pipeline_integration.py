"""The whole chain through Prefect on a small labelled sample: consistency, skipping, forcing, ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import tiny_pipeline_config

# Trains every stage through Prefect (~90 s): CI only.
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _read_rows(directory: Path, columns: list[str] | None = None) -> list[dict]:
    rows = []
    for path in sorted(directory.glob("*.parquet")):
        rows += pq.read_table(path, columns=columns).to_pylist()
    return rows


@pytest.fixture(scope="module")
def pipeline_run(prefect_harness, tmp_path_factory):
    from flows.pipeline import pipeline_flow

    workdir = tmp_path_factory.mktemp("pipeline")
    config = tiny_pipeline_config()
    first = pipeline_flow(workdir=str(workdir), config=config)
    return workdir, config, first


def test_every_stage_ran_and_outputs_are_consistent(pipeline_run):
    workdir, _, first = pipeline_run
    assert [s["stage"] for s in first["stages"]] == ["data", "tokenize", "pretrain", "evaluate", "sft", "rl"]
    assert all(s["status"] == "ran" for s in first["stages"])

    manifest = json.loads((workdir / "data" / "manifest.json").read_text())
    documents = _read_rows(workdir / "data" / "documents")
    assert len(documents) == manifest["counts"]["kept"] > 50
    required = {"id", "url", "text", "crawl_date", "language", "language_score"}
    assert required <= set(documents[0])
    assert all(d["id"].startswith("<urn:uuid:") and d["text"] for d in documents)

    stats = json.loads((workdir / "data" / "stats.json").read_text())
    assert stats["accounted"] == stats["responses"]

    tokens = first["stages"][1]["metrics"]
    assert tokens["train_tokens"] > 0 and tokens["val_tokens"] > 0
    token_rows = _read_rows(workdir / "tokens" / "train")
    assert {"id", "tokens", "n_bytes"} <= set(token_rows[0])

    training = first["stages"][2]["metrics"]
    assert training["final_loss"] < training["initial_loss"]
    assert (workdir / "checkpoints" / "base" / "model.safetensors").is_file()
    assert (workdir / "reports" / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    evaluation = json.loads((workdir / "reports" / "evaluation" / "metrics.json").read_text())
    assert {"val_loss", "val_bits_per_byte", "val_tokens"} <= set(evaluation["metrics"])
    assert 0 < evaluation["metrics"]["val_bits_per_byte"] < 16
    assert evaluation["metrics"]["hellaswag_examples"] == 12 and 0 <= evaluation["metrics"]["hellaswag_acc_norm"] <= 1
    assert len(evaluation["multiple_choice_skipped"]) == 2
    assert evaluation["samples"] and (workdir / "reports" / "evaluation" / "report.md").is_file()

    sft = first["stages"][4]["metrics"]
    assert sft["final_loss"] < sft["initial_loss"] and 0 <= sft["heldout_accuracy"] <= 1
    assert (workdir / "checkpoints" / "sft" / "model.safetensors").is_file()
    rl = first["stages"][5]["metrics"]
    assert {"pass@1", "pass@1_ci95_low", "pass@1_ci95_high", "pass@2"} <= set(rl["after"])
    assert (workdir / "checkpoints" / "rl" / "model.safetensors").is_file()
    card = (workdir / "reports" / "report.md").read_text()
    assert all(f"| {name} | ran |" in card for name in ("data", "tokenize", "pretrain", "evaluate", "sft", "rl"))
    assert "pass@1" in card and "held-out accuracy" in card

    for name in ("data", "tokenize", "pretrain", "evaluate", "sft", "rl"):
        from llmforge.stages import STAGES

        stage_manifest = json.loads((workdir / STAGES[name].manifest).read_text())
        assert stage_manifest["outputs"], name
        assert stage_manifest["inputs"]["code"]["source_sha256"]


def test_removed_documents_match_the_ground_truth(pipeline_run):
    """Every page the sample labels for a filter is removed by exactly that filter; kept pages are kept."""
    from tasks.data.sample_corpus import load_truth

    workdir, _, _ = pipeline_run
    truth = load_truth(workdir / "sample" / "sample.truth.jsonl")
    outcome = {r["id"]: r["filter"] for r in _read_rows(workdir / "data" / "removed", ["id", "filter"])}
    outcome.update({r["id"]: r["reason"] for r in _read_rows(workdir / "data" / "errors", ["id", "reason"]) if r["id"]})
    outcome.update({r["id"]: "kept" for r in _read_rows(workdir / "data" / "documents", ["id"])})
    assert set(outcome) == set(truth), "every response record is accounted for exactly once"
    wrong = {doc_id: (label, outcome[doc_id]) for doc_id, label in truth.items() if outcome[doc_id] != label}
    assert not wrong, f"{len(wrong)} of {len(truth)} pages disagree with the ground truth: {list(wrong.items())[:5]}"


def test_second_run_skips_and_force_reruns_only_dependents(pipeline_run):
    from flows.pipeline import pipeline_flow

    workdir, config, _ = pipeline_run
    again = pipeline_flow(workdir=str(workdir), config=config)
    assert [s["status"] for s in again["stages"]] == ["skipped"] * 6

    forced = pipeline_flow(workdir=str(workdir), config=config, force=["tokenize"])
    assert [s["status"] for s in forced["stages"]] == ["skipped", "ran", "ran", "ran", "ran", "ran"]


def test_chat_replies_with_text(pipeline_run):
    from llmforge.config import ChatConfig
    from tasks.chat.session import ChatSession, latest_checkpoint

    workdir, _, _ = pipeline_run
    session = ChatSession(latest_checkpoint(workdir), workdir / "tokenizer" / "tokenizer.json", ChatConfig(max_new_tokens=16))
    reply = session.reply("What is a function?")
    assert isinstance(reply, str) and reply
    assert session.messages[-1] == {"role": "assistant", "content": session.last_parts}


def _cli(*args: str) -> tuple[int, str, str]:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "llmforge.cli", *args], capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def test_cli_json_status_and_chat(pipeline_run, tmp_path):
    import yaml

    workdir, config, _ = pipeline_run
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))

    code, out, err = _cli("run", "--json", "--workdir", str(workdir), "--config", str(config_file))
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert [s["status"] for s in result["stages"]] == ["skipped"] * 6
    assert result["stages"][0]["outputs"]["documents"].endswith("documents")

    code, out, err = _cli("status", "--json", "--workdir", str(workdir), "--config", str(config_file))
    assert code == 0, err
    assert {s["state"] for s in json.loads(out.strip().splitlines()[-1])["stages"]} == {"up to date"}

    code, out, err = _cli("chat", "--workdir", str(workdir), "--prompt", "Hello there")
    assert code == 0, err
    assert out.strip()


def test_cli_names_a_missing_source(tmp_path):
    code, out, err = _cli("data", "--json", "--workdir", str(tmp_path), "--source", str(tmp_path / "nowhere.warc.gz"))
    assert code == 1
    assert "nowhere.warc.gz" in err and "Traceback" not in err


def test_cli_token_viewer_and_tokenizer_report(pipeline_run):
    workdir, _, first = pipeline_run
    code, out, err = _cli("tokens", "--workdir", str(workdir), "--color", "always", "The quick brown fox.")
    assert code == 0, err
    assert "\x1b[48;5;" in out and "tokens" in out
    code, plain, err = _cli("tokens", "--workdir", str(workdir), "The quick brown fox.")
    assert code == 0 and "\x1b" not in plain and "The" in plain
    page = (workdir / "reports" / "tokens.html").read_text()
    assert "The" in page and "<html" in page.lower()
    report = (workdir / "reports" / "tokenizer.md").read_text()
    assert "Longest tokens" in report
    assert 0 < first["stages"][1]["metrics"]["val_vocab_usage"] <= 1


def test_token_shards_load_with_datasets_and_decode_to_the_documents(pipeline_run):
    from datasets import load_dataset

    from model.tokenizer import BpeTokenizer

    workdir, _, _ = pipeline_run
    files = {split: sorted(str(p) for p in (workdir / "tokens" / split).glob("*.parquet")) for split in ("train", "val")}
    dataset = load_dataset("parquet", data_files=files, cache_dir=str(workdir / "hf-cache"))
    assert dataset["train"].num_rows + dataset["val"].num_rows == len(_read_rows(workdir / "data" / "documents", ["id"]))
    assert set(dataset["train"].column_names) == {"id", "tokens", "n_bytes"}

    tokenizer = BpeTokenizer.from_file(workdir / "tokenizer" / "tokenizer.json")
    texts = {r["id"]: r["text"] for r in _read_rows(workdir / "data" / "documents", ["id", "text"])}
    for split in ("train", "val"):
        for row in dataset[split]:
            assert row["tokens"][0] == tokenizer.bos_id
            text = texts[row["id"]]
            assert tokenizer.decode(row["tokens"][1:]) == text, row["id"]
            assert row["n_bytes"] == len(text.encode("utf-8"))


def test_cli_export_loads_in_transformers_with_the_same_logits(pipeline_run, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from model.checkpoint import load_checkpoint
    from tasks.chat.session import latest_checkpoint

    workdir, _, _ = pipeline_run
    code, out, err = _cli("export", "--format", "hf", "--workdir", str(workdir), "--out", str(tmp_path / "hf"))
    assert code == 0, err
    ours, _ = load_checkpoint(latest_checkpoint(workdir))  # what export picks: the most post-trained model
    assert latest_checkpoint(workdir).name == "rl"
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    ids = torch.randint(0, ours.config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(ours(ids)[0], theirs(ids).logits, atol=1e-4)
