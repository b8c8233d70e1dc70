"""The durable run store: one SQLite file (WAL mode) per set of runs.

A run's full config, every candidate it paid for (or filtered), and the
optimizer state after each generation. A search writes a candidate's row the
moment its evaluation returns, inside a transaction, so a crash loses at most
the evaluations still in flight; on ``--resume`` the generation is asked again
from the saved state (the same candidates, by seeding) and every candidate
already in the store is taken from it instead of trained again.

Tables (``SCHEMA_VERSION`` 1):

- ``runs``: ``run_id``, ``algorithm``, ``config`` (JSON), ``config_hash``,
  ``status``, ``created``, ``updated``, ``report_dir``.
- ``candidates``: one row per ``(run_id, generation, idx)``: ``params`` (JSON)
  or ``expression``, ``canonical_key``, ``status`` (``ok``, ``filtered``,
  ``diverged``, ``failed``), ``fitness``, ``metrics`` (JSON), ``seconds``, ``worker``.
- ``generations``: ``(run_id, generation)`` → pickled optimizer state and the
  generation's best/median fitness.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("ok", "filtered", "diverged", "failed")
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    config TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    report_dir TEXT
);
CREATE TABLE IF NOT EXISTS candidates (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    generation INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    params TEXT,
    expression TEXT,
    canonical_key TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'filtered', 'diverged', 'failed')),
    fitness REAL NOT NULL,
    metrics TEXT NOT NULL,
    seconds REAL NOT NULL,
    worker TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (run_id, generation, idx)
);
CREATE INDEX IF NOT EXISTS candidates_key ON candidates(run_id, canonical_key);
CREATE TABLE IF NOT EXISTS generations (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    generation INTEGER NOT NULL,
    state BLOB NOT NULL,
    best_fitness REAL,
    median_fitness REAL,
    created REAL NOT NULL,
    PRIMARY KEY (run_id, generation)
);
"""


class StoreError(ValueError):
    """A store that cannot be used: corrupt, locked, from a newer schema, or a bad run id."""


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


class RunStore:
    """A SQLite run store. Open with :meth:`open`; safe for one writer and many readers."""

    def __init__(self, connection: sqlite3.Connection, path: Path):
        self.connection = connection
        self.path = path

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> RunStore:
        path = Path(path)
        if not create and not path.exists():
            raise StoreError(f"no run store at {path}; pass --store FILE of an existing store")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.executescript(_SCHEMA)
            row = connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                                   (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                connection.close()
                raise StoreError(f"run store {path} has schema version {row[0]}, newer than this "
                                 f"symloss understands ({SCHEMA_VERSION}); upgrade symloss")
        except sqlite3.DatabaseError as error:
            raise StoreError(f"run store {path} cannot be used: {error}") from None
        return cls(connection, path)

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
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        else:
            self.connection.execute("COMMIT")

    # runs -----------------------------------------------------------------------------------

    def create_run(self, algorithm: str, config: dict[str, Any], run_id: str | None = None) -> str:
        run_id = run_id or uuid.uuid4().hex[:12]
        now = time.time()
        with self._transaction() as db:
            db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, 'running', ?, ?, NULL)",
                       (run_id, algorithm, json.dumps(config, sort_keys=True),
                        config_hash(config), now, now))
        return run_id

    def run(self, run_id: str) -> RunRecord:
        row = self.connection.execute(
            "SELECT run_id, algorithm, config, status, created, updated, report_dir FROM runs "
            "WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            known = ", ".join(r.run_id for r in self.runs()[:10]) or "none"
            raise StoreError(f"no run {run_id!r} in {self.path}; runs: {known}")
        count, best = self.connection.execute(
            "SELECT COUNT(*), MAX(fitness) FROM candidates WHERE run_id = ? AND status != "
            "'filtered'", (run_id,)).fetchone()
        return RunRecord(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5], row[6],
                         count, best)

    def runs(self) -> list[RunRecord]:
        ids = [r[0] for r in self.connection.execute(
            "SELECT run_id FROM runs ORDER BY created DESC")]
        return [self.run(i) for i in ids]

    def set_status(self, run_id: str, status: str, report_dir: str | None = None) -> None:
        with self._transaction() as db:
            db.execute("UPDATE runs SET status = ?, updated = ?, report_dir = COALESCE(?, "
                       "report_dir) WHERE run_id = ?", (status, time.time(), report_dir, run_id))

    # candidates -----------------------------------------------------------------------------

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

    def candidates(self, run_id: str, generation: int | None = None) -> list[CandidateRecord]:
        query = ("SELECT generation, idx, status, fitness, params, expression, canonical_key, "
                 "metrics, seconds, worker FROM candidates WHERE run_id = ?")
        args: tuple = (run_id,)
        if generation is not None:
            query += " AND generation = ?"
            args += (generation,)
        rows = self.connection.execute(query + " ORDER BY generation, idx", args).fetchall()
        return [CandidateRecord(r[0], r[1], r[2], r[3],
                                None if r[4] is None else json.loads(r[4]), r[5], r[6],
                                json.loads(r[7]), r[8], r[9]) for r in rows]

    def cached(self, run_id: str, canonical_key: str) -> CandidateRecord | None:
        """A paid evaluation of an equivalent candidate in this run (the GLO fitness cache)."""
        row = self.connection.execute(
            "SELECT generation, idx FROM candidates WHERE run_id = ? AND canonical_key = ? AND "
            "status IN ('ok', 'diverged', 'failed') "
            "ORDER BY generation, idx LIMIT 1", (run_id, canonical_key)).fetchone()
        if row is None:
            return None
        return next(c for c in self.candidates(run_id, row[0]) if c.idx == row[1])

    # generations ----------------------------------------------------------------------------

    def save_generation(self, run_id: str, generation: int, state: bytes,
                        best: float | None, median: float | None) -> None:
        """Store the optimizer's state (a strategy's ``snapshot()``) after ``generation``."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?)",
                       (run_id, generation, state, best, median, time.time()))

    def last_generation(self, run_id: str) -> tuple[int, bytes] | None:
        """The newest completed generation and its optimizer state (as saved)."""
        row = self.connection.execute(
            "SELECT generation, state FROM generations WHERE run_id = ? ORDER BY generation DESC "
            "LIMIT 1", (run_id,)).fetchone()
        if row is None:
            return None
        return row[0], bytes(row[1])

    def generation_summary(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.connection.execute(
            "SELECT generation, best_fitness, median_fitness FROM generations WHERE run_id = ? "
            "ORDER BY generation", (run_id,)).fetchall()
        return [{"generation": g, "best_fitness": b, "median_fitness": m} for g, b, m in rows]

    def counts(self, run_id: str) -> dict[str, int]:
        rows = self.connection.execute(
            "SELECT status, COUNT(*) FROM candidates WHERE run_id = ? GROUP BY status",
            (run_id,)).fetchall()
        return {status: count for status, count in rows}

    def integrity_check(self) -> str:
        return self.connection.execute("PRAGMA integrity_check").fetchone()[0]
