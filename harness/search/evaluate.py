"""One candidate's evaluation: a partial training, its fitness, and nothing lost on failure.

:func:`evaluate_candidate` (one loss) and :func:`evaluate_population` (a chunk
of losses trained together) run wherever the executor sends them (this
process, a local worker process, a Dask worker). They never raise for a
candidate's own fault: NaN/inf losses come back ``diverged``, exceptions
(out-of-memory included) ``failed``, both with fitness 0, so the search goes on.

A worker process keeps warm state between tasks, keyed by the budget: the
dataset (:func:`_dataset`), the generated torch code (``symloss.harness.codegen``'s
cache, per expression structure) and a model template (:func:`_template`, which
sizes chunks for this worker's memory). :func:`warm_up` builds it before the
first task; inside a Dask task, torch's threads come from the worker's own
``nthreads`` (:func:`task_threads`).
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from symloss.loss import Loss

OBJECTIVES = ("val", "fgsm:EPS")


@dataclass(frozen=True)
class Budget:
    """How a candidate is trained and scored (part of the run's recorded config).

    ``threads``: CPU threads per training; ``None`` is one thread (in this process and
    in local workers; a Dask task takes its declared share of its worker,
    :func:`task_threads`). Never the cores free at the time: the thread count changes
    a training's numbers (MKL splits long sums across threads when a population is
    small), so a run's numbers would follow the machine's load. More threads are a
    recorded setting (``--threads``) that trades those bits for speed (a batched
    population on 2 threads measured 1.4–2× over 1 on 2 quiet cores).
    """

    dataset: str = "mnist1d"
    model: str | None = None
    steps: int = 300
    lr: float | None = None
    batch_size: int | None = None
    objective: str = "val"
    data_dir: str | None = None
    seed: int = 0
    threads: int | None = None
    device: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_objective(text: str) -> float | None:
    """``"val"`` → ``None``; ``"fgsm:0.1"`` → ``0.1``; anything else a ``ValueError``.

    >>> parse_objective("val"), parse_objective("fgsm:0.05")
    (None, 0.05)
    """
    if text == "val":
        return None
    if text.startswith("fgsm:"):
        try:
            strength = float(text.split(":", 1)[1])
        except ValueError:
            strength = -1.0
        if 0 <= strength < float("inf"):
            return strength
    raise ValueError(f"objective must be 'val' or 'fgsm:EPS' with a finite EPS >= 0, "
                     f"got {text!r}")


@dataclass(frozen=True)
class Outcome:
    status: str
    fitness: float
    metrics: dict[str, Any]
    seconds: float
    worker: str


@lru_cache(maxsize=4)
def _dataset(name: str, data_dir: str | None):
    from symloss.harness.data import load_dataset

    return load_dataset(name, data_dir=data_dir)


@lru_cache(maxsize=4)
def _template(budget: Budget):
    """The budget's model, built once per process: what :func:`warm_up` sizes chunks with."""
    from symloss.harness.device import resolve_device
    from symloss.harness.models import Normalized, build_model

    data = _dataset(budget.dataset, budget.data_dir)
    config = _config(budget)[0].resolved(data.name)
    model = build_model(config.model, input_shape=data.input_shape, classes=data.classes,
                        **config.model_options)
    return Normalized(model, data.mean, data.std).to(resolve_device(config.device)), config


def check_budget(budget: Budget) -> None:
    """Refuse, before a run exists, a budget no candidate could train under: its dataset
    missing or broken (:class:`~symloss.harness.data.DataError`), or inputs of a shape its
    model cannot take (:func:`~symloss.harness.models.check_model_input`); each a one-line
    ``ValueError``. Loads the dataset once (this process then keeps it, as a worker does).
    """
    from symloss.harness.models import check_model_input

    data = _dataset(budget.dataset, budget.data_dir)
    config = _config(budget)[0].resolved(data.name)
    check_model_input(config.model, data.input_shape, data.classes,
                      source=data.source or data.name, **config.model_options)


def warm_up(budget: Budget) -> dict[str, Any]:
    """Build this process's warm state for ``budget``; say how large a chunk it takes.

    Imports torch and the trainer, loads the dataset and builds the model template
    (each once per process, cached by the budget), so a worker's first chunk pays
    training only. Returns ``{"worker", "chunk_cap", "device", "seconds"}``:
    ``chunk_cap`` is how many candidates fit one population in the free memory of the
    device it trains on (:func:`symloss.harness.batched.population_chunk`; ``None`` where the
    model is trained one by one), ``device`` that device's type (``"cpu"``, ``"cuda"``),
    ``seconds`` what warming took (about 0 when already warm). A missing
    dataset raises :class:`symloss.harness.data.DataError`, as a task would.
    """
    started = time.perf_counter()
    data = _dataset(budget.dataset, budget.data_dir)
    cap, device = None, None
    if batching_supported(budget):
        from symloss.harness.batched import population_chunk

        template, config = _template(budget)
        device = next(template.parameters()).device
        cap = population_chunk(template, data.input_shape, config.batch_size,
                               config.eval_batch_size, device)
    return {"worker": _worker_name(), "chunk_cap": cap,
            "device": None if device is None else device.type,
            "seconds": time.perf_counter() - started}


def task_threads() -> int | None:
    """Torch threads for a task running on a Dask worker; ``None`` anywhere else.

    A worker runs ``nthreads`` tasks at once, one per thread, so each task trains on
    one core; where the task holds a resource the worker has less of (``GPU=1`` on a
    worker started with ``--resources GPU=1``: one chunk at a time), the worker's
    ``nthreads`` are shared by fewer tasks and each gets ``nthreads // at_once``.

    >>> task_threads() is None   # not inside a Dask task
    True
    """
    if "distributed" not in sys.modules:  # a Dask worker has imported it long before
        return None
    from distributed import get_worker
    from distributed.worker import thread_state

    try:
        worker = get_worker()
    except ValueError:
        return None
    nthreads = max(1, int(worker.state.nthreads))
    task = worker.state.tasks.get(getattr(thread_state, "key", None))
    at_once = nthreads
    for name, need in ((task.resource_restrictions or {}) if task is not None else {}).items():
        if need > 0:
            at_once = min(at_once, int(worker.state.total_resources.get(name, 0) // need))
    from symloss.harness.device import available_cores

    # a worker started with more threads than its machine's cores still trains on its cores
    return max(1, min(nthreads // max(1, at_once), available_cores()))


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _config(budget: Budget, threads: int | None = None):
    from symloss.harness.train import TrainConfig

    strength = parse_objective(budget.objective)
    extra = {} if strength is None else {"fgsm_validation": (strength,)}
    config = TrainConfig(model=budget.model, steps=budget.steps, lr=budget.lr,
                         batch_size=budget.batch_size,
                         threads=budget.threads if threads is None else threads,
                         device=budget.device, evaluations=1, **extra)
    return config, strength


def _outcome(result, strength: float | None, seconds: float) -> Outcome:
    """A training's :class:`~symloss.harness.train.TrainResult` as the search's outcome."""
    metrics = dict(result.metrics)
    if result.error:
        metrics["error"] = result.error
    if result.status != "ok":
        return Outcome(result.status, 0.0, metrics, seconds, _worker_name())
    if strength is None:
        fitness = metrics.get("val_accuracy")
    else:
        fitness = (metrics.get("val_fgsm_accuracy") or {}).get(str(strength))
    if fitness is None:
        return Outcome("diverged", 0.0, metrics, seconds, _worker_name())
    return Outcome("ok", float(fitness), metrics, seconds, _worker_name())


def _failed(error: BaseException, seconds: float) -> Outcome:
    if isinstance(error, MemoryError):
        return Outcome("failed", 0.0, {"error": "out of memory"}, seconds, _worker_name())
    detail = traceback.format_exception_only(type(error), error)[-1].strip()
    return Outcome("failed", 0.0, {"error": detail}, seconds, _worker_name())


def evaluate_candidate(loss: Loss, budget: Budget) -> Outcome:
    """Train ``loss`` for ``budget.steps`` and score it (validation accuracy, or under FGSM)."""
    started = time.perf_counter()
    try:
        from symloss.harness.train import train

        config, strength = _config(budget)
        result = train(loss, _dataset(budget.dataset, budget.data_dir), config,
                       seed=budget.seed)
        return _outcome(result, strength, time.perf_counter() - started)
    except Exception as error:  # a candidate's fault (out-of-memory too) must not end the search
        from symloss.harness.data import DataError

        if isinstance(error, DataError):
            raise  # a missing or broken dataset is no candidate's fault: stop, say so
        return _failed(error, time.perf_counter() - started)


def batching_supported(budget: Budget) -> bool:
    """Whether :func:`evaluate_population` trains this budget's model batched: where it
    can and it pays (:func:`symloss.harness.batched.batching_pays`: not the CPU-bound CNNs on
    a CPU).

    >>> batching_supported(Budget(dataset="mnist1d")), batching_supported(
    ...     Budget(dataset="cifar10", model="preresnet20"))
    (True, False)
    """
    from symloss.harness.batched import batching_pays
    from symloss.harness.models import DEFAULT_MODELS

    name = budget.model or DEFAULT_MODELS.get(budget.dataset.strip().lower().replace("-", "_"),
                                              "mlp")
    try:
        return batching_pays(name, device=budget.device)
    except ValueError:  # an unknown model: the one-by-one path reports it per candidate
        return False


def evaluate_population(losses: list[Loss] | tuple[Loss, ...], budget: Budget, *,
                        threads: int | None = None) -> list[Outcome]:
    """:func:`evaluate_candidate` for every loss, trained together (``symloss.harness.batched``).

    One :class:`Outcome` per loss, in order, each what :func:`evaluate_candidate`
    would return within training noise; ``seconds`` is the chunk's time shared
    out. ``threads`` overrides ``budget.threads`` (the batched matmuls use more
    cores well); with neither, a Dask task takes its share of the worker's
    ``nthreads`` (:func:`task_threads`) and anything else one thread. Never raises:
    a chunk that fails falls back to one by one, and each candidate that then fails
    comes back ``failed``.
    """
    started = time.perf_counter()
    losses = list(losses)
    if threads is None and budget.threads is None:
        threads = task_threads()
    try:
        from symloss.harness.batched import train_population

        config, strength = _config(budget, threads)
        results = train_population(losses, _dataset(budget.dataset, budget.data_dir), config,
                                   seed=budget.seed)
        return [_outcome(result, strength, result.seconds) for result in results]
    except Exception:  # the whole chunk failed: isolate the culprit one by one
        share = (time.perf_counter() - started) / max(len(losses), 1)
        return [_with_extra_seconds(evaluate_candidate(loss, budget), share) for loss in losses]


def evaluate_chunk(chunk: int, losses: tuple[Loss, ...], budget: Budget,
                   threads: int | None = None) -> tuple[int, list[Outcome], float]:
    """One batched task: ``(chunk, outcomes, seconds)``, so results map back to their chunk
    whatever the transport; ``seconds``, the task's time on its worker, tells a task's
    overhead apart (``benchmarks/bench_cluster.py``)."""
    started = time.perf_counter()
    outcomes = evaluate_population(losses, budget, threads=threads)
    return chunk, outcomes, time.perf_counter() - started


def _with_extra_seconds(outcome: Outcome, seconds: float) -> Outcome:
    return Outcome(outcome.status, outcome.fitness, outcome.metrics, outcome.seconds + seconds,
                   outcome.worker)
