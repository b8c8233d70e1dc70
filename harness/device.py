"""Where training runs: the device (CUDA when present) and the CPU thread count.

Importing this module imports no torch (the functions that need it do), so a search's
executors can ask how many cores this machine has without paying for torch.

>>> default_device().type in {"cpu", "cuda"}
True
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Threads for CPU training when none is given; measured by ``benchmarks/bench_training.py``
#: (on 2 cores the mnist1d MLP runs faster on 1 thread: its matrices are too small to split).
DEFAULT_CPU_THREADS = 1


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS tells it).

    >>> available_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _runnable_tasks() -> int | None:
    """Threads runnable on the whole machine right now (``/proc/loadavg``), this one included."""
    try:
        with open("/proc/loadavg") as loadavg:
            return int(loadavg.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def free_cores(samples: int = 5, interval: float = 0.01, *, runnable=_runnable_tasks) -> int:
    """The cores this process can use without competing: its cores less other runnable work.

    Reads how many threads are runnable right now (the median of ``samples``
    readings, ``interval`` seconds apart), takes away this one, and gives what is
    left of this process's cores — at least 1. Where the OS does not say (no
    ``/proc``), every core. A batched population picks its threads with it: on a
    loaded machine, torch threads that wait for a busy core make each step several
    times slower than one thread would (``benchmarks/bench_contention.py``).

    >>> free_cores(runnable=lambda: 1) == available_cores()  # only this thread runs
    True
    >>> free_cores(runnable=lambda: 64)  # a machine busy with other work
    1
    """
    import time

    readings = []
    for k in range(samples):
        value = runnable()
        if value is None:
            return available_cores()
        readings.append(value)
        if k + 1 < samples:
            time.sleep(interval)
    others = max(sorted(readings)[len(readings) // 2] - 1, 0)
    idle = (os.cpu_count() or available_cores()) - others
    return max(1, min(available_cores(), idle))


def check_threads(threads: int, name: str = "threads",
                  why: str = "the cores this process may run on") -> int:
    """``threads`` if it is a whole number from 1 to :func:`available_cores`, else a one-line
    ``ValueError`` naming ``name`` and that range (``why`` says what the bound is).

    More threads than cores only make each one wait for a core (and 100,000 make torch's
    OpenMP runtime run out of memory), so the machine is the bound.

    >>> check_threads(1)
    1
    >>> check_threads(100_000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: threads must be a whole number from 1 to ... got 100000
    """
    cores = available_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= cores:
        raise ValueError(f"{name} must be a whole number from 1 to {cores} ({why}), "
                         f"got {threads!r}")
    return threads


#: The largest learning rate a training can use: its parameters are float32, and torch's
#: SGD refuses a step size float32 cannot hold ("value cannot be converted to type float
#: without overflow"). Anything up to it trains, and a run that blows up says ``diverged``.
MAX_LEARNING_RATE = float(np.finfo(np.float32).max)


def check_learning_rate(lr: float, name: str = "lr") -> float:
    """``lr`` if it is a finite number in ``(0, MAX_LEARNING_RATE]``, else a one-line
    ``ValueError`` naming ``name`` and that range.

    >>> check_learning_rate(0.05)
    0.05
    >>> check_learning_rate(1e308)
    Traceback (most recent call last):
    ...
    ValueError: lr must be a number in (0, 3.4e+38] (the largest float32: the parameters' type), got 1e+308
    """  # noqa: E501 - a doctest's expected line
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or \
            not 0 < lr <= MAX_LEARNING_RATE:
        raise ValueError(f"{name} must be a number in (0, {MAX_LEARNING_RATE:.2g}] (the largest "
                         f"float32: the parameters' type), got {lr!r}")
    return lr


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` → :func:`default_device`; anything else as torch reads it.

    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: unknown device 'gpu'; use cpu, cuda, cuda:N, mps or auto
    """
    import torch

    if device is None or device == "auto":
        return default_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use cpu, cuda, cuda:N, mps or auto") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    if resolved.type == "cuda" and resolved.index is not None \
            and resolved.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} "
                         "CUDA device(s) are visible")
    return resolved


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run a block with ``threads`` intra-op threads (``None``: the default), then restore.

    ``threads`` is checked first (:func:`check_threads`): nothing is set for a bad one.
    """
    import torch

    wanted = DEFAULT_CPU_THREADS if threads is None else check_threads(threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(previous)
