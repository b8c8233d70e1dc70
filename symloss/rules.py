"""The search filters, each defined once: its name, its explanation and its three forms.

A rule decides, before any training, whether a candidate loss is worth training
(docs/conventions.md §2.6). Every rule answers in three forms, which must agree:

* **scalar** — :meth:`Rule.verdict`: one :class:`~symloss.loss.Loss` → a
  :class:`Verdict` (``True``/``False``, ``None`` when it cannot be decided) and why;
* **vectorized** — :meth:`Rule.reasons`: a family and an ``[N, p]`` batch of its
  parameters → one reason per row (``None``: it passes), derived once and
  evaluated in numpy (TaylorGLO, GLO's coefficient phase);
* **tree** — :meth:`Rule.tree_reason`: a GP tree → its reason, evaluated in
  symengine (GLO's GP phase, :mod:`symloss.gp`).

The rules (:data:`RULES`, in the order a user is offered them):

* ``exact``: first principles — the target probability grows at
  the null epoch, ``Δ = γ_T(1/n) − γ_N(1/n) > 0`` (:mod:`symloss.trainability`);
  invariant under ``γ → γ + c``, as every update is;
* ``paper``: ICLR Theorem 3 exactly as published, ``γ_T(1/n) − (n−1)·γ_N(1/n) ≥ 0``
  (not invariant under the shift: kept to reproduce ICLR Table 1);
* ``stable``: the null epoch's basin (:mod:`symloss.stability`) is zero training error,
  or an equilibrium whose target probability is at least ``min_target_probability``
  (default :data:`~symloss.stability_batch.DEFAULT_MIN_TARGET_PROBABILITY`);
  a basin that collapses is the exact rule failing;
* ``lasting`` (the default) and ``equilibrium`` (pre-registered for issue 23's
  confirmatory benchmark, benchmarks/PREREGISTRATION-lasting.md): ``stable``, and a null
  epoch that runs to zero
  error only where zero error pulls no harder than :data:`MAX_ZERO_ERROR_PULL`
  (``lim Δ ≤ 3``) — or, for ``equilibrium``, never;
* ``none``: every candidate is trained.

A new rule is one definition here: a :class:`Rule` subclass (or an instance of one
below) added to :data:`RULES`; the search strategies, the config check, the command
line's ``--filter`` choices and the Python API read this registry.

>>> rule_names()
('exact', 'paper', 'stable', 'lasting', 'equilibrium', 'none')
>>> from symloss.catalog import loss
>>> get_rule("exact").verdict(loss("cross_entropy").shifted(10), classes=10)
Verdict(passes=True, reason=None)
>>> get_rule("paper").verdict(loss("cross_entropy").shifted(10), classes=10).reason
'untrainable at the null epoch (paper rule)'
>>> get_rule("exat")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: unknown filter 'exat' (did you mean 'exact'?); choose from exact, paper, stable, ...
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from symloss.loss import Loss
from symloss.stability import stability
from symloss.stability_batch import DEFAULT_MIN_TARGET_PROBABILITY, basin_reason, family_stability
from symloss.trainability import (
    CandidateFilter,
    Margin,
    compile_condition,
    first_principles_margin,
    holds,
    null_epoch_condition,
    passes,
    theorem3_margin,
)

#: The rule a search applies unless told otherwise: ``lasting``, the pre-registered rule that
#: with successive halving won issue 23's confirmatory benchmark (benchmarks/RESULTS-lasting.md:
#: on MNIST-1D its searches' losses beat Poly-1 at 5× the screening length in 8 of 8 and
#: collapsed in none, against ``exact``'s 4 and 3 of 8; one-sided Mann–Whitney p = 0.014).
DEFAULT_RULE = "lasting"
#: Why a candidate fails a null-epoch rule (before the rule's name is added).
UNTRAINABLE = "untrainable at the null epoch"


@dataclass(frozen=True)
class Verdict:
    """A rule's verdict on one loss: ``passes`` (``None``: undecided) and why it does not."""

    passes: bool | None
    reason: str | None = None


@dataclass(frozen=True)
class Rule:
    """A filter: its ``name``, its ``explanation`` and its three forms (module docstring).

    Subclasses define the bare forms (:meth:`_verdict`, :meth:`_reasons`,
    :meth:`_tree_reason`); the public ones add the rule's name to each reason.
    ``min_target_probability`` is the ``stable`` rule's bound; the others ignore it.
    """

    name: str
    explanation: str

    def verdict(self, loss: Loss, classes: int, smoothing: float = 0.0, *,
                min_target_probability: float = DEFAULT_MIN_TARGET_PROBABILITY) -> Verdict:
        """The scalar form: one loss (parameters bound) passes, fails or is undecided."""
        passed, reason = self._verdict(loss, classes, smoothing, min_target_probability)
        return Verdict(passed, None if passed else self.labelled(reason))

    def reasons(self, family: Loss, candidates: np.ndarray, classes: int,
                smoothing: float = 0.0, *,
                min_target_probability: float = DEFAULT_MIN_TARGET_PROBABILITY,
                ) -> tuple[str | None, ...]:
        """The vectorized form: why each row of an ``[N, p]`` batch fails (``None``: passes)."""
        found = self._reasons(family, np.asarray(candidates, dtype=float), classes, smoothing,
                              min_target_probability)
        return tuple(None if reason is None else self.labelled(reason) for reason in found)

    def tree_reason(self, tree: Any, classes: int, smoothing: float = 0.0, *,
                    min_target_probability: float = DEFAULT_MIN_TARGET_PROBABILITY,
                    ) -> str | None:
        """The tree form: why a GP tree (:mod:`symloss.gp`) fails (``None``: it passes)."""
        reason = self._tree_reason(tree, classes, smoothing, min_target_probability)
        return None if reason is None else self.labelled(reason)

    def compiled(self, family: Loss, classes: int, smoothing: float = 0.0) -> CandidateFilter:
        """The rule as a :class:`~symloss.trainability.CandidateFilter` (null-epoch rules)."""
        raise _not_compilable(self.name)

    def labelled(self, reason: str) -> str:
        """``reason`` naming this rule, as a filtered candidate's stored reason does."""
        return f"{reason} ({self.name} rule)"

    def _verdict(self, loss: Loss, classes: int, smoothing: float,
                 bound: float) -> tuple[bool | None, str]:
        raise NotImplementedError

    def _reasons(self, family: Loss, candidates: np.ndarray, classes: int, smoothing: float,
                 bound: float) -> Sequence[str | None]:
        raise NotImplementedError

    def _tree_reason(self, tree: Any, classes: int, smoothing: float,
                     bound: float) -> str | None:
        raise NotImplementedError


@dataclass(frozen=True)
class NoRule(Rule):
    """Every candidate passes."""

    def compiled(self, family: Loss, classes: int, smoothing: float = 0.0) -> CandidateFilter:
        return compile_condition(family, classes, smoothing, self.name, None)

    def _verdict(self, loss, classes, smoothing, bound):
        return True, ""

    def _reasons(self, family, candidates, classes, smoothing, bound):
        return [None] * len(np.atleast_2d(candidates))

    def _tree_reason(self, tree, classes, smoothing, bound):
        return None


@dataclass(frozen=True)
class NullEpochRule(Rule):
    """A loss passes when ``margin(γ_T(1/n), γ_N(1/n), n)`` is ``> 0`` (``strict``) or ``≥ 0``.

    One ``margin`` serves every form: sympy for one loss and a family (lambdified),
    floats for a GP tree's symengine γ's (:func:`symloss.gp.null_epoch_gammas`).
    """

    margin: Margin = first_principles_margin
    strict: bool = True

    def compiled(self, family: Loss, classes: int, smoothing: float = 0.0) -> CandidateFilter:
        return compile_condition(family, classes, smoothing, self.name, self.margin,
                                 self.strict)

    def _verdict(self, loss, classes, smoothing, bound):
        condition = null_epoch_condition(loss, classes, smoothing, self.margin)
        passed = holds(condition, self.strict)
        return passed, (UNTRAINABLE if passed is False else
                        f"the null-epoch condition {condition} is undecided")

    def _reasons(self, family, candidates, classes, smoothing, bound):
        keep = self.compiled(family, classes, smoothing).mask(candidates)
        return [None if ok else UNTRAINABLE for ok in keep]

    def _tree_reason(self, tree, classes, smoothing, bound):
        from symloss.gp import null_epoch_gammas  # deap: only where trees are

        gamma_t, gamma_n = null_epoch_gammas(tree, classes, smoothing)
        return None if passes(self.margin(gamma_t, gamma_n, classes), self.strict) \
            else UNTRAINABLE


@dataclass(frozen=True)
class StableRule(Rule):
    """The null epoch's basin is zero error or an equilibrium at least ``bound`` confident."""

    def _verdict(self, loss, classes, smoothing, bound):
        basin = stability(loss, classes, smoothing).null_epoch_basin
        reason = basin_reason(basin.kind, _probability(basin.target_probability), bound)
        return (None if basin.kind == "undecided" else reason is None), reason or ""

    def _reasons(self, family, candidates, classes, smoothing, bound):
        try:
            found = family_stability(family, classes, smoothing).basins(candidates)
        except ValueError as error:
            return [f"the null epoch's basin is undecided ({error})"] * len(candidates)
        return [basin_reason(kind, probability, bound) for kind, probability
                in zip(found.kinds(), found.target_probability, strict=True)]

    def _tree_reason(self, tree, classes, smoothing, bound):
        from symloss.gp import tree_stability  # deap: only where trees are

        basin = tree_stability(tree, classes, smoothing).null_epoch_basin
        return basin_reason(basin.kind, _probability(basin.target_probability), bound)


#: The ``lasting`` rule's largest zero-error pull, ``lim_{ε→0+} Δ(ε)`` (cross-entropy's is 1,
#: MSE's 0). Chosen on exploration data only — benchmarks/RESULTS-filters.md's 1,500-step
#: trainings (seeds 1000–1007, written to symloss/outlook_rates.json by
#: ``bench_filters.py --outlook``): of losses whose null epoch runs to zero error, 0 of 28
#: trainings collapsed at pulls up to 2.53 and 26 of 45 at pulls from 3.41 up — and
#: pre-registered with the rule (benchmarks/PREREGISTRATION-lasting.md) before any
#: confirmatory result.
MAX_ZERO_ERROR_PULL = 3.0


@dataclass(frozen=True)
class LastingRule(StableRule):
    """``stable``, and a null epoch that runs to zero error only where zero error pulls no
    harder than ``pull`` (``lim_{ε→0+} Δ(ε) ≤ pull``); ``pull=None``: never (the basin must
    be an equilibrium at least ``bound`` confident)."""

    pull: float | None = MAX_ZERO_ERROR_PULL

    def _verdict(self, loss, classes, smoothing, bound):
        passed, reason = super()._verdict(loss, classes, smoothing, bound)
        if passed and stability(loss, classes, smoothing).null_epoch_basin.kind == "zero_error":
            reason = self._pull_reason(_zero_error_limit(loss, classes, smoothing))
            passed = reason is None
        return passed, reason or ""

    def _reasons(self, family, candidates, classes, smoothing, bound):
        found = list(super()._reasons(family, candidates, classes, smoothing, bound))
        rows = [i for i, reason in enumerate(found) if reason is None]
        if not rows:
            return found
        compiled = family_stability(family, classes, smoothing)
        basins = compiled.basins(candidates[rows])
        limits = _family_limits(compiled, candidates[rows])
        for row, kind, limit in zip(rows, basins.kinds(), limits, strict=True):
            if kind == "zero_error":
                found[row] = self._pull_reason(float(limit))
        return found

    def _tree_reason(self, tree, classes, smoothing, bound):
        from symloss.gp import tree_loss, tree_stability  # deap: only where trees are

        reason = super()._tree_reason(tree, classes, smoothing, bound)
        if reason is None and tree_stability(tree, classes, smoothing).null_epoch_basin.kind \
                == "zero_error":
            reason = self._pull_reason(_zero_error_limit(tree_loss(tree), classes, smoothing))
        return reason

    def _pull_reason(self, limit: float) -> str | None:
        if self.pull is None:
            return "the null epoch runs to zero training error"
        if math.isnan(limit):
            return "the pull toward zero training error is undecided"
        if limit > self.pull:
            return (f"zero training error pulls with lim Δ = {limit:.4g} > {self.pull:g} "
                    "(such losses collapsed when trained longer)")
        return None


def _zero_error_limit(loss: Loss, classes: int, smoothing: float) -> float:
    """``lim_{ε→0+} Δ(ε)`` as a float (``inf`` for an infinite pull, NaN when undecided)."""
    from symloss.dynamics import zero_error

    limit = zero_error(loss, classes, smoothing).limit
    if limit is None:
        return math.nan
    try:
        return float(limit)
    except (TypeError, ValueError):
        return math.inf if limit.is_infinite and limit.is_positive else math.nan


def _family_limits(compiled, candidates: np.ndarray) -> np.ndarray:
    """Each row's ``lim_{ε→0+} Δ(ε)``: the constant coefficient where Δ is a polynomial in ε,
    else Δ at :data:`symloss.stability.SCAN_MIN` (the batched scan's own floor)."""
    from symloss.stability import SCAN_MIN

    columns = compiled._columns(candidates)
    with np.errstate(all="ignore"):
        if compiled.coefficients is not None:
            value = compiled.coefficients(*columns)[0]
        else:
            value = compiled.function(np.float64(SCAN_MIN), *columns)
    return np.broadcast_to(np.asarray(value, dtype=float), (columns.shape[1],))


def _probability(value: float | None) -> float:
    return math.nan if value is None else value


#: Every filter by name, in the order a user is offered them.
RULES: Mapping[str, Rule] = MappingProxyType({rule.name: rule for rule in (
    NullEpochRule("exact", "first principles: the target probability grows at the null epoch "
                  "(γ_T(1/n) − γ_N(1/n) > 0; invariant under γ → γ + c)",
                  first_principles_margin, strict=True),
    NullEpochRule("paper", "ICLR Theorem 3 as published: γ_T(1/n) ≥ (n−1)·γ_N(1/n) "
                  "(not invariant under γ → γ + c)", theorem3_margin, strict=False),
    StableRule("stable", "exact, and the null epoch's basin is zero training error or an "
               "equilibrium with target probability >= min_target_probability"),
    LastingRule("lasting", "stable, and where the null epoch runs to zero training error, "
                "zero error pulls no harder than lim Δ = 3 (pre-registered: "
                "benchmarks/PREREGISTRATION-lasting.md)"),
    LastingRule("equilibrium", "exact, and the null epoch's basin is an equilibrium with "
                "target probability >= min_target_probability (never zero training error; "
                "pre-registered: benchmarks/PREREGISTRATION-lasting.md)", pull=None),
    NoRule("none", "no filter: every candidate is trained"),
)})


def rule_names() -> tuple[str, ...]:
    """The filters' names, as :data:`RULES` orders them."""
    return tuple(RULES)


def compilable_names() -> tuple[str, ...]:
    """The rules a :class:`~symloss.trainability.CandidateFilter` can compile.

    >>> compilable_names()
    ('exact', 'paper', 'none')
    """
    return tuple(name for name, rule in RULES.items()
                 if type(rule).compiled is not Rule.compiled)


def get_rule(name: str) -> Rule:
    """The rule called ``name``, or a one-line ``ValueError`` with the closest name."""
    if isinstance(name, str) and name in RULES:
        return RULES[name]
    raise unknown_name("filter", name, list(RULES))


def compile_rule(name: str, family: Loss, classes: int, smoothing: float = 0.0,
                 ) -> CandidateFilter:
    """The null-epoch rule ``name`` compiled for the family's parameter batches
    (:func:`symloss.trainability.candidate_filter`)."""
    if not (isinstance(name, str) and name in compilable_names()):
        raise _not_compilable(name)
    return RULES[name].compiled(family, classes, smoothing)


def _not_compilable(name: object) -> ValueError:
    return ValueError(f"rule must be one of {', '.join(compilable_names())}, got {name!r}")


def unknown_name(what: str, key: object, known: Sequence[str]) -> ValueError:
    """A one-line error for an unknown name, with the closest known one when there is one.

    >>> unknown_name("colour", "gren", ["green", "red"])
    ValueError("unknown colour 'gren' (did you mean 'green'?); choose from green, red")
    """
    close = difflib.get_close_matches(str(key), list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ValueError(f"unknown {what} {key!r}{hint}; choose from {', '.join(known)}")


__all__ = [
    "DEFAULT_RULE",
    "MAX_ZERO_ERROR_PULL",
    "RULES",
    "LastingRule",
    "NoRule",
    "NullEpochRule",
    "Rule",
    "StableRule",
    "Verdict",
    "compilable_names",
    "compile_rule",
    "get_rule",
    "rule_names",
    "unknown_name",
]
