"""The durable run store: one SQLite file (WAL mode) per set of runs.

A run's full config, every candidate it paid for (or filtered), and the
optimizer state after each generation. A search writes a candidate's row the
moment its evaluation returns, inside a transaction, so a crash loses at most
the evaluations still in flight; on ``--resume`` the run is replayed from its
seed to the interrupted generation, which is asked again (the same candidates)
and every candidate already in the store is taken from it instead of trained again.

Tables (``SCHEMA_VERSION`` 1):

- ``runs``: ``run_id``, ``algorithm``, ``config`` (JSON), ``config_hash``,
  ``status``, ``created``, ``updated``, ``report_dir``.
- ``candidates``: one row per ``(run_id, generation, idx)``: ``params`` (JSON)
  or ``expression``, ``canonical_key``, ``status`` (``ok``, ``filtered``,
  ``diverged``, ``failed``), ``fitness``, ``metrics`` (JSON), ``seconds``, ``worker``.
- ``generations``: ``(run_id, generation)`` → the optimizer state's JSON summary
  (never unpickled; resume replays the run, ``symloss.harness.search.strategies``) and the
  generation's best/median fitness.
- ``finals``: ``run_id`` → the final evaluation's results (JSON), stored before the
  report is written, so a report can always be rebuilt (``symloss show RUN_ID --report``).

Opening, refusing and read-only access: :mod:`symloss.harness.search.storefile`.

Test hook: ``SYMLOSS_TEST_SLOW_WRITE=SECONDS`` sleeps inside every write
transaction, after its statements and before its ``COMMIT``, so a test can
kill the process while a transaction is open (``tests/test_reliability_kill.py``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symloss.harness.search.storefile import (
    BUSY_TIMEOUT_S,
    SCHEMA_VERSION,  # noqa: F401  (re-exported: the store's public names live here)
    StoreError,
    _store_error,
    connect,
    store_path,  # noqa: F401
)

STATUSES = ("ok", "filtered", "diverged", "failed")


def _config(text: Any) -> tuple[dict[str, Any], str | None]:
    """A stored config and ``None``, or ``{}`` and what is wrong with it."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {}, "its config is not JSON"
    if not isinstance(value, dict):
        return {}, f"its config is {json.dumps(value)[:40]}, not a JSON object"
    if not isinstance(value.get("budget"), dict):
        return {}, "its config has no budget object"
    return value, None



def _translated(method):
    """sqlite3 errors from a store method become one-line StoreErrors (duplicates excepted)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.IntegrityError:
            raise  # a slot written twice is a bug in the caller, not a bad store
        except sqlite3.Error as error:
            raise _store_error(self.path, error, self.busy_timeout) from None

    return wrapper


def config_hash(config: dict[str, Any]) -> str:
    """A stable hash of a run's config (sorted JSON)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CandidateRecord:
    """One stored evaluation."""

    generation: int
    idx: int
    status: str
    fitness: float
    params: list[float] | None = None
    expression: str | None = None
    canonical_key: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    worker: str | None = None


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    algorithm: str
    config: dict[str, Any]
    status: str
    created: float
    updated: float
    report_dir: str | None
    evaluations: int
    best_fitness: float | None
    damage: str | None = None  # what is wrong with the stored row, when something is


class RunStore:
    """A SQLite run store. Open with :meth:`open`; safe for one writer and many readers."""

    def __init__(self, connection: sqlite3.Connection, path: Path,
                 busy_timeout: float = BUSY_TIMEOUT_S):
        self.connection = connection
        self.path = path
        self.busy_timeout = busy_timeout


    @classmethod
    def open(cls, path: str | Path, *, create: bool = True, readonly: bool = False,
             busy_timeout: float | None = None) -> RunStore:
        """Open (or create) the store at ``path``; a :class:`StoreError` if it cannot be used.

        Nothing is written to an existing file until it has passed every check;
        ``readonly`` writes nothing at all (:mod:`symloss.harness.search.storefile`).
        """
        return cls(*connect(path, create=create, readonly=readonly, busy_timeout=busy_timeout))

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield self.connection
            slow = os.environ.get("SYMLOSS_TEST_SLOW_WRITE")
            if slow:  # test hook: hold the transaction open so a kill can land inside it
                time.sleep(float(slow))
        except BaseException:
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
            raise
        else:
            self.connection.execute("COMMIT")

    # runs -----------------------------------------------------------------------------------

    @_translated
    def create_run(self, algorithm: str, config: dict[str, Any], run_id: str | None = None) -> str:
        run_id = run_id or uuid.uuid4().hex[:12]
        now = time.time()
        with self._transaction() as db:
            db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, 'running', ?, ?, NULL)",
                       (run_id, algorithm, json.dumps(config, sort_keys=True),
                        config_hash(config), now, now))
        return run_id

    @_translated
    def run(self, run_id: str) -> RunRecord:
        row = self.connection.execute(
            "SELECT run_id, algorithm, config, status, created, updated, report_dir FROM runs "
            "WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            known = ", ".join(r.run_id for r in self.runs()[:10]) or "none"
            raise StoreError(f"no run {run_id!r} in {self.path}; runs: {known}")
        count, best = self.connection.execute(
            "SELECT COUNT(*), MAX(fitness) FROM candidates WHERE run_id = ? AND status != "
            "'filtered' AND COALESCE(worker, '') != 'cache'", (run_id,)).fetchone()
        config, damage = _config(row[2])
        return RunRecord(row[0], row[1], config, row[3], row[4], row[5], row[6], count, best,
                         damage)

    @_translated
    def runs(self) -> list[RunRecord]:
        ids = [r[0] for r in self.connection.execute(
            "SELECT run_id FROM runs ORDER BY created DESC")]
        return [self.run(i) for i in ids]

    @_translated
    def delete_run(self, run_id: str) -> int:
        """Remove a run and everything stored for it; returns the candidates removed."""
        self.run(run_id)  # a StoreError naming the store's runs when there is none
        with self._transaction() as db:
            removed = db.execute("DELETE FROM candidates WHERE run_id = ?", (run_id,)).rowcount
            for table in ("generations", "finals", "runs"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        return removed

    @_translated
    def set_status(self, run_id: str, status: str, report_dir: str | None = None) -> None:
        with self._transaction() as db:
            db.execute("UPDATE runs SET status = ?, updated = ?, report_dir = COALESCE(?, "
                       "report_dir) WHERE run_id = ?", (status, time.time(), report_dir, run_id))

    # candidates -----------------------------------------------------------------------------

    @_translated
    def add_candidate(self, run_id: str, record: CandidateRecord) -> None:
        """Store one evaluation; a second write of the same slot is refused (exactly once)."""
        if record.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {record.status!r}")
        with self._transaction() as db:
            db.execute(
                "INSERT INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, record.generation, record.idx,
                 None if record.params is None else json.dumps(record.params),
                 record.expression, record.canonical_key, record.status, float(record.fitness),
                 json.dumps(record.metrics), float(record.seconds), record.worker, time.time()))
            db.execute("UPDATE runs SET updated = ? WHERE run_id = ?", (time.time(), run_id))

    @_translated
    def candidates(self, run_id: str, generation: int | None = None) -> list[CandidateRecord]:
        query = ("SELECT generation, idx, status, fitness, params, expression, canonical_key, "
                 "metrics, seconds, worker FROM candidates WHERE run_id = ?")
        args: tuple = (run_id,)
        if generation is not None:
            query += " AND generation = ?"
            args += (generation,)
        rows = self.connection.execute(query + " ORDER BY generation, idx", args).fetchall()
        try:
            return [CandidateRecord(r[0], r[1], r[2], r[3],
                                    None if r[4] is None else json.loads(r[4]), r[5], r[6],
                                    json.loads(r[7]), r[8], r[9]) for r in rows]
        except (TypeError, ValueError, RecursionError):
            raise StoreError(f"run {run_id} has a damaged candidate row (params or metrics "
                             "not JSON) in {self.path}") from None

    @_translated
    def cached(self, run_id: str, canonical_key: str) -> CandidateRecord | None:
        """A paid evaluation of an equivalent candidate in this run (the GLO fitness cache)."""
        row = self.connection.execute(
            "SELECT generation, idx FROM candidates WHERE run_id = ? AND canonical_key = ? AND "
            "status IN ('ok', 'diverged', 'failed') "
            "ORDER BY generation, idx LIMIT 1", (run_id, canonical_key)).fetchone()
        if row is None:
            return None
        return next(c for c in self.candidates(run_id, row[0]) if c.idx == row[1])

    # final evaluations ----------------------------------------------------------------------

    @_translated
    def save_final(self, run_id: str, result: dict[str, Any]) -> None:
        """Store a run's final evaluation (before any report is written from it)."""
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS finals (run_id TEXT PRIMARY KEY REFERENCES "
                       "runs(run_id), result TEXT NOT NULL, created REAL NOT NULL)")
            db.execute("INSERT OR REPLACE INTO finals VALUES (?, ?, ?)",
                       (run_id, json.dumps(result, sort_keys=True), time.time()))

    @_translated
    def final(self, run_id: str) -> dict[str, Any] | None:
        """The stored final evaluation, or ``None`` (none run, or a store from before finals)."""
        if self.connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                   "name = 'finals'").fetchone() is None:
            return None
        row = self.connection.execute("SELECT result FROM finals WHERE run_id = ?",
                                      (run_id,)).fetchone()
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except (TypeError, ValueError, RecursionError):
            value = None
        if not isinstance(value, dict):
            raise StoreError(f"run {run_id}'s stored final evaluation is damaged")
        return value

    # generations ----------------------------------------------------------------------------

    @_translated
    def save_generation(self, run_id: str, generation: int, state: bytes,
                        best: float | None, median: float | None) -> None:
        """Store the optimizer's state (a strategy's ``snapshot()``) after ``generation``."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?)",
                       (run_id, generation, state, best, median, time.time()))

    @_translated
    def last_generation(self, run_id: str) -> tuple[int, bytes] | None:
        """The newest completed generation and its optimizer state (as saved)."""
        row = self.connection.execute(
            "SELECT generation, state FROM generations WHERE run_id = ? ORDER BY generation DESC "
            "LIMIT 1", (run_id,)).fetchone()
        if row is None:
            return None
        return row[0], bytes(row[1])

    @_translated
    def generation_summary(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.connection.execute(
            "SELECT generation, best_fitness, median_fitness FROM generations WHERE run_id = ? "
            "ORDER BY generation", (run_id,)).fetchall()
        return [{"generation": g, "best_fitness": b, "median_fitness": m} for g, b, m in rows]

    @_translated
    def counts(self, run_id: str) -> dict[str, int]:
        rows = self.connection.execute(
            "SELECT status, COUNT(*) FROM candidates WHERE run_id = ? GROUP BY status",
            (run_id,)).fetchall()
        return {status: count for status, count in rows}

    @_translated
    def integrity_check(self) -> str:
        return self.connection.execute("PRAGMA integrity_check").fetchone()[0]
