"""A time guard for symbolic calls that can run without bound (limit, solve, simplify).

sympy offers no cancellation, so the guard uses ``SIGALRM``: in the main thread
of a Unix process the call is interrupted when its time is up and the guarded
result is *undecided* (``None``), never a hang. Elsewhere (a worker thread, or a
platform without ``setitimer``) the call runs unguarded, and callers keep their
inputs small there.

>>> guarded(lambda: 1 + 1, seconds=1.0)
2
>>> import time
>>> guarded(lambda: time.sleep(5), seconds=0.05) is None
True
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Default seconds a single symbolic step may take before it is undecided.
DEFAULT_SECONDS = 5.0


class SymbolicTimeout(Exception):
    """Raised inside a guarded call when its time is up."""


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _on_alarm(signum, frame):  # pragma: no cover - timing dependent
    raise SymbolicTimeout


def guarded(
    call: Callable[[], T], *, seconds: float = DEFAULT_SECONDS,
    undecided_on: tuple[type[BaseException], ...] = (NotImplementedError,),
) -> T | None:
    """Run ``call()``; ``None`` if it takes longer than ``seconds`` or raises ``undecided_on``.

    Nested guards keep the outer deadline: an inner call never extends it.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    if not _can_alarm():
        try:
            return call()
        except undecided_on:
            return None
    outer_remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    outer_handler = signal.signal(signal.SIGALRM, _on_alarm)
    inner_is_binding = outer_remaining == 0 or seconds < outer_remaining
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, seconds if inner_is_binding else outer_remaining)
    try:
        return call()
    except SymbolicTimeout:
        if not inner_is_binding:
            raise  # the outer guard's deadline came first: it decides
        return None
    except undecided_on:
        return None
    except RecursionError:
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_remaining > 0:
            left = outer_remaining - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))
