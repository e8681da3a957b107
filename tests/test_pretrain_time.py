"""The pretrain stage by the clock: training states saved by time (on by default), and time budgets that resume
with the time they have left. A fake clock stands in for the wall clock, so nothing here waits."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from llmforge.config import PretrainConfig
from model.checkpoint import recover_interrupted_save
from model.optim import TrainingClock
from tasks.train import pretrain as pretrain_stage
from test_resume import _cfg, _run, _workdir


class _Interrupt(Exception):
    pass


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    return _workdir(tmp_path / "run")


def _fake_clock(monkeypatch: pytest.MonkeyPatch, seconds_per_step: float, start: float = 0.0) -> None:
    """Every TrainingClock the stage makes reads a clock that moves `seconds_per_step` per reading.

    The loop reads it once when it starts and once after every step, so step k ends at k x seconds_per_step.
    """
    state = {"now": start}

    def now() -> float:
        value = state["now"]
        state["now"] += seconds_per_step
        return value

    monkeypatch.setattr(pretrain_stage, "TrainingClock", lambda: TrainingClock(now=now))


def _saved_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The steps at which the stage writes a training state, in order."""
    steps: list[int] = []
    real_save = pretrain_stage.save_training_state

    def recording_save(directory: Path, model: Any, optimizer: Any, state: dict[str, Any], **kwargs: Any) -> None:
        steps.append(state["step"])
        real_save(directory, model, optimizer, state, **kwargs)

    monkeypatch.setattr(pretrain_stage, "save_training_state", recording_save)
    return steps


def _weights(root: Path) -> dict[str, torch.Tensor]:
    return load_file(root / "checkpoints" / "base" / "model.safetensors")


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# ------------------------------------------------------- saves by time


def test_the_default_config_saves_every_ten_minutes_of_training(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert PretrainConfig().checkpoint_every == 0 and PretrainConfig().checkpoint_every_seconds == 600
    saved = _saved_steps(monkeypatch)
    _fake_clock(monkeypatch, seconds_per_step=250.0)
    seen_on_disk: list[int] = []

    def look(log: Any) -> None:
        state_file = workdir / "checkpoints" / "base.train" / "state.json"
        if state_file.exists():
            seen_on_disk.append(json.loads(state_file.read_text())["step"])

    _run(workdir, _cfg(checkpoint_every=0, checkpoint_every_seconds=PretrainConfig().checkpoint_every_seconds),
         on_log=look)
    # 600 s are up after step 3 (750 s), then 600 s after that save (step 6: 1500 s), ...; and at the end.
    assert saved == [3, 6, 9, 12]
    assert seen_on_disk[0] == 3  # a resumable state exists during the run, not only at its end
    state = json.loads((workdir / "checkpoints" / "base.train" / "state.json").read_text())
    assert state["step"] == 12 and state["train_seconds"] == 12 * 250.0


def test_saves_by_steps_and_by_time_share_one_window(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved = _saved_steps(monkeypatch)
    _fake_clock(monkeypatch, seconds_per_step=1.0)
    _run(workdir, _cfg(checkpoint_every=5, checkpoint_every_seconds=3))
    # Time saves at 3 and 6 s; the step save at 5 restarts the 3 s window, so the next time save is at 8, then 11.
    assert saved == [3, 5, 8, 10, 12]


def test_saves_by_time_do_not_change_the_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    quiet, busy = _workdir(tmp_path / "quiet"), _workdir(tmp_path / "busy")
    _run(quiet, _cfg(checkpoint_every=0, checkpoint_every_seconds=0))  # the state only at the end
    saved = _saved_steps(monkeypatch)
    _fake_clock(monkeypatch, seconds_per_step=1.0)
    _run(busy, _cfg(checkpoint_every=0, checkpoint_every_seconds=1))  # a state after every step
    assert saved == list(range(1, 13))
    assert (quiet / "checkpoints" / "base" / "model.safetensors").read_bytes() == (
        busy / "checkpoints" / "base" / "model.safetensors").read_bytes()


def test_checkpoint_every_seconds_is_ranged_and_free_to_change_on_resume(workdir: Path) -> None:
    for bad in (-1, 86_401):
        with pytest.raises(ValueError, match="checkpoint_every_seconds"):
            PretrainConfig(checkpoint_every_seconds=bad)
    _run(workdir, _cfg(steps=3, checkpoint_every_seconds=600))
    _run(workdir, _cfg(steps=3, checkpoint_every_seconds=5), resume=True)


def test_a_state_saved_before_the_clock_was_recorded_still_resumes(workdir: Path) -> None:
    _run(workdir, _cfg(steps=4))
    state_file = workdir / "checkpoints" / "base.train" / "state.json"
    state = json.loads(state_file.read_text())
    del state["train_seconds"]
    for new_setting in ("checkpoint_every_seconds", "time_budget_s"):
        del state["pretrain_config"][new_setting]
    state_file.write_text(json.dumps(state))
    result = _run(workdir, _cfg(steps=4), resume=True)
    assert result["metrics"]["resumed_from_step"] == 4


# ------------------------------------------------------- a kill during a save


def test_a_kill_between_the_two_renames_of_a_save_leaves_the_previous_state_usable(workdir: Path) -> None:
    _run(workdir, _cfg(steps=4))
    ckpts = workdir / "checkpoints"
    # What _swap_in leaves when killed after moving the old state aside and before moving the new one in.
    aside = ckpts / ".base.train.old-abc123"
    aside.mkdir()
    os.replace(ckpts / "base.train", aside / "base.train")
    unfinished = ckpts / ".base.train.tmp-def456"
    unfinished.mkdir()
    (unfinished / "model.safetensors").write_bytes(b"half a file")

    result = _run(workdir, _cfg(steps=4), resume=True)
    assert result["metrics"]["resumed_from_step"] == 4
    assert result["metrics"]["interrupted_save_cleanup"] == [
        f"put back {ckpts / 'base.train'} from .base.train.old-abc123, left by a save that was interrupted",
        "removed .base.train.old-abc123, left by a save that was interrupted",
        "removed .base.train.tmp-def456, left by a save that was interrupted",
    ]
    assert sorted(p.name for p in ckpts.iterdir()) == ["base", "base.train"]


def test_recovery_leaves_a_published_state_alone(tmp_path: Path) -> None:
    target = tmp_path / "base.train"
    target.mkdir()
    (target / "state.json").write_text('{"step": 2}')
    stale = tmp_path / ".base.train.old-x" / "base.train"
    stale.mkdir(parents=True)
    (stale / "state.json").write_text('{"step": 1}')
    assert recover_interrupted_save(target) == ["removed .base.train.old-x, left by a save that was interrupted"]
    assert json.loads((target / "state.json").read_text()) == {"step": 2}
    assert recover_interrupted_save(tmp_path / "absent" / "base.train") == []
    shutil.rmtree(target)
    assert recover_interrupted_save(target) == []  # nothing to put back: a fresh run


# ------------------------------------------------------- time budgets


def _budget_cfg(**overrides: Any) -> PretrainConfig:
    budgeted: dict[str, Any] = {"steps": 1000, "time_budget_s": 10, "checkpoint_every": 0, "checkpoint_every_seconds": 4}
    return _cfg(**{**budgeted, **overrides})


def test_a_budgeted_run_trains_until_its_time_is_spent(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved = _saved_steps(monkeypatch)
    _fake_clock(monkeypatch, seconds_per_step=1.0)
    result = _run(workdir, _budget_cfg())
    metrics = result["metrics"]
    assert metrics["steps"] == 10 and metrics["budget_seconds_spent"] == 10 and metrics["time_budget_s"] == 10
    assert metrics["tokens_seen"] == 10 * metrics["tokens_per_step"]
    assert saved == [4, 8, 10]
    lrs = [h["lr"] for h in result["history"]]
    assert [h["step"] for h in result["history"]] == list(range(10))
    # Warmup over 2 steps, the peak, then down linearly over the last 40 % of the 10 s (step k starts at k s).
    assert lrs == pytest.approx([3e-3 * m for m in (0.5, 1, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25)])
    base = json.loads((workdir / "checkpoints" / "base" / "state.json").read_text())
    assert base["step"] == 10


def test_a_budgeted_run_killed_half_way_resumes_with_the_time_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight_root, killed_root = _workdir(tmp_path / "straight"), _workdir(tmp_path / "killed")
    _fake_clock(monkeypatch, seconds_per_step=1.0)
    straight = _run(straight_root, _budget_cfg())

    def die_in_step_6(log: Any) -> None:
        if log.step == 5:
            raise _Interrupt

    _fake_clock(monkeypatch, seconds_per_step=1.0)
    with pytest.raises(_Interrupt):
        _run(killed_root, _budget_cfg(), on_log=die_in_step_6)
    state = json.loads((killed_root / "checkpoints" / "base.train" / "state.json").read_text())
    assert (state["step"], state["train_seconds"]) == (4, 4.0)  # the 5th step was never saved

    # The restart finds the clock elsewhere; only the 6 s the budget has left count.
    _fake_clock(monkeypatch, seconds_per_step=1.0, start=1e6)
    resumed = _run(killed_root, _budget_cfg(), resume=True)
    assert resumed["metrics"]["resumed_from_step"] == 4
    assert resumed["metrics"]["steps"] == 10 and resumed["metrics"]["budget_seconds_spent"] == 10
    assert [(h["step"], h["loss"], h["lr"]) for h in resumed["history"]] == [
        (h["step"], h["loss"], h["lr"]) for h in straight["history"]]
    _assert_same_weights(_weights(straight_root), _weights(killed_root))


def test_a_budget_is_part_of_what_a_resume_must_share(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_clock(monkeypatch, seconds_per_step=1.0)
    _run(workdir, _budget_cfg())
    with pytest.raises(ValueError, match="time_budget_s: saved 10.0, now 20.0"):
        _run(workdir, _budget_cfg(time_budget_s=20), resume=True)
    # Resumed after its budget was spent (killed while writing the base checkpoint): no step is trained again.
    again = _run(workdir, _budget_cfg(), resume=True)
    assert again["metrics"]["steps"] == 10 and again["metrics"]["resumed_from_step"] == 10
    with pytest.raises(ValueError, match="time_budget_s"):
        PretrainConfig(time_budget_s=0)
