"""Ask/tell search strategies: TaylorGLO (CMA-ES over λ) and GLO (GP trees, then CMA-ES).

A strategy's fixed settings live apart from its changing state (pycma's
``interfaces.py`` habit): ``ask()`` proposes one generation from the state,
``tell(fitnesses)`` updates it, and ``state`` / ``from_state`` round-trip through
the run store. Randomness comes from one seeded ``numpy.random.Generator``
inside the state (pycma samples through it too), so a generation asked again
from a saved state is the same generation: that is what makes ``--resume``
exact.

Nothing here imports torch: these are pure optimizers over candidates.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from typing import Any

import cma
import numpy as np

from symloss.catalog import taylorglo
from symloss.gp import (
    canonical_key,
    crossover,
    from_prefix,
    has_inputs,
    mutate,
    null_epoch_gammas,
    parameterize,
    prune_coefficients,
    random_tree,
    roulette,
    to_prefix,
    tree_loss,
)
from symloss.loss import Loss
from symloss.trainability import candidate_filter


@dataclass(frozen=True)
class Candidate:
    """One proposal: a loss to train, or the reason it is skipped without training."""

    idx: int
    loss: Loss
    params: list[float] | None = None
    expression: str | None = None
    key: str | None = None
    skip: str | None = None  # why it gets fitness 0 untrained ('filtered'), or None
    tree: str | None = None  # a GP tree, as DEAP prints it


class _Snapshots:
    """``snapshot()``/``restore()`` for a strategy whose whole changing state is ``state``."""

    settings: object
    state: object

    def snapshot(self) -> bytes:
        return pickle.dumps(self.state)

    @classmethod
    def restore(cls, settings, blob: bytes):
        return cls(settings, pickle.loads(blob))  # our own snapshots, from the run store


class _Sampler:
    """pycma's ``randn`` option drawing from our Generator (picklable, so resumable)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


def _cma(x0: np.ndarray, sigma0: float, popsize: int, rng: np.random.Generator):
    options = {"popsize": popsize, "seed": np.nan, "randn": _Sampler(rng), "verbose": -9,
               "CMA_diagonal": False, "tolfun": 0, "tolx": 0, "tolfunhist": 0,
               "tolstagnation": 10**9}
    return cma.CMAEvolutionStrategy(list(map(float, x0)), sigma0, options)


# TaylorGLO ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaylorGLOSettings:
    order: int = 3
    population: int = 20
    sigma0: float = 1.2
    filter: str = "exact"
    classes: int = 10
    smoothing: float = 0.0


@dataclass
class TaylorGLOState:
    es: Any
    rng: np.random.Generator
    generation: int = 0
    pending: list[list[float]] = field(default_factory=list)


class TaylorGLOStrategy(_Snapshots):
    """CMA-ES over the λ of a TaylorGLO family (ICLR §5), with the derived filter.

    ``ask()`` returns the whole batch; the family's trainability rule is evaluated
    on it vectorized, and rejected candidates come back marked ``filtered``.
    """

    algorithm = "taylorglo"

    def __init__(self, settings: TaylorGLOSettings, state: TaylorGLOState):
        self.settings = settings
        self.state = state
        self.family = taylorglo(settings.order)
        self.keep = candidate_filter(self.family, settings.classes, settings.smoothing,
                                     settings.filter)

    @classmethod
    def create(cls, settings: TaylorGLOSettings, seed: int) -> TaylorGLOStrategy:
        rng = np.random.default_rng(seed)
        dimension = len(taylorglo(settings.order).parameters)
        es = _cma(np.zeros(dimension), settings.sigma0, settings.population, rng)
        return cls(settings, TaylorGLOState(es, rng))

    def ask(self) -> list[Candidate]:
        vectors = np.asarray(self.state.es.ask(), dtype=float)
        self.state.pending = vectors.tolist()
        passes = self.keep.mask(vectors)
        rule = self.settings.filter
        members = [self.family.bind(v) for v in vectors]
        return [Candidate(i, member, params=list(map(float, v)),
                          expression=str(member.expression),
                          skip=None if ok else f"untrainable at the null epoch ({rule} rule)")
                for i, (member, v, ok) in enumerate(zip(members, vectors, passes, strict=True))]

    def tell(self, fitnesses: list[float]) -> None:
        # pycma minimizes; fitness (accuracy) is maximized.
        self.state.es.tell(self.state.pending, [-float(f) for f in fitnesses])
        self.state.pending = []
        self.state.generation += 1


# GLO ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GLOSettings:
    population: int = 80
    elites: int = 6
    crossover: float = 0.8
    generations: int = 10  # GP generations, then CMA-ES generations below
    cma_generations: int = 5
    cma_population: int = 0  # 0: pycma's default for the dimension
    sigma0: float = 1.5
    filter: str = "exact"
    classes: int = 10
    smoothing: float = 0.0
    #: Redraw initial trees that would get fitness 0 untrained (up to this many tries each).
    #: GLO's paper keeps them; at depth ≤ 2 about 98% lack y or h, or are untrainable, so a
    #: population of 80 would start with one or two live trees.
    initial_redraws: int = 200


@dataclass
class GLOState:
    rng: np.random.Generator
    generation: int = 0
    population: list[list[str]] = field(default_factory=list)
    fitnesses: list[float] = field(default_factory=list)
    best_prefix: list[str] | None = None
    best_fitness: float = -math.inf
    es: Any = None
    family: Loss | None = None
    pending: list[list[float]] = field(default_factory=list)


class GLOStrategy(_Snapshots):
    """GLO (GLO §III): GP over loss trees, then CMA-ES over the best tree's coefficients."""

    algorithm = "glo"

    def __init__(self, settings: GLOSettings, state: GLOState):
        self.settings = settings
        self.state = state

    @classmethod
    def create(cls, settings: GLOSettings, seed: int) -> GLOStrategy:
        if settings.elites >= settings.population:
            raise ValueError(f"elites ({settings.elites}) must be fewer than the population "
                             f"({settings.population})")
        return cls(settings, GLOState(np.random.default_rng(seed)))

    @property
    def phase(self) -> str:
        return "gp" if self.state.generation < self.settings.generations else "cma"

    def ask(self) -> list[Candidate]:
        if self.phase == "gp":
            trees = self._next_trees()
            self.state.population = [to_prefix(t) for t in trees]
            return [self._tree_candidate(i, t) for i, t in enumerate(trees)]
        return self._ask_coefficients()

    def _next_trees(self) -> list:
        rng, size = self.state.rng, self.settings.population
        if not self.state.fitnesses:
            return [self._viable_tree(rng) for _ in range(size)]
        parents = [from_prefix(p) for p in self.state.population]
        order = np.argsort(-np.asarray(self.state.fitnesses), kind="stable")
        children = [parents[i] for i in order[: self.settings.elites]]
        while len(children) < size:
            first, second = roulette(self.state.fitnesses, 2, rng)
            a, b = parents[first], parents[second]
            if rng.random() < self.settings.crossover:
                a, b = crossover(a, b, rng)
            children += [mutate(a, rng), mutate(b, rng)]
        return children[:size]

    def _viable_tree(self, rng: np.random.Generator):
        tree = random_tree(rng)
        for _ in range(self.settings.initial_redraws):
            if self._tree_candidate(0, tree).skip is None:
                break
            tree = random_tree(rng)
        return tree

    def _tree_candidate(self, idx: int, tree) -> Candidate:
        loss = tree_loss(tree)
        common = {"expression": str(loss.expression), "key": canonical_key(tree),
                  "tree": str(tree)}
        if not has_inputs(tree):
            return Candidate(idx, loss, **common, skip="tree lacks y or h (GLO: fitness 0)")
        if common["key"] in ("undefined", "0"):
            return Candidate(idx, loss, **common, skip="γ is constant or undefined: no update")
        if self.settings.filter != "none":
            gamma_t, gamma_n = null_epoch_gammas(tree, self.settings.classes,
                                                 self.settings.smoothing)
            if self.settings.filter == "paper":  # ICLR Theorem 3 as published
                passes = gamma_t - (self.settings.classes - 1) * gamma_n >= 0
            else:
                passes = gamma_t - gamma_n > 0
            if not passes:
                return Candidate(idx, loss, **common, skip="untrainable at the null epoch "
                                                           f"({self.settings.filter} rule)")
        return Candidate(idx, loss, **common)

    def _ask_coefficients(self) -> list[Candidate]:
        state = self.state
        if state.es is None:
            if state.best_prefix is None:  # no tree trained to a positive fitness
                state.es, state.family = "none", None
                return []
            family, start = parameterize(from_prefix(state.best_prefix))
            family, start = prune_coefficients(family, start, rng=state.rng)
            state.family = family
            if not family.parameters:
                state.es = "none"
            else:
                popsize = self.settings.cma_population or (4 + int(3 * np.log(len(start))))
                state.es = _cma(np.asarray(start), self.settings.sigma0, popsize, state.rng)
        if state.family is None:
            return []
        if state.es == "none":  # nothing to tune: one candidate, the tree itself
            state.pending = [[]]
            return [Candidate(0, state.family, params=[], expression=str(state.family.expr),
                              key=f"fixed:{state.family.expr}")]
        vectors = np.asarray(state.es.ask(), dtype=float)
        state.pending = vectors.tolist()
        keep = candidate_filter(state.family, self.settings.classes, self.settings.smoothing,
                                self.settings.filter)
        passes = keep.mask(vectors)
        members = [state.family.bind(v) for v in vectors]
        return [Candidate(i, member, params=list(map(float, v)),
                          expression=str(member.expression),
                          skip=None if ok else "untrainable at the null epoch")
                for i, (member, v, ok) in enumerate(zip(members, vectors, passes, strict=True))]

    def tell(self, fitnesses: list[float]) -> None:
        state = self.state
        if self.phase == "gp":
            state.fitnesses = [float(f) for f in fitnesses]
            best = int(np.argmax(fitnesses))
            if fitnesses[best] > max(state.best_fitness, 0.0):  # a tree that was trained
                state.best_fitness = float(fitnesses[best])
                state.best_prefix = list(state.population[best])
        elif state.es not in (None, "none"):
            state.es.tell(state.pending, [-float(f) for f in fitnesses])
        state.pending = []
        state.generation += 1


__all__ = [
    "Candidate",
    "GLOSettings",
    "GLOState",
    "GLOStrategy",
    "TaylorGLOSettings",
    "TaylorGLOState",
    "TaylorGLOStrategy",
]
