"""The durable run store: one SQLite file (WAL mode) per set of runs.

A run's full config, every candidate it paid for (or filtered), and the
optimizer state after each generation. A search writes a candidate's row the
moment its evaluation returns, inside a transaction, so a crash loses at most
the evaluations still in flight; on ``--resume`` the run is replayed from its
seed to the interrupted generation, which is asked again (the same candidates)
and every candidate already in the store is taken from it instead of trained again.

Tables (``SCHEMA_VERSION`` 3; ``rung_trainings``: :mod:`symloss.harness.search.rungstore`):

- ``runs``: ``run_id``, ``algorithm``, ``config`` (JSON), ``config_hash``,
  ``status``, ``created``, ``updated``, ``report_dir``.
- ``candidates``: one row per ``(run_id, generation, idx)``: ``params`` (JSON)
  or ``expression``, ``canonical_key``, ``status`` (``ok``, ``filtered``,
  ``diverged``, ``failed``), ``fitness``, ``metrics`` (JSON), ``seconds``, ``worker``.
- ``generations``: ``(run_id, generation)`` → the optimizer state's JSON summary
  (never unpickled; resume replays the run, ``symloss.harness.search.strategies``) and the
  generation's best/median fitness.
- ``final_trainings`` (version 2): one row per training of the final evaluation,
  ``(run_id, loss, seed)`` → ``expression``, ``status``, ``test_accuracy``, stored as
  each training returns, so a killed final evaluation resumes with the missing ones.
- ``finals``: ``run_id`` → the final evaluation's results (JSON), stored before the
  report is written, so a report can always be rebuilt (``symloss show RUN_ID --report``).
- ``run_names``: ``name`` → ``run_id``, one name per run, unique in the store
  (:meth:`RunStore.set_name`; :meth:`RunStore.resolve` reads an id or a name, the id
  first). ``run_sessions``: how each search of a run was made
  (:mod:`symloss.harness.search.sessions`). Both are created by their first row.

Opening, refusing and read-only access: :mod:`symloss.harness.search.storefile`.

Every value read back is checked before it is used: a number column holding text, a
blob or ±inf, a JSON column that does not parse (or holds ``NaN``/``Infinity``), a
final evaluation of the wrong shape. A damaged value is a :class:`StoreError` naming
the run, the table and the column (``symloss`` prints it in one line, exit 2);
:meth:`RunStore.runs` reports it per run (:attr:`RunRecord.damage`) and hides no other.
What is written is strict JSON (``allow_nan=False``).

Test hook: ``SYMLOSS_TEST_SLOW_WRITE=SECONDS`` sleeps inside every write
transaction, after its statements and before its ``COMMIT``, so a test can
kill the process while a transaction is open (``tests/test_reliability_kill.py``).

One module, over the ~400-line aim: :class:`RunStore` is one class over one SQLite
file, and every table's reads check their values the same way (a :class:`StoreError`
naming the run, the table and the column); opening and locking already live apart
(``storefile.py``, ``lock.py``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symloss.harness.search.storefile import (
    BUSY_TIMEOUT_S,
    SCHEMA_VERSION,  # noqa: F401  (re-exported: the store's public names live here)
    StoreError,
    _store_error,
    add_final_trainings,
    add_run_names,
    connect,
    connection_closed,
    connection_opened,
    file_key,
    has_table,
    store_path,  # noqa: F401
)
from symloss.report import finite

STATUSES = ("ok", "filtered", "diverged", "failed")

#: A run's name: a letter or digit, then letters, digits, ``.``, ``_`` or ``-`` (64 at most;
#: no ``:`` or space, so ``run:NAME:RANK`` reads it).
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_run_name(name: str) -> str:
    """``name`` if a run can be called so, else a one-line ``ValueError``.

    >>> check_run_name("mnist1d-baseline")
    'mnist1d-baseline'
    >>> check_run_name("a:b")
    Traceback (most recent call last):
    ...
    ValueError: a run name is a letter or digit, then up to 63 letters, digits, '.', '_' or '-'; \
got 'a:b'
    """
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name):
        raise ValueError("a run name is a letter or digit, then up to 63 letters, digits, "
                         f"'.', '_' or '-'; got {name!r}")
    return name


class Damaged(ValueError):
    """A stored value that is not what symloss wrote; its message names the table and
    column (the store method adds the run and the file)."""


def printable(value: Any) -> str:
    """A stored value as text output prints it: every character that is not printable
    (newline, ESC, BEL, carriage return, …) escaped as ``repr`` writes it, so a stored
    string can neither split a line nor reach the terminal as a control sequence.

    >>> print(printable("ok\\n0000fake"), printable("digits\\x1b[2J\\x07"), printable("ℓ = h"))
    ok\\n0000fake digits\\x1b[2J\\x07 ℓ = h
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))


def _shown(value: Any) -> str:
    """A stored value as a message shows it: its SQLite type and a short repr."""
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"a blob of {len(value)} bytes"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return repr(value)


def _number(value: Any, column: str, where: str, *, nullable: bool = False) -> float | None:
    """A stored number: finite, never text, a blob or ±inf (NULL only where ``nullable``)."""
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise Damaged(f"{column} of {where} is {_shown(value)}, not a finite number")
    return value


def _integer(value: Any, column: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Damaged(f"{column} of {where} is {_shown(value)}, not an integer")
    return value


def _text(value: Any, column: str, where: str, *, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise Damaged(f"{column} of {where} is {_shown(value)}, not text")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _json(value: Any, column: str, where: str, kind: type, *, strict: bool = True) -> Any:
    """Stored JSON text of type ``kind``; ``strict``: ``NaN``/``Infinity`` refused (a
    candidate's free-form ``metrics`` may hold them, as stores before version 2 wrote)."""
    _text(value, column, where)
    try:
        parsed = json.loads(value, parse_constant=_no_constant if strict else None)
    except (ValueError, RecursionError):
        raise Damaged(f"{column} of {where} is not JSON") from None
    if not isinstance(parsed, kind):
        raise Damaged(f"{column} of {where} is {value[:40]!r}, not a JSON "
                      f"{'object' if kind is dict else 'list'}")
    return parsed


def _dumps(value: Any) -> str:
    """Strict JSON for the store (non-finite numbers as ``symloss.report.finite`` has them)."""
    return json.dumps(finite(value), sort_keys=True, allow_nan=False)


def _config(text: Any) -> tuple[dict[str, Any], str | None]:
    """A stored config and ``None``, or ``{}`` and what is wrong with it."""
    try:
        value = _json(text, "runs.config", "the run", dict)
    except Damaged as damage:
        return {}, str(damage)
    if not isinstance(value.get("budget"), dict):
        return {}, "runs.config of the run has no budget object"
    return value, None


#: Candidate rows of a run whose cheap columns are damaged (the first one).
_SUSPECT = ("SELECT generation, idx, status, fitness, params, expression, canonical_key, "
            "metrics, seconds, worker FROM candidates WHERE run_id = ? AND NOT ("
            "typeof(fitness) IN ('integer', 'real') AND abs(fitness) <= 1.7976931348623157e308 "
            "AND status IN ('ok', 'filtered', 'diverged', 'failed') "
            "AND typeof(generation) = 'integer' AND typeof(idx) = 'integer') LIMIT 1")


def _candidate(row: tuple) -> CandidateRecord:
    """A stored candidate row, every column checked (:class:`Damaged` names the bad one)."""
    generation, idx = row[0], row[1]
    where = (f"generation {generation} candidate {idx}"
             if isinstance(generation, int) and isinstance(idx, int) else "a candidate row")
    _integer(generation, "candidates.generation", where)
    _integer(idx, "candidates.idx", where)
    if row[2] not in STATUSES:
        raise Damaged(f"candidates.status of {where} is {_shown(row[2])}, not one of "
                      f"{', '.join(STATUSES)}")
    fitness = _number(row[3], "candidates.fitness", where)
    params = None
    if row[4] is not None:
        params = _json(row[4], "candidates.params", where, list)
        for value in params:
            _number(value, "candidates.params", where)
    metrics = _json(row[7], "candidates.metrics", where, dict, strict=False)
    return CandidateRecord(generation, idx, row[2], fitness, params,
                           _text(row[5], "candidates.expression", where, nullable=True),
                           _text(row[6], "candidates.canonical_key", where, nullable=True),
                           metrics, _number(row[8], "candidates.seconds", where),
                           _text(row[9], "candidates.worker", where, nullable=True))


def _summary_problem(value: Any) -> str | None:
    """What is wrong with a stored accuracy summary (``mean``, ``std``, ``per_seed``)."""
    if not isinstance(value, dict) or not isinstance(value.get("per_seed"), list):
        return "has no per_seed list"
    numbers = [value.get("mean"), value.get("std"), *value["per_seed"]]
    if any(v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))
           for v in numbers):
        return "holds a value that is not a number"
    return None


def _final_problem(value: dict[str, Any]) -> str | None:
    """What is wrong with a stored final evaluation (``FinalResult.to_dict``'s shape)."""
    rows = {"test_accuracy": value.get("test_accuracy"),
            "baseline_test_accuracy": value.get("baseline_test_accuracy")}
    p_values = [value.get("p_value")]
    baselines = value.get("baselines", {})
    if not isinstance(baselines, dict) or not all(isinstance(b, dict) for b in
                                                   baselines.values()):
        return "its baselines are not an object of objects"
    for name, row in baselines.items():
        rows[f"baselines.{name[:40]}"] = row.get("test_accuracy")
        p_values.append(row.get("p_value"))
    for name, row in rows.items():
        problem = _summary_problem(row)
        if problem:
            return f"its {name} {problem}"
    if any(p is not None and (isinstance(p, bool) or not isinstance(p, (int, float))
                              or not 0 <= p <= 1) for p in p_values):
        return "a p-value is not a number in [0, 1]"
    if not isinstance(value.get("loss", ""), str) or \
            not isinstance(value.get("best_baseline", ""), str):
        return "its loss or best baseline is not text"
    return None



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
    damage: str | None = None  # what is wrong with the stored run, when something is
    name: str | None = None  # its name in the store (RunStore.set_name), if it has one


@dataclass(frozen=True)
class FinalTraining:
    """One stored training of a final evaluation (``loss``: ``found`` or a baseline's name)."""

    loss: str
    expression: str
    seed: int
    status: str
    test_accuracy: float | None


class RunStore:
    """A SQLite run store. Open with :meth:`open`; safe for one writer and many readers."""

    def __init__(self, connection: sqlite3.Connection, path: Path,
                 busy_timeout: float = BUSY_TIMEOUT_S):
        self.connection = connection
        self.path = path
        self.busy_timeout = busy_timeout
        self._file = file_key(path)
        self._creating: Callable[[sqlite3.Connection, str], None] | None = None
        connection_opened(self._file)

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
        connection_closed(self._file)
        self._file = None

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

    def _damaged(self, run_id: str, damage: Damaged | str) -> StoreError:
        """One line, whatever the stored id or value holds (:func:`printable`)."""
        return StoreError(f"run {printable(run_id)} in {self.path} is damaged: "
                          f"{printable(damage)}")

    @_translated
    def create_run(self, algorithm: str, config: dict[str, Any], run_id: str | None = None) -> str:
        """A new run (``running``); inside :meth:`creating`, with what that block adds."""
        run_id = run_id or uuid.uuid4().hex[:12]
        now = time.time()
        with self._transaction() as db:
            db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, 'running', ?, ?, NULL)",
                       (run_id, algorithm, _dumps(config), config_hash(config), now, now))
            if self._creating is not None:
                self._creating(db, run_id)
        return run_id

    @_translated
    def extend_run(self, run_id: str, config: dict[str, Any]) -> None:
        """A stored run's config grown (more generations, :attr:`Strategy.extendable`): the
        config replaced, its final evaluation and the trainings of its old best dropped (a
        longer run may find another; the baselines' trainings are kept: same seeds, same
        length)."""
        with self._transaction() as db:
            db.execute("UPDATE runs SET config = ?, config_hash = ?, updated = ? WHERE run_id = ?",
                       (_dumps(config), config_hash(config), time.time(), run_id))
            if has_table(db, "finals"):
                db.execute("DELETE FROM finals WHERE run_id = ?", (run_id,))
            if has_table(db, "final_trainings"):
                db.execute("DELETE FROM final_trainings WHERE run_id = ? AND loss = 'found'",
                           (run_id,))

    @contextmanager
    def creating(self, write: Callable[[sqlite3.Connection, str], None]) -> Iterator[None]:
        """A run created inside this block stores ``write(connection, run_id)``'s rows in the
        same transaction as itself (its name, its first session): a run never exists without
        them, and they never exist without it."""
        self._creating = write
        try:
            yield
        finally:
            self._creating = None

    # names ----------------------------------------------------------------------------------

    @_translated
    def resolve(self, run: str) -> str:
        """The id of the run ``run`` names: a run id, else a run's name (an id wins); a
        :class:`StoreError` naming the store's runs if it is neither."""
        if self.has_run(run):
            return run
        named = self.names().get(run)
        if named is None:
            self._row(run)  # the one line naming the store's runs
        return named

    @_translated
    def set_name(self, run_id: str, name: str) -> None:
        """Call run ``run_id`` ``name`` (its earlier name, if any, is dropped); a
        :class:`StoreError` in one line if another run has that name or that id."""
        self._row(run_id)
        with self._transaction() as db:
            self.claim_name(db, run_id, name)

    def claim_name(self, db: sqlite3.Connection, run_id: str, name: str) -> None:
        """:meth:`set_name`'s write, inside the caller's transaction (:meth:`creating`)."""
        self.check_name_free(name, run_id, db)
        add_run_names(db)
        db.execute("INSERT OR REPLACE INTO run_names VALUES (?, ?, ?)",
                   (name, run_id, time.time()))

    @_translated
    def check_name_free(self, name: str, run_id: str | None = None,
                        db: sqlite3.Connection | None = None) -> None:
        """Refuse, in one line, a name that is not a run name (:func:`check_run_name`) or
        that another run than ``run_id`` holds as its name or its id (asked before a search
        pays anything; asked again inside the write)."""
        check_run_name(name)
        db = db or self.connection
        holder = self.names(db).get(name)
        if holder is not None and holder != run_id:
            raise StoreError(f"the name {name!r} is taken by run {printable(holder)} in "
                             f"{self.path}; choose another")
        if name != run_id and db.execute("SELECT 1 FROM runs WHERE run_id = ?",
                                         (name,)).fetchone() is not None:
            raise StoreError(f"{name!r} is the id of another run in {self.path}; choose "
                             "another name")

    @_translated
    def names(self, db: sqlite3.Connection | None = None) -> dict[str, str]:
        """``{name: run_id}`` (none in a store without names)."""
        db = db or self.connection
        if not has_table(db, "run_names"):
            return {}
        return {str(name): str(run_id) for name, run_id in
                db.execute("SELECT name, run_id FROM run_names")}

    @_translated
    def run(self, run_id: str) -> RunRecord:
        """The stored run; a :class:`StoreError` if there is none or it is damaged (naming
        the table and column)."""
        record = self._record(run_id)
        if record.damage:
            raise self._damaged(record.run_id, record.damage)
        return record

    def loss(self, run_id: str, rank: int = 1):
        """The run's ``rank``-th best distinct evaluated candidate as a loss (1: the best),
        its parameters bound; ``meta`` records ``run``, ``rank`` and ``fitness``.

        ``run_id``: a run's id or name (:meth:`resolve`).
        What a ``run:ID[:rank]`` loss spec names (:mod:`symloss.harness.search.resolver`).
        A ``ValueError`` (one line) for a rank below 1 or past the run's distinct
        evaluated candidates, a :class:`StoreError` for a run that is not stored or a
        candidate whose stored ``params``/``expression`` no longer make its loss (named
        with the table and column: the store is damaged, not the user's spec).
        """
        from symloss.harness.search.final import rebuild_loss
        from symloss.harness.search.runner import SearchConfig, best_candidates
        from symloss.loss import Loss

        if rank < 1:
            raise ValueError(f"ranks start at 1, got {rank}")
        run_id = self.resolve(run_id)
        run = self.run(run_id)
        ranked = best_candidates(self, run_id, rank)
        if len(ranked) < rank:
            raise ValueError(f"run {run_id} has {len(ranked)} distinct evaluated candidates, "
                             f"not {rank}")
        record = ranked[rank - 1]
        config = SearchConfig.from_dict(run.config)
        column = "params" if record.params is not None else "expression"
        try:
            loss = rebuild_loss(record, config)
        except (ValueError, TypeError) as error:  # what the store holds, not what the user typed
            raise self._damaged(run_id, f"candidates.{column} (generation {record.generation}, "
                                f"candidate {record.idx}): {error}") from None
        meta = (("run", run_id), ("rank", rank), ("fitness", record.fitness))
        return Loss(f"run-{run_id}-{rank}", loss.expr, loss.parameters, loss.values,
                    (*loss.meta, *meta))

    def _record(self, run_id: str) -> RunRecord:
        """The stored run with what is damaged in it, if anything (:attr:`RunRecord.damage`)."""
        row = self._row(run_id)
        where = "the run"
        try:
            algorithm = _text(row[1], "runs.algorithm", where)
            status = _text(row[3], "runs.status", where)
            created = _number(row[4], "runs.created", where)
            updated = _number(row[5], "runs.updated", where)
            report_dir = _text(row[6], "runs.report_dir", where, nullable=True)
            suspect = self.connection.execute(_SUSPECT, (run_id,)).fetchone()
            if suspect is not None:
                _candidate(suspect)
        except Damaged as damage:
            return RunRecord(run_id, str(row[1]), {}, str(row[3]), None, None, None, 0, None,
                             str(damage))
        count, best = self.connection.execute(
            "SELECT COUNT(*), MAX(fitness) FROM candidates WHERE run_id = ? AND status != "
            "'filtered' AND COALESCE(worker, '') != 'cache'", (run_id,)).fetchone()
        config, damage = _config(row[2])
        name = next((n for n, i in self.names().items() if i == run_id), None)
        return RunRecord(run_id, algorithm, config, status, created, updated, report_dir, count,
                         best, damage, name)

    def _row(self, run_id: str) -> tuple:
        row = self.connection.execute(
            "SELECT run_id, algorithm, config, status, created, updated, report_dir FROM runs "
            "WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            known = ", ".join(r.run_id + (f" ({r.name})" if r.name else "")
                              for r in self.runs()[:10]) or "none"
            raise StoreError(f"no run {run_id!r} in {self.path} (no run has that id or name); "
                             f"runs: {printable(known)}")
        return row

    @_translated
    def has_run(self, run_id: str) -> bool:
        return self.connection.execute("SELECT 1 FROM runs WHERE run_id = ?",
                                       (run_id,)).fetchone() is not None

    @_translated
    def runs(self) -> list[RunRecord]:
        """Every run, newest first; a damaged one carries its :attr:`RunRecord.damage`."""
        ids = [r[0] for r in self.connection.execute(
            "SELECT run_id FROM runs ORDER BY created DESC")]
        return [self._record(i) for i in ids]

    @_translated
    def delete_run(self, run_id: str) -> int:
        """Remove a run and everything stored for it (a damaged run too); returns the
        candidates removed."""
        self._row(run_id)  # a StoreError naming the store's runs when there is none
        with self._transaction() as db:
            removed = db.execute("DELETE FROM candidates WHERE run_id = ?", (run_id,)).rowcount
            for table in ("generations", "finals", "final_trainings", "rung_trainings",
                          "run_names", "run_sessions", "runs"):
                if has_table(db, table):
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
                 None if record.params is None else _dumps(record.params),
                 record.expression, record.canonical_key, record.status, float(record.fitness),
                 _dumps(record.metrics), float(record.seconds), record.worker, time.time()))
            db.execute("UPDATE runs SET updated = ? WHERE run_id = ?", (time.time(), run_id))

    @_translated
    def candidates(self, run_id: str, generation: int | None = None) -> list[CandidateRecord]:
        return self.read_rows("candidates", "generation, idx, status, fitness, params, "
                              "expression, canonical_key, metrics, seconds, worker",
                              _candidate, run_id, generation)

    def read_rows(self, table: str, columns: str, parse, run_id: str,
                  generation: int | None = None, order: str = "generation, idx") -> list:
        """A run's rows of ``table`` (of one ``generation``), each checked by ``parse`` (a
        :class:`Damaged` value is a :class:`StoreError` naming the run)."""
        query = f"SELECT {columns} FROM {table} WHERE run_id = ?"
        args: tuple = (run_id,)
        if generation is not None:
            query += " AND generation = ?"
            args += (generation,)
        rows = self.connection.execute(f"{query} ORDER BY {order}", args).fetchall()
        try:
            return [parse(row) for row in rows]
        except Damaged as damage:
            raise self._damaged(run_id, damage) from None

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

    @_translated
    def counts(self, run_id: str) -> dict[str, int]:
        rows = self.connection.execute(
            "SELECT status, COUNT(*) FROM candidates WHERE run_id = ? GROUP BY status",
            (run_id,)).fetchall()
        for status, _ in rows:
            if status not in STATUSES:
                raise self._damaged(run_id, f"candidates.status is {_shown(status)}, not one "
                                            f"of {', '.join(STATUSES)}")
        return {status: count for status, count in rows}

    # final evaluations ----------------------------------------------------------------------

    @_translated
    def add_final_training(self, run_id: str, training: FinalTraining) -> None:
        """Store one training of the final evaluation the moment it returns (a store of
        schema version 1 gains the table first)."""
        accuracy = training.test_accuracy
        if accuracy is not None and not math.isfinite(accuracy):
            accuracy = None
        with self._transaction() as db:
            add_final_trainings(db)
            db.execute("INSERT INTO final_trainings VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (run_id, training.loss, training.expression, training.seed,
                        training.status, accuracy, time.time()))

    @_translated
    def final_trainings(self, run_id: str) -> list[FinalTraining]:
        """The final evaluation's trainings stored so far (none in a store before version 2)."""
        if not has_table(self.connection, "final_trainings"):
            return []
        rows = self.connection.execute(
            "SELECT loss, expression, seed, status, test_accuracy FROM final_trainings "
            "WHERE run_id = ? ORDER BY loss, seed", (run_id,)).fetchall()
        trainings = []
        for loss, expression, seed, status, accuracy in rows:
            where = f"loss {loss!r} seed {seed!r}"
            try:
                trainings.append(FinalTraining(
                    _text(loss, "final_trainings.loss", where),
                    _text(expression, "final_trainings.expression", where),
                    _integer(seed, "final_trainings.seed", where),
                    _text(status, "final_trainings.status", where),
                    _number(accuracy, "final_trainings.test_accuracy", where, nullable=True)))
            except Damaged as damage:
                raise self._damaged(run_id, damage) from None
        return trainings

    @_translated
    def save_final(self, run_id: str, result: dict[str, Any]) -> None:
        """Store a run's final evaluation (before any report is written from it)."""
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS finals (run_id TEXT PRIMARY KEY REFERENCES "
                       "runs(run_id), result TEXT NOT NULL, created REAL NOT NULL)")
            db.execute("INSERT OR REPLACE INTO finals VALUES (?, ?, ?)",
                       (run_id, _dumps(result), time.time()))

    @_translated
    def final(self, run_id: str) -> dict[str, Any] | None:
        """The stored final evaluation, or ``None`` (none run, or a store from before finals)."""
        if not has_table(self.connection, "finals"):
            return None
        row = self.connection.execute("SELECT result FROM finals WHERE run_id = ?",
                                      (run_id,)).fetchone()
        if row is None:
            return None
        try:
            value = _json(row[0], "finals.result", "the run", dict)
        except Damaged as damage:
            raise self._damaged(run_id, damage) from None
        problem = _final_problem(value)
        if problem:
            raise self._damaged(run_id, f"finals.result of the run: {problem}")
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
        where = f"generation {row[0]!r}"
        try:
            _integer(row[0], "generations.generation", where)
            if not isinstance(row[1], bytes):
                raise Damaged(f"generations.state of {where} is {_shown(row[1])}, not a blob")
        except Damaged as damage:
            raise self._damaged(run_id, damage) from None
        return row[0], row[1]

    @_translated
    def generation_summary(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.connection.execute(
            "SELECT generation, best_fitness, median_fitness FROM generations WHERE run_id = ? "
            "ORDER BY generation", (run_id,)).fetchall()
        summary = []
        for generation, best, median in rows:
            where = f"generation {generation!r}"
            try:  # NULL: no candidate was trained (NaN is stored as NULL)
                summary.append({
                    "generation": _integer(generation, "generations.generation", where),
                    "best_fitness": _number(best, "generations.best_fitness", where,
                                            nullable=True),
                    "median_fitness": _number(median, "generations.median_fitness", where,
                                              nullable=True)})
            except Damaged as damage:
                raise self._damaged(run_id, damage) from None
        return summary

    @_translated
    def integrity_check(self) -> str:
        return self.connection.execute("PRAGMA integrity_check").fetchone()[0]
