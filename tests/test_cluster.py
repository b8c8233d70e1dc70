"""Batched chunks on a real Dask LocalCluster (issue 15): same fitness as in-process and
``--workers``, a dying worker costs only the chunk it was training, resume pays nothing twice.

Each chunk a worker trains is logged by :func:`_logged_chunk` (start and end, one line
each, to a file per process), so the tests count what the workers really ran.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import signal
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from symloss.cli import main  # noqa: E402
from symloss.harness.search import runner  # noqa: E402
from symloss.harness.search.evaluate import Budget, task_threads  # noqa: E402
from symloss.harness.search.executors import (  # noqa: E402
    DaskExecutor,
    InlineExecutor,
    LocalExecutor,
    spread,
)
from symloss.harness.search.runner import SearchConfig, search  # noqa: E402
from symloss.harness.search.store import RunStore  # noqa: E402
from tests import test_search_dask  # noqa: E402

BUDGET = Budget(dataset="digits", steps=60, batch_size=64)
CONFIG = SearchConfig("taylorglo", generations=2, population=8, filter="none", budget=BUDGET,
                      seed=3)
EVALUATE_CHUNK = runner._evaluate_chunk
cluster = test_search_dask.cluster  # a LocalCluster of two single-thread worker processes


def _logged_chunk(folder: str, chunk: int, losses: tuple, budget: Budget,
                  threads: int | None = None, *, token: str | None = None):
    """``runner._evaluate_chunk``, with a line before and after in this process's log.

    With ``token``: the first process to start a chunk claims the file (writes its pid
    there) and dies by SIGKILL while it holds that chunk.
    """
    log = Path(folder) / f"{os.getpid()}.log"
    with log.open("a") as file:
        file.write(f"start {chunk} {len(losses)}\n")
    if token is not None:
        with contextlib.suppress(FileExistsError), open(token, "x") as claim:
            claim.write(str(os.getpid()))
            claim.close()
            os.kill(os.getpid(), signal.SIGKILL)
    result = EVALUATE_CHUNK(chunk, losses, budget, threads)
    with log.open("a") as file:
        file.write(f"end {chunk} {len(losses)}\n")
    return result


def _log(folder: Path) -> list[tuple[int, str, int, int]]:
    """Every logged line as ``(pid, event, chunk number, chunk size)``."""
    lines = []
    for path in folder.glob("*.log"):
        for line in path.read_text().splitlines():
            event, chunk, size = line.split()
            lines.append((int(path.stem), event, int(chunk), int(size)))
    return lines


@pytest.fixture
def logged(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "chunks"
    folder.mkdir()
    monkeypatch.setattr(runner, "_evaluate_chunk", functools.partial(_logged_chunk,
                                                                     str(folder)))
    return folder


def _table(store: RunStore, run_id: str) -> list[tuple]:
    return [(r.generation, r.idx, r.status, r.params, r.fitness)
            for r in store.candidates(run_id)]


def _searched(path: Path, executor, config: SearchConfig = CONFIG, **options) -> list[tuple]:
    try:
        with RunStore.open(path) as store:
            return _table(store, search(config, store=store, executor=executor, batched=True,
                                        **options))
    finally:
        executor.close()


def test_fitness_is_identical_in_process_with_workers_and_on_a_cluster(cluster, tmp_path,
                                                                       logged):
    inline = _searched(tmp_path / "inline.sqlite", InlineExecutor())
    inline_chunks = _log(logged)
    for path in logged.glob("*.log"):
        path.unlink()
    workers = _searched(tmp_path / "workers.sqlite", LocalExecutor(2, budget=BUDGET))
    on_cluster = _searched(tmp_path / "cluster.sqlite",
                           DaskExecutor(cluster.scheduler_address, budget=BUDGET))
    assert len(inline) == 16 and all(row[2] == "ok" for row in inline)
    assert workers == inline
    assert on_cluster == inline
    # in this process a generation is one population; elsewhere it is spread over the
    # two workers: chunks of 4, trained by both of the cluster's processes
    assert sorted(size for _, event, _, size in inline_chunks if event == "end") == [8, 8]
    ends = [(pid, size) for pid, event, _, size in _log(logged) if event == "end"]
    assert sorted(size for _, size in ends) == [4] * 8
    assert len({pid for pid, _ in ends}) >= 3, "chunks trained by both kinds of workers"


def test_chunk_overrides_the_spread_and_threads_follow_the_worker(cluster, tmp_path, logged):
    executor = DaskExecutor(cluster.scheduler_address, chunk=3)
    assert executor.slots() == 2
    assert executor.chunk_size(8, BUDGET) == 3
    _searched(tmp_path / "runs.sqlite", executor)
    assert sorted(size for _, event, _, size in _log(logged) if event == "end") == [2, 2, 3, 3,
                                                                                   3, 3]
    # one thread per task on a worker that runs one task per thread
    client = distributed.Client(cluster.scheduler_address, set_as_default=False)
    try:
        assert client.submit(task_threads, pure=False).result() == 1
    finally:
        client.close()


def test_a_gpu_resource_gives_one_chunk_per_gpu_with_the_workers_threads():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  resources={"GPU": 1}, dashboard_address=":0",
                                  silence_logs=50) as local:
        gpu = DaskExecutor(local.scheduler_address, resources={"GPU": 1})
        cpu = DaskExecutor(local.scheduler_address)
        try:
            assert (gpu.slots(), cpu.slots()) == (1, 2)
            assert gpu.client.submit(task_threads, pure=False,
                                     resources={"GPU": 1}).result() == 2
            assert cpu.client.submit(task_threads, pure=False).result() == 1
        finally:
            gpu.close()
            cpu.close()
    assert task_threads() is None


def test_a_killed_worker_costs_only_the_chunk_it_was_training(cluster, tmp_path, logged,
                                                              monkeypatch):
    """A worker dies (SIGKILL) holding a chunk: the search completes, every candidate is
    stored once, ``ok``, with the fitness an undisturbed run gives, and only the chunk the
    dead worker held was started again. Whether Dask sends it to the other worker or to the
    dead one's replacement, and in what order the chunks end, is its business."""
    token = tmp_path / "killed.pid"
    config = dataclasses.replace(CONFIG, generations=1)  # chunks 0-3, numbered once
    monkeypatch.setattr(runner, "_evaluate_chunk", functools.partial(
        _logged_chunk, str(logged), token=str(token)))
    table = _searched(tmp_path / "runs.sqlite", DaskExecutor(cluster.scheduler_address,
                                                             chunk=2, budget=BUDGET), config)
    monkeypatch.setattr(runner, "_evaluate_chunk", EVALUATE_CHUNK)
    undisturbed = _searched(tmp_path / "inline.sqlite", InlineExecutor(), config)
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        assert store.integrity_check() == "ok"
        assert store.runs()[0].status == "searched", "the run completed"
    assert table == undisturbed, "every candidate once, ok, as an undisturbed run"
    killed = int(token.read_text())
    log = _log(logged)
    held = {chunk for pid, event, chunk, _ in log if pid == killed and event == "start"}
    assert len(held) == 1 and not [line for line in log if line[0] == killed and
                                   line[1] == "end"], "it died holding one chunk"
    ended = {chunk for _, event, chunk, _ in log if event == "end"}
    assert ended == set(range(4)), "every chunk was trained to the end"
    started = [chunk for _, event, chunk, _ in log if event == "start"]
    again = {chunk for chunk in started if started.count(chunk) > 1}
    assert again <= held, "no chunk but the dead worker's was paid twice"


def test_resume_on_a_cluster_pays_nothing_twice(cluster, tmp_path, logged, monkeypatch):
    """Ctrl-C once generation 1's first chunk is stored, resume: the resume trains exactly
    the candidates not stored, and the run equals an uninterrupted one. (A chunk of the
    interrupted search may still be running on a worker: it logs into the first folder.)"""
    path = tmp_path / "runs.sqlite"
    arrived: list[int] = []

    def stop_after_a_chunk(record) -> None:
        if record.generation == 1:
            arrived.append(record.idx)
            if len(arrived) == 2:
                raise KeyboardInterrupt

    executor = DaskExecutor(cluster.scheduler_address, chunk=2, budget=BUDGET)
    with pytest.raises(KeyboardInterrupt):
        _searched(path, executor, on_result=stop_after_a_chunk)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    monkeypatch.setattr(runner, "_evaluate_chunk", functools.partial(_logged_chunk,
                                                                     str(resumed)))
    with RunStore.open(path) as store:
        run_id = store.runs()[0].run_id
        before = _table(store, run_id)
        assert len(before) == 10
        executor = DaskExecutor(cluster.scheduler_address, chunk=2, budget=BUDGET)
        try:
            search(CONFIG, store=store, executor=executor, run_id=run_id, resume=True,
                   batched=True)
        finally:
            executor.close()
        after = _table(store, run_id)
    trained = [size for _, event, _, size in _log(resumed) if event == "end"]
    assert sum(trained) == 16 - len(before), "the resume trained only what was not stored"
    assert all(row in after for row in before) and len(after) == 16, "stored rows kept"
    with RunStore.open(tmp_path / "whole.sqlite") as whole:
        assert after == _table(whole, search(CONFIG, store=whole, batched=True))


def _dies_with(culprit: float, chunk: int, losses: tuple, budget: Budget,
               threads: int | None = None):
    """``runner._evaluate_chunk``, except that a chunk holding the culprit kills its process
    (what a segfault or the kernel's out-of-memory killer does)."""
    if any(float(item.values[0]) == culprit for item in losses):
        os.kill(os.getpid(), signal.SIGKILL)
    return EVALUATE_CHUNK(chunk, losses, budget, threads)


@pytest.mark.slow
def test_a_chunk_that_kills_every_worker_is_split_and_only_its_culprit_failed(tmp_path,
                                                                            monkeypatch):
    import symloss.harness.search.executors as executors

    config = SearchConfig("taylorglo", generations=1, population=4, filter="none",
                          budget=Budget(dataset="digits", steps=20, batch_size=64), seed=0)
    culprit = float(config.strategy().ask()[1].params[0])
    monkeypatch.setattr(runner, "_evaluate_chunk", functools.partial(_dies_with, culprit))
    monkeypatch.setattr(executors, "MAX_ATTEMPTS", 2)
    table = _searched(tmp_path / "runs.sqlite", LocalExecutor(2, chunk=2), config)
    assert [(i, status) for _, i, status, *_ in table] == [
        (0, "ok"), (1, "failed"), (2, "ok"), (3, "ok")], "its chunk-mate trained alone"
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        failed = store.candidates(store.runs()[0].run_id)[1]
    assert "worker process died 2 times" in failed.metrics["error"]


def test_chunks_spread_over_slots():
    assert [spread(n, 2) for n in (1, 2, 3, 6, 7)] == [1, 1, 2, 3, 4]
    assert spread(100, 4, cap=32) == 25 and spread(200, 4, cap=32) == 25
    assert InlineExecutor().chunk_size(40, BUDGET) == 40
    assert InlineExecutor(chunk=7).chunk_size(40, BUDGET) == 7


def test_a_bad_chunk_is_one_line_before_anything_is_paid(tmp_path, capsys):
    code = main(["search", "taylorglo", "--dataset", "digits", "--store",
                 str(tmp_path / "runs.sqlite"), "--chunk", "0"])
    assert code == 2
    assert capsys.readouterr().err.strip() == ("symloss: error: --chunk must be finite and > 0, "
                                               "got 0")
    assert list(tmp_path.iterdir()) == []


def test_a_glo_search_gives_the_same_fitness_whatever_its_chunks(tmp_path):
    """GLO's trees are distinct expressions, so a chunk mixes losses (issue 24): each
    candidate's fitness is still the same whole, in chunks of 3, or one by one per chunk."""
    config = SearchConfig("glo", generations=1, cma_generations=1, population=10,
                          budget=BUDGET, seed=5)
    whole = _searched(tmp_path / "whole.sqlite", InlineExecutor(), config)
    assert sum(row[2] == "ok" for row in whole) >= 4
    assert _searched(tmp_path / "three.sqlite", InlineExecutor(chunk=3), config) == whole
    assert _searched(tmp_path / "one.sqlite", InlineExecutor(chunk=1), config) == whole


def test_successive_halving_climbs_the_same_rungs_on_every_executor(cluster, tmp_path):
    """Issue 23: rung trainings go through the executor as the screening does; every rung's
    result is the same in-process, on local workers and on a Dask cluster."""
    from symloss.harness.search.rungstore import rung_trainings

    config = dataclasses.replace(CONFIG, horizon=180, reduction_factor=3, generations=1)

    def climbed(path, executor):
        rows = _searched(path, executor, config)
        with RunStore.open(path) as store:
            rungs = [(t.idx, t.rung, t.steps, t.fitness) for t in
                     rung_trainings(store, store.runs()[0].run_id)]
        return rows, rungs

    inline = climbed(tmp_path / "inline.sqlite", InlineExecutor())
    assert {steps for _, _, steps, _ in inline[1]} == {180}  # 60 → 180: one longer rung
    assert climbed(tmp_path / "workers.sqlite", LocalExecutor(2, budget=BUDGET)) == inline
    assert climbed(tmp_path / "cluster.sqlite",
                   DaskExecutor(cluster.scheduler_address, budget=BUDGET)) == inline
