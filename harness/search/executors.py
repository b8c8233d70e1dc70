"""Where evaluations run: in this process, in local worker processes, or on a Dask cluster.

All three offer one call, ``map_unordered(fn, items)``, yielding ``(item, result)``
as each finishes, so the search writes every result to the store the moment
it arrives. Local workers use ``concurrent.futures.ProcessPoolExecutor``
(spawned, one torch thread each); a cluster uses ``dask.distributed`` with
its own retries: a task whose worker dies is run again elsewhere.

A dying worker never ends a search. A candidate whose evaluation kills its
worker every time it runs (``MAX_ATTEMPTS`` times: a segfault, the kernel's
out-of-memory killer) comes back as a ``failed`` :class:`Outcome` with fitness
0, like any other candidate fault. Losing the Dask scheduler is different:
nothing can run, so :class:`SchedulerLost` ends the search with a clear
message, and ``--resume`` continues once the scheduler is back.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

#: Times a candidate may take its worker down before it is recorded ``failed``
#: (Dask's ``distributed.scheduler.allowed-failures`` is 3 by default: 4 runs).
MAX_ATTEMPTS = 3


class SchedulerLost(RuntimeError):
    """The Dask scheduler went away mid-search; ``--resume`` continues once it is back."""


def _worker_died(item: tuple, detail: str):
    """The result for a candidate whose evaluation killed its worker every time."""
    from harness.search.evaluate import Outcome

    return Outcome("failed", 0.0, {"error": f"worker died running it: {detail}"}, 0.0, "")


class Executor(Protocol):
    def map_unordered(self, fn: Callable, items: Iterable[tuple]) -> Iterator[tuple[tuple, Any]]:
        ...

    def close(self) -> None:
        ...


class InlineExecutor:
    """Evaluate one after another in this process (the default)."""

    name = "inline"

    def map_unordered(self, fn: Callable, items: Iterable[tuple]) -> Iterator[tuple[tuple, Any]]:
        for item in items:
            yield item, fn(*item)

    def close(self) -> None:
        pass


def _one_thread() -> None:
    """A local worker's start: one torch thread, and Ctrl-C left to the search's process.

    A terminal's Ctrl-C reaches every process of the foreground group; the search
    itself stops the workers (:meth:`LocalExecutor.close`), so they ignore SIGINT
    instead of each printing a traceback.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(1)


class LocalExecutor:
    """``workers`` local processes (spawned, so no forked torch state), one thread each."""

    name = "local"

    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        self.workers = workers
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        return ProcessPoolExecutor(max_workers=self.workers, initializer=_one_thread,
                                   mp_context=multiprocessing.get_context("spawn"))

    def map_unordered(self, fn: Callable, items: Iterable[tuple]) -> Iterator[tuple[tuple, Any]]:
        """As finished; a dead worker process breaks the pool, and a new pool re-runs the rest.

        A broken pool does not say which candidate killed it, so after a break the
        candidates left run one at a time: one that takes its worker down alone
        ``MAX_ATTEMPTS`` times is ``failed``; the others are simply trained.
        """
        pending = list(items)
        futures = {self.pool.submit(fn, *item): i for i, item in enumerate(pending)}
        done: set[int] = set()
        try:
            for future in as_completed(futures):
                result = future.result()
                done.add(futures[future])
                yield pending[futures[future]], result
            return
        except BrokenProcessPool:
            self._renew()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop the workers now, quietly
            self._terminate()
            raise
        for position, item in enumerate(pending):
            if position in done:
                continue
            for _attempt in range(MAX_ATTEMPTS):
                try:
                    result = self.pool.submit(fn, *item).result()
                    break
                except BrokenProcessPool:
                    self._renew()
            else:
                result = _worker_died(item, f"its worker process died {MAX_ATTEMPTS} times")
            yield item, result

    def _renew(self) -> None:
        with contextlib.suppress(Exception):
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new_pool()

    def _terminate(self) -> None:
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            with contextlib.suppress(Exception):
                process.terminate()
        for process in processes:
            with contextlib.suppress(Exception):
                process.join(timeout=5)
        self.terminated = True

    def close(self) -> None:
        if not getattr(self, "terminated", False):
            self.pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """A Dask ``distributed`` cluster at ``address`` (``tcp://HOST:PORT``).

    ``resources`` (e.g. ``{"GPU": 1}``) is passed to every task, so GPU workers
    declared with ``--resources GPU=1`` take them one at a time.
    """

    name = "dask"

    def __init__(self, address: str, resources: dict[str, float] | None = None,
                 timeout: float = 10.0):
        from distributed import Client

        self.address = address
        self.resources = resources
        self.lost = False
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as error:
            raise SchedulerLost(f"cannot reach the Dask scheduler at {address}: {error}") from None

    def map_unordered(self, fn: Callable, items: Iterable[tuple]) -> Iterator[tuple[tuple, Any]]:
        from distributed import KilledWorker
        from distributed import as_completed as dask_completed

        items = list(items)
        try:
            futures = [self.client.submit(fn, *item, pure=False, resources=self.resources)
                       for item in items]
            lookup = {future.key: item for future, item in zip(futures, items, strict=True)}
            with self.client.as_current():
                completed = dask_completed(futures)
            for future in completed:
                try:
                    result = future.result()
                except KilledWorker as error:  # the candidate took down every worker it met
                    result = _worker_died(lookup[future.key], f"KilledWorker: {error}")
                yield lookup[future.key], result
        except (OSError, TimeoutError) as error:
            self.lost = True
            raise SchedulerLost(f"lost the Dask scheduler at {self.address}: {error}") from None
        except Exception as error:
            lost = ("CommClosedError", "CancelledError", "FutureCancelledError")
            if type(error).__name__ in lost or self.client.status in ("closed", "closing"):
                self.lost = True
                raise SchedulerLost(f"lost the Dask scheduler at {self.address}: "
                                    f"{type(error).__name__}") from None
            raise

    def close(self) -> None:
        # A client whose scheduler is gone logs its cancelled reconnect as an ERROR with a
        # traceback; SchedulerLost has already said what happened, in one line.
        quiet = [logging.getLogger(name) for name in ("distributed.client", "distributed.utils",
                                                      "distributed.core")] if self.lost else []
        levels = [logger.level for logger in quiet]
        for logger in quiet:
            logger.setLevel(logging.CRITICAL)
        try:
            with contextlib.suppress(Exception):  # closing a client whose scheduler is gone
                self.client.close(timeout=5)
        finally:
            for logger, level in zip(quiet, levels, strict=True):
                logger.setLevel(level)


def make_executor(workers: int | None = None, scheduler: str | None = None,
                  resources: dict[str, float] | None = None) -> Executor:
    """The executor for ``--workers N`` / ``--scheduler ADDR`` (in-process when neither)."""
    if workers and scheduler:
        raise ValueError("--workers and --scheduler are exclusive: choose one")
    if scheduler:
        return DaskExecutor(scheduler, resources)
    if workers and workers > 1:
        return LocalExecutor(workers)
    return InlineExecutor()
