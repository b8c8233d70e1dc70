"""Where training runs: the device (CUDA when present) and the CPU thread count.

>>> default_device().type in {"cpu", "cuda"}
True
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

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


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` → :func:`default_device`; anything else as torch reads it.

    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: unknown device 'gpu'; use cpu, cuda, cuda:N, mps or auto
    """
    if device is None or device == "auto":
        return default_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use cpu, cuda, cuda:N, mps or auto") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return resolved


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run a block with ``threads`` intra-op threads (``None``: the default), then restore."""
    previous = torch.get_num_threads()
    wanted = DEFAULT_CPU_THREADS if threads is None else int(threads)
    if wanted < 1:
        raise ValueError(f"threads must be >= 1, got {threads!r}")
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(previous)
