"""Label smoothing as a change of a family's parameters (docs/conventions.md §2.7; ICLR App. D.2).

Smoothing by ``α`` replaces ``y`` with ``y(1−α) + α/n``. For a family whose γ
is polynomial in ``(h, y)``, :func:`label_smoothing_map` finds ``λ̂(λ, α, n)``
with ``γ_λ̂(y, h) ≡ γ_λ(y(1−α) + α/n, h)`` identically, by matching the
coefficients of every monomial ``h^i y^j``.

The matching equations are solved for the largest set of parameters in which
they are jointly linear and solvable (TaylorGLO's λ2…λ7); the others (the
expansion centres λ0, λ1) keep their values. When no such linear system has a
solution, no map is found within the family, and the result says so.

>>> from symloss.catalog import taylorglo
>>> result = label_smoothing_map(taylorglo(3))
>>> result.exists, result.mapping[sp.Symbol("lambda_7", real=True)]
(True, lambda_7*(alpha - 1)**2)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import sympy as sp

from symloss.dynamics import Classes, Smoothing, _classes, _smoothing, gamma
from symloss.loss import Loss
from symloss.symbols import alpha, h, n, y


@dataclass(frozen=True)
class SmoothingMap:
    """``λ̂`` as expressions in ``λ``, ``α`` and ``n`` (``mapping``), or why none exists."""

    exists: bool
    mapping: dict[sp.Symbol, sp.Expr]
    reason: str = ""

    def apply(self, family: Loss, values, classes: int, smoothing: float) -> tuple[float, ...]:
        """The parameter values ``λ̂`` for concrete ``λ``, ``n`` and ``α``."""
        if not self.exists:
            raise ValueError(f"no label-smoothing map for {family.name!r}: {self.reason}")
        if len(values) != len(family.parameters):
            raise ValueError(f"{family.name} takes {len(family.parameters)} parameter values, "
                             f"got {len(values)}")
        point = dict(zip(family.parameters, values, strict=True))
        point.update({n: _classes(classes), alpha: _smoothing(smoothing)})
        return tuple(float(self.mapping[p].xreplace(point)) for p in family.parameters)


def label_smoothing_map(
    family: Loss, classes: Classes = n, smoothing: Smoothing = alpha,
) -> SmoothingMap:
    """Derive ``λ̂(λ, α, n)`` so that the family without smoothing equals it with smoothing.

    ``classes`` and ``smoothing`` default to the symbols ``n`` and ``α``.

    >>> from symloss.catalog import family
    >>> label_smoothing_map(family("a*h**2 + b*h*y", ["a", "b"])).exists
    False
    """
    if not family.parameters:
        return SmoothingMap(False, {}, "the loss has no parameters to absorb smoothing")
    return _label_smoothing_map(family.unbind(), _classes(classes), _smoothing(smoothing))


@lru_cache(maxsize=64)
def _label_smoothing_map(family: Loss, classes: sp.Expr, smoothing: sp.Expr) -> SmoothingMap:
    parameters = family.parameters
    coefficient = gamma(family)
    smoothed = sp.expand(coefficient.subs(y, y * (1 - smoothing) + smoothing / classes))
    hats = tuple(sp.Symbol(f"hat_{p.name}", real=True) for p in parameters)
    candidate = sp.expand(coefficient.xreplace(dict(zip(parameters, hats, strict=True))))
    difference = candidate - smoothed
    if not difference.is_polynomial(h, y):
        return SmoothingMap(False, {}, "γ is not polynomial in (h, y), so there are no "
                                       "coefficients to match")
    equations = [e for e in sp.Poly(difference, h, y).coeffs() if e != 0]
    if not equations:
        return SmoothingMap(True, dict(zip(parameters, parameters, strict=True)))
    for linear in _linear_subsets(equations, hats):
        fixed = {hat: p for hat, p in zip(hats, parameters, strict=True) if hat not in linear}
        system = [sp.expand(e.xreplace(fixed)) for e in equations]
        solutions = sp.linsolve(system, list(linear))
        if solutions != sp.EmptySet and solutions:
            break
    else:
        return SmoothingMap(False, {}, "the coefficient-matching equations have no solution "
                                       "with any set of parameters they are linear in")
    (solution,) = solutions
    mapping = {p: p for p in parameters}
    for hat, value in zip(linear, solution, strict=True):
        original = parameters[hats.index(hat)]
        free = value.free_symbols & set(linear)
        value = value.xreplace({f: parameters[hats.index(f)] for f in free})
        mapping[original] = sp.factor(value)
    return SmoothingMap(True, mapping)


def _linear_subsets(equations: list[sp.Expr], unknowns: tuple[sp.Symbol, ...]):
    """Subsets of ``unknowns`` in which every equation is jointly linear, largest first."""
    for size in range(len(unknowns), 0, -1):
        for subset in combinations(unknowns, size):
            if all(sp.Poly(e, *subset).total_degree() <= 1 for e in equations):
                yield subset
