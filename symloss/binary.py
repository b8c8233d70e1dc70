"""The binary view of a loss (SPEC §2.8; GLO §V-A, Fig. 6).

With ``n = 2`` the whole loss is a function of the target's predicted
probability ``p``: ``L(p) = ½[ℓ(y_T, p) + ℓ(y_N, 1 − p)]``. Its derivative is
derived symbolically; the minimum on ``(0, 1)`` is found among the roots of
that derivative (bracketed on a grid, refined by mpmath's Anderson–Björck method) and the two
ends of the interval. A minimum at an end means the loss keeps pushing toward
certainty (cross-entropy); an interior one means it stops short (Baikal,
``p = 1/√2``).

>>> from symloss.catalog import loss
>>> view = binary_view(loss("baikal"))
>>> round(view.minimum_at, 4), view.interior
(0.7071, True)
>>> binary_view(loss("cross_entropy")).minimum_at
1.0
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from symloss.dynamics import Smoothing, at, labels, tidy
from symloss.loss import Loss
from symloss.symbols import h, y

p = sp.Symbol("p", positive=True)

#: Grid on which sign changes of dL/dp are bracketed.
GRID_POINTS = 4001
#: Distance from 0 and 1 at which the ends are evaluated.
EDGE = 1e-9


@dataclass(frozen=True)
class BinaryView:
    """``L(p)``, ``dL/dp`` and where ``L`` is smallest on ``(0, 1)``."""

    expression: sp.Expr
    derivative: sp.Expr
    minimum_at: float | None
    minimum_value: float | None
    interior: bool | None


def binary_loss(loss: Loss, smoothing: Smoothing = 0.0) -> sp.Expr:
    """``L(p) = ½[ℓ(y_T, p) + ℓ(y_N, 1 − p)]`` for two classes.

    >>> from symloss.catalog import loss
    >>> binary_loss(loss("mse"))
    p**2 - 2*p + 1
    """
    target, nontarget = labels(2, smoothing)
    expression = loss.expression
    at_target = at(at(expression, y, target), h, p)
    at_nontarget = at(at(expression, y, nontarget), h, 1 - p)
    return tidy((at_target + at_nontarget) / 2)


def _finite_or_inf(function, point: float) -> float:
    try:
        return float(function(point))
    except (OverflowError, ZeroDivisionError, ValueError, TypeError):
        return float("inf")


def _golden_minimum(function, low: float, high: float, iterations: int = 80) -> float:
    """Golden-section search for a minimum bracketed in ``[low, high]`` (a cusp, a kink).

    Hand-written (eight lines) because scipy.optimize would add ~0.3 s to every
    cold ``symloss analyze``.
    """
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(iterations):
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if _finite_or_inf(function, left) <= _finite_or_inf(function, right):
            high = right
        else:
            low = left
    return (low + high) / 2.0


def binary_view(loss: Loss, smoothing: Smoothing = 0.0) -> BinaryView:
    """The binary loss, its derivative and its minimum on ``(0, 1)``."""
    expression = binary_loss(loss, smoothing)
    derivative = sp.diff(expression, p)
    if expression.free_symbols - {p} or expression.has(sp.zoo, sp.nan):
        return BinaryView(expression, derivative, None, None, None)  # undecided
    value = sp.lambdify(p, expression, modules="numpy")
    slope = sp.lambdify(p, derivative, modules="numpy")
    # mpmath (already loaded with sympy) refines roots; scipy.optimize would add
    # ~0.3 s to the cold start of `symloss analyze`.
    exact_slope = sp.lambdify(p, derivative, modules="mpmath")
    grid = np.linspace(EDGE, 1 - EDGE, GRID_POINTS)
    with np.errstate(all="ignore"):
        slopes = np.broadcast_to(np.asarray(slope(grid), dtype=float), grid.shape)
        candidates = [EDGE, 1 - EDGE]
        for i in np.flatnonzero((slopes[:-1] < 0) & (slopes[1:] >= 0)):
            try:
                root = float(mpmath.findroot(exact_slope, (grid[i], grid[i + 1]),
                                             solver="anderson"))
            except (ValueError, ZeroDivisionError, TypeError):
                root = None  # a cusp or pole, not a root: keep the better bracket end
            if root is None or not grid[i] <= root <= grid[i + 1]:
                root = _golden_minimum(value, grid[i], grid[i + 1])
            candidates.append(root)
        values = np.array([_finite_or_inf(value, c) for c in candidates])
    if not np.any(np.isfinite(values)):
        return BinaryView(expression, derivative, None, None, None)
    values = np.where(np.isfinite(values), values, np.inf)
    best = int(np.argmin(values))
    location = candidates[best]
    interior = best >= 2
    if not interior:
        location = 0.0 if best == 0 else 1.0
    return BinaryView(expression, derivative, float(location), float(values[best]), interior)
