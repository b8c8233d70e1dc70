"""The run store's ``rung_trainings`` table (schema 3): a promoted candidate's trainings.

Written one row per training as it returns (:func:`add_rung_training`), read back
with every column checked (:func:`rung_trainings`: a damaged value is a
:class:`~symloss.harness.search.storefile.StoreError` naming the run, table and
column). A store without the table (before schema 3) has no rung trainings; its
first row adds the table (:func:`~symloss.harness.search.storefile.add_rung_trainings`).
Kept beside :mod:`~symloss.harness.search.store` so that the multi-fidelity
schedule (:mod:`~symloss.harness.search.fidelity`) owns its own rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from symloss.harness.search.store import (
    Damaged,
    RunStore,
    _dumps,
    _integer,
    _json,
    _number,
    _text,
    _translated,
)
from symloss.harness.search.storefile import add_rung_trainings, has_table

__all__ = ["RungTraining", "add_rung_training", "rung_trainings"]

_STATUSES = ("ok", "diverged", "failed")


@dataclass(frozen=True)
class RungTraining:
    """One training of a promoted candidate at a longer rung (rung ≥ 1), as stored."""

    generation: int
    idx: int
    rung: int
    steps: int
    identity: str
    status: str
    fitness: float
    metrics: dict[str, Any]
    seconds: float
    worker: str | None


@_translated
def add_rung_training(store: RunStore, run_id: str, training: RungTraining) -> None:
    """Store one rung training the moment it returns (a second write of it is refused)."""
    if training.status not in _STATUSES:
        raise ValueError(f"a rung training's status must be one of {_STATUSES}, got "
                         f"{training.status!r}")
    with store._transaction() as db:
        add_rung_trainings(db)
        db.execute("INSERT INTO rung_trainings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (run_id, training.generation, training.idx, training.rung, training.steps,
                    training.identity, training.status, float(training.fitness),
                    _dumps(training.metrics), float(training.seconds), training.worker,
                    time.time()))
        db.execute("UPDATE runs SET updated = ? WHERE run_id = ?", (time.time(), run_id))


@_translated
def rung_trainings(store: RunStore, run_id: str,
                   generation: int | None = None) -> list[RungTraining]:
    """The run's rung trainings (of one ``generation``), in generation, idx, rung order."""
    if not has_table(store.connection, "rung_trainings"):
        return []
    return store.read_rows("rung_trainings", "generation, idx, rung, steps, identity, status, "
                           "fitness, metrics, seconds, worker", _training, run_id, generation,
                           "generation, idx, rung")


def _training(row: tuple) -> RungTraining:
    where = f"rung training {row[0]!r}/{row[1]!r}/{row[2]!r}"
    generation, idx, rung, steps = (_integer(value, f"rung_trainings.{name}", where)
                                    for value, name in zip(row[:4], ("generation", "idx",
                                                                     "rung", "steps"),
                                                           strict=True))
    status = _text(row[5], "rung_trainings.status", where)
    if status not in _STATUSES:
        raise Damaged(f"rung_trainings.status of {where} is {status[:20]!r}, not one of "
                      f"{', '.join(_STATUSES)}")
    return RungTraining(generation, idx, rung, steps,
                        _text(row[4], "rung_trainings.identity", where), status,
                        _number(row[6], "rung_trainings.fitness", where),
                        _json(row[7], "rung_trainings.metrics", where, dict, strict=False),
                        _number(row[8], "rung_trainings.seconds", where),
                        _text(row[9], "rung_trainings.worker", where, nullable=True))
