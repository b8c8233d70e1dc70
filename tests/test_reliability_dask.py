"""Dying workers and a lost scheduler on a real Dask LocalCluster (issue 7).

A worker killed mid-task is covered by ``tests/test_search_dask.py`` (the
candidate re-runs elsewhere). Here the scheduler goes away mid-search: the
search stops with :class:`SchedulerLost` (one clear line in the CLI), the run
is ``interrupted``, and a resume on a new cluster completes it with every
candidate stored once, equal to an uninterrupted run with the same seed.
"""

from __future__ import annotations

import pytest

distributed = pytest.importorskip("distributed")

from symloss.harness.search.evaluate import Budget  # noqa: E402
from symloss.harness.search.executors import DaskExecutor, SchedulerLost  # noqa: E402
from symloss.harness.search.runner import SearchConfig, search  # noqa: E402
from symloss.harness.search.store import RunStore  # noqa: E402

BUDGET = Budget(dataset="digits", steps=20, batch_size=64)
CONFIG = SearchConfig("taylorglo", generations=2, population=5, filter="none", budget=BUDGET,
                      seed=6)


def _cluster():
    return distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                    host="127.0.0.1", dashboard_address=None, silence_logs=50)


def _table(store: RunStore, run_id: str) -> list[tuple]:
    return [(r.generation, r.idx, r.status, r.params, r.fitness)
            for r in store.candidates(run_id)]


@pytest.mark.slow
def test_a_lost_scheduler_stops_the_search_and_resume_finishes_it(tmp_path):
    with RunStore.open(tmp_path / "whole.sqlite") as whole:
        expected = _table(whole, search(CONFIG, store=whole))

    cluster = _cluster()
    executor = DaskExecutor(cluster.scheduler_address)
    lost: list[int] = []

    def lose_the_scheduler(record) -> None:
        if not lost:
            lost.append(record.idx)
            cluster.close()  # the scheduler (and its worker) go away mid-generation

    with RunStore.open(tmp_path / "runs.sqlite") as store:
        try:
            with pytest.raises(SchedulerLost, match="lost the Dask scheduler"):
                search(CONFIG, store=store, executor=executor, on_result=lose_the_scheduler)
        finally:
            executor.close()
        run_id = store.runs()[0].run_id
        assert store.run(run_id).status == "interrupted"
        assert 1 <= len(store.candidates(run_id)) < 10
        assert store.integrity_check() == "ok"

        with _cluster() as again:  # the scheduler is back (at a new address)
            executor = DaskExecutor(again.scheduler_address)
            try:
                search(CONFIG, store=store, executor=executor, run_id=run_id, resume=True)
            finally:
                executor.close()
        assert store.run(run_id).status == "searched"
        assert _table(store, run_id) == expected, "each candidate once, as if never lost"
