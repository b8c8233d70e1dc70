"""GLO's variation and selection as a DEAP toolbox (:class:`GPOperators`).

GLO §III-A's own operators by default (:mod:`symloss.gp`), or DEAP's stock ones;
DEAP's draw from Python's ``random``, seeded from the search's Generator at each
call, so a seed still decides every generation. Operators return new trees: the
parents are never changed.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
from deap import base, gp, tools

from symloss.gp import (
    MAX_INITIAL_DEPTH,
    MUTATION_RATES,
    PRIMITIVES,
    crossover,
    is_real,
    mutate,
    random_tree,
    roulette,
)
from symloss.rules import unknown_name


@contextlib.contextmanager
def _python_random_from(rng: np.random.Generator) -> Iterator[None]:
    """Python's ``random`` (which DEAP's operators use) seeded from ``rng``, then restored.

    Each use takes one draw from ``rng``: the search's seed still decides every tree.
    """
    saved = random.getstate()
    random.seed(int(rng.integers(2**63)))
    try:
        yield
    finally:
        random.setstate(saved)


def _seeded(operator: Callable, rng: np.random.Generator, *trees, **options) -> tuple:
    """A DEAP operator on copies of ``trees`` (they change in place), seeded from ``rng``."""
    with _python_random_from(rng):
        return tuple(operator(*(gp.PrimitiveTree(t) for t in trees), **options))


def _limited(max_depth: int) -> Callable[[Callable], Callable]:
    """A toolbox decorator: a child deeper than ``max_depth``, or with a complex constant
    (``log(-1)``), is replaced by its own parent — deterministically, unlike DEAP's
    ``staticLimit`` (which draws a random parent)."""
    def decorator(operator: Callable) -> Callable:
        @functools.wraps(operator)
        def wrapper(*parents):
            children = operator(*parents)
            return tuple(child if child.height <= max_depth and is_real(child)
                         else gp.PrimitiveTree(parent)
                         for child, parent in zip(children, parents, strict=True))
        return wrapper
    return decorator


class _Scored(NamedTuple):
    index: int
    fitness: float


def _tournament(fitnesses, count: int, rng: np.random.Generator, size: int) -> list[int]:
    scored = [_Scored(i, f) for i, f in enumerate(np.nan_to_num(np.asarray(fitnesses, float)))]
    with _python_random_from(rng):
        return [s.index for s in tools.selTournament(scored, count, size)]


#: GP operator choices: GLO's own (GLO §III-A; symloss.gp) or DEAP's stock operators.
MATES = ("glo", "one_point", "one_point_leaf_biased")
MUTATIONS = ("glo", "uniform", "node_replacement", "insert", "shrink")
SELECTIONS = ("roulette", "tournament")


@dataclass(frozen=True)
class GPOperators:
    """GLO's variation and selection, built as a DEAP toolbox (:meth:`toolbox`).

    The defaults are GLO §III-A's own operators (:mod:`symloss.gp`): ``mate="glo"``
    (subtree swap), ``mutate="glo"`` (the four bottom-up mutations, at
    ``mutation_rates``, default :data:`symloss.gp.MUTATION_RATES`), ``select="roulette"``.
    The others are DEAP's: mate ``one_point`` (``gp.cxOnePoint``) or
    ``one_point_leaf_biased`` (``gp.cxOnePointLeafBiased`` with ``leaf_probability``);
    mutate ``uniform`` (``gp.mutUniform``: a random subtree regrown like an initial
    tree), ``node_replacement``, ``insert`` or ``shrink``; select ``tournament``
    (``tools.selTournament`` of ``tournament_size``). DEAP's draw from Python's
    ``random``, seeded from the search's Generator at each call: a seed still decides
    every generation, so ``--resume`` replays it.

    Depth limits: the first generation's trees are at most ``initial_depth`` deep
    (GLO: 2); a child deeper than ``max_depth`` is replaced by its parent (GLO's own
    operators also stop at :data:`symloss.gp.MAX_DEPTH`, 8).

    >>> GPOperators.create({"mutate": "uniform", "select": "tournament"}).select
    'tournament'
    >>> GPOperators.create({"selection": "tournament"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown GP operator setting 'selection' (did you mean 'select'?); choose from ...
    """

    mate: str = "glo"
    mutate: str = "glo"
    select: str = "roulette"
    tournament_size: int = 3
    leaf_probability: float = 0.1
    mutation_rates: Mapping[str, float] | None = None
    initial_depth: int = MAX_INITIAL_DEPTH
    max_depth: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.mutation_rates, Mapping):  # anything else: create() says why
            object.__setattr__(self, "mutation_rates", MappingProxyType(dict(self.mutation_rates)))

    @classmethod
    def create(cls, values: Mapping[str, Any] | None = None) -> GPOperators:
        """Checked operators from a config's ``gp_operators`` (one-line ``ValueError``)."""
        names = [f.name for f in fields(cls)]
        for key in values or {}:
            if key not in names:
                raise unknown_name("GP operator setting", key, names)
        operators = cls(**(values or {}))
        for name, choices in (("mate", MATES), ("mutate", MUTATIONS), ("select", SELECTIONS)):
            if getattr(operators, name) not in choices:
                raise unknown_name(f"{name} operator", getattr(operators, name), list(choices))
        for name in ("tournament_size", "initial_depth", "max_depth"):
            value = getattr(operators, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"gp_operators {name} must be an integer >= 1, got {value!r}")
        if operators.max_depth < operators.initial_depth:
            raise ValueError(f"gp_operators max_depth ({operators.max_depth}) must be at least "
                             f"initial_depth ({operators.initial_depth})")
        if not (isinstance(operators.leaf_probability, (int, float))
                and 0 <= operators.leaf_probability <= 1):
            raise ValueError("gp_operators leaf_probability must be in [0, 1], got "
                             f"{operators.leaf_probability!r}")
        rates = operators.mutation_rates
        if rates is not None:
            if operators.mutate != "glo":
                raise ValueError("gp_operators mutation_rates apply to mutate='glo' only")
            for key, rate in rates.items():
                if key not in MUTATION_RATES:
                    raise unknown_name("GLO mutation", key, list(MUTATION_RATES))
                if isinstance(rate, bool) or not isinstance(rate, (int, float)) or \
                        not 0 <= rate <= 1:
                    raise ValueError(f"mutation rate {key!r} must be in [0, 1], got {rate!r}")
        return operators

    def toolbox(self, rng: np.random.Generator) -> base.Toolbox:
        """``mate(a, b)``, ``mutate(tree)`` (each a tuple of new trees; parents untouched)
        and ``select(fitnesses, k)`` (indices), all drawing from ``rng``."""
        box = base.Toolbox()
        # Closures, not partials: Toolbox.decorate would hand a partial's arguments to
        # the decorator's wrapper, which takes trees only.
        if self.mate == "glo":
            box.register("mate", lambda a, b: crossover(a, b, rng))
        else:
            mate = {"one_point": gp.cxOnePoint,
                    "one_point_leaf_biased": functools.partial(
                        gp.cxOnePointLeafBiased, termpb=self.leaf_probability)}[self.mate]
            box.register("mate", lambda a, b: _seeded(mate, rng, a, b))
        if self.mutate == "glo":
            rates = {**MUTATION_RATES, **(self.mutation_rates or {})}
            box.register("mutate", lambda tree: (mutate(tree, rng, rates),))
        else:
            options = {"uniform": {"expr": self._regrow(rng), "pset": PRIMITIVES},
                       "node_replacement": {"pset": PRIMITIVES}, "insert": {"pset": PRIMITIVES},
                       "shrink": {}}[self.mutate]
            stock = getattr(gp, {"uniform": "mutUniform", "node_replacement":
                                 "mutNodeReplacement", "insert": "mutInsert",
                                 "shrink": "mutShrink"}[self.mutate])
            box.register("mutate", lambda tree: _seeded(stock, rng, tree, **options))
        for name in ("mate", "mutate"):
            box.decorate(name, _limited(self.max_depth))
        if self.select == "roulette":
            box.register("select", roulette, rng=rng)
        else:
            box.register("select", _tournament, rng=rng, size=self.tournament_size)
        return box

    def _regrow(self, rng: np.random.Generator) -> Callable:
        """``gp.mutUniform``'s ``expr``: a subtree grown as GLO grows its initial trees."""
        def expr(pset=None, type_=None):
            return random_tree(rng, self.initial_depth)
        return expr
