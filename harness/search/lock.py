"""One process per run: an advisory lock so that a run is never trained twice at once.

``run_lock(store, run_id)`` holds ``flock`` on ``<store>.<run_id>.lock`` beside
the store for as long as the run trains (search, final evaluation, report). A
second ``symloss search --resume`` of the same run is refused in one line
while the first lives; the kernel drops the lock when its holder dies, even by
SIGKILL, so a crashed run can always be resumed. The lock file is removed on
release (a waiter that locked a removed file notices and tries again).
Where ``fcntl`` is missing (Windows) runs are not locked.

The file holds ``HOST PID`` of its holder, so ``symloss runs`` can tell a run
whose process is gone (SIGKILL, a lost machine) from one that is training,
without touching the lock (:func:`holder_alive`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

from symloss.harness.search.storefile import StoreError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None


class RunLocked(StoreError):
    """Another process is running this run."""


def lock_path(store: Path, run_id: str) -> Path:
    """The lock file of ``run_id`` (a hash stands in for an id that is not a plain name)."""
    name = run_id if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", run_id) else \
        hashlib.sha256(run_id.encode()).hexdigest()[:16]
    return store.with_name(f"{store.name}.{name}.lock")


@contextlib.contextmanager
def run_lock(store: Path, run_id: str) -> Iterator[None]:
    """Hold the run's lock, or raise :class:`RunLocked` at once if another process holds it."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = lock_path(Path(store), run_id)
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise RunLocked(f"run {run_id} is running in another process (lock {path}); "
                            "wait for it to end or stop it, then resume") from None
        try:
            same = os.stat(path).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(descriptor)  # the holder removed this file as we locked it: start again
    try:
        os.write(descriptor, f"{socket.gethostname()} {os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(descriptor)


def holder_alive(store: Path, run_id: str) -> bool | None:
    """Whether a process on this host holds the run's lock; ``None`` when that cannot be told
    (a holder on another host, or one that has not written its name yet). Reads only."""
    try:
        text = lock_path(Path(store), run_id).read_text()[:300]
    except FileNotFoundError:
        return False
    except OSError:
        return None
    parts = text.split()
    if len(parts) != 2 or not parts[1].isdigit() or parts[0] != socket.gethostname():
        return None
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OverflowError, OSError):
        return None
    return True
