"""A search's configuration: :class:`SearchConfig`, checked as a value (every number
finite and in range, :func:`validate_config`).

The one config and its one check, whoever builds it — the command line, the
Python API (:func:`symloss.harness.search.api.make_config`) or a stored run read back
(:meth:`symloss.harness.search.runner.SearchConfig.from_dict`: a damaged store row is
refused in one line).

>>> validate_config({"generations": 3, "budget": {"steps": 100}})
>>> validate_config({"budget": {"steps": 0}})
Traceback (most recent call last):
...
symloss.errors.SettingError: steps must be >= 1, got 0
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

from symloss.errors import SettingError
from symloss.harness.search.evaluate import Budget
from symloss.rules import DEFAULT_RULE, get_rule

__all__ = ["HORIZON_MULTIPLE", "MAX_SEEDS", "REDUCTION_FACTOR", "SearchConfig", "validate_config",
           "with_defaults"]

#: A new run's default horizon, in multiples of its screening steps: losses selected at a
#: short length are judged, in their final evaluation, at five times it (the length at which
#: benchmarks/RESULTS-filters.md saw short-horizon winners collapse).
HORIZON_MULTIPLE = 5


#: A new run's successive-halving factor η (``reduction_factor``; 1 turns it off): with the
#: ``lasting`` filter, the winning arm of benchmarks/RESULTS-lasting.md (pre-registered).
REDUCTION_FACTOR = 3


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A new run's config (as a dict) with the defaults that are recorded filled in: the
    horizon, :data:`HORIZON_MULTIPLE` × the screening steps; successive halving up to it
    (:data:`REDUCTION_FACTOR`; ``reduction_factor=1`` asks for one fidelity); one torch
    thread; and batched populations.

    >>> filled = with_defaults({"budget": {"steps": 300}})
    >>> filled["horizon"], filled["reduction_factor"]
    (1500, 3)
    >>> with_defaults({"budget": {"steps": 300}, "reduction_factor": 1})["reduction_factor"]
    """
    config = dict(config)
    budget = dict(config.get("budget", {}))
    if config.get("horizon") is None:
        config["horizon"] = HORIZON_MULTIPLE * budget.get("steps", 300)
    factor = config.get("reduction_factor")
    if factor is None and config["horizon"] > budget.get("steps", 300):
        factor = REDUCTION_FACTOR
    config["reduction_factor"] = None if factor == 1 else factor  # 1: one fidelity
    if budget.get("threads") is None:  # the thread count changes the numbers: recorded
        budget["threads"] = 1
    if config.get("batched") is None:  # populations (where the model allows), recorded
        config["batched"] = True
    config["budget"] = budget
    return config


@dataclass(frozen=True)
class SearchConfig:
    """Everything that determines a search's result (recorded in the store, hashed).

    ``None`` leaves a setting to the strategy's own default
    (:meth:`symloss.harness.search.strategies.Strategy.from_config`: the paper's).
    """

    algorithm: str = "taylorglo"
    generations: int = 5
    population: int | None = None  # None: the paper's (TaylorGLO 20, or 40 with a filter; GLO 80)
    filter: str = DEFAULT_RULE  # a rule of symloss.rules
    order: int = 3
    sigma0: float | None = None  # None: TaylorGLO 1.2, GLO's CMA-ES 1.5
    cma_generations: int = 3  # GLO's coefficient phase
    classes: int = 10
    smoothing: float = 0.0
    seed: int = 0
    final_seeds: int = 0
    final_steps: int | None = None
    budget: Budget = field(default_factory=Budget)
    #: The ``stable`` filter's bound (None: its default); recorded only when set.
    min_target_probability: float | None = None
    #: The final evaluation's baselines (None: :data:`symloss.harness.search.final.BASELINES`);
    #: recorded only when set.
    baselines: tuple[str, ...] | None = None
    #: pycma options over the strategy's own
    #: (:func:`symloss.harness.search.strategies.check_cma_options`),
    #: GLO's GP operators (:class:`symloss.harness.search.strategies.GPOperators`'s fields) and the
    #: name of the user's fitness function (:mod:`symloss.harness.search.api`); each recorded
    #: only when set.
    cma_options: dict[str, Any] | None = None
    gp_operators: dict[str, Any] | None = None
    fitness: str | None = None
    #: The training length the user cares about (:mod:`symloss.harness.search.fidelity`): the
    #: final evaluation trains at it unless ``final_steps`` says, and successive halving's
    #: last rung. New runs record :data:`HORIZON_MULTIPLE` × steps by default
    #: (:func:`with_defaults`); ``None`` (runs stored before it existed): the search's steps.
    horizon: int | None = None
    #: Successive halving's η: the best ⌈m/η⌉ go on to steps·η, … up to the horizon
    #: (``None``: one fidelity, every candidate trained at ``steps`` only).
    reduction_factor: int | None = None
    #: The compute a search may pay, in model-steps (one training of s steps is s): the search
    #: ends after the generation that reaches it (``None``: ``generations`` alone decide).
    model_steps: int | None = None
    #: Whether each generation's candidates train together as one population (stacked
    #: weights) or one by one: the two give different numbers, so a new run from the command
    #: line records it and a resume replays it (``None``: runs stored before, and the Python
    #: API's ``batched=`` argument, unrecorded).
    batched: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        record = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "budget"}
        for optional in ("min_target_probability", "baselines", "cma_options", "gp_operators",
                         "fitness", "horizon", "reduction_factor", "model_steps", "batched"):
            if record[optional] is None:
                del record[optional]  # runs stored before the option existed
            elif optional in ("baselines", "cma_options", "gp_operators"):
                record[optional] = json.loads(json.dumps(record[optional]))  # as stored
        record["budget"] = self.budget.to_dict()
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> SearchConfig:
        """A stored config (``runs.config``) as a checked :class:`SearchConfig`: a key this
        symloss does not know, a value of the wrong type or out of range is a ``ValueError``
        naming it (a changed store is one line, never a traceback later)."""
        from symloss.harness.search.strategies import algorithm_names

        try:
            values = dict(record)
            budget = dict(values["budget"])
            problem = _mistyped(Budget, budget, "budget.") or _mistyped(cls, values)
            if problem is None and values.get("algorithm") not in algorithm_names():
                problem = f"algorithm is {values.get('algorithm')!r}, not one of " + \
                    ", ".join(algorithm_names())
            if problem is None:
                values["budget"] = Budget(**budget)
                if values.get("baselines") is not None:
                    values["baselines"] = tuple(values["baselines"])
                config = cls(**values)
                validate_config(config.to_dict())
                return config
        except (TypeError, ValueError, KeyError) as error:
            problem = str(error)[:160]
        raise ValueError(f"the stored config (runs.config) does not fit this symloss: "
                         f"{problem}")

    def strategy(self):
        """A fresh strategy for this config (deterministic in ``seed``), from the registry."""
        from symloss.harness.search.strategies import strategy_class

        return strategy_class(self.algorithm).from_config(self)

    @property
    def final_horizon(self) -> int:
        """The final evaluation's training length: ``final_steps``, else the horizon, else
        the search's steps."""
        return self.final_steps or self.horizon or self.budget.steps

    @property
    def rungs(self) -> tuple[int, ...]:
        """The rungs' training lengths (one rung, ``steps``, without successive halving)."""
        from symloss.harness.search.fidelity import rung_steps

        if self.reduction_factor is None or self.horizon is None:
            return (self.budget.steps,)
        return rung_steps(self.budget.steps, self.horizon, self.reduction_factor)

    @property
    def total_generations(self) -> int:
        from symloss.harness.search.strategies import strategy_class

        return strategy_class(self.algorithm).total_generations(self)


#: The Python types a field annotated with these names may hold (:func:`_mistyped`).
_SIMPLE_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                 "None": (type(None),)}


def _mistyped(kind: type, values: dict[str, Any], prefix: str = "") -> str | None:
    """The first of ``values`` whose type its dataclass field's simple annotation
    (``str``, ``int | None``, ``float``, ...) does not allow, as ``"name is value, not
    type"``; fields with other annotations are left to their own checks.

    >>> _mistyped(Budget, {"dataset": 5, "steps": 10})
    'dataset is 5, not str'
    """
    for item in fields(kind):
        if item.name not in values:
            continue
        names = [name.strip() for name in str(item.type).split("|")]
        if not all(name in _SIMPLE_TYPES for name in names):
            continue
        allowed = tuple(t for name in names for t in _SIMPLE_TYPES[name])
        value = values[item.name]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            return f"{prefix}{item.name} is {value!r:.40}, not {item.type}"
    return None


#: (setting, where in the config, smallest value, whether the smallest is allowed) per number.
#: The most seeds one evaluation trains per loss (a search's final evaluation, ``symloss
#: train``). Each seed is a whole training (seconds to hours), its result kept and printed:
#: 10,000 of the fastest (13 trainings/s batched, benchmarks/RESULTS.md) take 13 minutes, and
#: a Welch test's p-value has long settled.
MAX_SEEDS = 10_000

_BOUNDS = (("generations", (), 1, True), ("population", (), 2, True), ("order", (), 1, True),
           ("final_seeds", (), 0, True), ("cma_generations", (), 0, True),
           ("final_steps", (), 1, True), ("sigma0", (), 0, False), ("seed", (), 0, True),
           ("steps", ("budget",), 1, True), ("batch_size", ("budget",), 1, True),
           ("lr", ("budget",), 0, False), ("smoothing", (), 0, True),
           ("threads", ("budget",), 1, True), ("classes", (), 2, True),
           ("horizon", (), 1, True), ("reduction_factor", (), 2, True),
           ("model_steps", (), 1, True))


def validate_config(config: dict[str, Any]) -> None:
    """Every number of a run's config finite and in range, before anything is paid.

    Checked on the flags and on a stored config alike (a damaged store row is refused).
    """
    for key, where, smallest, inclusive in _BOUNDS:
        scope = config
        for part in where:
            scope = scope.get(part) if isinstance(scope, dict) else None
        value = scope.get(key) if isinstance(scope, dict) else None
        if value is None:
            continue
        integer = key not in ("sigma0", "lr", "smoothing")
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            kind = "an integer" if integer else "a number"
            raise SettingError(lambda n, key=key, kind=kind, value=value:
                               f"{n(key)} must be {kind}, got {value!r}")
        if not math.isfinite(value) or value < smallest or (value == smallest and not inclusive):
            bound = f">= {smallest}" if inclusive else f"> {smallest}"
            finite = "" if integer else "finite and "
            raise SettingError(lambda n, key=key, rule=f"{finite}{bound}", value=value:
                               f"{n(key)} must be {rule}, got {value!r}")
    if (config.get("final_seeds") or 0) > MAX_SEEDS:
        raise SettingError(lambda n: f"{n('final_seeds')} must be at most {MAX_SEEDS:,}, got "
                           f"{config['final_seeds']!r} (each seed is a whole training per loss)")
    if config.get("filter") is not None:
        get_rule(config["filter"])  # one of symloss.rules, or a one-line error with a hint
    bound = config.get("min_target_probability")
    if bound is not None:
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or \
                not (math.isfinite(bound) and 0 < bound <= 1):
            raise SettingError(lambda n: f"{n('min_target_probability')} must be in (0, 1], "
                               f"got {bound!r}")
        from symloss.rules import RULES, StableRule

        bounded = [name for name, rule in RULES.items() if isinstance(rule, StableRule)]
        if config.get("filter") not in bounded:
            raise SettingError(lambda n: f"{n('min_target_probability')} applies to "
                               f"{n('filter')} {' / '.join(bounded)} only, got {n('filter')} "
                               f"{config.get('filter')}")
    from symloss.harness.search.fidelity import check_fidelity

    check_fidelity(config.get("budget", {}).get("steps", 300), config.get("horizon"),
                   config.get("reduction_factor"), config.get("model_steps"))
    if config.get("population") is not None:
        from symloss.harness.search.strategies import check_population

        check_population(config["population"])
    if config.get("budget", {}).get("lr") is not None:
        from symloss.harness.device import check_learning_rate

        check_learning_rate(config["budget"]["lr"])
    if not config.get("smoothing", 0) < 1:
        raise SettingError(lambda n: f"{n('smoothing')} must be in [0, 1), got "
                           f"{config['smoothing']!r}")
    if config.get("seed", 0) >= 2**63:
        raise SettingError(lambda n: f"{n('seed')} must be < 2**63, got {config['seed']!r}")
    if not isinstance(config.get("budget", {}).get("objective", "val"), str):
        raise SettingError(lambda n: f"{n('objective')} must be 'val' or 'fgsm:EPS'")
