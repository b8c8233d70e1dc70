"""Ask/tell search strategies: TaylorGLO (CMA-ES over λ) and GLO (GP trees, then CMA-ES).

A strategy's fixed settings live apart from its changing state (pycma's
``interfaces.py`` habit): ``ask()`` proposes one generation from the state,
``tell(fitnesses)`` updates it. Randomness comes from one seeded
``numpy.random.Generator`` inside the state (pycma samples through it too), so
the same seed and the same fitnesses give the same generations: that is what
makes ``--resume`` exact.

No code from data: a resumed strategy is never loaded from the store. It is
rebuilt from its seed and *replayed* (:meth:`replay`): each completed
generation is proposed again, checked against the stored candidates, and told
their stored fitnesses — pycma's and the GP's state follow. ``snapshot()`` is
a JSON summary of the state (RNG bit-generator state, CMA-ES mean/σ, the GP
population as prefix strings); resume compares the replayed state's snapshot
with the saved one and refuses a mismatch. A snapshot is only ever parsed as
JSON (:func:`read_snapshot`); a legacy pickled blob is never read at all.

Both strategies are configurable: pycma options pass through (:func:`check_cma_options`), and
GLO's mate, mutate and select are a DEAP toolbox built from :class:`GPOperators`
(GLO's own operators by default, or DEAP's stock ones).

Nothing here imports torch: these are pure optimizers over candidates.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import math
import random
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import cma
import numpy as np
from deap import base, gp, tools

from symloss.catalog import taylorglo
from symloss.gp import (
    MAX_INITIAL_DEPTH,
    MUTATION_RATES,
    PRIMITIVES,
    canonical_key,
    crossover,
    from_prefix,
    has_inputs,
    is_real,
    mutate,
    null_epoch_gammas,
    parameterize,
    prune_coefficients,
    random_tree,
    roulette,
    to_prefix,
    tree_loss,
    tree_stability,
)
from symloss.loss import Loss
from symloss.stability_batch import DEFAULT_MIN_TARGET_PROBABILITY, basin_reason, family_stability
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


SNAPSHOT_FORMAT = "symloss-state/1"
MAX_SNAPSHOT_BYTES = 16 * 2**20


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


def _number(value: float) -> float | str:
    value = float(value)
    return value if math.isfinite(value) else repr(value)


def _es_summary(es) -> dict[str, Any] | None:
    if es is None or isinstance(es, str):
        return None if es is None else {"none": True}
    return {"mean": [_number(v) for v in es.mean], "sigma": _number(es.sigma),
            "iteration": int(es.countiter), "evaluations": int(es.countevals)}


def _check_generation(records, proposed: list, field_name: str, what: str) -> list[float]:
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


class _Snapshots:
    """``snapshot()`` (a JSON summary) and ``replay()`` for a strategy."""

    algorithm: str

    def snapshot(self) -> bytes:
        document = {"format": SNAPSHOT_FORMAT, "algorithm": self.algorithm, **self._summary()}
        return json.dumps(document, sort_keys=True).encode()

    def _summary(self) -> dict[str, Any]:
        raise NotImplementedError


class _Sampler:
    """pycma's ``randn`` option drawing from our Generator (so the seed decides every draw)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


#: pycma options the search sets itself: the search's seed decides every draw.
RESERVED_CMA_OPTIONS = ("seed", "randn")

#: The largest generation a search proposes. Each candidate is a sympy expression built at
#: ``ask()`` (about 9 ms for a TaylorGLO member, 17 ms for a GLO tree on one core), so
#: 10,000 take one to three minutes before the first training, and a generation of them
#: trains for about 13 minutes at the fastest measured rate (13 trainings/s,
#: benchmarks/RESULTS.md); a billion would build for months and never fit in memory.
MAX_POPULATION = 10_000


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


@contextlib.contextmanager
def _pycma_quiet() -> Iterator[None]:
    """pycma's ``InjectionWarning`` ("orphanated injected solution") left unprinted.

    With fewer than 6 per generation pycma samples mirrored pairs and archives them as
    injected; the search tells back exactly the vectors it was asked about, but as lists,
    which pycma's archive does not recognise, so it warns after two generations. Handing
    back its own arrays would silence it, and would also change every later generation
    (pycma then updates differently): stored runs could no longer be replayed, so the
    warning is filtered instead; nothing else from pycma is.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cma.evolution_strategy.InjectionWarning)
        yield


def unknown_name(what: str, key: object, known: list[str]) -> ValueError:
    """A one-line error for an unknown name, with the closest known one when there is one."""
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ValueError(f"unknown {what} {key!r}{hint}; choose from {', '.join(known)}")


def _plain(value: object) -> bool:
    """Whether ``value`` is a JSON number, boolean or null, or a (nested) list of them."""
    if isinstance(value, (list, tuple)):
        return all(_plain(item) for item in value)
    return value is None or isinstance(value, (bool, int, float))


def check_cma_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` as a plain dict of pycma options, or a one-line ``ValueError``.

    Any :class:`cma.CMAOptions` key passes through to pycma, over the search's own
    settings (``popsize``, ``tolfun``, ...), except :data:`RESERVED_CMA_OPTIONS`. Values
    must be numbers, booleans, ``None`` or lists of them: they are recorded in the run's
    config (so ``--resume`` compares them), and pycma evaluates a string as Python code.
    pycma's termination options do not end a search: it runs its generations. GLO's
    coefficient count is known only after its GP phase, so its options are tried on two
    coordinates up front (per-coordinate lists do not fit it).

    >>> check_cma_options({"popsize": 12, "bounds": (-5, 5)})
    {'popsize': 12, 'bounds': [-5, 5]}
    >>> check_cma_options({"pop_size": 12})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown pycma option 'pop_size' (did you mean 'popsize'?); choose from ...
    """
    known = sorted(cma.CMAOptions(), key=str.lower)
    checked: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if key in RESERVED_CMA_OPTIONS:
            raise ValueError(f"pycma option {key!r} is the search's own (its seed decides every "
                             "draw); set the search's seed instead")
        if key == "sigma0":  # pycma's constructor argument, not an option
            raise ValueError("sigma0 is not a pycma option but the search's own setting: "
                             "pass sigma0= (symloss search --sigma0)")
        if key not in known:
            raise unknown_name("pycma option", key, [k for k in known
                                                  if k not in RESERVED_CMA_OPTIONS])
        if not _plain(value):
            raise ValueError(f"pycma option {key!r} must be a number, boolean, None or a list "
                             f"of them, got {value!r}")
        checked[key] = json.loads(json.dumps(value))
    return checked


def _cma(x0: np.ndarray, sigma0: float, popsize: int, rng: np.random.Generator,
         extra: Mapping[str, Any] | None = None):
    """pycma's CMA-ES drawing from ``rng``, with ``extra`` options over the search's own."""
    options = {"popsize": popsize, "seed": np.nan, "randn": _Sampler(rng), "verbose": -9,
               "CMA_diagonal": False, "tolfun": 0, "tolx": 0, "tolfunhist": 0,
               "tolstagnation": 10**9, **check_cma_options(extra)}
    check_population(popsize)
    if isinstance(options["popsize"], int) and options["popsize"] > MAX_POPULATION:
        check_population(options["popsize"], "pycma option 'popsize'")
    try:
        return cma.CMAEvolutionStrategy(list(map(float, x0)), sigma0, options)
    except MemoryError:
        raise ValueError(f"CMA-ES with population {options['popsize']} over {len(x0)} "
                         "coordinates does not fit in memory") from None
    except Exception as error:  # pycma's own messages span many lines
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        given = (f"the options {dict(extra)}" if extra else
                 f"population {popsize} and sigma0 {sigma0!r}")
        raise ValueError(f"pycma refused {given}: {type(error).__name__}: {detail}") from None


# GP operators -------------------------------------------------------------------------------


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
    mutation_rates: dict[str, float] | None = None
    initial_depth: int = MAX_INITIAL_DEPTH
    max_depth: int = 8

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


# TaylorGLO ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaylorGLOSettings:
    order: int = 3
    population: int = 20
    sigma0: float = 1.2
    filter: str = "exact"
    classes: int = 10
    smoothing: float = 0.0
    min_target_probability: float = DEFAULT_MIN_TARGET_PROBABILITY
    #: pycma options over the search's own (:func:`check_cma_options`).
    cma_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_population(self.population)


def _rule(name: str) -> str:
    """The null-epoch rule under a filter: ``stable`` starts from the exact one."""
    return "exact" if name == "stable" else name


def _stable_reasons(family: Loss, vectors: np.ndarray, settings) -> list[str | None]:
    """Why each member fails the ``stable`` filter (its null epoch's basin), or ``None``."""
    try:
        found = family_stability(family, settings.classes, settings.smoothing).basins(vectors)
    except ValueError as error:
        return [f"the null epoch's basin is undecided ({error})"] * len(vectors)
    return [None if reason is None else f"{reason} (stable rule)" for reason in (
        basin_reason(kind, probability, settings.min_target_probability)
        for kind, probability in zip(found.kinds(), found.target_probability, strict=True))]


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
                                     _rule(settings.filter))

    @classmethod
    def create(cls, settings: TaylorGLOSettings, seed: int) -> TaylorGLOStrategy:
        rng = np.random.default_rng(seed)
        dimension = len(taylorglo(settings.order).parameters)
        es = _cma(np.zeros(dimension), settings.sigma0, settings.population, rng,
                  settings.cma_options)
        return cls(settings, TaylorGLOState(es, rng))

    def _propose(self) -> np.ndarray:
        with _pycma_quiet():
            vectors = np.asarray(self.state.es.ask(), dtype=float)
        self.state.pending = vectors.tolist()
        return vectors

    def ask(self) -> list[Candidate]:
        vectors = self._propose()
        rule = self.settings.filter
        if rule == "stable":
            skips = _stable_reasons(self.family, vectors, self.settings)
        else:
            skips = [None if ok else f"untrainable at the null epoch ({rule} rule)"
                     for ok in self.keep.mask(vectors)]
        members = [self.family.bind(v) for v in vectors]
        return [Candidate(i, member, params=list(map(float, v)),
                          expression=str(member.expression), skip=skip)
                for i, (member, v, skip) in enumerate(zip(members, vectors, skips, strict=True))]

    def tell(self, fitnesses: list[float]) -> None:
        # pycma minimizes; fitness (accuracy) is maximized.
        with _pycma_quiet():
            self.state.es.tell(self.state.pending, [-float(f) for f in fitnesses])
        self.state.pending = []
        self.state.generation += 1

    def replay(self, records) -> None:
        """Redo one stored generation: propose it again, check it, tell its stored fitnesses."""
        proposed = [list(map(float, v)) for v in self._propose()]
        self.tell(_check_generation(records, proposed, "params", "λ"))

    def _summary(self) -> dict[str, Any]:
        return {"generation": self.state.generation, "rng": self.state.rng.bit_generator.state,
                "es": _es_summary(self.state.es)}


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
    min_target_probability: float = DEFAULT_MIN_TARGET_PROBABILITY
    #: Redraw initial trees that would get fitness 0 untrained (up to this many tries each).
    #: GLO's paper keeps them; at depth ≤ 2 about 98% lack y or h, or are untrainable, so a
    #: population of 80 would start with one or two live trees.
    initial_redraws: int = 200
    #: pycma options for the CMA-ES phase (:func:`check_cma_options`).
    cma_options: dict[str, Any] = field(default_factory=dict)
    #: mate, mutate and select, and the depth limits (GLO's own by default).
    operators: GPOperators = field(default_factory=GPOperators)

    def __post_init__(self) -> None:
        check_population(self.population)
        if self.cma_population:
            check_population(self.cma_population, "cma_population")


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
        self.toolbox = settings.operators.toolbox(state.rng)

    @classmethod
    def create(cls, settings: GLOSettings, seed: int) -> GLOStrategy:
        if settings.elites >= settings.population:
            raise ValueError(f"elites ({settings.elites}) must be fewer than the population "
                             f"({settings.population})")
        if settings.cma_options:  # refused now, not after the GP generations were paid for
            _cma(np.zeros(2), settings.sigma0, 4, np.random.default_rng(0),
                 settings.cma_options)
        return cls(settings, GLOState(np.random.default_rng(seed)))

    @property
    def phase(self) -> str:
        return "gp" if self.state.generation < self.settings.generations else "cma"

    def ask(self) -> list[Candidate]:
        if self.phase == "gp":
            trees = self._propose_trees()
            return [self._tree_candidate(i, t) for i, t in enumerate(trees)]
        return self._ask_coefficients()

    def _propose_trees(self) -> list:
        trees = self._next_trees()
        self.state.population = [to_prefix(t) for t in trees]
        return trees

    def replay(self, records) -> None:
        """Redo one stored generation: propose it again, check it, tell its stored fitnesses."""
        if self.phase == "gp":
            proposed = [str(tree_loss(t).expression) for t in self._propose_trees()]
            self.tell(_check_generation(records, proposed, "expression", "trees"))
            return
        vectors = self._propose_coefficients()
        self.tell(_check_generation(records, vectors, "params", "coefficients"))

    def _summary(self) -> dict[str, Any]:
        state = self.state
        family = None if state.family is None else {
            "expression": str(state.family.expr),
            "parameters": [str(p) for p in state.family.parameters]}
        return {"generation": state.generation, "rng": state.rng.bit_generator.state,
                "population": state.population,
                "fitnesses": [_number(f) for f in state.fitnesses],
                "best_prefix": state.best_prefix, "best_fitness": _number(state.best_fitness),
                "es": _es_summary(state.es), "family": family}

    def _next_trees(self) -> list:
        rng, size = self.state.rng, self.settings.population
        if not self.state.fitnesses:
            return [self._viable_tree(rng) for _ in range(size)]
        parents = [from_prefix(p) for p in self.state.population]
        order = np.argsort(-np.asarray(self.state.fitnesses), kind="stable")
        children = [parents[i] for i in order[: self.settings.elites]]
        box = self.toolbox
        while len(children) < size:
            first, second = box.select(self.state.fitnesses, 2)
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
                  "tree": str(tree)}
        if not has_inputs(tree):
            return Candidate(idx, loss, **common, skip="tree lacks y or h (GLO: fitness 0)")
        if common["key"] in ("undefined", "0"):
            return Candidate(idx, loss, **common, skip="γ is constant or undefined: no update")
        if self.settings.filter == "stable":
            found = tree_stability(tree, self.settings.classes, self.settings.smoothing)
            basin = found.null_epoch_basin
            reason = basin_reason(basin.kind, basin.target_probability or math.nan,
                                  self.settings.min_target_probability)
            if reason is not None:
                return Candidate(idx, loss, **common, skip=f"{reason} (stable rule)")
        elif self.settings.filter != "none":
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
        vectors = self._propose_coefficients()
        if state.family is None:
            return []
        if state.es == "none":  # nothing to tune: one candidate, the tree itself
            return [Candidate(0, state.family, params=[], expression=str(state.family.expr),
                              key=f"fixed:{state.family.expr}")]
        array = np.asarray(vectors, dtype=float)
        if self.settings.filter == "stable":
            skips = _stable_reasons(state.family, array, self.settings)
        else:
            keep = candidate_filter(state.family, self.settings.classes,
                                    self.settings.smoothing, self.settings.filter)
            skips = [None if ok else "untrainable at the null epoch" for ok in keep.mask(array)]
        members = [state.family.bind(v) for v in vectors]
        return [Candidate(i, member, params=list(map(float, v)),
                          expression=str(member.expression), skip=skip)
                for i, (member, v, skip) in enumerate(zip(members, vectors, skips, strict=True))]

    def _propose_coefficients(self) -> list[list[float]]:
        """The CMA phase's next vectors (``[[]]``: the fixed tree; ``[]``: nothing to train)."""
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
                state.es = _cma(np.asarray(start), self.settings.sigma0, popsize, state.rng,
                                self.settings.cma_options)
        if state.family is None:
            return []
        if state.es == "none":
            state.pending = [[]]
            return [[]]
        with _pycma_quiet():
            asked = np.asarray(state.es.ask(), dtype=float)
        state.pending = [list(map(float, v)) for v in asked]
        return state.pending

    def tell(self, fitnesses: list[float]) -> None:
        state = self.state
        if self.phase == "gp":
            state.fitnesses = [float(f) for f in fitnesses]
            best = int(np.argmax(fitnesses))
            if fitnesses[best] > max(state.best_fitness, 0.0):  # a tree that was trained
                state.best_fitness = float(fitnesses[best])
                state.best_prefix = list(state.population[best])
        elif state.es not in (None, "none"):
            with _pycma_quiet():
                state.es.tell(state.pending, [-float(f) for f in fitnesses])
        state.pending = []
        state.generation += 1


__all__ = [
    "MAX_POPULATION",
    "RESERVED_CMA_OPTIONS",
    "SNAPSHOT_FORMAT",
    "Candidate",
    "GLOSettings",
    "GLOState",
    "GLOStrategy",
    "GPOperators",
    "ReplayMismatch",
    "TaylorGLOSettings",
    "TaylorGLOState",
    "TaylorGLOStrategy",
    "check_cma_options",
    "check_population",
    "read_snapshot",
    "unknown_name",
]
