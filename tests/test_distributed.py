"""Data parallelism: two gloo processes under torchrun train the same model as one process
accumulating the same global batch; the sampler splits each step's windows over ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
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
REPO = Path(__file__).resolve().parents[1]


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
    # A save by time after every step as well: rank 0 writes while rank 1 waits, and nothing changes.
    double = pretrain_launch.pretrain_distributed(tokens, tok, workdir / "ddp" / "base",
                                                  _cfg(nproc=2, checkpoint_every_seconds=1e-6), on_log=logs.append)
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



def test_a_rank_killed_by_a_signal_is_explained_by_its_own_stderr(tmp_path: Path) -> None:
    # What torchrun leaves in --log-dir for a rank that aborted: only its stderr says why.
    rank_dir = tmp_path / "logs" / "none_abc" / "attempt_0"
    (rank_dir / "0").mkdir(parents=True)
    (rank_dir / "0" / "stderr.log").write_text("", encoding="utf-8")
    (rank_dir / "1").mkdir()
    (rank_dir / "1" / "stderr.log").write_text(
        "".join(f"noise {i}\n" for i in range(50)) + "Fatal Python error: Aborted\n", encoding="utf-8")
    error = pretrain_launch.training_failure(tmp_path, 2, 1, ["ChildFailedError: rank 1 exitcode -6"])
    message = str(error)
    assert "rank 1 stderr" in message and "Fatal Python error: Aborted" in message
    assert "rank 0 stderr" not in message  # a rank with nothing to say adds nothing
    assert "noise 29" not in message and "noise 31" in message  # only the last lines
    assert message.endswith("ChildFailedError: rank 1 exitcode -6")



def test_a_rank_that_aborts_after_every_rank_finished_keeps_the_result(tmp_path: Path) -> None:
    result_path = tmp_path / "result.json"
    result_path.write_text(json.dumps({"metrics": {"final_loss": 1.5}, "history": []}), encoding="utf-8")
    (tmp_path / "done-rank0").write_text("", encoding="utf-8")
    assert not pretrain_launch.all_ranks_done(result_path, 2)  # rank 1 never got past the final barrier
    (tmp_path / "done-rank1").write_text("", encoding="utf-8")
    assert pretrain_launch.all_ranks_done(result_path, 2)
    echoed: list[str] = []
    result = pretrain_launch.completed_despite_teardown(result_path, 1, tmp_path, echoed.append)
    assert result["metrics"]["final_loss"] == 1.5
    assert "after every rank had finished" in result["metrics"]["teardown_error"]
    assert echoed == [f"warning: {result['metrics']['teardown_error']}"]  # said once, and kept in the metrics


_CLOCK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch
    from model import distributed
    from model.gpt import GPT, GPTConfig
    from model.optim import OptimizerSettings, TrainingClock, make_optimizer
    from model.train import BatchSampler, TrainConfig, train

    info = distributed.init("cpu")
    # Rank 0's clock runs at 1 s per reading, rank 1's stands still: only rank 0's reading,
    # handed to every rank, ends the budget on both and gives both the same learning rates.
    ticks = {"now": 0.0}
    def now():
        ticks["now"] += 1.0 if info.rank == 0 else 0.0
        return ticks["now"]
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, n_layer=1, n_head=2, n_embd=32, seq_len=16))
    cfg = TrainConfig(steps=50, batch_size=2, seq_len=16, warmup_steps=1, log_every=1)
    sampler = BatchSampler(torch.arange(4000) % 64, 2, 16, seed=0, rank=info.rank, world_size=info.world_size)
    clock = TrainingClock(now=now)
    optimizer = make_optimizer(model, cfg, OptimizerSettings(schedule="wsd", time_budget_s=4.0), clock)
    seen = []
    logs, _ = train(model, sampler, cfg, optimizer=optimizer, clock=clock,
                    on_step_end=lambda done, opt: seen.append([done, clock.seconds]))
    checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
    out = Path(sys.argv[1]) / f"rank{info.rank}.json"
    out.write_text(json.dumps({"seen": seen, "lrs": [log.lr for log in logs], "checksum": checksum}))
    distributed.barrier()
    (Path(sys.argv[1]) / f"done-rank{info.rank}").write_text("")
    distributed.shutdown()
    """
)


@pytest.mark.slow
def test_every_rank_reads_rank_0s_clock(tmp_path: Path) -> None:
    script = tmp_path / "clock_ranks.py"
    script.write_text(_CLOCK_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    # Ranks that disagreed would leave one waiting in an all-reduce: the timeout turns that into a failure.
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )
    # As in the launcher: an abort closing the process group after both ranks finished is gloo's, not a disagreement.
    finished = all((tmp_path / f"done-rank{r}").is_file() for r in range(2))
    assert done.returncode == 0 or finished, done.stdout + done.stderr
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert rank0["seen"] == rank1["seen"] == [[1, 1.0], [2, 2.0], [3, 3.0], [4, 4.0]]
    assert rank0["lrs"] == rank1["lrs"] and rank0["checksum"] == rank1["checksum"]
