"""Data parallelism: two gloo processes under torchrun train the same model as one process
accumulating the same global batch; the sampler splits each step's windows over ranks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from llmforge.config import PretrainConfig
from model.tokenizer import train_bpe
from model.train import BatchSampler, pack_documents
from tasks.train import launch as pretrain_launch
from tasks.train import pretrain as pretrain_stage

SEQ = 16


def _docs(n: int = 200) -> list[list[int]]:
    rng = np.random.default_rng(0)
    return [[0] + [1 + int((rng.integers(0, 63) + i * 2) % 63) for i in range(int(rng.integers(8, 30)))]
            for _ in range(n)]


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "tokenizer").mkdir()
    train_bpe(["hello world, a tiny corpus"] * 4, 280).save(tmp_path / "tokenizer" / "tokenizer.json")
    (tmp_path / "tokens" / "train").mkdir(parents=True)
    pq.write_table(pa.table({"tokens": pa.array(_docs(), type=pa.list_(pa.uint16()))}),
                   tmp_path / "tokens" / "train" / "00000.parquet")
    return tmp_path


def _cfg(**overrides: Any) -> PretrainConfig:
    base: dict[str, Any] = dict(n_layer=1, n_head=2, n_embd=32, seq_len=SEQ, batch_size=4, steps=8,
                                warmup_steps=2, log_every=1, device="cpu", total_batch_tokens=2 * 4 * SEQ)
    return PretrainConfig(**{**base, **overrides})


def test_sampler_splits_a_steps_windows_over_ranks_and_micro_batches() -> None:
    stream = pack_documents(_docs(), SEQ)
    one = BatchSampler(stream, 4, SEQ, seed=3, grad_accum_steps=2)
    ranks = [BatchSampler(stream, 4, SEQ, seed=3, rank=r, world_size=2) for r in range(2)]
    for _ in range(3):  # steps
        accumulated = torch.cat([one.next()[0] for _ in range(2)])
        spread = torch.cat([r.next()[0] for r in ranks])
        assert torch.equal(accumulated, spread)
    assert one.steps_done == 3 and all(r.steps_done == 3 for r in ranks)
    # A saved position carries over to another split of the same global batch.
    other = BatchSampler(stream, 2, SEQ, seed=0, grad_accum_steps=4)
    other.load_state_dict(one.state_dict())
    assert torch.equal(torch.cat([other.next()[0] for _ in range(4)]), torch.cat([one.next()[0] for _ in range(2)]))


def test_total_batch_tokens_must_divide_into_micro_batches() -> None:
    assert _cfg().grad_accum_steps() == 2
    assert _cfg(nproc=2).grad_accum_steps() == 1
    with pytest.raises(ValueError, match="multiple of batch_size"):
        _cfg(total_batch_tokens=100).grad_accum_steps()


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(workdir: Path) -> None:
    tokens, tok = workdir / "tokens", workdir / "tokenizer" / "tokenizer.json"
    single = pretrain_stage.pretrain(tokens, tok, workdir / "single" / "base", _cfg())
    logs: list[Any] = []
    double = pretrain_launch.pretrain_distributed(tokens, tok, workdir / "ddp" / "base", _cfg(nproc=2),
                                                  on_log=logs.append)
    assert single["metrics"]["grad_accum_steps"] == 2 and double["metrics"]["grad_accum_steps"] == 1
    assert double["metrics"]["processes"] == 2
    assert single["metrics"]["tokens_seen"] == double["metrics"]["tokens_seen"] == 8 * 2 * 4 * SEQ
    # Rank 0 relayed every logged step, with the loss averaged over both ranks.
    assert [log.step for log in logs] == list(range(8))
    single_losses = [h["loss"] for h in single["history"]]
    assert [log.loss for log in logs] == pytest.approx(single_losses, rel=1e-4, abs=1e-5)
    assert single_losses[-1] < single_losses[0]
    # Only the summation order differs (an all-reduce instead of accumulation).
    a = load_file(workdir / "single" / "base" / "model.safetensors")
    b = load_file(workdir / "ddp" / "base" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_failing_worker_reports_its_error(workdir: Path) -> None:
    (workdir / "tokens" / "train" / "00000.parquet").unlink()
    with pytest.raises(RuntimeError, match="no token shards"):
        pretrain_launch.pretrain_distributed(workdir / "tokens", workdir / "tokenizer" / "tokenizer.json",
                                             workdir / "ddp" / "base", _cfg(nproc=2))
