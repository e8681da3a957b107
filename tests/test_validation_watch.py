"""Pretraining that scores the validation split: the best weights are kept, the run stops when it stops
improving, and a resumed run ends with the same checkpoint as an unbroken one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from tasks.train import pretrain as pretrain_stage
from tasks.train.validation_watch import ValidationWatch
from test_resume import _cfg, _run, _workdir


def _with_val(root: Path) -> Path:
    """The tiny work directory of test_resume, plus a validation split unlike the training text."""
    (root / "tokens" / "val").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    docs = [[0, *rng.integers(16, 280, 40).tolist()] for _ in range(6)]
    pq.write_table(pa.table({"tokens": pa.array(docs, type=pa.list_(pa.uint16()))}), root / "tokens" / "val" / "v.parquet")
    return root


class _FakeModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))


def test_the_watch_keeps_the_best_and_counts_the_patience(monkeypatch: pytest.MonkeyPatch) -> None:
    losses = iter([3.0, 2.0, 2.5, 2.4, 1.9, 2.2, 2.3])
    monkeypatch.setattr("tasks.train.evaluate.bits_per_byte", lambda *a, **k: {"val_loss": next(losses)})
    watch = ValidationWatch(every=10, patience=2, max_tokens=100, val_docs=[], byte_lengths=torch.zeros(1))
    model = _FakeModel()
    stops = []
    for step in (10, 20, 30, 40, 50, 60, 70):
        with torch.no_grad():
            model.w.fill_(step)
        stops.append(watch.score(model, step))
    assert stops == [False, False, False, True, False, False, True]  # patience 2: two scores without a new best
    watch.finish(model, 70, planned_steps=100)
    assert watch.stopped_early
    assert (watch.best_step, watch.best_loss) == (50, 1.9)
    assert float(watch.best_weights["w"]) == 50.0
    assert watch.due(80) and not watch.due(75) and not watch.due(70)


def test_the_base_checkpoint_holds_the_best_weights(tmp_path: Path) -> None:
    root = _with_val(_workdir(tmp_path / "run"))
    result = _run(root, _cfg(steps=12, eval_every=3, eval_tokens=200, learning_rate=0.05))
    metrics = result["metrics"]
    state = json.loads((root / "checkpoints" / "base.train" / "state.json").read_text())
    scores = state["validation"]["scores"]
    assert [s[0] for s in scores] == [3, 6, 9, 12]
    best = min(scores, key=lambda s: s[1])
    assert metrics["best_step"] == best[0] and metrics["validation_scores"] == 4
    saved = load_file(root / "checkpoints" / "base" / "model.safetensors")
    kept = load_file(root / "checkpoints" / "base.train" / "best.safetensors")
    assert all(torch.equal(saved[k], kept[k]) for k in saved)


def test_patience_stops_the_run_and_a_resume_ends_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _cfg(steps=40, eval_every=2, eval_tokens=200, patience=2, learning_rate=0.3, checkpoint_every=4)
    unbroken = _with_val(_workdir(tmp_path / "unbroken"))
    metrics = _run(unbroken, config)["metrics"]
    assert metrics["stopped_early"] and metrics["steps"] < 40
    stopped_at = metrics["steps"]

    # The same run killed after its state at step 4 was saved, then resumed.
    broken = _with_val(_workdir(tmp_path / "broken"))
    real_after_step = pretrain_stage.PretrainRun.after_step

    class _Kill(Exception):
        pass

    def killing_after_step(self, steps_done, optimizer):
        real_after_step(self, steps_done, optimizer)
        if steps_done == 5:
            raise _Kill

    monkeypatch.setattr(pretrain_stage.PretrainRun, "after_step", killing_after_step)
    with pytest.raises(_Kill):
        _run(broken, config)
    monkeypatch.setattr(pretrain_stage.PretrainRun, "after_step", real_after_step)
    resumed = _run(broken, config, resume=True)["metrics"]
    assert resumed["steps"] == stopped_at and resumed["best_step"] == metrics["best_step"]
    a = load_file(unbroken / "checkpoints" / "base" / "model.safetensors")
    b = load_file(broken / "checkpoints" / "base" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Resuming a run that already stopped trains nothing more.
    again = _run(broken, config, resume=True)["metrics"]
    assert again["steps"] == stopped_at and again["stopped_early"]


def test_eval_every_without_a_validation_split_is_a_clear_error(tmp_path: Path) -> None:
    root = _workdir(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="pretrain.eval_every needs the validation split"):
        _run(root, _cfg(eval_every=3))

