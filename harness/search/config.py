"""A search's configuration checked as a value: every number finite and in range.

The one check for a run's config, whoever builds it — the command line, the
Python API (:func:`symloss.harness.search.api.make_config`) or a stored run read back
(:meth:`symloss.harness.search.runner.SearchConfig.from_dict`: a damaged store row is
refused in one line).

>>> validate_config({"generations": 3, "budget": {"steps": 100}})
>>> validate_config({"budget": {"steps": 0}})
Traceback (most recent call last):
...
ValueError: --steps must be >= 1, got 0
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["validate_config"]


#: (flag, where in the config, smallest value, whether the smallest is allowed) per number.
_BOUNDS = (("generations", (), 1, True), ("population", (), 2, True), ("order", (), 1, True),
           ("final_seeds", (), 0, True), ("cma_generations", (), 0, True),
           ("final_steps", (), 1, True), ("sigma0", (), 0, False), ("seed", (), 0, True),
           ("steps", ("budget",), 1, True), ("batch_size", ("budget",), 1, True),
           ("lr", ("budget",), 0, False), ("smoothing", (), 0, True),
           ("threads", ("budget",), 1, True), ("classes", (), 2, True))


def validate_config(config: dict[str, Any]) -> None:
    """Every number of a run's config finite and in range, before anything is paid.

    Checked on the flags and on a stored config alike (a damaged store row is refused).
    """
    for flag, where, smallest, inclusive in _BOUNDS:
        scope = config
        for key in where:
            scope = scope.get(key) if isinstance(scope, dict) else None
        value = scope.get(flag) if isinstance(scope, dict) else None
        if value is None:
            continue
        name = f"--{flag.replace('_', '-')}"
        integer = flag not in ("sigma0", "lr", "smoothing")
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, "
                             f"got {value!r}")
        if not math.isfinite(value) or value < smallest or (value == smallest and not inclusive):
            bound = f">= {smallest}" if inclusive else f"> {smallest}"
            finite = "" if integer else "finite and "
            raise ValueError(f"{name} must be {finite}{bound}, got {value!r}")
    bound = config.get("min_target_probability")
    if bound is not None:
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or \
                not (math.isfinite(bound) and 0 < bound <= 1):
            raise ValueError(f"--min-target-probability must be in (0, 1], got {bound!r}")
        if config.get("filter") != "stable":
            raise ValueError("--min-target-probability applies to --filter stable only, got "
                             f"--filter {config.get('filter')}")
    if config.get("population") is not None:
        from symloss.harness.search.strategies import check_population

        check_population(config["population"])
    if config.get("budget", {}).get("lr") is not None:
        from symloss.harness.device import check_learning_rate

        check_learning_rate(config["budget"]["lr"])
    if not config.get("smoothing", 0) < 1:
        raise ValueError(f"--smoothing must be in [0, 1), got {config['smoothing']!r}")
    if config.get("seed", 0) >= 2**63:
        raise ValueError(f"--seed must be < 2**63, got {config['seed']!r}")
    if not isinstance(config.get("budget", {}).get("objective", "val"), str):
        raise ValueError("--objective must be 'val' or 'fgsm:EPS'")
