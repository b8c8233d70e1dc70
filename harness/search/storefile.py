"""Opening a run store file: what is refused before anything is written, and read-only access.

What a store refuses, each a :class:`StoreError` (one line, ``symloss`` exit 2)
and with the file left byte for byte as it was: a path that is not a file
(``:memory:``, ``file:`` URIs), a file that is not SQLite, another
application's SQLite file (tables that are not a run store's), a SQLite file
that fails ``PRAGMA quick_check`` (truncated, damaged), a store from a newer
schema (checked before anything is created in it), and a store whose write
lock another process holds for longer than the busy timeout (``busy_timeout=``,
default ``$SYMLOSS_STORE_BUSY_TIMEOUT`` or 30 s).

``readonly=True`` (``symloss runs``/``show``) opens the file through a
``mode=ro`` URI — ``immutable=1`` when the store is in WAL mode with no
``-wal`` file beside it, so that reading creates no ``-wal``/``-shm`` files —
and never creates, converts or migrates anything. A ``runs.config`` row that
is not a JSON object is reported per row (:attr:`RunRecord.damage`) and hides
no other run.

A path that cannot be a store file (a name longer than the file system allows, a
folder below a file) is refused by :func:`symloss.paths.path_problem`, in one line.

Schema versions: 1 (runs, candidates, generations, finals); 2 adds
``final_trainings``, one row per training of the final evaluation; 3 adds
``rung_trainings``, one row per training of a promoted candidate at a longer rung
(:mod:`symloss.harness.search.fidelity`). An older store opens and resumes as it is;
it gains a table (and the newest version number) when its first row of that table is
stored (:func:`add_final_trainings`, :func:`add_rung_trainings`).

Version 3 also has ``run_names`` (one name per run, unique in the store) and
``run_sessions`` (how each search of a run was made: versions, machine, device, threads,
executor, start and end). Each is created by its first row (:func:`add_run_names`,
:func:`add_run_sessions`), which raises the store to version 3 — so a symloss that does
not know them says the store is newer than it understands, not that it is no run store;
a store without them reads as having no names and no sessions, and a store opened only
to read never gains them.

SQLite keeps POSIX locks on a store for as long as a connection is open, and the
kernel drops *all* of a process's POSIX locks on a file when *any* descriptor of it
is closed. So a descriptor symloss opens on a store itself (the header read, the run
lock, :mod:`symloss.harness.search.lock`) is closed through :func:`close_descriptor`,
which waits until this process has no store connection to that file open.

One module over the ~400-line aim because a store's schema, its versions and the checks
made before anything is written are one concept: the DDL, the migrations and the refusals
read the same table list, and split they would drift.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path

from symloss.paths import path_problem

SCHEMA_VERSION = 3
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
CREATE TABLE IF NOT EXISTS finals (
    run_id TEXT PRIMARY KEY REFERENCES runs(run_id),
    result TEXT NOT NULL,
    created REAL NOT NULL
);
"""
#: Schema version 2: one row per training of a run's final evaluation (``loss``: ``found``
#: or the baseline's catalog name; ``test_accuracy`` NULL where the training gave none).
_FINAL_TRAININGS = """
CREATE TABLE IF NOT EXISTS final_trainings (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    loss TEXT NOT NULL,
    expression TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    test_accuracy REAL,
    created REAL NOT NULL,
    PRIMARY KEY (run_id, loss, seed)
);
"""
#: Schema version 3: one row per training of a promoted candidate at a longer rung
#: (``identity``: what makes two candidates the same loss; ``worker`` ``cache``: copied
#: from an identical loss trained at that length earlier in the run).
_RUNG_TRAININGS = """
CREATE TABLE IF NOT EXISTS rung_trainings (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    generation INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    rung INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    identity TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'diverged', 'failed')),
    fitness REAL NOT NULL,
    metrics TEXT NOT NULL,
    seconds REAL NOT NULL,
    worker TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (run_id, generation, idx, rung)
);
"""
#: A run's name (``symloss search --name``, ``run:NAME``): unique in the store, one per run.
_RUN_NAMES = """
CREATE TABLE IF NOT EXISTS run_names (
    name TEXT PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
"""
#: One row per search of a run (``session`` 1: the one that created it; each resume adds
#: one): ``facts`` (JSON) says how it was made, ``ended``/``status`` how it ended (NULL
#: while it runs, or when it was killed).
_RUN_SESSIONS = """
CREATE TABLE IF NOT EXISTS run_sessions (
    run_id TEXT NOT NULL,
    session INTEGER NOT NULL,
    kind TEXT NOT NULL,
    started TEXT NOT NULL,
    ended TEXT,
    status TEXT,
    facts TEXT NOT NULL,
    PRIMARY KEY (run_id, session)
);
"""
TABLES = frozenset({"meta", "runs", "candidates", "generations", "finals", "final_trainings",
                    "rung_trainings", "run_names", "run_sessions"})
REQUIRED_TABLES = frozenset({"meta", "runs", "candidates", "generations"})


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


def store_path(path: str | Path) -> Path:
    """``path`` as a store file; a :class:`StoreError` for ``:memory:``, ``""`` and URIs.

    >>> store_path(":memory:")
    Traceback (most recent call last):
    ...
    symloss.harness.search.storefile.StoreError: run store must be a file path, got ':memory:' ...
    """
    text = os.fspath(path)
    if not text.strip() or text.strip() == ":memory:" or text.startswith("file:"):
        raise StoreError(f"run store must be a file path, got {text!r} (an in-memory or URI "
                         "store would lose every paid evaluation)")
    return Path(text)


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


def connect(path: str | Path, *, create: bool = True, readonly: bool = False,
            busy_timeout: float | None = None) -> tuple[sqlite3.Connection, Path, float]:
    """Open (or create) the store at ``path``: its connection, path and busy timeout.

    A :class:`StoreError` if it cannot be used.
    Nothing is written to an existing file until it has passed every check;
    ``readonly`` writes nothing at all (see the module docstring).
    """
    path = store_path(path)
    timeout = _busy_timeout() if busy_timeout is None else float(busy_timeout)
    create = create and not readonly
    if not create and not os.path.exists(path):
        raise StoreError(f"no run store at {path}; pass --store FILE of an existing store")
    problem = path_problem(path)
    if problem:
        raise StoreError(f"run store {path}{problem}")
    if path.is_dir():
        raise StoreError(f"run store {path} is a folder; pass --store FILE")
    if path.exists() and not path.is_file():  # a named pipe would block the first read
        raise StoreError(f"run store {path} is not a regular file; pass --store FILE")
    existing = path.exists() and path.stat().st_size > 0
    if existing and _header(path) != SQLITE_MAGIC:
        raise StoreError(f"run store {path} cannot be used: it is not a SQLite "
                         "database (wrong header); nothing was changed")
    if readonly:
        return _open_readonly(path, timeout)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = None
    try:
        connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        complete = existing and _check_existing(connection, path)
        _write_ahead_log(connection, timeout)
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        if not complete:  # a new store (a complete one is opened without a write)
            connection.executescript(_SCHEMA + _FINAL_TRAININGS + _RUNG_TRAININGS)
            connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                               (str(SCHEMA_VERSION),))
    except (StoreError, sqlite3.Error) as error:
        _give_up(connection, path, error, timeout)
    return connection, path, timeout


def add_final_trainings(connection: sqlite3.Connection) -> None:
    """Schema 1 → 2, inside the caller's write transaction: the ``final_trainings`` table
    (nothing else changes; every version-1 row reads as before)."""
    connection.execute(_FINAL_TRAININGS)
    _at_least(connection, 2)


def add_rung_trainings(connection: sqlite3.Connection) -> None:
    """Schema 2 → 3 (or 1 → 3), inside the caller's write transaction: the
    ``rung_trainings`` table; nothing else changes."""
    connection.execute(_RUNG_TRAININGS)
    _at_least(connection, 3)


def add_run_names(connection: sqlite3.Connection) -> None:
    """The ``run_names`` table (schema 3), inside the caller's write transaction."""
    connection.execute(_RUN_NAMES)
    _at_least(connection, 3)


def add_run_sessions(connection: sqlite3.Connection) -> None:
    """The ``run_sessions`` table (schema 3), inside the caller's write transaction."""
    connection.execute(_RUN_SESSIONS)
    _at_least(connection, 3)


def _at_least(connection: sqlite3.Connection, version: int) -> None:
    """The stored schema version raised to ``version`` (never lowered)."""
    connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version' AND "
                       "CAST(value AS INTEGER) < ?", (str(version), version))


def has_table(connection: sqlite3.Connection, name: str) -> bool:
    """Whether the store has table ``name`` (an older store lacks the newer ones)."""
    return connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                              (name,)).fetchone() is not None


# --- descriptors of a store file opened beside SQLite's own --------------------------------

_GUARD = threading.Lock()
_CONNECTIONS: dict[tuple[int, int], int] = {}  # (device, inode) → this process's connections
_PENDING: dict[tuple[int, int], list[int]] = {}  # descriptors whose close waits for them


def file_key(path: str | Path) -> tuple[int, int] | None:
    """The store file's ``(device, inode)`` — the same through any path to it."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def connection_opened(key: tuple[int, int] | None) -> None:
    """Count a store connection of this process to the file ``key``."""
    if key is not None:
        with _GUARD:
            _CONNECTIONS[key] = _CONNECTIONS.get(key, 0) + 1


def connection_closed(key: tuple[int, int] | None) -> None:
    """Uncount it; with the file's last connection gone, close the descriptors that waited."""
    if key is None:
        return
    with _GUARD:
        left = _CONNECTIONS.get(key, 0) - 1
        if left > 0:
            _CONNECTIONS[key] = left
            return
        _CONNECTIONS.pop(key, None)
        waiting = _PENDING.pop(key, [])
    for descriptor in waiting:
        os.close(descriptor)


def close_descriptor(descriptor: int) -> None:
    """Close a descriptor of a store file — once no connection of this process uses the file
    (closing it earlier would drop SQLite's POSIX locks on it: see the module docstring)."""
    status = os.fstat(descriptor)
    key = (status.st_dev, status.st_ino)
    with _GUARD:
        if _CONNECTIONS.get(key):
            _PENDING.setdefault(key, []).append(descriptor)
            return
    os.close(descriptor)


def _header(path: Path, size: int = len(SQLITE_MAGIC)) -> bytes:
    """The first ``size`` bytes of the file (a :class:`StoreError` if it cannot be read)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise StoreError(f"run store {path} cannot be read: {error}") from None
    try:
        return os.pread(descriptor, size, 0)
    except OSError as error:
        raise StoreError(f"run store {path} cannot be read: {error}") from None
    finally:
        close_descriptor(descriptor)


def _give_up(connection: sqlite3.Connection | None, path: Path, error: Exception,
             timeout: float) -> None:
    """Close a half-opened store; raise a :class:`StoreError` as it is, a SQLite error as
    the one line :func:`_store_error` makes of it."""
    if connection is not None:
        connection.close()
    if isinstance(error, StoreError):
        raise error
    raise _store_error(path, error, timeout) from None


def _open_readonly(path: Path, timeout: float) -> tuple[sqlite3.Connection, Path, float]:
    header = _header(path, 20)
    wal_mode = len(header) == 20 and header[18] == 2
    wal_file = path.with_name(path.name + "-wal")
    flags = "mode=ro&immutable=1" if wal_mode and not wal_file.exists() else "mode=ro"
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?{flags}"
    connection = None
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
        if not _check_existing(connection, path):
            # no tables, or only some of a store's (another process is creating it):
            # nothing to read yet; an empty store in memory answers "no runs"
            connection.close()
            connection = sqlite3.connect(":memory:", isolation_level=None)
            connection.executescript(_SCHEMA + _FINAL_TRAININGS + _RUNG_TRAININGS)
    except (StoreError, sqlite3.Error) as error:
        _give_up(connection, path, error, timeout)
    return connection, path, timeout


def _check_existing(connection: sqlite3.Connection, path: Path) -> bool:
    """Refuse a damaged store, another application's database or one from a newer schema
    before writing anything to it.

    ``True`` when the store already has every table and its schema version.
    """
    tables = {row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    foreign = sorted(t for t in tables - TABLES if not t.startswith("sqlite_"))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise StoreError(f"{path} is a SQLite database but not a symloss run store "
                         f"(tables {shown}); nothing was changed")
    row = None
    if "meta" in tables:
        row = connection.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None:
            try:
                version = int(row[0])
            except (TypeError, ValueError):
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
    return row is not None and tables >= REQUIRED_TABLES
