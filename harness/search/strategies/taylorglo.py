"""TaylorGLO (ICLR §5): CMA-ES over the λ of a Taylor-polynomial loss family.

``ask()`` returns the whole batch; the filter (:mod:`symloss.rules`) is evaluated on
it vectorized, and rejected candidates come back with their reason (``filtered``,
fitness 0, never trained).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symloss.catalog import taylorglo
from symloss.harness.search.strategies import cma
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
class TaylorGLOSettings:
    order: int = 3
    population: int = 20
    sigma0: float = 1.2
    filter: str = DEFAULT_RULE
    classes: int = 10
    smoothing: float = 0.0
    min_target_probability: float = DEFAULT_MIN_TARGET_PROBABILITY
    #: pycma options over the search's own (:func:`~.cma.check_cma_options`).
    cma_options: Mapping[str, Any] = field(default_factory=dict)
    generations: int = 5

    def __post_init__(self) -> None:
        check_population(self.population)
        object.__setattr__(self, "cma_options", frozen_mapping(self.cma_options))


@dataclass
class TaylorGLOState:
    es: Any
    rng: np.random.Generator
    generation: int = 0


class TaylorGLOStrategy(Strategy):
    """CMA-ES over the λ of a TaylorGLO family (ICLR §5), with the derived filter."""

    algorithm = "taylorglo"
    extendable = ("generations",)
    #: ICLR §5: a population of 20, doubled with the invariant (its filter drops half).
    POPULATION, FILTERED_POPULATION = 20, 40
    SIGMA0 = 1.2

    def __init__(self, settings: TaylorGLOSettings, state: TaylorGLOState):
        self.settings = settings
        self.state = state
        self.family = taylorglo(settings.order)
        self.rule = get_rule(settings.filter)

    @classmethod
    def create(cls, settings: TaylorGLOSettings, seed: int) -> TaylorGLOStrategy:
        rng = np.random.default_rng(seed)
        dimension = len(taylorglo(settings.order).parameters)
        es = cma.make_cma(np.zeros(dimension), settings.sigma0, settings.population, rng,
                      settings.cma_options)
        return cls(settings, TaylorGLOState(es, rng))

    @classmethod
    def from_config(cls, config) -> TaylorGLOStrategy:
        if config.gp_operators:
            raise ValueError("gp_operators apply to GLO only, not TaylorGLO")
        population = config.population or (
            cls.POPULATION if config.filter == "none" else cls.FILTERED_POPULATION)
        bound = config.min_target_probability
        settings = TaylorGLOSettings(
            config.order, population, config.sigma0 or cls.SIGMA0, config.filter,
            config.classes, config.smoothing,
            DEFAULT_MIN_TARGET_PROBABILITY if bound is None else bound,
            cma_options=config.cma_options or {}, generations=config.generations)
        return cls.create(settings, config.seed)

    @classmethod
    def rebuild_loss(cls, record, config) -> Loss:
        """A stored member by its λ (its formula re-parsed when it has none)."""
        if record.params is not None:
            return taylorglo(config.order).bind(record.params)
        return super().rebuild_loss(record, config)

    def ask(self) -> list[Candidate]:
        vectors = np.asarray(cma.ask_vectors(self.state.es), dtype=float)
        return family_candidates(self.family, vectors, self.rule, self.settings)

    def replay(self, records) -> None:
        proposed = cma.ask_vectors(self.state.es)
        self._tell(proposed, check_generation(records, proposed, "params", "λ"))

    def _proposal(self, candidate: Candidate) -> list[float]:
        return candidate.params

    def _update(self, proposals: list, fitnesses: list[float]) -> None:
        cma.tell_vectors(self.state.es, proposals, fitnesses)

    def _summary(self) -> dict[str, Any]:
        return {"generation": self.state.generation, "rng": self.state.rng.bit_generator.state,
                "es": cma.es_summary(self.state.es)}
