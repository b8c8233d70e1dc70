"""Search strategies, found by algorithm name (:data:`STRATEGIES`).

Each strategy keeps the ask/tell contract of :class:`~.protocol.Strategy` (pycma's
``OOOptimizer``): ``ask()``, ``tell(candidates, fitnesses)``, ``stop()``, ``result``,
its own defaults (``from_config``) and how a stored record becomes a loss
(``rebuild_loss``). :func:`symloss.harness.search.runner.search` is the one loop
that drives any of them.

* :mod:`.taylorglo` — TaylorGLO: CMA-ES over a Taylor family's λ (ICLR §5);
* :mod:`.glo` — GLO: GP over trees, then CMA-ES over the best tree's coefficients
  (GLO §III), with :mod:`.operators` (GLO's own, or DEAP's stock operators);
* :mod:`.cma` — pycma, seeded from the search and its options checked;
* :mod:`.protocol` — the contract, candidates, snapshots and replay.

A new strategy is one new module with a :class:`~.protocol.Strategy` subclass, added
to :data:`STRATEGIES` below. Filters come from :mod:`symloss.rules`. Nothing here
imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from symloss.harness.search.strategies.cma import (
    RESERVED_CMA_OPTIONS,
    check_cma_options,
    make_cma,
)
from symloss.harness.search.strategies.glo import GLOSettings, GLOState, GLOStrategy
from symloss.harness.search.strategies.operators import GPOperators
from symloss.harness.search.strategies.protocol import (
    MAX_POPULATION,
    SNAPSHOT_FORMAT,
    Candidate,
    ReplayMismatch,
    Strategy,
    Told,
    check_population,
    read_snapshot,
)
from symloss.harness.search.strategies.taylorglo import (
    TaylorGLOSettings,
    TaylorGLOState,
    TaylorGLOStrategy,
)
from symloss.loss import Loss
from symloss.rules import unknown_name

#: Every strategy by its algorithm name, in the order a user is offered them.
STRATEGIES: Mapping[str, type[Strategy]] = MappingProxyType(
    {strategy.algorithm: strategy for strategy in (TaylorGLOStrategy, GLOStrategy)})

_cma = make_cma  # the name tests/test_trust_bounds_flags.py imports


def algorithm_names() -> tuple[str, ...]:
    """The strategies' names.

    >>> algorithm_names()
    ('taylorglo', 'glo')
    """
    return tuple(STRATEGIES)


def strategy_class(algorithm: str) -> type[Strategy]:
    """The strategy called ``algorithm``, or a one-line ``ValueError``.

    >>> strategy_class("glo").__name__
    'GLOStrategy'
    >>> strategy_class("cma")
    Traceback (most recent call last):
    ...
    ValueError: algorithm must be one of taylorglo, glo, got 'cma'
    """
    if isinstance(algorithm, str) and algorithm in STRATEGIES:
        return STRATEGIES[algorithm]
    raise ValueError(f"algorithm must be one of {', '.join(STRATEGIES)}, got {algorithm!r}")


def rebuild_loss(record, config) -> Loss:
    """The stored candidate's loss, as its run's strategy rebuilds it (a TaylorGLO member
    by its λ, else its formula re-parsed)."""
    return strategy_class(config.algorithm).rebuild_loss(record, config)


__all__ = [
    "MAX_POPULATION",
    "RESERVED_CMA_OPTIONS",
    "SNAPSHOT_FORMAT",
    "STRATEGIES",
    "Candidate",
    "GLOSettings",
    "GLOState",
    "GLOStrategy",
    "GPOperators",
    "ReplayMismatch",
    "Strategy",
    "TaylorGLOSettings",
    "TaylorGLOState",
    "TaylorGLOStrategy",
    "Told",
    "algorithm_names",
    "check_cma_options",
    "check_population",
    "read_snapshot",
    "rebuild_loss",
    "strategy_class",
    "unknown_name",
]
