"""One candidate's evaluation: a partial training, its fitness, and nothing lost on failure.

:func:`evaluate_candidate` runs wherever the executor sends it (this process, a
local worker process, a Dask worker). It never raises for a candidate's own
fault: NaN/inf losses come back ``diverged``, exceptions (out-of-memory
included) ``failed``, both with fitness 0, so the search goes on.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from symloss.loss import Loss

OBJECTIVES = ("val", "fgsm:EPS")


@dataclass(frozen=True)
class Budget:
    """How a candidate is trained and scored (part of the run's recorded config)."""

    dataset: str = "mnist1d"
    model: str | None = None
    steps: int = 300
    lr: float | None = None
    batch_size: int | None = None
    objective: str = "val"
    data_dir: str | None = None
    seed: int = 0
    threads: int | None = 1
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
        if strength >= 0:
            return strength
    raise ValueError(f"objective must be 'val' or 'fgsm:EPS' with EPS >= 0, got {text!r}")


@dataclass(frozen=True)
class Outcome:
    status: str
    fitness: float
    metrics: dict[str, Any]
    seconds: float
    worker: str


@lru_cache(maxsize=4)
def _dataset(name: str, data_dir: str | None):
    from harness.data import load_dataset

    return load_dataset(name, data_dir=data_dir)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def evaluate_candidate(loss: Loss, budget: Budget) -> Outcome:
    """Train ``loss`` for ``budget.steps`` and score it (validation accuracy, or under FGSM)."""
    started = time.perf_counter()
    try:
        from harness.train import TrainConfig, train

        strength = parse_objective(budget.objective)
        extra = {} if strength is None else {"fgsm_validation": (strength,)}
        config = TrainConfig(model=budget.model, steps=budget.steps, lr=budget.lr,
                             batch_size=budget.batch_size, threads=budget.threads,
                             device=budget.device, evaluations=1, **extra)
        result = train(loss, _dataset(budget.dataset, budget.data_dir), config,
                       seed=budget.seed)
        metrics = dict(result.metrics)
        if result.error:
            metrics["error"] = result.error
        if result.status != "ok":
            return Outcome(result.status, 0.0, metrics, time.perf_counter() - started,
                           _worker_name())
        if strength is None:
            fitness = metrics.get("val_accuracy")
        else:
            fitness = (metrics.get("val_fgsm_accuracy") or {}).get(str(strength))
        if fitness is None:
            return Outcome("diverged", 0.0, metrics, time.perf_counter() - started,
                           _worker_name())
        return Outcome("ok", float(fitness), metrics, time.perf_counter() - started,
                       _worker_name())
    except MemoryError:
        return Outcome("failed", 0.0, {"error": "out of memory"}, time.perf_counter() - started,
                       _worker_name())
    except Exception as error:  # a candidate's fault must not end the search
        detail = traceback.format_exception_only(type(error), error)[-1].strip()
        return Outcome("failed", 0.0, {"error": detail}, time.perf_counter() - started,
                       _worker_name())
