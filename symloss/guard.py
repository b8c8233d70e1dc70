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
#: Default seconds one whole symbolic call (``symloss analyze``, ``curve``: every step of
#: it together) may take before what is left is undecided; ``--seconds`` changes it. With
#: Python's start and sympy's import (1-2 s) a command answers within 10 s.
CALL_SECONDS = 8.0
#: Default bytes a single symbolic step may add to the process's address space.
DEFAULT_MEMORY = 2 * 1024**3
#: The longest budget a guard takes: a day (longer is no budget, and the OS's interval
#: timer refuses anything past its ``time_t``, about 1e12 s, with an ``OverflowError``).
MAX_SECONDS = 86400.0


def check_seconds(name: str, seconds: float) -> float:
    """``seconds`` if it is a budget a guard can keep (a number in ``(0, MAX_SECONDS]``),
    else a one-line ``ValueError`` naming ``name`` and the accepted range.

    >>> check_seconds("seconds", 2.5)
    2.5
    >>> check_seconds("total_seconds", float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: total_seconds must be positive and at most 86400 (a day), got nan
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or \
            not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"{name} must be positive and at most {MAX_SECONDS:g} (a day), "
                         f"got {seconds!r}")
    return seconds


class SymbolicTimeout(Exception):
    """Raised inside a guarded call when its time is up."""


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@dataclass
class _Level:
    """One guarded call in progress: its deadline, and whether the alarm may still end it."""

    deadline: float
    binding: bool
    armed: bool = True


#: The guarded calls in progress in the main thread, innermost last.
_levels: list[_Level] = []
#: After a deadline the alarm repeats this often until the guard has ended the call: a
#: timeout raised where Python cannot deliver it (a garbage-collector callback, a
#: ``__del__``) or swallowed by a library's ``except Exception`` is raised again.
_REPEAT = 0.05


def _on_alarm(signum, frame):  # pragma: no cover - timing dependent
    level = _levels[-1] if _levels else None
    if level is not None and level.armed and time.monotonic() >= level.deadline:
        raise SymbolicTimeout


def _arm(deadline: float) -> None:
    signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 1e-4), _REPEAT)


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
    check_seconds("seconds", seconds)
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


def _seconds_text(seconds: float) -> str:
    """``4.867`` → ``'4.9'``, ``60.0`` → ``'60'``, ``0.05`` → ``'0.05'``."""
    return f"{seconds:.2g}" if seconds < 1 else f"{seconds:.1f}".removesuffix(".0")


def _why(error: BaseException) -> str:
    detail = str(error).splitlines()[0][:80] if str(error) else ""
    name = type(error).__name__
    return f"sympy cannot decide it ({name}: {detail})" if detail else \
        f"sympy cannot decide it ({name})"


def _alarmed(call, seconds, undecided_on) -> Outcome:
    now = time.monotonic()
    parent = _levels[-1] if _levels else None
    foreign = None
    if parent is None:  # the outermost guard: keep whatever SIGALRM use was there before
        foreign = signal.signal(signal.SIGALRM, _on_alarm), signal.getitimer(signal.ITIMER_REAL)
    own = now + seconds
    level = _Level(deadline=own if parent is None else min(own, parent.deadline),
                   binding=parent is None or own < parent.deadline)
    _levels.append(level)
    _arm(level.deadline)
    try:
        try:
            return Outcome(call())
        finally:
            # From here on the alarm cannot end this level: a timeout can only arrive
            # inside the try above, where the handler below catches it.
            level.armed = False
    except SymbolicTimeout:
        if not level.binding:
            raise  # the outer guard's deadline came first: it decides
        return Outcome(None, f"took longer than {_seconds_text(seconds)} s")
    except undecided_on as error:
        return Outcome(None, _why(error))
    except RecursionError:
        return Outcome(None, "nested too deeply for sympy (RecursionError)")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _levels.pop()
        if parent is not None:
            _arm(parent.deadline)  # past it already: the alarm ends the outer call next
        else:
            handler, (remaining, interval) = foreign
            signal.signal(signal.SIGALRM, handler)
            if remaining > 0:
                left = remaining - (time.monotonic() - now)
                signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), interval)
