"""Progress lines for a person: at least one every ~10 s while a phase advances, each with an ETA."""

from __future__ import annotations

from tasks.progress import Progress, format_duration, phase


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_durations_read_like_a_person_writes_them() -> None:
    assert [format_duration(s) for s in (0, 9.6, 75, 3600 + 125)] == ["0s", "10s", "1m15s", "1h02m"]


def test_a_line_at_least_every_interval_with_share_and_eta() -> None:
    clock, lines, shares = _Clock(), [], []
    progress = Progress("sft", lines.append, every_s=10.0, terminal=False, on_fraction=shares.append, clock=clock)
    advance = phase(progress, "training", 100)
    assert lines == ["sft: training: 100 steps"]
    for step in range(1, 101):
        clock.now += 0.5  # half a second a step: a line every 20 steps
        advance(step, loss=2.0 - step / 100, tokens_per_s=10_522.2)
    progress_lines = [line for line in lines if "/100 steps" in line]
    assert len(progress_lines) == 5
    assert progress_lines[0] == "sft: training: 20/100 steps (20%), loss 1.8, tokens_per_s 10,522, 10s so far, ETA 40s"
    assert shares[:2] == [0.2, 0.4]
    progress.finish()
    assert lines[-1] == "sft: training: done, 100 steps in 50s" and shares[-1] == 1.0
    progress.finish()  # nothing more to say
    assert lines[-1] == "sft: training: done, 100 steps in 50s"


def test_a_time_budget_sets_the_share_and_the_eta() -> None:
    clock, lines = _Clock(), []
    progress = Progress("pretrain", lines.append, terminal=False, clock=clock)
    advance = phase(progress, "training", 1_000_000, budget_s=95)
    assert lines == ["pretrain: training: 1m35s budget (at most 1,000,000 steps)"]
    clock.now = 19
    advance(200)
    assert lines[-1] == "pretrain: training: 200/1,000,000 steps (20%), 19s so far, ETA 1m16s"


def test_a_new_phase_closes_the_last_one_and_silence_never_lasts() -> None:
    clock, lines = _Clock(), []
    progress = Progress("rl", lines.append, terminal=False, clock=clock)
    advance = phase(progress, "pass@k before", 64, "problem")
    for done in range(16, 65, 16):
        clock.now += 12  # each batch of problems takes longer than the interval: every one gets a line
        advance(done)
    assert sum("/64 problems" in line for line in lines) == 4
    phase(progress, "training", 10)
    assert lines[-2] == "rl: pass@k before: done, 64 problems in 48s" and lines[-1] == "rl: training: 10 steps"


def test_no_progress_object_means_no_callback() -> None:
    assert phase(None, "training", 10) is None


def test_a_resumed_phase_counts_only_its_own_pace_and_an_error_is_not_done() -> None:
    clock, lines, shares = _Clock(), [], []
    progress = Progress("pretrain", lines.append, terminal=False, on_fraction=shares.append, clock=clock)
    advance = phase(progress, "training", 1000, initial=900)
    clock.now = 10
    advance(950)  # 50 steps in 10 s: 50 left take 10 s more, not 1 s
    assert lines[-1] == "pretrain: training: 950/1,000 steps (95%), 10s so far, ETA 10s"
    progress.finish(ok=False)
    assert lines[-1] == "pretrain: training: stopped by an error at 950/1,000 steps after 10s"
    assert 1.0 not in shares
