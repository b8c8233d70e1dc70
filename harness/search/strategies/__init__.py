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

A new strategy is one new module with a :class:`~.protocol.Strategy` subclass and one
line in :data:`PLACES` below. Filters come from :mod:`symloss.rules`. Nothing here
imports torch.

This module itself imports nothing heavy: the registry names where each class lives
(``module:Class``) and imports it when a search first reads it, and the names
re-exported below load on first use (PEP 562). So :func:`algorithm_names` — what
``symloss search``'s choices read — costs no pycma (about 1.2 s;
``tests/test_issue22_strategy_registry.py`` checks it in a fresh interpreter):

>>> algorithm_names(), "glo" in STRATEGIES, STRATEGIES["glo"].__name__
(('taylorglo', 'glo'), True, 'GLOStrategy')
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from symloss.harness import lazy_exports

if TYPE_CHECKING:
    from symloss.harness.search.strategies.protocol import Strategy
    from symloss.loss import Loss

#: Every strategy by its algorithm name, in the order a user is offered them: where its
#: class lives, as ``module:Class``. A new strategy is one line here.
PLACES: Mapping[str, str] = MappingProxyType({
    "taylorglo": "symloss.harness.search.strategies.taylorglo:TaylorGLOStrategy",
    "glo": "symloss.harness.search.strategies.glo:GLOStrategy",
})


class _Registry(Mapping):
    """A read-only mapping algorithm name → strategy class that imports a class's module
    only when the class is read (its names, ``len`` and ``in`` import nothing)."""

    def __init__(self, places: Mapping[str, str]):
        self._places = places

    def __getitem__(self, algorithm: str) -> type[Strategy]:
        module, _, name = self._places[algorithm].partition(":")
        return getattr(importlib.import_module(module), name)

    def __contains__(self, algorithm: object) -> bool:
        return algorithm in self._places

    def __iter__(self) -> Iterator[str]:
        return iter(self._places)

    def __len__(self) -> int:
        return len(self._places)

    def __repr__(self) -> str:
        return f"STRATEGIES({dict(self._places)!r})"


#: Every strategy by its algorithm name (:data:`PLACES`), each class imported on first read.
STRATEGIES: Mapping[str, type[Strategy]] = _Registry(PLACES)


def algorithm_names() -> tuple[str, ...]:
    """The strategies' names, without importing any strategy (nor pycma).

    >>> algorithm_names()
    ('taylorglo', 'glo')
    """
    return tuple(STRATEGIES)


def strategy_class(algorithm: str) -> type[Strategy]:
    """The strategy called ``algorithm`` (its module imported now), or a one-line
    ``ValueError``.

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


_PROTOCOL = "symloss.harness.search.strategies.protocol"
_CMA = "symloss.harness.search.strategies.cma"
_GLO = "symloss.harness.search.strategies.glo"
_TAYLORGLO = "symloss.harness.search.strategies.taylorglo"
#: The names this package re-exports, each loaded from its module on first use.
_EXPORTS = {
    "MAX_POPULATION": _PROTOCOL, "SNAPSHOT_FORMAT": _PROTOCOL, "Candidate": _PROTOCOL,
    "ReplayMismatch": _PROTOCOL, "Strategy": _PROTOCOL, "Told": _PROTOCOL,
    "check_population": _PROTOCOL, "read_snapshot": _PROTOCOL,
    "RESERVED_CMA_OPTIONS": _CMA, "check_cma_options": _CMA, "make_cma": _CMA,
    "GLOSettings": _GLO, "GLOState": _GLO, "GLOStrategy": _GLO,
    "GPOperators": "symloss.harness.search.strategies.operators",
    "TaylorGLOSettings": _TAYLORGLO, "TaylorGLOState": _TAYLORGLO,
    "TaylorGLOStrategy": _TAYLORGLO,
    "unknown_name": "symloss.rules",
}
_exported, __dir__ = lazy_exports(globals(), _EXPORTS)


def __getattr__(name: str):
    if name == "_cma":  # the name tests/test_trust_bounds_flags.py imports
        return _exported("make_cma")
    return _exported(name)


__all__ = [
    "MAX_POPULATION",
    "PLACES",
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
