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

What a store refuses, each a :class:`StoreError` (one line, ``symloss`` exit 2)
and with the file left byte for byte as it was: a file that is not SQLite, a
SQLite file that fails ``PRAGMA quick_check`` (truncated, damaged), a store
from a newer schema (checked before anything is created in it), and a store
whose write lock another process holds for longer than the busy timeout
(``busy_timeout=``, default ``$SYMLOSS_STORE_BUSY_TIMEOUT`` or 30 s).

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

SCHEMA_VERSION = 1
STATUSES = ("ok", "filtered", "diverged", "failed")
BUSY_TIMEOUT_S = 30.0
SQLITE_MAGIC = b"SQLite format 3\x00"

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


def _busy_timeout() -> float:
    text = os.environ.get("SYMLOSS_STORE_BUSY_TIMEOUT")
    if text is None:
        return BUSY_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise StoreError(f"SYMLOSS_STORE_BUSY_TIMEOUT must be seconds >= 0, got {text!r}")
    return value


def _write_ahead_log(connection: sqlite3.Connection, timeout: float) -> None:
    """Put the database in WAL mode, waiting up to ``timeout`` for other connections.

    SQLite answers ``PRAGMA journal_mode=WAL`` with "database is locked" at once,
    without its busy handler, while another connection creates the same store
    (measured: 42 of 200 simultaneous openings of a new file by two processes failed
    so); retried until then.
    """
    deadline = time.monotonic() + timeout
    while connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            connection.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error).lower() or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _store_error(path: Path, error: sqlite3.Error, timeout: float) -> StoreError:
    message = str(error)
    if isinstance(error, sqlite3.OperationalError) and "locked" in message:
        return StoreError(f"run store {path} is locked by another process (waited {timeout:g} s); "
                          "try again when it is done, or raise SYMLOSS_STORE_BUSY_TIMEOUT")
    return StoreError(f"run store {path} cannot be used: {message}")


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


class RunStore:
    """A SQLite run store. Open with :meth:`open`; safe for one writer and many readers."""

    def __init__(self, connection: sqlite3.Connection, path: Path,
                 busy_timeout: float = BUSY_TIMEOUT_S):
        self.connection = connection
        self.path = path
        self.busy_timeout = busy_timeout

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True,
             busy_timeout: float | None = None) -> RunStore:
        """Open (or create) the store at ``path``; a :class:`StoreError` if it cannot be used.

        Nothing is written to an existing file until it has passed every check.
        """
        path = Path(path)
        timeout = _busy_timeout() if busy_timeout is None else float(busy_timeout)
        if not create and not path.exists():
            raise StoreError(f"no run store at {path}; pass --store FILE of an existing store")
        if path.is_dir():
            raise StoreError(f"run store {path} is a folder; pass --store FILE")
        existing = path.exists() and path.stat().st_size > 0
        if existing:
            try:
                with path.open("rb") as handle:
                    header = handle.read(len(SQLITE_MAGIC))
            except OSError as error:
                raise StoreError(f"run store {path} cannot be read: {error}") from None
            if header != SQLITE_MAGIC:
                raise StoreError(f"run store {path} cannot be used: it is not a SQLite "
                                 "database (wrong header); nothing was changed")
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = None
        try:
            connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
            complete = existing and cls._check_existing(connection, path)
            _write_ahead_log(connection, timeout)
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            if not complete:  # a new store (a complete one is opened without a write)
                connection.executescript(_SCHEMA)
                connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                                   (str(SCHEMA_VERSION),))
        except (StoreError, sqlite3.Error) as error:
            if connection is not None:
                connection.close()
            if isinstance(error, StoreError):
                raise
            raise _store_error(path, error, timeout) from None
        return cls(connection, path, timeout)

    @staticmethod
    def _check_existing(connection: sqlite3.Connection, path: Path) -> bool:
        """Refuse a damaged store or one from a newer schema before writing anything to it.

        ``True`` when the store already has every table and its schema version.
        """
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        row = None
        if "meta" in tables:
            row = connection.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is not None:
                try:
                    version = int(row[0])
                except ValueError:
                    raise StoreError(f"run store {path} has an unreadable schema version "
                                     f"{row[0]!r}") from None
                if version > SCHEMA_VERSION:
                    raise StoreError(f"run store {path} has schema version {version}, newer "
                                     f"than this symloss understands ({SCHEMA_VERSION}); "
                                     "upgrade symloss")
        verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise StoreError(f"run store {path} is damaged (quick_check: {verdict[:80]}); "
                             "nothing was changed")
        return row is not None and {"meta", "runs", "candidates", "generations"} <= tables

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
        return RunRecord(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5], row[6],
                         count, best)

    @_translated
    def runs(self) -> list[RunRecord]:
        ids = [r[0] for r in self.connection.execute(
            "SELECT run_id FROM runs ORDER BY created DESC")]
        return [self.run(i) for i in ids]

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
        return [CandidateRecord(r[0], r[1], r[2], r[3],
                                None if r[4] is None else json.loads(r[4]), r[5], r[6],
                                json.loads(r[7]), r[8], r[9]) for r in rows]

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
