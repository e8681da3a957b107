"""Resumable training state: an interrupted run, resumed, ends bitwise where an uninterrupted one does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from llmforge.config import PretrainConfig
from model.checkpoint import load_training_state, save_training_state
from model.gpt import GPT, GPTConfig
from model.tokenizer import train_bpe
from model.train import BatchSampler, TrainConfig, make_optimizer, pack_documents, train
from tasks.train import pretrain as pretrain_stage

REPO = Path(__file__).resolve().parents[1]
SEQ = 16


def _docs(n: int = 200, seed: int = 0) -> list[list[int]]:
    """Arithmetic progressions over ids 1..63 after a BOS (id 0): learnable, so the weights keep moving."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n):
        start, step, length = rng.integers(0, 63), rng.integers(1, 4), rng.integers(8, 30)
        docs.append([0] + [1 + int((start + i * step) % 63) for i in range(length)])
    return docs


def _model(seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=64, n_layer=2, n_head=2, n_embd=32, seq_len=SEQ))


# ------------------------------------------------------- (a) in-process, model.train APIs


class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_resume_in_process_is_bitwise_identical(tmp_path: Path) -> None:
    k = 6
    cfg = TrainConfig(steps=2 * k, batch_size=4, seq_len=SEQ, warmup_steps=3, log_every=1)
    stream = pack_documents(_docs(), SEQ)

    straight_model = _model(seed=1)
    straight, _ = train(straight_model, BatchSampler(stream, 4, SEQ, seed=5), cfg)

    model = _model(seed=1)
    sampler = BatchSampler(stream, 4, SEQ, seed=5)
    state_dir = tmp_path / "base.train"

    def save_then_stop(steps_done: int, optimizer: torch.optim.Optimizer) -> None:
        if steps_done == k:
            save_training_state(state_dir, model, optimizer, {"step": steps_done, "sampler": sampler.state_dict()})
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(model, sampler, cfg, on_step_end=save_then_stop)
    del model, sampler
    torch.manual_seed(12345)  # disturb the global RNG: the saved state must restore it

    fresh = _model(seed=99)  # different init: everything must come from the saved state
    fresh_opt = make_optimizer(fresh, cfg)
    state = load_training_state(state_dir, fresh, fresh_opt)
    fresh_sampler = BatchSampler(stream, 4, SEQ, seed=0)
    fresh_sampler.load_state_dict(state["sampler"])
    resumed, _ = train(fresh, fresh_sampler, cfg, start_step=state["step"], optimizer=fresh_opt)

    assert [log.step for log in resumed] == list(range(k, 2 * k))
    assert [log.loss for log in resumed] == [log.loss for log in straight[k:]]
    for (name, a), (_, b) in zip(straight_model.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_training_state_files_load_with_weights_only(tmp_path: Path) -> None:
    model = _model(seed=2)
    cfg = TrainConfig(steps=2, batch_size=4, seq_len=SEQ, log_every=1)
    _, optimizer = train(model, BatchSampler(pack_documents(_docs(), SEQ), 4, SEQ, seed=1), cfg)
    save_training_state(tmp_path / "s", model, optimizer, {"step": 2})
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "model.safetensors", "optimizer.pt", "rng.pt", "state.json"
    ]
    for name in ("optimizer.pt", "rng.pt"):
        torch.load(tmp_path / "s" / name, weights_only=True)
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temp directories left


# ------------------------------------------------------- the pretrain stage


def _workdir(root: Path) -> Path:
    """A tiny tokenizer plus one train token shard, laid out as the tokenize stage leaves them."""
    (root / "tokenizer").mkdir(parents=True)
    train_bpe(["hello world, a tiny corpus"] * 4, 280).save(root / "tokenizer" / "tokenizer.json")
    (root / "tokens" / "train").mkdir(parents=True)
    table = pa.table({"tokens": pa.array(_docs(), type=pa.list_(pa.uint16()))})
    pq.write_table(table, root / "tokens" / "train" / "00000.parquet")
    return root


def _cfg(**overrides: Any) -> PretrainConfig:
    base: dict[str, Any] = dict(n_layer=1, n_head=2, n_embd=32, seq_len=SEQ, batch_size=4, steps=12,
                                warmup_steps=2, log_every=1, device="cpu", checkpoint_every=4)
    return PretrainConfig(**{**base, **overrides})


def _run(root: Path, cfg: PretrainConfig, resume: bool = False, **kwargs: Any) -> dict[str, Any]:
    return pretrain_stage.pretrain(root / "tokens", root / "tokenizer" / "tokenizer.json",
                                   root / "checkpoints" / "base", cfg, resume=resume, **kwargs)


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    return _workdir(tmp_path / "run")


@pytest.mark.slow
def test_stage_keeps_base_layout_and_saves_state_beside_it(workdir: Path) -> None:
    result = _run(workdir, _cfg())
    ckpts = workdir / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["base", "base.train"]
    assert sorted(p.name for p in (ckpts / "base").iterdir()) == ["model.safetensors", "state.json"]
    state = json.loads((ckpts / "base.train" / "state.json").read_text())
    assert state["step"] == 12 and state["sampler"]["position"] == 12
    assert [h["loss"] for h in state["history"]] == [h["loss"] for h in result["history"]]
    assert torch.equal(load_file(ckpts / "base" / "model.safetensors")["embed.weight"],
                       load_file(ckpts / "base.train" / "model.safetensors")["embed.weight"])


def test_stage_resume_rejects_changed_settings(workdir: Path) -> None:
    _run(workdir, _cfg(steps=4))
    with pytest.raises(ValueError, match=r"learning_rate.*seed|seed.*learning_rate"):
        _run(workdir, _cfg(steps=4, seed=7, learning_rate=1e-3), resume=True)
    # Execution-only settings may change between the interrupted run and its resumption.
    _run(workdir, _cfg(steps=4, log_every=2, checkpoint_every=1), resume=True)


def test_stage_resume_rejects_another_tokenizer(workdir: Path) -> None:
    _run(workdir, _cfg(steps=2))
    train_bpe(["other text entirely, more merges here"] * 4, 290).save(workdir / "tokenizer" / "tokenizer.json")
    with pytest.raises(ValueError, match="tokenizer_vocab_size"):
        _run(workdir, _cfg(steps=2), resume=True)


def test_stage_resume_errors_name_the_path(workdir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="base.train"):
        _run(workdir, _cfg(steps=2), resume=True)
    _run(workdir, _cfg(steps=2))
    state_dir = workdir / "checkpoints" / "base.train"
    (state_dir / "optimizer.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="optimizer.pt"):
        _run(workdir, _cfg(steps=2), resume=True)
    (state_dir / "state.json").write_text("{truncated")
    with pytest.raises(ValueError, match="state.json"):
        _run(workdir, _cfg(steps=2), resume=True)
    (state_dir / "rng.pt").unlink()
    with pytest.raises(FileNotFoundError, match="rng.pt"):
        _run(workdir, _cfg(steps=2), resume=True)


@pytest.mark.slow
def test_stage_nan_names_step_and_last_good_checkpoint(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_train = pretrain_stage.train

    def poisoning_train(model: GPT, *args: Any, on_step_end: Any, **kwargs: Any) -> Any:
        def step_end(steps_done: int, optimizer: torch.optim.Optimizer) -> None:
            on_step_end(steps_done, optimizer)  # the stage saves the state at step 4 here ...
            if steps_done == 5:
                with torch.no_grad():  # ... and the weights go bad one step later
                    model.blocks[0].mlp.up.weight[0, 0] = float("nan")

        return real_train(model, *args, on_step_end=step_end, **kwargs)

    monkeypatch.setattr(pretrain_stage, "train", poisoning_train)
    with pytest.raises(FloatingPointError, match=r"step 5.*base\.train \(step 4\)"):
        _run(workdir, _cfg())


# ------------------------------------------------------- (b) a real SIGKILL


_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from llmforge.config import PretrainConfig
    from tasks.train import pretrain as pretrain_stage

    root, resume, delay = Path(sys.argv[1]), sys.argv[2] == "1", float(sys.argv[3])
    settings = dict(n_layer=1, n_head=2, n_embd=32, seq_len=16, batch_size=4, steps=24, warmup_steps=2,
                    log_every=1, device="cpu", checkpoint_every=4)
    cfg = PretrainConfig(**{**settings, **json.loads(sys.argv[4])})
    # Sleeping in the log callback slows the run down enough to be killed mid-way;
    # it runs outside the numerics, so it cannot change the result.
    pretrain_stage.pretrain(root / "tokens", root / "tokenizer" / "tokenizer.json",
                            root / "checkpoints" / "base", cfg,
                            on_log=lambda log: time.sleep(delay), resume=resume)
    """
)


def _spawn(root: Path, resume: bool, delay: float, **overrides: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2", "CUDA_VISIBLE_DEVICES": ""}
    args = [str(root), "1" if resume else "0", str(delay), json.dumps(overrides)]
    return subprocess.Popen([sys.executable, "-c", _SCRIPT, *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen[bytes]) -> None:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out.decode(errors="replace")


def _kill_after_first_save(root: Path, **overrides: Any) -> int:
    """Start a slowed-down run, SIGKILL it once its first training state is on disk; returns that state's step."""
    victim = _spawn(root, resume=False, delay=0.15, **overrides)
    state_file = root / "checkpoints" / "base.train" / "state.json"
    deadline = time.monotonic() + 60
    while not state_file.exists():
        assert victim.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint appeared within 60 s"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    saved_step = json.loads(state_file.read_text())["step"]
    assert 0 < saved_step < 24
    assert not (root / "checkpoints" / "base").exists()  # killed before the end
    return saved_step


def _assert_same_run(straight_root: Path, resumed_root: Path, saved_step: int) -> None:
    a = json.loads((straight_root / "checkpoints" / "base" / "state.json").read_text())
    b = json.loads((resumed_root / "checkpoints" / "base" / "state.json").read_text())
    assert b["metrics"]["resumed_from_step"] == saved_step
    assert [(h["step"], h["loss"]) for h in a["history"]] == [(h["step"], h["loss"]) for h in b["history"]]
    wa = load_file(straight_root / "checkpoints" / "base" / "model.safetensors")
    wb = load_file(resumed_root / "checkpoints" / "base" / "model.safetensors")
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    straight_root, killed_root = _workdir(tmp_path / "straight"), _workdir(tmp_path / "killed")
    straight = _spawn(straight_root, resume=False, delay=0.0)  # runs alongside the one we kill
    saved_step = _kill_after_first_save(killed_root)
    _finish(_spawn(killed_root, resume=True, delay=0.0))
    _finish(straight)
    _assert_same_run(straight_root, killed_root, saved_step)


@pytest.mark.slow
def test_sigkilled_run_resumes_from_a_save_by_time(tmp_path: Path) -> None:
    # No saves by steps: the only state before the end is the one written after 0.3 s of training.
    by_time = {"checkpoint_every": 0, "checkpoint_every_seconds": 0.3}
    straight_root, killed_root = _workdir(tmp_path / "straight"), _workdir(tmp_path / "killed")
    straight = _spawn(straight_root, resume=False, delay=0.0, checkpoint_every=0, checkpoint_every_seconds=0)
    saved_step = _kill_after_first_save(killed_root, **by_time)
    state = json.loads((killed_root / "checkpoints" / "base.train" / "state.json").read_text())
    assert state["train_seconds"] >= 0.3
    _finish(_spawn(killed_root, resume=True, delay=0.0, **by_time))
    _finish(straight)
    _assert_same_run(straight_root, killed_root, saved_step)


def test_continue_from_latest_starts_from_the_base_checkpoint(workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """continue_from: latest goes on from the saved weights (its first loss is the last run's, not a fresh
    model's) and counts steps over both runs; with no checkpoint yet it says it starts from scratch."""
    with caplog.at_level("WARNING"):
        first = _run(workdir, _cfg(steps=30, continue_from="latest", learning_rate=1e-2))
    assert "holds no checkpoint yet: training from scratch" in caplog.text
    assert "continued_from" not in first["metrics"]
    second = _run(workdir, _cfg(steps=5, continue_from="latest", learning_rate=1e-2))
    assert second["metrics"]["continued_from"]["steps"] == 30 and second["metrics"]["total_steps"] == 35
    scratch_start, first_end = first["history"][0]["loss"], first["history"][-1]["loss"]
    assert abs(second["history"][0]["loss"] - first_end) < abs(second["history"][0]["loss"] - scratch_start)
    state = json.loads((workdir / "checkpoints" / "base" / "state.json").read_text())
    assert state["total_steps"] == 35
    with pytest.raises(ValueError, match="cannot continue from .*continue_from: scratch"):
        _run(workdir, _cfg(steps=2, continue_from="latest", n_embd=64))
    # A tokenizer trained again (same size, other merges): the saved weights would read ids meaning other tokens.
    assert state["tokenizer_sha256"]
    train_bpe(["other words entirely, a different corpus"] * 4, 280).save(workdir / "tokenizer" / "tokenizer.json")
    with pytest.raises(ValueError, match="trained with another tokenizer"):
        _run(workdir, _cfg(steps=2, continue_from="latest", learning_rate=1e-2))


def test_the_muon_wsd_recipe_is_selectable_from_the_config(workdir: Path) -> None:
    """`pretrain.optimizer: muon` with a wsd schedule trains through the stage (no benchmark-only path), and the
    default stays AdamW + cosine (no schedule object)."""
    assert pretrain_stage.optimizer_settings(_cfg()) is None
    cfg = _cfg(steps=30, optimizer="muon", schedule="wsd", warmdown_frac=0.5, muon_lr=0.04, checkpoint_every=0)
    settings = pretrain_stage.optimizer_settings(cfg)
    assert (settings.kind, settings.schedule, settings.warmdown_frac, settings.muon_lr) == ("muon", "wsd", 0.5, 0.04)
    result = _run(workdir, cfg)
    losses = [h["loss"] for h in result["history"]]
    assert losses[-1] < losses[0] - 0.5
    assert result["history"][-1]["lr"] < result["history"][len(losses) // 2]["lr"]  # the warmdown
    budget = pretrain_stage.optimizer_settings(_cfg(time_budget_s=30))
    assert (budget.kind, budget.schedule, budget.time_budget_s) == ("adamw", "wsd", 30)
    with pytest.raises(ValueError, match="time_budget_s needs wsd"):
        _cfg(time_budget_s=30, schedule="cosine")
