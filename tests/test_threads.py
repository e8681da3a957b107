"""The thread governor: torch's threads follow the cores other processes leave free."""

from __future__ import annotations

import torch

from model.threads import ThreadGovernor, busy_cpu_seconds, governor_for, threads_for


def test_threads_for_the_cores_left() -> None:
    assert threads_for(0.0, cores=2, max_threads=2) == 2
    assert threads_for(0.2, cores=2, max_threads=2) == 2  # a heartbeat costs no thread
    assert threads_for(0.6, cores=2, max_threads=2) == 1
    assert threads_for(2.0, cores=2, max_threads=2) == 1  # never below one
    assert threads_for(1.0, cores=8, max_threads=4) == 4  # never above the run's own setting
    assert threads_for(5.5, cores=8, max_threads=8) == 2


class _Machine:
    """A fake machine: other processes' and our CPU seconds, and a clock, moved by the test."""

    def __init__(self) -> None:
        self.now, self.others, self.own = 0.0, 0.0, 0.0

    def run(self, seconds: float, others_cores: float, own_cores: float) -> None:
        self.now += seconds
        self.others += others_cores * seconds
        self.own += own_cores * seconds


def test_the_governor_steps_down_under_load_and_back_up_after() -> None:
    machine, set_to, messages = _Machine(), [], []
    governor = ThreadGovernor(
        max_threads=2, cores=2, interval_s=3.0, report=messages.append,
        machine_seconds=lambda: machine.others + machine.own, own_seconds=lambda: machine.own,
        clock=lambda: machine.now, set_threads=set_to.append,
    )
    machine.run(3.0, others_cores=0.1, own_cores=1.9)
    assert governor.after_step(10) is None and governor.threads == 2
    machine.run(1.0, others_cores=2.0, own_cores=0.1)
    assert governor.after_step(11) is None  # not an interval yet
    machine.run(2.5, others_cores=2.0, own_cores=0.1)
    assert governor.after_step(12) is None  # one look says 1 thread: not confirmed yet
    machine.run(3.0, others_cores=0.1, own_cores=1.9)
    assert governor.after_step(13) is None and governor.pending is None  # a burst: forgotten
    machine.run(3.0, others_cores=2.0, own_cores=0.1)
    assert governor.after_step(14) is None
    machine.run(3.0, others_cores=2.0, own_cores=0.1)
    change = governor.after_step(15)
    assert change is not None and (change.threads_from, change.threads_to, change.step) == (2, 1, 15)
    assert set_to == [1] and "other processes used 2.0" in messages[-1]
    for step in (20, 21):
        machine.run(3.0, others_cores=0.0, own_cores=1.0)
        change = governor.after_step(step)
    assert change.threads_to == 2 and set_to == [1, 2]
    assert "done" in messages[-1]
    summary = governor.summary()
    assert summary["adaptive"] and [c["threads_to"] for c in summary["changes"]] == [1, 2]


def test_without_proc_stat_it_says_so_once_and_does_nothing() -> None:
    messages: list[str] = []
    governor = ThreadGovernor(max_threads=2, cores=2, report=messages.append, machine_seconds=lambda: None,
                              set_threads=lambda n: (_ for _ in ()).throw(AssertionError("must not change threads")))
    assert governor.after_step(1) is None
    assert len(messages) == 1 and "no /proc/stat" in messages[0]
    assert governor.summary()["adaptive"] is False


def test_a_real_busy_process_takes_a_thread_away(tmp_path) -> None:
    """On this machine: a process spinning on every core but one lowers the threads; restore() puts them back."""
    import multiprocessing
    import time

    if busy_cpu_seconds() is None:
        return  # not Linux: the unit tests above cover the logic
    assert busy_cpu_seconds(set()) == 0.0  # no core of ours: nobody's load counts
    before = torch.get_num_threads()
    governor = ThreadGovernor(max_threads=max(before, 2), cores=2, interval_s=0.5)
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(2)]
    for spinner in spinners:
        spinner.start()
    try:
        deadline = time.monotonic() + 10
        while not governor.changes and time.monotonic() < deadline:
            time.sleep(0.6)
            governor.after_step(1)
        assert governor.changes and governor.changes[0].threads_to == 1
    finally:
        stop.set()
        for spinner in spinners:
            spinner.join()
        governor.restore()
    assert torch.get_num_threads() == max(before, 2)
    torch.set_num_threads(before)


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def test_no_governor_on_an_accelerator_or_when_switched_off() -> None:
    assert governor_for("cpu", enabled=False) is None
    assert governor_for("meta", enabled=True) is None
    assert isinstance(governor_for("cpu", enabled=True), ThreadGovernor)


def test_the_pretrain_stage_records_what_the_governor_did(tmp_path, monkeypatch) -> None:
    """A machine that turns busy mid-run: the manifest's metrics name the change, and the threads are restored."""
    from tasks.train import pretrain as pretrain_stage
    from test_resume import _cfg, _run, _workdir

    machine = _Machine()
    set_to: list[int] = []

    def fake_governor(device, enabled, report=None):
        assert enabled and str(device) == "cpu"
        return ThreadGovernor(max_threads=2, cores=2, interval_s=1.0, report=report,
                              machine_seconds=lambda: machine.others + machine.own, own_seconds=lambda: machine.own,
                              clock=lambda: machine.now, set_threads=set_to.append)

    real_step_end = pretrain_stage.PretrainRun.after_step

    def after_step(self, steps_done, optimizer):  # the machine turns busy after step 3 (seen at 4, confirmed at 5)
        machine.run(1.0, others_cores=1.5 if steps_done >= 3 else 0.0, own_cores=1.0)
        real_step_end(self, steps_done, optimizer)

    monkeypatch.setattr(pretrain_stage, "governor_for", fake_governor)
    monkeypatch.setattr(pretrain_stage.PretrainRun, "after_step", after_step)
    workdir = _workdir(tmp_path / "run")
    metrics = _run(workdir, _cfg(steps=7))["metrics"]
    threads = metrics["threads"]
    assert threads["adaptive"] and [(c["threads_from"], c["threads_to"]) for c in threads["changes"]] == [(2, 1)]
    assert set_to == [1, 2]  # lowered under load, then put back when the run ended
