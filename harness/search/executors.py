"""Where evaluations run: in this process, in local worker processes, or on a Dask cluster.

All three offer one call, ``map_unordered(fn, items)``, yielding ``(item, result)``
as each finishes, so the search writes every result to the store the moment
it arrives. Local workers use ``concurrent.futures.ProcessPoolExecutor``
(spawned, one torch thread each); a cluster uses ``dask.distributed`` with
its own retries: a task whose worker dies is run again elsewhere.

A batched search sends *chunks*: each task trains several candidates as one
population (:func:`symloss.harness.search.evaluate.evaluate_population`), because one
candidate's training is too short to pay a task's round trip.
:meth:`chunk_size` says how many: ``chunk`` when given (``symloss search
--chunk``); in this process all of a generation's candidates (the trainer splits
them by memory); on workers, the candidates spread evenly over the tasks that
can run at once (:meth:`slots`: the workers' threads, or fewer where each task
holds a resource such as a GPU), at most what a worker's memory fits and, on a
CPU, :data:`MAX_TASK_CHUNK`. Before the first chunk, :meth:`prepare` warms every
worker (torch imported, dataset loaded, model template built:
:func:`symloss.harness.search.evaluate.warm_up`) and learns its memory's cap.

Everything a flag scales is bounded before anything starts (:func:`check_workers`:
at most this machine's cores; :func:`check_chunk`: at most the largest generation), and
a scheduler address is checked before a client exists (:func:`check_scheduler`): a
scheme Dask knows, a host and a port, and, over TCP, a peer whose first message is
Dask's handshake, so a port that is something else is refused within seconds.

A dying worker never ends a search. A candidate whose evaluation kills its
worker every time it runs (``MAX_ATTEMPTS`` times: a segfault, the kernel's
out-of-memory killer) comes back as a ``failed`` :class:`Outcome` with fitness
0, like any other candidate fault. Losing the Dask scheduler is different:
nothing can run, so :class:`SchedulerLost` ends the search with a clear
message, and ``--resume`` continues once the scheduler is back.

One module, over the ~400-line aim: the three executors are one protocol
(``map_unordered``, ``chunk_size``, ``slots``, ``prepare``) and share its bounds
checks and chunk arithmetic (:func:`spread`, :func:`task_cap`); each executor is a few
methods of it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from symloss.errors import SettingError

#: Times a candidate may take its worker down before it is recorded ``failed``
#: (Dask's ``distributed.scheduler.allowed-failures`` is 3 by default: 4 runs).
MAX_ATTEMPTS = 3

#: The most candidates one task trains on a CPU worker when they are spread over workers:
#: batched training gains nothing past about 20 stacked models on a CPU (K = 20 and K = 80
#: read 5,367 and 4,913 model-steps/s on one thread, benchmarks/RESULTS.md), and a smaller
#: chunk loses less when its worker dies and reaches the store sooner. A GPU worker takes
#: what its memory fits (one small model leaves a GPU idle).
MAX_TASK_CHUNK = 32


def task_cap(warm: dict[str, Any]) -> int:
    """The most candidates per task for a worker, from its :func:`~symloss.harness.search.evaluate.
    warm_up` report: its memory's cap, and at most :data:`MAX_TASK_CHUNK` off a GPU.

    >>> task_cap({"chunk_cap": 256, "device": "cpu"}), task_cap({"chunk_cap": 256,
    ...     "device": "cuda"}), task_cap({"chunk_cap": None, "device": None})
    (32, 256, 32)
    """
    cap = warm.get("chunk_cap") or MAX_TASK_CHUNK
    return cap if warm.get("device") == "cuda" else min(cap, MAX_TASK_CHUNK)


class SchedulerLost(RuntimeError):
    """The Dask scheduler went away mid-search; ``--resume`` continues once it is back."""


def _worker_died(item: tuple, detail: str):
    """The result for a candidate whose evaluation killed its worker every time."""
    from symloss.harness.search.evaluate import Outcome

    return Outcome("failed", 0.0, {"error": f"worker died running it: {detail}"}, 0.0, "")


def check_chunk(chunk: int | None) -> int | None:
    """``chunk``: ``None`` (chosen per generation) or a whole number from 1 to the largest
    generation (:data:`~symloss.harness.search.strategies.MAX_POPULATION`: a larger chunk
    is the whole generation).

    >>> check_chunk(None), check_chunk(4)
    (None, 4)
    >>> check_chunk(0)
    Traceback (most recent call last):
    ...
    ValueError: chunk must be a whole number from 1 to 10000, got 0
    """
    from symloss.harness.search.strategies import check_population

    return None if chunk is None else check_population(chunk, "chunk", smallest=1)


def check_workers(workers: int) -> int:
    """``workers``: local worker processes, a whole number from 1 to this machine's cores
    (each trains on one thread, so more only wait for a core; each also imports torch and
    loads the dataset, a few hundred MB).

    >>> check_workers(1)
    1
    >>> check_workers(100_000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: workers must be a whole number from 1 to ... got 100000
    """
    from symloss.harness.device import check_threads

    return check_threads(workers, "workers", "the cores this process may run on: a local "
                                             "worker trains on one")


#: Seconds a scheduler has to send Dask's handshake before its address is refused (a
#: scheduler sends it the moment it accepts a connection, in milliseconds).
PROBE_SECONDS = 5.0
#: The most bytes the first message of a Dask peer may announce: its handshake is about 60.
MAX_HANDSHAKE_BYTES = 64 * 2**10


def check_scheduler(address: str, timeout: float = PROBE_SECONDS) -> str:
    """``address`` if a Dask scheduler may be there, else a one-line ``ValueError`` (or
    :class:`SchedulerLost` where nothing accepts the connection: it may come back).

    The scheme must be one Dask has a transport for (``tcp``, ``tls``, ...), with a host
    and a port from 1 to 65535. Over TCP the peer is asked before any client exists:
    it must accept a connection within ``timeout`` and send Dask's handshake (a small
    msgpack dict with ``python`` and ``compression``). A port that is something else
    (an HTTP server waits for a request; another protocol announces a message of
    exabytes, which Dask's client would try to allocate) is refused in one line.

    >>> check_scheduler("bogus://x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: scheduler address 'bogus://x': unknown scheme 'bogus'; Dask knows inproc, ...
    >>> check_scheduler("tcp://localhost")
    Traceback (most recent call last):
    ...
    ValueError: scheduler address 'tcp://localhost' needs a port: tcp://HOST:PORT
    """
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"scheduler address must be SCHEME://HOST:PORT, got {address!r}")
    scheme, location = parse_address(address.strip(), strict=False)
    if scheme not in backends:
        raise ValueError(f"scheduler address {address!r}: unknown scheme {scheme!r}; Dask "
                         f"knows {', '.join(sorted(backends))}")
    if scheme == "inproc":
        return address
    try:
        host, port = parse_host_port(location)
    except ValueError:
        raise ValueError(f"scheduler address {address!r} needs a port: "
                         f"{scheme}://HOST:PORT") from None
    if not host or not 1 <= port <= 65535:
        raise ValueError(f"scheduler address {address!r} needs a host and a port from 1 to "
                         f"65535: {scheme}://HOST:PORT")
    if scheme == "tcp":
        _probe(address, host, port, timeout)
    elif scheme in ("tls", "wss") and not _tls_configured():
        raise ValueError(f"scheduler address {address!r} uses TLS, but Dask's configuration "
                         "holds no TLS certificates (distributed.comm.tls.*)")
    return address


def _tls_configured() -> bool:
    """Whether Dask's configuration gives a client the TLS context a ``tls://`` peer needs
    (without it ``Client`` fails half-built, and its cleanup hangs 20 s at exit)."""
    from distributed.security import Security

    return Security().get_connection_args("client").get("ssl_context") is not None


def _probe(address: str, host: str, port: int, timeout: float) -> None:
    """Refuse ``host:port`` unless its first message is Dask's handshake (see
    :func:`check_scheduler`)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as peer:
            peer.settimeout(timeout)
            head = _receive(peer, 8)
            if head is None:
                raise ValueError(f"no Dask scheduler at {address}: it sent nothing within "
                                 f"{timeout:g} s (a Dask scheduler greets at once)")
            (size,) = struct.unpack("<Q", head)
            message = _receive(peer, size) if 0 < size <= MAX_HANDSHAKE_BYTES else None
    except OSError as error:  # nothing there (yet): as when a scheduler is lost
        raise SchedulerLost(f"cannot reach the Dask scheduler at {address}: "
                            f"{error.strerror or error}") from None
    if message is None or not _is_handshake(message):
        raise ValueError(f"no Dask scheduler at {address}: what answers there does not speak "
                         "Dask's protocol")


def _receive(peer: socket.socket, size: int) -> bytes | None:
    """Exactly ``size`` bytes from ``peer``; ``None`` if it closes or goes quiet first."""
    received = b""
    try:
        while len(received) < size:
            part = peer.recv(size - len(received))
            if not part:
                return None
            received += part
    except TimeoutError:
        return None
    return received


def _is_handshake(message: bytes) -> bool:
    """Whether ``message`` is Dask's framed handshake: a frame count, the frames' lengths,
    then one msgpack dict naming ``python`` and ``compression``."""
    import msgpack

    try:
        (count,) = struct.unpack_from("<Q", message)
        lengths = struct.unpack_from(f"<{count}Q", message, 8) if 0 < count <= 16 else ()
        start = 8 + 8 * len(lengths)
        if not lengths or start + sum(lengths) != len(message):
            return False
        greeting = msgpack.unpackb(message[start:start + lengths[0]], raw=False)
    except (struct.error, ValueError, TypeError, msgpack.UnpackException):
        return False
    return isinstance(greeting, dict) and {"python", "compression"} <= set(greeting)


def spread(count: int, slots: int, cap: int | None = None) -> int:
    """Candidates per task so that ``count`` fill ``slots`` tasks running at once, in as
    few rounds as chunks of at most ``cap`` allow, the rounds as even as they can be.

    >>> spread(6, 2), spread(3, 2), spread(5, 8), spread(100, 2, cap=32), spread(64, 2, cap=32)
    (3, 2, 1, 25, 32)
    """
    slots = max(1, slots)
    cap = max(1, cap if cap is not None else count)
    rounds = math.ceil(count / (slots * cap))
    return max(1, math.ceil(count / (slots * rounds))) if count else 1


class Executor(Protocol):
    def map_unordered(self, fn: Callable, items: Iterable[tuple]) -> Iterator[tuple[tuple, Any]]:
        ...

    def chunk_size(self, count: int, budget) -> int:
        ...

    def close(self) -> None:
        ...


class InlineExecutor:
    """Evaluate one after another in this process (the default).

    A generation's candidates train as one population (``chunk`` caps it), which
    :func:`symloss.harness.batched.train_population` splits by this machine's memory.
    """

    name = "inline"

    def __init__(self, chunk: int | None = None):
        self.chunk = check_chunk(chunk)

    def slots(self) -> int:
        return 1

    def prepare(self, budget) -> None:
        """Nothing to warm: this process builds its state on the first chunk."""

    def chunk_size(self, count: int, budget) -> int:
        return self.chunk or max(count, 1)

    def map_unordered(self, fn: Callable, items: Iterable[tuple]) -> Iterator[tuple[tuple, Any]]:
        for item in items:
            yield item, fn(*item)

    def close(self) -> None:
        pass


class _Workers:
    """What local workers and a cluster share: chunks spread over the workers' slots."""

    chunk: int | None = None

    def __init__(self) -> None:
        self.caps: dict[Any, int | None] = {}  # budget -> the smallest worker's memory cap

    def slots(self) -> int:
        raise NotImplementedError

    def prepare(self, budget) -> None:
        raise NotImplementedError

    def chunk_size(self, count: int, budget) -> int:
        """``--chunk``, else ``count`` spread over :meth:`slots` (re-read each generation, so
        workers that joined or left count), at most the smallest worker's :func:`task_cap`."""
        if self.chunk:
            return self.chunk
        if budget not in self.caps:
            self.prepare(budget)
        return spread(count, self.slots(), self.caps.get(budget) or MAX_TASK_CHUNK)


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


def _start_local_worker(budget=None) -> None:
    """:func:`_one_thread`, then the budget's warm state built
    (:func:`symloss.harness.search.evaluate.warm_up`)."""
    _one_thread()
    if budget is not None:
        from symloss.harness.search.evaluate import warm_up

        with contextlib.suppress(Exception):  # a broken dataset is reported by the task
            warm_up(budget)


class LocalExecutor(_Workers):
    """``workers`` local processes (spawned, so no forked torch state), one thread each.

    With ``budget``, every process is started and warmed for it now rather than on
    its first task (``symloss search`` does this before the first generation).
    """

    name = "local"

    def __init__(self, workers: int, chunk: int | None = None, budget=None):
        super().__init__()
        self.workers = check_workers(workers)
        self.chunk = check_chunk(chunk)
        self.budget = budget
        self.pool = self._new_pool()
        if budget is not None:
            self.prepare(budget)

    def _new_pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        return ProcessPoolExecutor(max_workers=self.workers, initializer=_start_local_worker,
                                   initargs=(self.budget,),
                                   mp_context=multiprocessing.get_context("spawn"))

    def slots(self) -> int:
        return self.workers

    def prepare(self, budget) -> None:
        """Start every process (one submit each: a spawning pool adds a process per submit
        while none is idle) and learn the memory cap, the same for all on one machine."""
        from symloss.harness.search.evaluate import warm_up

        futures = [self.pool.submit(warm_up, budget) for _ in range(self.workers)]
        self.caps[budget] = min(task_cap(future.result()) for future in futures)

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


class DaskExecutor(_Workers):
    """A Dask ``distributed`` cluster at ``address`` (``tcp://HOST:PORT``).

    ``resources`` (e.g. ``{"GPU": 1}``) is passed to every task, so GPU workers
    declared with ``--resources GPU=1`` take them one at a time: one chunk per GPU.
    With ``budget``, the workers connected now are warmed for it at once; a worker
    that joins later warms on its first chunk (a few seconds, once per process).
    """

    name = "dask"

    #: Seconds to wait for the workers' warm-up before chunks are sized without it.
    WARM_UP_TIMEOUT = 300.0

    def __init__(self, address: str, resources: dict[str, float] | None = None,
                 timeout: float = 10.0, chunk: int | None = None, budget=None):
        from distributed import Client

        super().__init__()
        self.address = check_scheduler(address, min(timeout, PROBE_SECONDS))
        self.resources = resources
        self.chunk = check_chunk(chunk)
        self.lost = False
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as error:
            raise SchedulerLost(f"cannot reach the Dask scheduler at {address}: {error}") from None
        except (TypeError, ValueError) as error:  # what the checks above cannot foresee
            raise ValueError(f"cannot connect to the Dask scheduler at {address}: "
                             f"{str(error).splitlines()[0]}") from None
        if budget is not None:
            self.prepare(budget)

    def _workers(self) -> dict[str, dict[str, Any]]:
        try:
            return dict(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        except (OSError, TimeoutError) as error:
            self.lost = True
            raise SchedulerLost(f"lost the Dask scheduler at {self.address}: {error}") from None

    def slots(self) -> int:
        """Chunks the cluster runs at once: per worker its threads, or fewer where each
        task holds a resource (``GPU``) the worker has less of; at least 1 (with no
        worker yet, tasks wait for one)."""
        total = 0
        for info in self._workers().values():
            at_once = int(info.get("nthreads") or 1)
            for name, need in (self.resources or {}).items():
                if need > 0:
                    at_once = min(at_once, int((info.get("resources") or {}).get(name, 0)
                                               // need))
            total += max(0, at_once)
        return max(1, total)

    def prepare(self, budget) -> None:
        """Warm every connected worker for ``budget`` (one pinned task each, in its own
        thread pool) and keep the smallest memory cap among them."""
        from distributed import wait

        from symloss.harness.search.evaluate import warm_up

        # the scheduler unpickles each task, importing its function's module: once, here
        self.client.run_on_scheduler(_import_tasks)
        futures = [self.client.submit(warm_up, budget, workers=[address], pure=False,
                                      allow_other_workers=False)
                   for address in self._workers()]
        with self.client.as_current():
            done, not_done = (wait(futures, timeout=self.WARM_UP_TIMEOUT) if futures
                              else ([], []))
        caps = []
        for future in done:
            if future.status == "error":
                error = future.exception()
                if isinstance(error, ValueError):  # a missing dataset: no worker can train
                    raise error
                continue
            caps.append(task_cap(future.result()))
        for future in not_done:  # a worker that left before warming
            future.cancel()
        self.caps[budget] = min(caps) if caps else None

    def map_unordered(self, fn: Callable, items: Iterable[tuple]) -> Iterator[tuple[tuple, Any]]:
        from distributed import KilledWorker
        from distributed import as_completed as dask_completed

        pending: dict[str, tuple[Any, tuple]] = {}
        try:
            for item in items:
                future = self.client.submit(fn, *item, pure=False, resources=self.resources)
                pending[future.key] = future, item
            # Each result is fetched the moment its task finishes, not when the search gets
            # to it, and its future released at once: the scheduler recomputes a lost result
            # that a client still holds, so a worker that dies later would otherwise cost
            # every finished chunk it kept, not only the one it was training.
            with self.client.as_current():
                completed = dask_completed([future for future, _ in pending.values()],
                                           with_results=True, raise_errors=False)
            future = None
            for future, result in completed:
                _, item = pending.pop(future.key)
                if future.status != "finished":
                    try:
                        future.result()  # raises what the task raised, or CancelledError
                    except KilledWorker as error:  # the task took down every worker it met
                        result = _worker_died(item, f"KilledWorker: {error}")
                del future
                yield item, result
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


def _import_tasks() -> None:
    """Import the module of the search's task functions (run on a Dask scheduler)."""
    import symloss.harness.search.evaluate  # noqa: F401


def make_executor(workers: int | None = None, scheduler: str | None = None,
                  resources: dict[str, float] | None = None, *, chunk: int | None = None,
                  budget=None) -> Executor:
    """The executor for ``--workers N`` / ``--scheduler ADDR`` (in-process when neither),
    ``--chunk K`` candidates per task; with ``budget`` its workers are warmed for it now."""
    if workers and scheduler:
        raise SettingError(lambda n: f"{n('workers')} and {n('scheduler')} are exclusive: "
                           "choose one")
    check_chunk(chunk)
    if workers is not None:
        check_workers(workers)
    if not scheduler and budget is not None and budget.threads is not None:
        from symloss.harness.device import check_threads

        check_threads(budget.threads)  # trained here: this machine's cores bound them
    if scheduler:
        return DaskExecutor(scheduler, resources, chunk=chunk, budget=budget)
    if workers and workers > 1:
        return LocalExecutor(workers, chunk=chunk, budget=budget)
    return InlineExecutor(chunk=chunk)
