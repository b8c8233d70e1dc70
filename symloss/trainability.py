"""Trainability at the null epoch, for a loss or a whole family (docs/conventions.md §2.6).

**First principles** (the default): at the null epoch every ``h_k = 1/n`` and one
SGD step moves the target logit by ``η' ε(1−ε)·Δ`` with
``Δ = γ_T(1/n) − γ_N(1/n)`` (:func:`symloss.dynamics.logit_step` at
``ε = (n−1)/n``). The target probability grows iff ``Δ > 0``. Adding a constant
to γ leaves Δ unchanged, as it must: ``Σ_k ∂h_k/∂θ = 0``.

**The paper's invariant** (ICLR Theorem 3, eq. 18–19 / App. D.4 eq. 69–70, exactly
as published): a loss is *not* trainable when ``γ_T(1/n) < (n−1)·γ_N(1/n)``.
(eq. 19 is eq. 18 rearranged.) It is not invariant under ``γ → γ + c`` for
``n > 2``; for ``n = 2`` the two conditions coincide except on the boundary
``Δ = 0`` (the paper keeps it with ``≥``, first principles, needing growth, does not).

>>> from symloss.catalog import loss
>>> is_trainable(loss("cross_entropy"), classes=10)
True
>>> shifted = loss("cross_entropy").shifted(10)   # γ + 10: the same updates
>>> is_trainable(shifted, classes=10), paper_trainable(shifted, classes=10)
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import sympy as sp

from symloss.bounds import TooLarge, expand
from symloss.dynamics import (
    Classes,
    Smoothing,
    _classes,
    _smoothing,
    at,
    gamma_nontarget,
    gamma_target,
    sign_verdict,
)
from symloss.loss import Loss
from symloss.symbols import h


def first_principles_margin(gamma_t, gamma_n, classes):
    """``Δ = γ_T(1/n) − γ_N(1/n)``: the target grows at the null epoch iff ``Δ > 0``.

    The same arithmetic on sympy expressions and on floats (a GP tree's symengine
    values), so the symbolic and the numeric forms of a rule cannot drift apart.

    >>> first_principles_margin(3.0, 1.0, 10)
    2.0
    """
    return gamma_t - gamma_n


def theorem3_margin(gamma_t, gamma_n, classes):
    """ICLR Theorem 3 (eq. 18–19) as published: ``γ_T(1/n) − (n−1)·γ_N(1/n)``, trainable
    iff ``≥ 0``.

    >>> theorem3_margin(3.0, 1.0, 10)
    -6.0
    """
    return gamma_t - (classes - 1) * gamma_n


#: A margin: ``(γ_T(1/n), γ_N(1/n), n) → value`` that a loss passes by being positive.
Margin = Callable[[Any, Any, Any], Any]


def _null_gammas(loss: Loss, classes: Classes, smoothing: Smoothing) -> tuple[sp.Expr, sp.Expr]:
    n = _classes(classes)
    return (at(gamma_target(loss, n, smoothing), h, 1 / n),
            at(gamma_nontarget(loss, n, smoothing), h, 1 / n))


def null_epoch_condition(loss: Loss, classes: Classes, smoothing: Smoothing,
                         margin: Margin) -> sp.Expr:
    """``margin`` of the loss's null-epoch γ's, expanded where small enough to expand."""
    n = _classes(classes)
    gamma_t, gamma_n = _null_gammas(loss, n, smoothing)
    return _expanded(margin(gamma_t, gamma_n, n))


def trainability_condition(
    loss: Loss, classes: Classes, smoothing: Smoothing = 0.0,
) -> sp.Expr:
    """The expression that must be ``> 0`` for the target to grow at the null epoch.

    ``γ_T(1/n) − γ_N(1/n)``; for a family, an expression in its parameters.

    >>> from symloss.catalog import taylorglo
    >>> trainability_condition(taylorglo(3), classes=10)
    -2*lambda_0*lambda_7 - 2*lambda_1*lambda_6 + lambda_5 + lambda_6/5 + lambda_7
    """
    return null_epoch_condition(loss, classes, smoothing, first_principles_margin)


def paper_condition(loss: Loss, classes: Classes, smoothing: Smoothing = 0.0) -> sp.Expr:
    """ICLR Theorem 3's expression, trainable iff ``≥ 0``: ``γ_T(1/n) − (n−1)·γ_N(1/n)``.

    For TaylorGLO-3 this is eq. 18 with ``c1 … cyy`` of eq. 12 (and eq. 19 rearranged).
    """
    return null_epoch_condition(loss, classes, smoothing, theorem3_margin)


def _expanded(expression: sp.Expr) -> sp.Expr:
    """Expanded when small enough to expand (:mod:`symloss.bounds`), as it is otherwise."""
    try:
        return expand(expression, "the null-epoch condition")
    except TooLarge:
        return expression


def holds(value: sp.Expr, strict: bool) -> bool | None:
    """Whether ``value > 0`` (``strict``) or ``value ≥ 0`` is proved: ``None`` when undecided.

    >>> holds(sp.Integer(0), strict=True), holds(sp.Integer(0), strict=False)
    (False, True)
    """
    if strict:
        return sign_verdict(value)
    negative = sign_verdict(-value)
    return None if negative is None else not negative


def passes(value, strict: bool):
    """``value > 0`` (``strict``) or ``value ≥ 0`` on numbers or arrays (NaN fails).

    >>> passes(np.array([-1.0, 0.0, 2.0, np.nan]), strict=False)
    array([False,  True,  True, False])
    """
    return value > 0 if strict else value >= 0


def is_trainable(loss: Loss, classes: Classes, smoothing: Smoothing = 0.0) -> bool | None:
    """First-principles verdict; ``None`` when it depends on unbound parameters."""
    return holds(trainability_condition(loss, classes, smoothing), strict=True)


def paper_trainable(loss: Loss, classes: Classes, smoothing: Smoothing = 0.0) -> bool | None:
    """The paper's invariant's verdict: ``False`` iff ``γ_T(1/n) < (n−1)·γ_N(1/n)``."""
    return holds(paper_condition(loss, classes, smoothing), strict=False)


@dataclass(frozen=True)
class CandidateFilter:
    """A family's trainability rule, compiled for batches of parameter vectors.

    ``mask(candidates)`` takes an ``[N, p]`` array (``p`` the family's parameter
    count) and returns a boolean ``[N]`` array: ``True`` where the candidate
    passes: its condition ``> 0`` (``strict``) or ``≥ 0``. Derived once per (family,
    n, smoothing, rule); vectorized numpy. ``condition`` ``None``: every finite one passes.
    """

    rule: str
    condition: sp.Expr | None
    parameters: tuple[sp.Symbol, ...]
    function: Callable[..., np.ndarray] | None
    strict: bool = True

    def mask(self, candidates: np.ndarray) -> np.ndarray:
        candidates = np.asarray(candidates, dtype=float)
        if candidates.ndim == 1:
            candidates = candidates[None, :]
        if candidates.ndim != 2 or candidates.shape[1] != len(self.parameters):
            raise ValueError(
                f"candidates must have shape [N, {len(self.parameters)}], got {candidates.shape}"
            )
        if self.function is None:
            return np.ones(len(candidates), dtype=bool)
        with np.errstate(all="ignore"):
            columns = np.ascontiguousarray(candidates.T)
            value = np.broadcast_to(self.function(*columns), (len(candidates),))
        finite = np.isfinite(value) & np.isfinite(candidates).all(axis=1)
        return finite & passes(value, self.strict)


def candidate_filter(
    family: Loss, classes: int, smoothing: float = 0.0, rule: str = "exact",
) -> CandidateFilter:
    """Compile the family's trainability rule (a null-epoch rule of :mod:`symloss.rules`:
    ``exact``, ``paper`` or ``none``).

    >>> import numpy as np
    >>> from symloss.catalog import taylorglo
    >>> keep = candidate_filter(taylorglo(3), classes=10)
    >>> keep.mask(np.array([[0, 0, 0, -1, 0, 2, 0, 0], [0.0] * 8]))   # MSE, the zero loss
    array([ True, False])
    """
    from symloss.rules import compile_rule  # the registry builds on this module

    return compile_rule(rule, family, classes, smoothing)


def compile_condition(family: Loss, classes: Classes, smoothing: Smoothing, rule: str,
                      margin: Margin | None, strict: bool = True) -> CandidateFilter:
    """``margin``'s null-epoch condition of the family, lambdified (``None``: none to check)."""
    return _compiled(family.unbind(), int(_classes(classes)), float(_smoothing(smoothing)),
                     rule, margin, strict)


@lru_cache(maxsize=256)
def _compiled(family: Loss, classes: int, smoothing: float, rule: str,
              margin: Margin | None, strict: bool) -> CandidateFilter:
    if margin is None:
        return CandidateFilter(rule, None, family.parameters, None, strict)
    condition = null_epoch_condition(family, classes, smoothing, margin)
    function = sp.lambdify(family.parameters, condition, modules="numpy", cse=True)
    return CandidateFilter(rule, condition, family.parameters, function, strict)
