"""Training stages take the machine in turn: a Prefect global concurrency limit of one slot."""

from __future__ import annotations

import threading
import time

import pytest

from flows.common import ACCELERATOR_LIMIT, _ensure_limit, accelerator_slot


def _limit(name: str) -> int:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).limit


@pytest.mark.integration
def test_two_training_stages_at_once_run_one_after_the_other(prefect_harness) -> None:
    events: list[tuple[str, str]] = []
    first_inside = threading.Event()

    def stage(name: str, hold: float) -> None:
        with accelerator_slot(name):
            events.append((name, "in"))
            first_inside.set()
            time.sleep(hold)
            events.append((name, "out"))

    first = threading.Thread(target=stage, args=("pretrain", 2.0))
    first.start()
    assert first_inside.wait(60)
    second = threading.Thread(target=stage, args=("sft", 0.0))
    second.start()
    first.join(120)
    second.join(120)
    assert events == [("pretrain", "in"), ("pretrain", "out"), ("sft", "in"), ("sft", "out")]
    assert _limit(ACCELERATOR_LIMIT) == 1  # created on first use with one slot


@pytest.mark.integration
def test_a_limit_someone_resized_keeps_its_size(prefect_harness) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name="llmforge-test-gpus", limit=4))
    _ensure_limit("llmforge-test-gpus", default_limit=1)
    assert _limit("llmforge-test-gpus") == 4
