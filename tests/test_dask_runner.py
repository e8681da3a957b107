"""The data stage's shard tasks on an existing Dask cluster give the same documents as the local process pool."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llmforge.config import DataConfig

# Starts a Dask cluster and runs the data stage twice (~30 s): CI only.
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _documents(workdir: Path) -> list[dict]:
    rows: list[dict] = []
    for path in sorted((workdir / "data" / "documents").glob("*.parquet")):
        rows += pq.read_table(path, columns=["id", "text"]).to_pylist()
    return rows


def test_dask_cluster_matches_process_pool(prefect_harness, tmp_path):
    distributed = pytest.importorskip("distributed")
    from flows.data import data_flow

    config = DataConfig(sample_pages=60, records_per_shard=40, max_workers=2)
    local = data_flow(workdir=str(tmp_path / "local"), config=config)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        on_dask = data_flow(
            workdir=str(tmp_path / "dask"),
            config=config.model_copy(update={"task_runner": "dask", "dask_address": cluster.scheduler_address}),
        )
    assert on_dask["status"] == local["status"] == "ran"
    assert on_dask["metrics"]["shards"] == local["metrics"]["shards"] > 1
    assert _documents(tmp_path / "dask") == _documents(tmp_path / "local") != []
