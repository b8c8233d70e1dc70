"""The contract every search strategy keeps, as pycma's ``OOOptimizer`` declares its own.

A strategy's fixed settings live apart from its changing state (pycma's
``interfaces.py`` habit):

* ``ask()`` proposes one generation (:class:`Candidate` s, each a loss to train or
  the reason it is skipped);
* ``tell(candidates, fitnesses)`` updates the state from those very candidates and
  their fitnesses (higher is better) — nothing is kept between the two calls;
* ``stop()`` says whether it has run its generations; ``result`` is the best it
  was told;
* ``from_config(config)`` builds one from a run's config with the strategy's own
  defaults (the paper's population, σ0, ...); ``rebuild_loss(record, config)`` turns
  a stored candidate back into its loss.

Randomness comes from one seeded ``numpy.random.Generator`` inside the state (pycma
samples through it too), so the same seed and the same fitnesses give the same
generations: that is what makes ``--resume`` exact.

No code from data: a resumed strategy is never loaded from the store. It is rebuilt
from its seed and *replayed* (:meth:`Strategy.replay`): each completed generation
is proposed again, checked against the stored candidates, and told their stored
fitnesses — pycma's and the GP's state follow. ``snapshot()`` is a JSON summary of
the state (RNG bit-generator state, CMA-ES mean/σ, the GP population as prefix
strings); resume compares the replayed state's snapshot with the saved one and
refuses a mismatch. A snapshot is only ever parsed as JSON (:func:`read_snapshot`);
a legacy pickled blob is never read at all.

Nothing here imports torch: strategies are pure optimizers over candidates.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from symloss.loss import Loss


@dataclass(frozen=True)
class Candidate:
    """One proposal: a loss to train, or the reason it is skipped without training.

    ``params`` is a list (as the store holds it: a stored candidate is compared with it).
    """

    idx: int
    loss: Loss
    params: list[float] | None = None
    expression: str | None = None
    key: str | None = None
    skip: str | None = None  # why it gets fitness 0 untrained ('filtered'), or None
    tree: str | None = None  # a GP tree, as DEAP prints it
    prefix: tuple[str, ...] | None = None  # the same tree as its prefix node names


@dataclass(frozen=True)
class Told:
    """The best a strategy was told: its proposal (λ or a tree's prefix), fitness, generation."""

    proposal: Any
    fitness: float
    generation: int


SNAPSHOT_FORMAT = "symloss-state/1"
MAX_SNAPSHOT_BYTES = 16 * 2**20

#: The largest generation a search proposes. Each candidate is a sympy expression built at
#: ``ask()`` (about 9 ms for a TaylorGLO member, 17 ms for a GLO tree on one core), so
#: 10,000 take one to three minutes before the first training, and a generation of them
#: trains for about 13 minutes at the fastest measured rate (13 trainings/s,
#: benchmarks/RESULTS.md); a billion would build for months and never fit in memory.
MAX_POPULATION = 10_000


class ReplayMismatch(ValueError):
    """A stored generation is not the one its seed proposes again (a changed store)."""


def read_snapshot(blob: bytes) -> dict[str, Any] | None:
    """A stored state as a dict, parsed as JSON only; ``None`` for a legacy (pickled) blob.

    A blob that does not start as a JSON object (a pickle from an older symloss)
    is never read; a JSON one that is not of this format is a ``ValueError``.

    >>> read_snapshot(b'{"format": "symloss-state/1", "generation": 0}')["generation"]
    0
    >>> read_snapshot(b"\\x80\\x04cos\\nsystem\\n.") is None
    True
    """
    blob = bytes(blob)
    if blob[:1] != b"{":
        return None
    if len(blob) > MAX_SNAPSHOT_BYTES:
        raise ValueError(f"stored optimizer state is {len(blob)} bytes, more than "
                         f"{MAX_SNAPSHOT_BYTES}")
    try:
        document = json.loads(blob)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"stored optimizer state is not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"stored optimizer state is not a {SNAPSHOT_FORMAT} document")
    return document


def check_generation(records, proposed: list, field_name: str, what: str) -> list[float]:
    """The stored fitnesses of a replayed generation, after checking it is the proposed one."""
    if [r.idx for r in records] != list(range(len(proposed))):
        raise ReplayMismatch(f"a stored generation holds {len(records)} candidates where its "
                             f"seed proposes {len(proposed)}")
    for record, expected in zip(records, proposed, strict=True):
        if getattr(record, field_name) != expected:
            raise ReplayMismatch(f"stored candidate {record.generation}/{record.idx} is not the "
                                 f"one its seed proposes ({what} differ)")
        if not math.isfinite(record.fitness):
            raise ReplayMismatch(f"stored candidate {record.generation}/{record.idx} has fitness "
                                 f"{record.fitness!r}")
    return [float(r.fitness) for r in records]


def family_candidates(family: Loss, vectors, rule, settings) -> list[Candidate]:
    """A family's members at ``vectors`` (rows), each with ``rule``'s reason where it fails
    (:meth:`symloss.rules.Rule.reasons`, under the settings' classes, smoothing and bound)."""
    skips = rule.reasons(family, np.asarray(vectors, dtype=float), settings.classes,
                         settings.smoothing,
                         min_target_probability=settings.min_target_probability)
    members = [family.bind(v) for v in vectors]
    return [Candidate(i, member, params=list(map(float, v)), expression=str(member.expression),
                      skip=skip)
            for i, (member, v, skip) in enumerate(zip(members, vectors, skips, strict=True))]


def frozen_mapping(values: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only copy of ``values`` (a frozen settings value's options).

    >>> frozen_mapping({"popsize": 6})["popsize"]
    6
    """
    return MappingProxyType(dict(values or {}))


def check_population(population: int, name: str = "population", smallest: int = 2) -> int:
    """``population`` if it is a whole number from ``smallest`` to :data:`MAX_POPULATION`,
    else a one-line ``ValueError`` naming ``name`` and that range (before anything is built).

    >>> check_population(40)
    40
    >>> check_population(10**9)
    Traceback (most recent call last):
    ...
    ValueError: population must be a whole number from 2 to 10000, got 1000000000
    """
    if isinstance(population, bool) or not isinstance(population, int) or \
            not smallest <= population <= MAX_POPULATION:
        raise ValueError(f"{name} must be a whole number from {smallest} to {MAX_POPULATION}, "
                         f"got {population!r}")
    return population


class Strategy(ABC):
    """A search strategy (module docstring). A subclass sets ``algorithm`` (its name in the
    registry, :mod:`symloss.harness.search.strategies`) and defines :meth:`from_config`,
    :meth:`ask`, :meth:`replay`, :meth:`_proposal`, :meth:`_update` and :meth:`_summary`.

    Its ``settings`` are a frozen value; its ``state`` holds ``generation`` and the
    seeded ``rng``.
    """

    algorithm: ClassVar[str]
    #: The config's settings a finished run may grow by (``search --resume ID --generations
    #: N``): more of them continue the run exactly as a run started with them would go.
    extendable: ClassVar[tuple[str, ...]] = ()
    settings: Any
    state: Any
    _best: Told | None = None

    @classmethod
    @abstractmethod
    def from_config(cls, config) -> Strategy:
        """A fresh strategy for a run's config (deterministic in ``config.seed``), its
        own defaults where the config leaves a setting ``None``."""

    @classmethod
    def total_generations(cls, values) -> int:
        """How many generations a run of these settings (or this config) has."""
        return values.generations

    @classmethod
    def rebuild_loss(cls, record, config) -> Loss:
        """A stored candidate's loss: its formula re-parsed (our parser, never ``eval``)."""
        from symloss.catalog import loss as catalog_loss

        return Loss(f"{config.algorithm}-best", catalog_loss(record.expression).expr)

    @abstractmethod
    def ask(self) -> list[Candidate]:
        """The next generation's candidates."""

    def tell(self, candidates: Sequence[Candidate], fitnesses: Sequence[float]) -> None:
        """Update the state from the asked ``candidates`` and their ``fitnesses``."""
        if len(candidates) != len(fitnesses):
            raise ValueError(f"tell needs one fitness per candidate: {len(fitnesses)} for "
                             f"{len(candidates)}")
        self._tell([self._proposal(c) for c in candidates], [float(f) for f in fitnesses])

    def stop(self) -> bool:
        """Whether the strategy has run its generations."""
        return self.state.generation >= self.total_generations(self.settings)

    @property
    def generation(self) -> int:
        """The generation the next ``ask()`` proposes (0 first)."""
        return self.state.generation

    @property
    def result(self) -> Told | None:
        """The best proposal told so far (``None`` before any was)."""
        return self._best

    @abstractmethod
    def replay(self, records) -> None:
        """Redo one stored generation: propose it again, check it, tell its stored fitnesses."""

    def snapshot(self) -> bytes:
        """The state as a JSON document (compared on resume, never loaded)."""
        document = {"format": SNAPSHOT_FORMAT, "algorithm": self.algorithm, **self._summary()}
        return json.dumps(document, sort_keys=True).encode()

    def _tell(self, proposals: list, fitnesses: list[float]) -> None:
        if fitnesses:
            best = max(range(len(fitnesses)), key=fitnesses.__getitem__)
            if self._best is None or fitnesses[best] > self._best.fitness:
                self._best = Told(proposals[best], fitnesses[best], self.state.generation)
        self._update(proposals, fitnesses)
        self.state.generation += 1

    @abstractmethod
    def _proposal(self, candidate: Candidate) -> Any:
        """What ``candidate`` tells the optimizer: its λ, or its tree's prefix."""

    @abstractmethod
    def _update(self, proposals: list, fitnesses: list[float]) -> None:
        """The optimizer's update from one generation (before ``generation`` advances)."""

    @abstractmethod
    def _summary(self) -> dict[str, Any]:
        """The state's JSON summary for :meth:`snapshot`."""
