"""Where evaluations run: in this process, in local worker processes, or on a Dask cluster.

All three offer one call, ``map_unordered(fn, items)``, yielding ``(item, result)``
as each finishes, so the search writes every result to the store the moment
it arrives. Local workers use ``concurrent.futures.ProcessPoolExecutor``
(spawned, one torch thread each); a cluster uses ``dask.distributed`` with
its own retries: a task whose worker dies is run again elsewhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Protocol


class SchedulerLost(RuntimeError):
    """The Dask scheduler went away mid-search; ``--resume`` continues once it is back."""


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
    import torch

    torch.set_num_threads(1)


class LocalExecutor:
    """``workers`` local processes (spawned, so no forked torch state), one thread each."""

    name = "local"

    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        import multiprocessing

        self.pool = ProcessPoolExecutor(max_workers=workers, initializer=_one_thread,
                                        mp_context=multiprocessing.get_context("spawn"))

    def map_unordered(self, fn: Callable, items: Iterable[tuple]) -> Iterator[tuple[tuple, Any]]:
        futures = {self.pool.submit(fn, *item): item for item in items}
        for future in as_completed(futures):
            yield futures[future], future.result()

    def close(self) -> None:
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
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as error:
            raise SchedulerLost(f"cannot reach the Dask scheduler at {address}: {error}") from None

    def map_unordered(self, fn: Callable, items: Iterable[tuple]) -> Iterator[tuple[tuple, Any]]:
        from distributed import as_completed as dask_completed

        items = list(items)
        try:
            futures = [self.client.submit(fn, *item, pure=False, resources=self.resources)
                       for item in items]
            lookup = {future.key: item for future, item in zip(futures, items, strict=True)}
            with self.client.as_current():
                completed = dask_completed(futures)
            for future in completed:
                yield lookup[future.key], future.result()
        except (OSError, TimeoutError) as error:
            raise SchedulerLost(f"lost the Dask scheduler at {self.address}: {error}") from None
        except Exception as error:
            lost = ("CommClosedError", "CancelledError", "FutureCancelledError")
            if type(error).__name__ in lost:
                raise SchedulerLost(f"lost the Dask scheduler at {self.address}: "
                                    f"{type(error).__name__}") from None
            raise

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a client whose scheduler is gone
            self.client.close()


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
