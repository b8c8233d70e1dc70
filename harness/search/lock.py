"""One process per run: an advisory lock so that a run is never trained twice at once.

``run_lock(store, run_id)`` holds the run's lock for as long as the run trains
(search, final evaluation, report) or is deleted (``symloss runs --delete``). A
second ``symloss search --resume`` of the same run, or a delete of it, is refused
in one line while the holder lives; the kernel drops the lock when its holder dies,
even by SIGKILL, so a crashed run can always be resumed.

The lock belongs to the store *file*, not to the path typed: it is an open file
description lock (Linux ``F_OFD_SETLK``) on one byte of the store itself, at an
offset derived from the run id, far beyond the bytes SQLite locks (around 1 GiB).
Any path to the same store — a symbolic link, a hard link, a relative path, one
through ``..`` — opens the same inode and so meets the same lock; closing another
descriptor of the file (SQLite's own, a reader's) leaves it held. Nothing is
created beside the store. Where such locks are missing (macOS) a ``flock`` on
``<store>.<run_id>.lock`` beside the store's resolved path (``realpath``) stands in:
it sees symbolic links, relative paths and ``..``, but not a hard link from another
folder. Where ``fcntl`` is missing (Windows) runs are not locked.

:func:`holder_alive` asks the kernel whether anyone holds a run's lock, without
taking it, so ``symloss runs`` can tell a run whose process is gone (SIGKILL, a
lost machine) from one that is training.

>>> import tempfile
>>> store = Path(tempfile.mkdtemp()) / "runs.sqlite"
>>> _ = store.write_bytes(b"")
>>> with run_lock(store, "abc"):
...     holder_alive(store, "abc"), holder_alive(store, "other")
(True, False)
>>> holder_alive(store, "abc")
False
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path

from symloss.harness.search.storefile import StoreError, close_descriptor

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None

#: ``struct flock`` of Linux on 64-bit machines: type, whence, start, length, pid.
_FLOCK = struct.Struct("hhqqi")
#: Run locks take one byte each in [2^40, 2^40 + 2^39): far past SQLite's own lock bytes
#: (``PENDING_BYTE`` = 2^30 and the 511 after it), and past any store's size.
_LOCK_BASE, _LOCK_SPAN = 2**40, 2**39
#: What a file system without open file description locks answers.
_UNSUPPORTED = (errno.EINVAL, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


class RunLocked(StoreError):
    """Another process is running this run."""


def lock_offset(run_id: str) -> int:
    """The byte of the store that stands for ``run_id`` (a hash of the id).

    >>> lock_offset("abc") == lock_offset("abc") != lock_offset("abd")
    True
    >>> 2**40 <= lock_offset("abc") < 2**40 + 2**39
    True
    """
    digest = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big")
    return _LOCK_BASE + digest % _LOCK_SPAN


def lock_path(store: Path, run_id: str) -> Path:
    """The fallback lock file of ``run_id``, beside the store's resolved path (a hash
    stands in for an id that is not a plain name)."""
    name = run_id if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", run_id) else \
        hashlib.sha256(run_id.encode()).hexdigest()[:16]
    real = Path(os.path.realpath(store))
    return real.with_name(f"{real.name}.{name}.lock")


def _refused(run_id: str) -> RunLocked:
    return RunLocked(f"run {run_id} is running in another process; wait for it to end or "
                     "stop it, then resume")


def _byte_lock(descriptor: int, kind: int, run_id: str, command: int) -> int:
    """``fcntl`` on the run's byte; returns the lock type the kernel answers with."""
    request = _FLOCK.pack(kind, os.SEEK_SET, lock_offset(run_id), 1, 0)
    answer = fcntl.fcntl(descriptor, command, request + bytes(16))
    return _FLOCK.unpack(answer[:_FLOCK.size])[0]


def _ofd_supported() -> bool:
    return fcntl is not None and hasattr(fcntl, "F_OFD_SETLK")


@contextlib.contextmanager
def run_lock(store: Path, run_id: str) -> Iterator[None]:
    """Hold the run's lock, or raise :class:`RunLocked` at once if another holds it."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    if _ofd_supported():
        try:
            descriptor = os.open(store, os.O_RDWR)
        except OSError as error:
            raise StoreError(f"run store {store} cannot be locked for writing: "
                             f"{error.strerror}") from None
        try:
            _byte_lock(descriptor, fcntl.F_WRLCK, run_id, fcntl.F_OFD_SETLK)
        except OSError as error:
            close_descriptor(descriptor)
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise _refused(run_id) from None
            if error.errno not in _UNSUPPORTED:
                raise
        else:
            try:
                yield
            finally:  # released now; the descriptor closes once SQLite no longer needs it
                _byte_lock(descriptor, fcntl.F_UNLCK, run_id, fcntl.F_OFD_SETLK)
                close_descriptor(descriptor)
            return
    with _file_lock(store, run_id):  # pragma: no cover - where OFD locks are missing
        yield


@contextlib.contextmanager
def _file_lock(store: Path, run_id: str) -> Iterator[None]:
    """``flock`` on the lock file beside the store's resolved path, removed on release (a
    waiter that locked a removed file notices and tries again)."""
    path = lock_path(store, run_id)
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise _refused(run_id) from None
        try:
            same = os.stat(path).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(descriptor)  # the holder removed this file as we locked it: start again
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(descriptor)


def holder_alive(store: Path, run_id: str) -> bool | None:
    """Whether some process holds the run's lock; ``None`` when that cannot be told.
    Takes no lock and writes nothing."""
    if fcntl is None:  # pragma: no cover
        return None
    if _ofd_supported():
        try:
            descriptor = os.open(store, os.O_RDONLY)
        except OSError:
            return None
        try:
            return _byte_lock(descriptor, fcntl.F_WRLCK, run_id,
                              fcntl.F_OFD_GETLK) != fcntl.F_UNLCK
        except OSError as error:
            if error.errno not in _UNSUPPORTED:
                return None
        finally:
            close_descriptor(descriptor)
    return _file_holder_alive(store, run_id)  # pragma: no cover - where OFD locks are missing


def _file_holder_alive(store: Path, run_id: str) -> bool | None:
    """The fallback lock file is removed on release: none means no holder; one that is
    there cannot be told from a crashed holder's without taking it (``None``)."""
    return None if os.path.lexists(lock_path(store, run_id)) else False
