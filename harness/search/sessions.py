"""How each search of a run was made: its sessions, the run's provenance (issue 24).

A run is searched in one or more *sessions*: the one that created it, then one per
``--resume`` (or API call that continues it). Each stores, in the run store's
``run_sessions`` table (created by its first row; a store without it has no sessions),
what the numbers may depend on (MLflow's run parameters, tags and environment):

- ``environment``: :func:`symloss.harness.provenance.environment` — the versions of
  symloss, torch, sympy, symengine, numpy, pycma, DEAP and Python, the machine (CPU
  model, cores), the device and the torch threads;
- ``executor``: where the candidates trained — ``kind`` (``in-process``, ``processes``,
  ``dask``, or the class of an executor passed in), its ``workers``, the ``scheduler``,
  ``chunk`` (candidates per task; ``None``: chosen per generation), ``batched`` and
  ``evaluate`` (the built-in trainer or a Python fitness function);
- ``config``: the run's configuration with every default the strategy and the trainer
  filled in (:func:`resolved_config`) as this symloss filled them;
- ``started``/``ended`` (UTC, ISO 8601) and ``status`` (``finished``, ``interrupted``,
  ``failed: ErrorType``; none while it runs or when it was killed).

:func:`run_provenance` is what ``show --json`` carries as ``provenance`` (and the report's
``summary.json``): the resolved configuration and every session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from typing import Any

from symloss.harness.search.store import (
    Damaged,
    RunStore,
    StoreError,
    _dumps,
    _integer,
    _json,
    _text,
    _translated,
)
from symloss.harness.search.storefile import add_run_sessions, has_table

__all__ = ["end_session", "executor_facts", "resolved_config", "run_provenance",
           "session_facts", "sessions", "start_session", "write_session"]


def executor_facts(executor=None, *, workers: int | None = None, scheduler: str | None = None,
                   chunk: int | None = None, batched: bool = True,
                   evaluate: bool = False) -> dict[str, Any]:
    """Where a session's candidates train (``executor``: one passed in, else the one
    ``workers``/``scheduler`` make), as stored.

    >>> executor_facts(workers=2, chunk=4)["kind"], executor_facts()["kind"]
    ('processes', 'in-process')
    """
    if executor is not None:
        kind = type(executor).__name__
        workers = getattr(executor, "workers", workers)
        chunk = getattr(executor, "chunk", chunk)
    elif scheduler:
        kind = "dask"
    elif workers:
        kind = "processes"
    else:
        kind = "in-process"
    return {"kind": kind, "workers": workers, "scheduler": scheduler, "chunk": chunk,
            "batched": bool(batched),
            "evaluate": "python function" if evaluate else "built-in trainer"}


def resolved_config(config, *, trainer: bool = True) -> dict[str, Any]:
    """``config`` (a :class:`~symloss.harness.search.config.SearchConfig`) as a dict with
    the strategy's defaults (population, σ₀, …) and — ``trainer``: the built-in trainer
    trains — the model's (model, learning rate, minibatch) filled in where it says ``None``."""
    values = config.to_dict()
    settings = getattr(config.strategy(), "settings", None)
    if dataclasses.is_dataclass(settings):
        for setting in dataclasses.fields(settings):
            if setting.name in values and values[setting.name] is None:
                values[setting.name] = getattr(settings, setting.name)
    if trainer and config.fitness is None:
        from symloss.harness.train import TrainConfig

        budget = dict(values["budget"])
        try:
            training = TrainConfig(model=budget.get("model"), lr=budget.get("lr"),
                                   batch_size=budget.get("batch_size")).resolved(
                budget["dataset"])
        except (KeyError, ValueError):  # a model the trainer does not know: as recorded
            training = None
        for key in ("model", "lr", "batch_size"):
            if training is not None and budget.get(key) is None:
                budget[key] = getattr(training, key)
        values["budget"] = budget
    return values


def session_facts(config, *, kind: str, executor: dict[str, Any],
                  scheduler: str | None = None) -> dict[str, Any]:
    """A session's facts: its ``kind`` (``created``, ``resumed``), :func:`environment
    <symloss.harness.provenance.environment>`, ``executor`` (:func:`executor_facts`) and
    the resolved config. The device is this machine's resolved one, except on a Dask
    cluster (``scheduler``) or with a Python fitness function: then as configured."""
    from symloss.harness.provenance import environment

    trainer = executor.get("evaluate") == "built-in trainer"
    device = config.budget.device
    if trainer and scheduler is None:
        from symloss.harness.device import resolve_device

        device = str(resolve_device(device))
    return {"kind": kind,
            "environment": environment(device=device, threads=config.budget.threads),
            "executor": executor, "config": resolved_config(config, trainer=trainer)}


def write_session(db: sqlite3.Connection, run_id: str, facts: dict[str, Any]) -> int:
    """Store a session that starts now, inside the caller's write transaction (a new run's
    is written with the run: :meth:`RunStore.creating`); returns its number (from 1)."""
    from symloss.harness.provenance import now

    add_run_sessions(db)
    last = db.execute("SELECT MAX(session) FROM run_sessions WHERE run_id = ?",
                      (run_id,)).fetchone()[0]
    number = (last if isinstance(last, int) else 0) + 1
    db.execute("INSERT INTO run_sessions VALUES (?, ?, ?, ?, NULL, NULL, ?)",
               (run_id, number, facts.get("kind", "resumed"), now(), _dumps(facts)))
    return number


@_translated
def start_session(store: RunStore, run_id: str, facts: dict[str, Any]) -> int:
    """Store a session of a stored run that starts now; returns its number."""
    with store._transaction() as db:
        return write_session(db, run_id, facts)


def end_session(store: RunStore, run_id: str, number: int, status: str | None) -> None:
    """Record how session ``number`` ended (``None`` status: it was refused before it did
    anything, and is removed). Never raises: it runs while another error is on its way."""
    from symloss.harness.provenance import now

    with contextlib.suppress(StoreError, sqlite3.Error), store._transaction() as db:
        if not has_table(db, "run_sessions"):
            return
        if status is None:
            db.execute("DELETE FROM run_sessions WHERE run_id = ? AND session = ?",
                       (run_id, number))
        else:
            db.execute("UPDATE run_sessions SET ended = ?, status = ? WHERE run_id = ? AND "
                       "session = ?", (now(), status, run_id, number))


def _session(row: tuple) -> dict[str, Any]:
    where = f"session {row[0]!r}"
    facts = _json(row[5], "run_sessions.facts", where, dict)
    return {"session": _integer(row[0], "run_sessions.session", where),
            "kind": _text(row[1], "run_sessions.kind", where),
            "started": _text(row[2], "run_sessions.started", where),
            "ended": _text(row[3], "run_sessions.ended", where, nullable=True),
            "status": _text(row[4], "run_sessions.status", where, nullable=True),
            **{key: value for key, value in facts.items() if key != "kind"}}


@_translated
def sessions(store: RunStore, run_id: str) -> list[dict[str, Any]]:
    """The run's sessions, first to last (none in a store without the table)."""
    if not has_table(store.connection, "run_sessions"):
        return []
    return store.read_rows("run_sessions", "session, kind, started, ended, status, facts",
                           _session, run_id, order="session")


def run_provenance(store: RunStore, run_id: str) -> dict[str, Any]:
    """How run ``run_id`` was made: ``config`` (its configuration, defaults filled as its
    latest session filled them; for a run stored before sessions, as this symloss fills
    them) and ``sessions`` (:func:`sessions`). A damaged value is a :class:`StoreError`."""
    from symloss.harness.search.config import SearchConfig

    record = store.run(run_id)
    found = sessions(store, run_id)
    if found and isinstance(found[-1].get("config"), dict):
        config = found[-1]["config"]
    else:
        try:
            config = resolved_config(SearchConfig.from_dict(record.config))
        except ValueError as error:
            raise store._damaged(run_id, Damaged(f"runs.config: {error}")) from None
    return {"config": config, "sessions": found}
