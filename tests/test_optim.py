"""Muon + AdamW optimizer and the warmup-stable-decay schedule (model/muon.py, model/optim.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from model.gpt import GPT, GPTConfig
from model.muon import MuonAdamW, orthogonalize
from model.optim import (
    LrSchedule,
    OptimizerSettings,
    TrainingClock,
    apply_lr,
    lr_at,
    make_optimizer,
    wsd_multiplier,
)
from model.train import BatchSampler, TrainConfig, pack_documents, train

VOCAB = 64
SEQ = 32
MUON = OptimizerSettings(kind="muon", schedule="wsd", warmdown_frac=0.5, muon_lr=0.02)


def _docs(n: int = 300, seed: int = 0) -> list[list[int]]:
    """Arithmetic progressions mod 63 after a BOS: learnable, so loss can fall far."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n):
        start, step, length = rng.integers(0, 63), rng.integers(1, 4), rng.integers(8, 40)
        docs.append([0] + [1 + int((start + i * step) % 63) for i in range(length)])
    return docs


def _model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, n_layer=2, n_head=2, n_embd=64, seq_len=SEQ))


def _sampler() -> BatchSampler:
    return BatchSampler(pack_documents(_docs(), SEQ), batch_size=8, seq_len=SEQ, seed=3)


# ---------------------------------------------------------------- Newton-Schulz


@pytest.mark.parametrize("shape", [(64, 32), (32, 96), (48, 48)])
def test_orthogonalize_flattens_the_spectrum_and_keeps_the_directions(shape: tuple[int, int]) -> None:
    torch.manual_seed(0)
    # An ill-conditioned matrix: singular values spread over two orders of magnitude.
    u, _, vh = torch.linalg.svd(torch.randn(*shape), full_matrices=False)
    s = torch.logspace(0, -2, min(shape))
    g = u @ torch.diag(s) @ vh
    o = orthogonalize(g, steps=5)
    assert o.shape == g.shape and o.dtype == g.dtype
    sv = torch.linalg.svdvals(o)
    # Not exactly 1: the quintic trades accuracy for speed, leaving singular values
    # in a band around 1; what matters is that none dominates and none is left near 0
    # (the smallest input one is 100x below the largest, which 5 steps still lift).
    assert sv.max() < 1.3 and sv.min() > 0.3, sv
    # Same singular directions as the exact polar factor U V^T.
    polar = u @ vh
    cos = (o * polar).sum() / (o.norm() * polar.norm())
    assert cos > 0.9


def test_orthogonalize_rejects_non_matrices() -> None:
    with pytest.raises(ValueError, match="matrix"):
        orthogonalize(torch.ones(3))


def test_muon_groups_take_only_matrices_and_known_kinds() -> None:
    with pytest.raises(ValueError, match="matrices"):
        MuonAdamW([{"params": [torch.nn.Parameter(torch.ones(4))], "kind": "muon"}])
    with pytest.raises(ValueError, match="kind"):
        MuonAdamW([{"params": [torch.nn.Parameter(torch.ones(4))], "kind": "sgd"}])


# ---------------------------------------------------------------- make_optimizer


def test_default_optimizer_is_still_adamw_with_the_cosine_schedule() -> None:
    model = _model()
    cfg = TrainConfig(steps=50, batch_size=8, seq_len=SEQ, warmup_steps=5)
    opt = make_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.AdamW) and not hasattr(opt, "lr_schedule")
    assert apply_lr(opt, 30, cfg) == lr_at(30, cfg)


def test_muon_settings_split_matrices_from_embeddings_head_and_gains() -> None:
    model = _model()
    cfg = TrainConfig(steps=50, batch_size=8, seq_len=SEQ, learning_rate=1e-3, warmup_steps=0)
    opt = make_optimizer(model, cfg, OptimizerSettings(kind="muon", schedule="wsd", muon_lr=0.05, head_lr_scale=0.5))
    assert isinstance(opt, MuonAdamW)
    by_kind: dict[str, list[torch.Tensor]] = {"muon": [], "adamw": []}
    for g in opt.param_groups:
        by_kind[g["kind"]].extend(g["params"])
    muon_ids = {id(p) for p in by_kind["muon"]}
    assert id(model.embed.weight) not in muon_ids and id(model.lm_head.weight) not in muon_ids
    assert all(p.dim() == 2 for p in by_kind["muon"])
    assert len(muon_ids) == 2 * 5  # qkv, proj, gate, up, down per block
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == model.num_parameters()
    apply_lr(opt, 0, cfg)  # warmup 0, constant phase: every group at its own peak
    lrs = {("muon" if g["kind"] == "muon" else id(g["params"][0])): g["lr"] for g in opt.param_groups}
    assert lrs["muon"] == pytest.approx(0.05)
    assert lrs[id(model.lm_head.weight)] == pytest.approx(0.5e-3)
    assert lrs[id(model.embed.weight)] == pytest.approx(1e-3)


@pytest.mark.slow
def test_a_tiny_model_learns_with_muon() -> None:
    model = _model()
    cfg = TrainConfig(steps=40, batch_size=8, seq_len=SEQ, learning_rate=3e-3, warmup_steps=5, log_every=10)
    logs, _ = train(model, _sampler(), cfg, optimizer=make_optimizer(model, cfg, MUON))
    assert logs[0].loss > 3.5  # ~ln(64) at init
    assert logs[-1].loss < 0.6 * logs[0].loss


@pytest.mark.slow
def test_state_dict_round_trip_resumes_bitwise() -> None:
    cfg = TrainConfig(steps=8, batch_size=8, seq_len=SEQ, learning_rate=3e-3, warmup_steps=3, log_every=1)
    straight = _model()
    train(straight, _sampler(), cfg, optimizer=make_optimizer(straight, cfg, MUON))

    first = _model()
    sampler = _sampler()
    stop_at = 4
    saved: dict[str, bytes] = {}

    def save_at(steps_done: int, optimizer: torch.optim.Optimizer) -> None:
        if steps_done == stop_at:
            for name, obj in (("model", first.state_dict()), ("optim", optimizer.state_dict())):
                buf = io.BytesIO()
                torch.save(obj, buf)
                saved[name] = buf.getvalue()
            raise KeyboardInterrupt  # the "crash" right after the checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(first, sampler, cfg, optimizer=make_optimizer(first, cfg, MUON), on_step_end=save_at)

    resumed = _model(seed=99)  # different init: everything must come from the saved state
    resumed.load_state_dict(torch.load(io.BytesIO(saved["model"]), weights_only=True))
    opt = make_optimizer(resumed, cfg, MUON)
    opt.load_state_dict(torch.load(io.BytesIO(saved["optim"]), weights_only=True))
    train(resumed, sampler, cfg, start_step=stop_at, optimizer=opt)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


# ---------------------------------------------------------------- schedule


def test_wsd_shape_warmup_flat_then_linear_to_the_floor() -> None:
    m = [wsd_multiplier(p / 100, step=p, warmup_steps=10, warmdown_frac=0.4, final_lr_ratio=0.0) for p in range(101)]
    assert m[0] == pytest.approx(0.1) and m[9] == pytest.approx(1.0)  # linear warmup over 10 steps
    assert all(x == 1.0 for x in m[10:61])  # flat until 60 % of the run
    assert m[80] == pytest.approx(0.5) and m[100] == 0.0  # linear warmdown to 0 at the end
    assert all(a >= b for a, b in zip(m[60:], m[61:], strict=False))
    assert wsd_multiplier(1.0, 500, 10, 0.4, 0.1) == pytest.approx(0.1)


class _FakeNow:
    """A clock that moves only when told to (`set`) or by `per_read` on every reading."""

    def __init__(self, start: float = 0.0, per_read: float = 0.0) -> None:
        self.value, self.per_read, self.reads = start, per_read, 0

    def set(self, value: float) -> None:
        self.value = value

    def __call__(self) -> float:
        value = self.value
        self.value += self.per_read
        self.reads += 1
        return value


def test_time_budget_drives_progress_and_reports_when_spent() -> None:
    cfg = TrainConfig(steps=1_000_000, batch_size=1, seq_len=SEQ, learning_rate=1.0, warmup_steps=0)
    now = _FakeNow(start=50.0)
    clock = TrainingClock(now=now)
    schedule = LrSchedule(OptimizerSettings(schedule="wsd", warmdown_frac=1.0, time_budget_s=0.2), clock)
    clock.start()
    assert schedule.lr(0, cfg) == 1.0 and not schedule.budget_spent()
    now.set(50.1)
    clock.tick()
    assert schedule.lr(1, cfg) == pytest.approx(0.5)  # halfway by time, not by steps
    now.set(50.25)
    clock.tick()
    assert schedule.budget_spent() and schedule.lr(2, cfg) == 0.0
    with pytest.raises(ValueError, match="wsd"):
        OptimizerSettings(time_budget_s=10.0)


def test_training_clock_carries_earlier_segments_but_not_the_gap_between_them() -> None:
    now = _FakeNow(start=10.0)
    first = TrainingClock(now=now)
    with pytest.raises(RuntimeError, match="before start"):
        first.tick()
    first.start()
    now.set(13.0)
    assert first.tick() == 3.0 and first.state_dict() == {"seconds": 3.0}
    with pytest.raises(RuntimeError, match="before it starts"):
        first.load_state_dict({"seconds": 1.0})

    resumed = TrainingClock(now=now)
    resumed.load_state_dict(first.state_dict())
    now.set(500.0)  # the crash and the restart took a while: not training time
    resumed.start()
    assert resumed.seconds == 3.0
    now.set(501.5)
    assert resumed.tick() == 4.5
    # Inside a process group the loop hands every rank rank 0's reading.
    now.set(502.0)
    assert resumed.tick(agree=lambda mine: 42.0) == 42.0 and resumed.seconds == 42.0
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="seconds"):
            TrainingClock().load_state_dict({"seconds": bad})


def _budgeted(model: GPT, cfg: TrainConfig, now: _FakeNow, budget: float) -> torch.optim.Optimizer:
    settings = OptimizerSettings(schedule="wsd", warmdown_frac=0.5, time_budget_s=budget)
    return make_optimizer(model, cfg, settings, TrainingClock(now=now))


def test_train_stops_after_the_step_that_spends_the_budget() -> None:
    cfg = TrainConfig(steps=1000, batch_size=8, seq_len=SEQ, warmup_steps=1, log_every=100)
    model = _model()
    optimizer = _budgeted(model, cfg, _FakeNow(per_read=1.0), budget=5.0)  # every step takes 1 s
    ends: list[int] = []
    logs, _ = train(model, _sampler(), cfg, optimizer=optimizer, on_step_end=lambda done, _opt: ends.append(done))
    assert ends == [1, 2, 3, 4, 5]
    assert [log.step for log in logs] == [0, 4]  # the last step is logged though 4 % log_every != 0
    assert logs[-1].lr < logs[0].lr  # the warmdown ran by time, not by the 1000 steps


class _Stop(Exception):
    pass


def test_budgeted_training_resumes_with_the_time_left_and_the_same_schedule() -> None:
    cfg = TrainConfig(steps=1000, batch_size=8, seq_len=SEQ, warmup_steps=1, log_every=1)
    straight_model = _model()
    straight, _ = train(straight_model, _sampler(), cfg, optimizer=_budgeted(straight_model, cfg, _FakeNow(per_read=1.0), 8.0))
    assert len(straight) == 8

    model, sampler = _model(), _sampler()
    optimizer = _budgeted(model, cfg, _FakeNow(per_read=1.0), 8.0)
    saved: dict = {}

    def save_then_stop(done: int, opt: torch.optim.Optimizer) -> None:
        if done == 3:
            buffer = io.BytesIO()
            torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
            saved.update(bytes=buffer.getvalue(), sampler=sampler.state_dict(),
                         clock=opt.lr_schedule.clock.state_dict())  # type: ignore[attr-defined]
            raise _Stop

    with pytest.raises(_Stop):
        train(model, sampler, cfg, optimizer=optimizer, on_step_end=save_then_stop)
    assert saved["clock"] == {"seconds": 3.0}

    fresh = _model(seed=9)
    fresh_opt = _budgeted(fresh, cfg, _FakeNow(start=1e6, per_read=1.0), 8.0)
    state = torch.load(io.BytesIO(saved["bytes"]), weights_only=True)
    fresh.load_state_dict(state["model"])
    fresh_opt.load_state_dict(state["opt"])
    fresh_opt.lr_schedule.clock.load_state_dict(saved["clock"])  # type: ignore[attr-defined]
    fresh_sampler = _sampler()
    fresh_sampler.load_state_dict(saved["sampler"])
    resumed, _ = train(fresh, fresh_sampler, cfg, optimizer=fresh_opt, start_step=3)

    assert [log.step for log in resumed] == [3, 4, 5, 6, 7]  # 5 s were left of 8
    assert [(log.loss, log.lr) for log in resumed] == [(log.loss, log.lr) for log in straight[3:]]
    for (name, a), (_, b) in zip(straight_model.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # A clock resumed with the budget already spent trains no step at all.
    spent = _budgeted(fresh, cfg, _FakeNow(per_read=1.0), 8.0)
    spent.lr_schedule.clock.load_state_dict({"seconds": 8.0})  # type: ignore[attr-defined]
    assert train(fresh, fresh_sampler, cfg, optimizer=spent, start_step=8) == ([], spent)


def test_train_refuses_a_clock_other_than_the_schedules() -> None:
    cfg = TrainConfig(steps=2, batch_size=8, seq_len=SEQ)
    model = _model()
    optimizer = _budgeted(model, cfg, _FakeNow(), 5.0)
    with pytest.raises(ValueError, match="same TrainingClock"):
        train(model, _sampler(), cfg, optimizer=optimizer, clock=TrainingClock())
