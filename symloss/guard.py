"""Time and memory guards for symbolic calls that can run without bound.

sympy offers no cancellation, so the guard uses ``SIGALRM``: in the main thread
of a Unix process the call is interrupted when its time is up and the guarded
result is *undecided* (``None``), never a hang. Memory is capped the same way:
while the call runs, the process's address space may grow by at most
``memory`` bytes (``RLIMIT_AS``), so a runaway expansion ends in ``MemoryError``,
which is undecided too. Elsewhere (a worker thread, or a platform without
``setitimer``) the call runs unguarded, and callers keep their inputs small
there: :mod:`symloss.bounds` checks sizes before any expansion.

:func:`bounded` is the same guard returning the reason with the result.

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
from dataclasses import dataclass
from typing import Generic, TypeVar

try:  # pragma: no cover - every Unix has it
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None

T = TypeVar("T")

#: Default seconds a single symbolic step may take before it is undecided.
DEFAULT_SECONDS = 5.0
#: Default bytes a single symbolic step may add to the process's address space.
DEFAULT_MEMORY = 2 * 1024**3


class SymbolicTimeout(Exception):
    """Raised inside a guarded call when its time is up."""


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _on_alarm(signum, frame):  # pragma: no cover - timing dependent
    raise SymbolicTimeout


def _address_space() -> int | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _cap_memory(memory: int | None):
    """Lower the soft address-space limit to now + ``memory``; returns what to restore."""
    if memory is None or resource is None or not hasattr(resource, "RLIMIT_AS"):
        return None
    used = _address_space()
    if used is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = used + memory
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft <= wanted:
        return None  # an outer cap is tighter: it stays
    try:
        resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
    except (ValueError, OSError):  # pragma: no cover - refused by the platform
        return None
    return soft, hard


def guarded(
    call: Callable[[], T], *, seconds: float = DEFAULT_SECONDS,
    undecided_on: tuple[type[BaseException], ...] = (NotImplementedError,),
    memory: int | None = DEFAULT_MEMORY,
) -> T | None:
    """Run ``call()``; ``None`` if it takes longer than ``seconds`` or raises ``undecided_on``.

    ``memory`` caps how many bytes the call may add to the address space (``None``:
    no cap); running out is undecided as well. Nested guards keep the outer
    deadline and the tighter memory cap: an inner call never extends either.
    """
    return bounded(call, seconds=seconds, undecided_on=undecided_on, memory=memory).value


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A guarded call's value, or ``None`` and the reason it is undecided."""

    value: T | None
    reason: str | None = None


def bounded(
    call: Callable[[], T], *, seconds: float = DEFAULT_SECONDS,
    undecided_on: tuple[type[BaseException], ...] = (NotImplementedError,),
    memory: int | None = DEFAULT_MEMORY,
) -> Outcome[T]:
    """:func:`guarded` that says why a call is undecided.

    >>> bounded(lambda: 1 + 1).value
    2
    >>> bounded(lambda: [0] * 10**12, memory=10**8).reason
    'ran out of its memory cap (0.1 GB)'
    >>> bounded(lambda: 1 / 0, undecided_on=(ZeroDivisionError,)).reason
    'sympy cannot decide it (ZeroDivisionError: division by zero)'
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    if not _can_alarm():
        try:
            return Outcome(call())
        except undecided_on as error:
            return Outcome(None, _why(error))
    restore = _cap_memory(memory)
    try:
        return _alarmed(call, seconds, undecided_on)
    except MemoryError:
        return Outcome(None, f"ran out of its memory cap ({(memory or 0) / 1e9:.1f} GB)")
    finally:
        if restore is not None:
            resource.setrlimit(resource.RLIMIT_AS, restore)


def _why(error: BaseException) -> str:
    detail = str(error).splitlines()[0][:80] if str(error) else ""
    name = type(error).__name__
    return f"sympy cannot decide it ({name}: {detail})" if detail else \
        f"sympy cannot decide it ({name})"


def _alarmed(call, seconds, undecided_on) -> Outcome:
    outer_remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    outer_handler = signal.signal(signal.SIGALRM, _on_alarm)
    inner_is_binding = outer_remaining == 0 or seconds < outer_remaining
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, seconds if inner_is_binding else outer_remaining)
    try:
        return Outcome(call())
    except SymbolicTimeout:
        if not inner_is_binding:
            raise  # the outer guard's deadline came first: it decides
        return Outcome(None, f"took longer than {seconds:g} s")
    except undecided_on as error:
        return Outcome(None, _why(error))
    except RecursionError:
        return Outcome(None, "nested too deeply for sympy (RecursionError)")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_remaining > 0:
            left = outer_remaining - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))
