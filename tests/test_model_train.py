"""Training loop, data sampling, LR schedule, evaluation and checkpoints, on a tiny synthetic corpus."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from model.checkpoint import load_checkpoint, load_checkpoint_for, save_checkpoint
from model.gpt import GPT, GPTConfig, config_to_dict
from model.optim import lr_at
from model.train import (
    BatchSampler,
    StepLog,
    TrainConfig,
    evaluate_loss,
    make_optimizer,
    pack_documents,
    train,
)

VOCAB = 64
BOS = 0
SEQ = 32


def _docs(n: int = 400, seed: int = 0) -> list[list[int]]:
    """Arithmetic progressions mod 63: after two tokens the rest is predictable, so loss can fall far."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n):
        start, step, length = rng.integers(0, 63), rng.integers(1, 4), rng.integers(8, 40)
        docs.append([BOS] + [1 + int((start + i * step) % 63) for i in range(length)])
    return docs


def _model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, n_layer=2, n_head=2, n_embd=64, seq_len=SEQ))


def _cfg(**overrides: object) -> TrainConfig:
    base = TrainConfig(steps=60, batch_size=8, seq_len=SEQ, warmup_steps=5, log_every=10)
    return replace(base, **overrides)


@pytest.fixture(scope="module")
def stream() -> torch.Tensor:
    return pack_documents(_docs(), SEQ)


# ---------------------------------------------------------------- data


def test_pack_documents_concatenates_in_order() -> None:
    docs = [[BOS, 5, 6], [BOS], [], [BOS, 7]]
    packed = pack_documents(docs, seq_len=4)
    assert packed.dtype == torch.long and packed.dim() == 1
    assert packed.tolist() == [BOS, 5, 6, BOS, BOS, 7]
    assert pack_documents((np.array(d) for d in docs), seq_len=4).tolist() == packed.tolist()
    with pytest.raises(ValueError, match="seq_len"):
        pack_documents(docs, seq_len=6)


def test_batch_sampler_yields_shifted_windows_of_the_stream(stream: torch.Tensor) -> None:
    sampler = BatchSampler(stream, batch_size=4, seq_len=SEQ, seed=1)
    x, y = sampler.next()
    assert x.shape == y.shape == (4, SEQ) and x.dtype == y.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    s = stream.tolist()
    for row_x, row_y in zip(x.tolist(), y.tolist(), strict=True):
        # Each row is a real window of the stream, targets one token ahead.
        starts = [i for i in range(len(s) - SEQ) if s[i : i + SEQ] == row_x]
        assert any(s[i + 1 : i + SEQ + 1] == row_y for i in starts)


def test_batch_sampler_is_seeded(stream: torch.Tensor) -> None:
    a = [BatchSampler(stream, 4, SEQ, seed=7).next()[0] for _ in range(2)]
    assert torch.equal(a[0], a[1])
    other = BatchSampler(stream, 4, SEQ, seed=8).next()[0]
    assert not torch.equal(a[0], other)
    sampler = BatchSampler(stream, 4, SEQ, seed=7)
    assert not torch.equal(sampler.next()[0], sampler.next()[0])


def test_batch_sampler_state_round_trip(stream: torch.Tensor) -> None:
    first = BatchSampler(stream, 4, SEQ, seed=3)
    for _ in range(3):
        first.next()
    state = json.loads(json.dumps(first.state_dict()))  # must survive a JSON state file
    expected = [first.next() for _ in range(3)]

    resumed = BatchSampler(stream, 4, SEQ, seed=999)
    resumed.load_state_dict(state)
    for (ex, ey), (rx, ry) in zip(expected, [resumed.next() for _ in range(3)], strict=True):
        assert torch.equal(ex, rx) and torch.equal(ey, ry)

    with pytest.raises(ValueError, match="batch_size"):
        BatchSampler(stream, 5, SEQ, seed=3).load_state_dict(state)


def test_lr_schedule_warms_up_then_decays_to_floor() -> None:
    cfg = TrainConfig(steps=100, batch_size=1, seq_len=8, learning_rate=1e-2, warmup_steps=10, min_lr_ratio=0.1)
    lrs = [lr_at(s, cfg) for s in range(cfg.steps)]
    assert lrs[0] == pytest.approx(1e-3)
    assert lrs[9] == pytest.approx(1e-2)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(1e-3)
    assert min(lrs[10:]) >= 1e-3 - 1e-12


def test_optimizer_decays_only_matrices() -> None:
    model = _model()
    opt = make_optimizer(model, _cfg(weight_decay=0.25))
    assert isinstance(opt, torch.optim.AdamW)
    by_decay = {g["weight_decay"]: g["params"] for g in opt.param_groups}
    assert set(by_decay) == {0.25, 0.0}
    assert all(p.dim() == 2 for p in by_decay[0.25])
    assert all(p.dim() == 1 for p in by_decay[0.0])
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == model.num_parameters()
    assert all(g["betas"] == (0.9, 0.95) for g in opt.param_groups)


# ---------------------------------------------------------------- training


@pytest.mark.slow
def test_training_lowers_loss_and_logs_on_schedule(stream: torch.Tensor) -> None:
    model, cfg = _model(), _cfg()
    seen: list[StepLog] = []
    logs, optimizer = train(model, BatchSampler(stream, cfg.batch_size, SEQ, seed=1), cfg, on_log=seen.append)
    assert [log.step for log in logs] == [0, 10, 20, 30, 40, 50, 59]
    assert seen == logs
    assert isinstance(optimizer, torch.optim.AdamW)
    assert logs[0].loss == pytest.approx(math.log(VOCAB), abs=0.15)
    assert logs[-1].loss < 0.7 * logs[0].loss
    assert all(log.lr == pytest.approx(lr_at(log.step, cfg)) for log in logs)
    assert all(log.tokens_per_s > 0 for log in logs)

    val_loss, n_tokens = evaluate_loss(model, _docs(60, seed=5), seq_len=SEQ, batch_size=8)
    assert val_loss < 0.7 * math.log(VOCAB)
    assert n_tokens == sum(len(d) for d in _docs(60, seed=5)) - 1


@pytest.mark.slow
def test_training_is_deterministic(stream: torch.Tensor) -> None:
    cfg = _cfg(steps=12, log_every=1)
    runs = []
    for _ in range(2):
        logs, _ = train(_model(seed=4), BatchSampler(stream, cfg.batch_size, SEQ, seed=2), cfg)
        runs.append([log.loss for log in logs])
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 1


class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_resume_from_checkpoint_continues_the_same_run(stream: torch.Tensor, tmp_path: Path) -> None:
    cfg = _cfg(steps=16, log_every=1)
    straight, _ = train(_model(seed=4), BatchSampler(stream, cfg.batch_size, SEQ, seed=2), cfg)

    model = _model(seed=4)
    optimizer = make_optimizer(model, cfg)
    sampler = BatchSampler(stream, cfg.batch_size, SEQ, seed=2)
    first_half: list[StepLog] = []

    def stop_after_step_7(log: StepLog) -> None:
        first_half.append(log)
        if log.step == 7:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(model, sampler, cfg, on_log=stop_after_step_7, optimizer=optimizer)
    save_checkpoint(tmp_path / "ckpt", model, {"step": 8, "sampler": sampler.state_dict()})

    restored, state = load_checkpoint(tmp_path / "ckpt")
    new_opt = make_optimizer(restored, cfg)
    new_opt.load_state_dict(optimizer.state_dict())
    new_sampler = BatchSampler(stream, cfg.batch_size, SEQ, seed=0)
    new_sampler.load_state_dict(state["sampler"])
    second_half, _ = train(restored, new_sampler, cfg, start_step=state["step"], optimizer=new_opt)

    assert [log.step for log in second_half] == list(range(8, 16))
    assert [log.loss for log in first_half + second_half] == [log.loss for log in straight]


def test_nan_loss_raises_naming_the_step(stream: torch.Tensor) -> None:
    model = _model()
    with torch.no_grad():
        model.blocks[0].mlp.up.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="step 0"):
        train(model, BatchSampler(stream, 8, SEQ, seed=1), _cfg(steps=5))


def test_infinite_learning_rate_is_caught_at_the_next_step(stream: torch.Tensor) -> None:
    cfg = _cfg(steps=5, learning_rate=float("inf"), warmup_steps=0, grad_clip=0.0)
    with pytest.raises(FloatingPointError, match="step 1"):
        train(_model(), BatchSampler(stream, 8, SEQ, seed=1), cfg)


def test_train_rejects_mismatched_sampler(stream: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="sampler"):
        train(_model(), BatchSampler(stream, 4, SEQ, seed=1), _cfg(steps=2))


# ---------------------------------------------------------------- evaluation


def test_evaluate_loss_scores_each_token_once() -> None:
    model = _model(seed=3).eval()
    docs = _docs(3, seed=11)
    flat = [t for d in docs for t in d]
    seq = 8
    loss, n = evaluate_loss(model, docs, seq_len=seq, batch_size=2)
    assert n == len(flat) - 1

    # Reference: score each non-overlapping window separately and average per token.
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(flat) - 1, seq):
            window = flat[start : start + seq + 1]
            x, y = torch.tensor([window[:-1]]), torch.tensor([window[1:]])
            _, window_loss = model(x, y)
            total += window_loss.item() * y.numel()
    assert loss == pytest.approx(total / n, rel=1e-5)

    capped, n_capped = evaluate_loss(model, docs, seq_len=seq, batch_size=2, max_tokens=20)
    assert n_capped == 20
    with torch.no_grad():
        _, first = model(torch.tensor([flat[:8], flat[8:16]]), torch.tensor([flat[1:9], flat[9:17]]))
        _, rest = model(torch.tensor([flat[16:20]]), torch.tensor([flat[17:21]]))
    assert capped == pytest.approx((first.item() * 16 + rest.item() * 4) / 20, rel=1e-5)
    assert not model.training  # mode restored


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_gives_identical_logits(tmp_path: Path) -> None:
    model = _model(seed=8)
    with torch.no_grad():
        model.norm.weight.mul_(1.5)  # make sure non-default parameters survive too
    target = tmp_path / "ckpts" / "latest"
    save_checkpoint(target, model, {"step": 42, "note": "hi"})
    assert sorted(p.name for p in target.iterdir()) == ["model.safetensors", "state.json"]

    loaded, state = load_checkpoint(target)
    assert state["step"] == 42 and state["note"] == "hi"
    assert state["model_config"] == config_to_dict(model.config)
    idx = torch.randint(0, VOCAB, (2, SEQ), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.eval()(idx)[0], loaded(idx)[0])


def test_a_checkpoint_of_another_vocabulary_is_refused(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ckpt", _model(), {"step": 1})
    model, state = load_checkpoint_for(tmp_path / "ckpt", VOCAB, "tok.json")
    assert model.config.vocab_size == VOCAB and state["step"] == 1
    with pytest.raises(ValueError, match=f"vocabulary of {VOCAB} tokens, the tokenizer tok.json has {VOCAB + 1}"):
        load_checkpoint_for(tmp_path / "ckpt", VOCAB + 1, "tok.json")


def test_checkpoint_overwrite_is_clean(tmp_path: Path) -> None:
    target = tmp_path / "latest"
    save_checkpoint(target, _model(seed=1), {"step": 1})
    newer = _model(seed=2)
    save_checkpoint(target, newer, {"step": 2})
    loaded, state = load_checkpoint(target)
    assert state["step"] == 2
    assert torch.equal(loaded.embed.weight, newer.embed.weight)
    assert [p.name for p in tmp_path.iterdir()] == ["latest"]  # no temp or old directories left


def test_checkpoint_with_unserialisable_state_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "latest", _model(), {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_load_checkpoint_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        load_checkpoint(missing)

    target = tmp_path / "ckpt"
    save_checkpoint(target, _model(), {"step": 0})
    weights = target / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="model.safetensors"):
        load_checkpoint(target)

    save_checkpoint(target, _model(), {"step": 0})
    (target / "state.json").write_text("{truncated")
    with pytest.raises(ValueError, match="state.json"):
        load_checkpoint(target)

    (target / "state.json").unlink()
    with pytest.raises(FileNotFoundError, match="state.json"):
        load_checkpoint(target)


@pytest.mark.slow
def test_on_step_end_runs_after_every_step_with_the_optimizer(stream: torch.Tensor) -> None:
    cfg = _cfg(steps=6, log_every=1)
    calls: list[tuple[int, int]] = []
    sampler = BatchSampler(stream, cfg.batch_size, SEQ, seed=1)
    _, optimizer = train(_model(), sampler, cfg, start_step=2,
                         on_step_end=lambda done, opt: calls.append((done, sampler.position)))
    # steps_done counts from the start of the run; the sampler has handed out exactly
    # the batches of this call, so (steps_done - start_step) == sampler.position here.
    assert calls == [(3, 1), (4, 2), (5, 3), (6, 4)]
    assert optimizer is not None
