"""GLO (GLO §III): GP over loss trees, then CMA-ES over the best tree's coefficients.

The GP phase (``generations``) evolves trees with :class:`~.operators.GPOperators`;
each tree is checked before training (it must use ``y`` and ``h``, update at all,
and pass the filter's tree form, :meth:`symloss.rules.Rule.tree_reason`). The CMA-ES
phase (``cma_generations``) tunes the best trained tree's coefficients, after
pruning those that others absorb; a tree with none to tune is trained once, as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symloss.gp import (
    canonical_key,
    from_prefix,
    has_inputs,
    parameterize,
    prune_coefficients,
    random_tree,
    to_prefix,
    tree_loss,
)
from symloss.harness.search.strategies.cma import (
    ask_vectors,
    es_summary,
    make_cma,
    number,
    tell_vectors,
)
from symloss.harness.search.strategies.operators import GPOperators
from symloss.harness.search.strategies.protocol import (
    Candidate,
    Strategy,
    check_generation,
    check_population,
    family_candidates,
    frozen_mapping,
)
from symloss.loss import Loss
from symloss.rules import DEFAULT_RULE, get_rule
from symloss.stability_batch import DEFAULT_MIN_TARGET_PROBABILITY


@dataclass(frozen=True)
class GLOSettings:
    population: int = 80
    elites: int = 6
    crossover: float = 0.8
    generations: int = 10  # GP generations, then CMA-ES generations below
    cma_generations: int = 5
    cma_population: int = 0  # 0: pycma's default for the dimension
    sigma0: float = 1.5
    filter: str = DEFAULT_RULE
    classes: int = 10
    smoothing: float = 0.0
    min_target_probability: float = DEFAULT_MIN_TARGET_PROBABILITY
    #: Redraw initial trees that would get fitness 0 untrained (up to this many tries each).
    #: GLO's paper keeps them; at depth ≤ 2 about 98% lack y or h, or are untrainable, so a
    #: population of 80 would start with one or two live trees.
    initial_redraws: int = 200
    #: pycma options for the CMA-ES phase (:func:`~.cma.check_cma_options`).
    cma_options: Mapping[str, Any] = field(default_factory=dict)
    #: mate, mutate and select, and the depth limits (GLO's own by default).
    operators: GPOperators = field(default_factory=GPOperators)

    def __post_init__(self) -> None:
        check_population(self.population)
        object.__setattr__(self, "cma_options", frozen_mapping(self.cma_options))
        if self.cma_population:
            check_population(self.cma_population, "cma_population")


@dataclass
class GLOState:
    """The GP population as prefix tuples, its fitnesses, the best trained tree; then the
    CMA-ES phase's ``family`` and ``es`` (``None`` where there is nothing to tune), once
    ``family_chosen``."""

    rng: np.random.Generator
    generation: int = 0
    population: tuple[tuple[str, ...], ...] = ()
    fitnesses: tuple[float, ...] = ()
    best_prefix: tuple[str, ...] | None = None
    best_fitness: float = -math.inf
    es: Any = None
    family: Loss | None = None
    family_chosen: bool = False


class GLOStrategy(Strategy):
    """GLO (GLO §III): GP over loss trees, then CMA-ES over the best tree's coefficients."""

    algorithm = "glo"
    extendable = ("cma_generations",)  # the GP phase is over: its CMA-ES phase grows
    POPULATION = 80  # GLO §III
    SIGMA0 = 1.5  # GLO §III-B

    def __init__(self, settings: GLOSettings, state: GLOState):
        self.settings = settings
        self.state = state
        self.rule = get_rule(settings.filter)
        self.toolbox = settings.operators.toolbox(state.rng)

    @classmethod
    def create(cls, settings: GLOSettings, seed: int) -> GLOStrategy:
        if settings.elites >= settings.population:
            raise ValueError(f"elites ({settings.elites}) must be fewer than the population "
                             f"({settings.population})")
        if settings.cma_options:  # refused now, not after the GP generations were paid for
            make_cma(np.zeros(2), settings.sigma0, 4, np.random.default_rng(0),
                     settings.cma_options)
        return cls(settings, GLOState(np.random.default_rng(seed)))

    @classmethod
    def from_config(cls, config) -> GLOStrategy:
        bound = config.min_target_probability
        settings = GLOSettings(
            population=config.population or cls.POPULATION, generations=config.generations,
            cma_generations=config.cma_generations, sigma0=config.sigma0 or cls.SIGMA0,
            filter=config.filter, classes=config.classes, smoothing=config.smoothing,
            min_target_probability=DEFAULT_MIN_TARGET_PROBABILITY if bound is None else bound,
            cma_options=config.cma_options or {},
            operators=GPOperators.create(config.gp_operators or {}))
        return cls.create(settings, config.seed)

    @classmethod
    def total_generations(cls, values) -> int:
        return values.generations + values.cma_generations

    @property
    def phase(self) -> str:
        return "gp" if self.state.generation < self.settings.generations else "cma"

    def ask(self) -> list[Candidate]:
        if self.phase == "gp":
            return [self._tree_candidate(i, t) for i, t in enumerate(self._next_trees())]
        return self._ask_coefficients()

    def replay(self, records) -> None:
        if self.phase == "gp":
            trees = self._next_trees()
            proposed = [str(tree_loss(t).expression) for t in trees]
            fitnesses = check_generation(records, proposed, "expression", "trees")
            self._tell([tuple(to_prefix(t)) for t in trees], fitnesses)
            return
        vectors = self._propose_coefficients()
        self._tell(vectors, check_generation(records, vectors, "params", "coefficients"))

    def _proposal(self, candidate: Candidate) -> Any:
        return candidate.prefix if self.phase == "gp" else candidate.params

    def _update(self, proposals: list, fitnesses: list[float]) -> None:
        state = self.state
        if self.phase == "gp":
            state.population, state.fitnesses = tuple(proposals), tuple(fitnesses)
            best = int(np.argmax(fitnesses))
            if fitnesses[best] > max(state.best_fitness, 0.0):  # a tree that was trained
                state.best_fitness = fitnesses[best]
                state.best_prefix = proposals[best]
        elif state.es is not None:
            tell_vectors(state.es, proposals, fitnesses)

    def _summary(self) -> dict[str, Any]:
        state = self.state
        family = None if state.family is None else {
            "expression": str(state.family.expr),
            "parameters": [str(p) for p in state.family.parameters]}
        return {"generation": state.generation, "rng": state.rng.bit_generator.state,
                "population": state.population,
                "fitnesses": [number(f) for f in state.fitnesses],
                "best_prefix": state.best_prefix, "best_fitness": number(state.best_fitness),
                "es": es_summary(state.es, state.family_chosen), "family": family}

    # The GP phase ---------------------------------------------------------------------------

    def _next_trees(self) -> list:
        rng, size = self.state.rng, self.settings.population
        if not self.state.fitnesses:
            return [self._viable_tree(rng) for _ in range(size)]
        parents = [from_prefix(p) for p in self.state.population]
        order = np.argsort(-np.asarray(self.state.fitnesses), kind="stable")
        children = [parents[i] for i in order[: self.settings.elites]]
        box = self.toolbox
        while len(children) < size:
            first, second = box.select(list(self.state.fitnesses), 2)
            a, b = parents[first], parents[second]
            if rng.random() < self.settings.crossover:
                a, b = box.mate(a, b)
            children += [*box.mutate(a), *box.mutate(b)]
        return children[:size]

    def _viable_tree(self, rng: np.random.Generator):
        depth = self.settings.operators.initial_depth
        tree = random_tree(rng, depth)
        for _ in range(self.settings.initial_redraws):
            if self._tree_candidate(0, tree).skip is None:
                break
            tree = random_tree(rng, depth)
        return tree

    def _tree_candidate(self, idx: int, tree) -> Candidate:
        loss = tree_loss(tree)
        common = {"expression": str(loss.expression), "key": canonical_key(tree),
                  "tree": str(tree), "prefix": tuple(to_prefix(tree))}
        if not has_inputs(tree):
            return Candidate(idx, loss, **common, skip="tree lacks y or h (GLO: fitness 0)")
        if common["key"] in ("undefined", "0"):
            return Candidate(idx, loss, **common, skip="γ is constant or undefined: no update")
        settings = self.settings
        skip = self.rule.tree_reason(tree, settings.classes, settings.smoothing,
                                     min_target_probability=settings.min_target_probability)
        return Candidate(idx, loss, **common, skip=skip)

    # The CMA-ES phase -----------------------------------------------------------------------

    def _ask_coefficients(self) -> list[Candidate]:
        state, settings = self.state, self.settings
        vectors = self._propose_coefficients()
        if state.family is None:
            return []
        if state.es is None:  # nothing to tune: one candidate, the tree itself
            return [Candidate(0, state.family, params=[], expression=str(state.family.expr),
                              key=f"fixed:{state.family.expr}")]
        return family_candidates(state.family, vectors, self.rule, settings)

    def _propose_coefficients(self) -> list[list[float]]:
        """The CMA phase's next vectors (``[[]]``: the fixed tree; ``[]``: nothing to train)."""
        state = self.state
        if not state.family_chosen:
            self._choose_family()
        if state.family is None:
            return []
        if state.es is None:
            return [[]]
        return ask_vectors(state.es)

    def _choose_family(self) -> None:
        """The best trained tree's coefficients, pruned, and CMA-ES over them (if any)."""
        state = self.state
        state.family_chosen = True
        if state.best_prefix is None:  # no tree trained to a positive fitness
            return
        family, start = parameterize(from_prefix(state.best_prefix))
        family, start = prune_coefficients(family, start, rng=state.rng)
        state.family = family
        if family.parameters:
            popsize = self.settings.cma_population or (4 + int(3 * np.log(len(start))))
            state.es = make_cma(np.asarray(start), self.settings.sigma0, popsize, state.rng,
                                self.settings.cma_options)
