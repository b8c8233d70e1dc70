"""How a result was made: the versions, the machine and the settings that change numerics.

:func:`environment` is what every stored run, ``symloss train --json`` and a search's
``summary.json`` record beside their configuration (issue 24; MLflow records the
same kind of facts for its runs): the versions of symloss and of every library whose
arithmetic or randomness enters a result, Python's, the machine (CPU model, cores
this process may use), the torch device and its thread count. Versions are read
from the installed distributions' metadata, so asking imports nothing new.

>>> facts = environment(device="cpu", threads=1)
>>> sorted(facts)
['device', 'machine', 'threads', 'versions']
>>> sorted(facts["versions"])[:4]
['cma', 'deap', 'numpy', 'python']
>>> facts["threads"], facts["device"]
(1, 'cpu')
"""

from __future__ import annotations

import datetime
import os
import platform
from importlib import metadata
from typing import Any

__all__ = ["DISTRIBUTIONS", "environment", "machine", "now", "versions"]

#: The installed distributions whose version a result depends on (import name → distribution).
DISTRIBUTIONS = {"symloss": "symloss", "torch": "torch", "sympy": "sympy",
                 "symengine": "symengine", "numpy": "numpy", "cma": "cma", "deap": "deap"}


def versions() -> dict[str, str | None]:
    """``{name: version}`` for :data:`DISTRIBUTIONS` and Python (``None``: not installed)."""
    found: dict[str, str | None] = {}
    for name, distribution in DISTRIBUTIONS.items():
        try:
            found[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = platform.python_version()
    return dict(sorted(found.items()))


def machine() -> dict[str, Any]:
    """The CPU model, the cores this process may run on and the operating system."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count()
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "usable_cores": usable,
            "system": platform.platform(), "host": platform.node()}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(*, device: str | None = None, threads: int | None = None) -> dict[str, Any]:
    """:func:`versions`, :func:`machine`, the torch ``device`` a result was computed on
    (its CUDA name when it is a GPU) and the torch ``threads`` it used.

    Both default to what torch says now, if torch is already imported (asking never
    imports it: a symbolic-only caller stays torch-free)."""
    import sys

    torch = sys.modules.get("torch")
    if threads is None and torch is not None:
        threads = torch.get_num_threads()
    shown = device
    if device is not None and str(device).startswith("cuda") and torch is not None:
        shown = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return {"versions": versions(), "machine": machine(), "device": shown, "threads": threads}


def now() -> str:
    """The time, in UTC, as ISO 8601 to the second (the start and end of a run)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
