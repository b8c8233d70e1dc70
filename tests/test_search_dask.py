"""A search through a real Dask LocalCluster on loopback, with a worker killed mid-generation."""

from __future__ import annotations

import os
import signal

import pytest

distributed = pytest.importorskip("distributed")

from symloss.harness.search.evaluate import Budget  # noqa: E402
from symloss.harness.search.executors import DaskExecutor, SchedulerLost  # noqa: E402
from symloss.harness.search.runner import SearchConfig, search  # noqa: E402
from symloss.harness.search.store import RunStore  # noqa: E402

BUDGET = Budget(dataset="digits", steps=60, batch_size=64)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=40) as local:
        yield local


def test_search_through_dask_survives_a_killed_worker(cluster, tmp_path):
    executor = DaskExecutor(cluster.scheduler_address)
    pids = executor.client.run(os.getpid)
    killed: list[int] = []

    def kill_one_worker(record) -> None:
        # After the first result, kill a worker while others are still training.
        if not killed and record.worker not in ("", "cache"):
            victim = next(iter(pids.values()))
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    config = SearchConfig("taylorglo", generations=2, population=8, filter="none",
                          budget=BUDGET, seed=2)
    try:
        with RunStore.open(tmp_path / "runs.sqlite") as store:
            run_id = search(config, store=store, executor=executor, on_result=kill_one_worker)
            records = store.candidates(run_id)
            assert store.integrity_check() == "ok"
    finally:
        executor.close()
    assert killed, "a worker was killed mid-generation"
    assert [(r.generation, r.idx) for r in records] == [(g, i) for g in range(2)
                                                         for i in range(8)]
    assert all(r.status == "ok" for r in records), "the killed worker's candidates re-ran"
    assert len({r.worker for r in records}) >= 2


def test_an_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(SchedulerLost, match="cannot reach the Dask scheduler"):
        DaskExecutor("tcp://127.0.0.1:9", timeout=1.0)
