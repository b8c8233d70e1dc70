"""The binary view of a loss (docs/conventions.md §2.8; GLO §V-A, Fig. 6).

With ``n = 2`` the whole loss is a function of the target's predicted
probability ``p``: ``L(p) = ½[ℓ(y_T, p) + ℓ(y_N, 1 − p)]``. Its derivative is
derived symbolically; the minimum on ``[0, 1]`` is found among the roots of
that derivative (bracketed on a grid, refined by mpmath's Anderson–Björck
method), the grid points near the float minimum and the two ends. Every
candidate is then evaluated with mpmath at :data:`DIGITS` digits on the
*unexpanded* expression, so float rounding (an expanded ``(p − 1)⁴`` near 1)
cannot invent a minimum. Values within :data:`TIE_TOLERANCE` of the smallest
are all minima: a tie between places, or a flat region, reported as such.

A minimum at an end means the loss keeps pushing toward certainty
(cross-entropy); an interior one means it stops short (Baikal, ``p = 1/√2``).

>>> from symloss.catalog import loss
>>> view = binary_view(loss("baikal"))
>>> round(view.minimum_at, 4), view.interior
(0.7071, True)
>>> binary_view(loss("cross_entropy")).minimum_at
1.0
>>> binary_view(loss("(h - y)**4")).minima
((1.0, 1.0),)
>>> binary_view(loss("h**3 - 2*h**2 + h")).minima   # a tie at both ends
((0.0, 0.0), (1.0, 1.0))
>>> [tuple(round(end, 6) for end in run) for run in binary_view(loss("Max(0, 0.9-h)*y")).minima]
[(0.9, 1.0)]
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from symloss.dynamics import Smoothing, at, labels, tidy
from symloss.guard import guarded
from symloss.loss import Loss
from symloss.symbols import h, y

p = sp.Symbol("p", positive=True)

#: Grid on which sign changes of dL/dp are bracketed.
GRID_POINTS = 4001
#: Distance from 0 and 1 of the grid's first and last points.
EDGE = 1e-9
#: Digits of the exact (mpmath) comparison of candidate minima.
DIGITS = 50
#: Values closer than this (relative to max(1, |min|)) to the minimum are minima too.
TIE_TOLERANCE = 1e-30
#: A region is flat where the exact slope is below this (relative to max(1, |min|)).
FLAT_SLOPE = 1e-40
#: Float values within this (relative) of the float minimum are re-checked exactly.
NEAR_FLOAT_MINIMUM = 1e-9


@dataclass(frozen=True)
class BinaryView:
    """``L(p)``, ``dL/dp`` and where ``L`` is smallest on ``[0, 1]``.

    ``minima`` lists every place the minimum is attained, as ``(start, end)``:
    ``start == end`` for a point, ``start < end`` for a flat region. ``minimum_at``
    is the first of them (the smallest ``p``); ``interior`` is ``False`` when it
    is an end of ``[0, 1]``. ``reason`` says why the view is undecided.
    """

    expression: sp.Expr
    derivative: sp.Expr
    minimum_at: float | None
    minimum_value: float | None
    interior: bool | None
    minima: tuple[tuple[float, float], ...] = ()
    reason: str = ""


def binary_loss(loss: Loss, smoothing: Smoothing = 0.0) -> sp.Expr:
    """``L(p) = ½[ℓ(y_T, p) + ℓ(y_N, 1 − p)]`` for two classes.

    >>> from symloss.catalog import loss
    >>> binary_loss(loss("mse"))
    p**2 - 2*p + 1
    """
    return tidy(_raw_binary_loss(loss, smoothing))


def _raw_binary_loss(loss: Loss, smoothing: Smoothing) -> sp.Expr:
    target, nontarget = labels(2, smoothing)
    expression = loss.expression
    at_target = at(at(expression, y, target), h, p)
    at_nontarget = at(at(expression, y, nontarget), h, 1 - p)
    return (at_target + at_nontarget) / 2


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


class _Exact:
    """``L`` evaluated with mpmath at :data:`DIGITS` digits; ends by sympy limits if singular."""

    def __init__(self, expression: sp.Expr):
        self.expression = expression
        self.function = sp.lambdify(p, expression, modules="mpmath")

    def __call__(self, point) -> mpmath.mpf | None:
        """The real value at ``point``; ``+inf`` where undefined; ``None`` where complex."""
        with mpmath.workdps(DIGITS):
            try:
                value = self.function(mpmath.mpf(point))
            except (ZeroDivisionError, ValueError, TypeError, OverflowError):
                return self._limit(point) if point in (0, 1) else mpmath.inf
            if isinstance(value, mpmath.mpc):
                if abs(value.imag) > mpmath.mpf(10) ** (-DIGITS // 2) * (1 + abs(value.real)):
                    return None
                value = value.real
            if mpmath.isnan(value):
                return self._limit(point) if point in (0, 1) else mpmath.inf
            return mpmath.mpf(value)

    def _limit(self, end: int):
        direction = "+" if end == 0 else "-"
        value = guarded(lambda: sp.limit(self.expression, p, end, direction), seconds=1.0,
                        undecided_on=(NotImplementedError, TypeError, ValueError,
                                      ArithmeticError, AttributeError))
        if value == -sp.oo:
            return -mpmath.inf
        if value is None or not value.is_number or not value.is_extended_real or \
                value.has(sp.nan, sp.zoo):
            return mpmath.inf
        with mpmath.workdps(DIGITS):
            return mpmath.inf if value == sp.oo else mpmath.mpf(sp.N(value, DIGITS))


def binary_view(loss: Loss, smoothing: Smoothing = 0.0) -> BinaryView:
    """The binary loss, its derivative and where it is minimal on ``[0, 1]``."""
    raw = _raw_binary_loss(loss, smoothing)
    if raw.free_symbols - {p}:  # a family: no single curve (expansion skipped, it is costly)
        return BinaryView(raw, sp.diff(raw, p), None, None, None,
                          reason="L(p) depends on the parameters")
    expression = tidy(raw)
    derivative = sp.diff(expression, p)
    if raw.has(sp.zoo, sp.nan):
        return BinaryView(expression, derivative, None, None, None,
                          reason="L(p) is undefined at the labels")
    exact = _Exact(raw)
    value = sp.lambdify(p, raw, modules="numpy")
    slope_expression = sp.diff(raw, p)
    slope = sp.lambdify(p, slope_expression, modules="numpy")
    exact_slope = sp.lambdify(p, slope_expression, modules="mpmath")
    grid = np.linspace(EDGE, 1 - EDGE, GRID_POINTS)
    with np.errstate(all="ignore"):
        slopes = _floats(slope, grid)
        values = _floats(value, grid)
        candidates = [0.0, 1.0]
        for i in np.flatnonzero((slopes[:-1] < 0) & (slopes[1:] >= 0)):
            candidates.append(_root(exact_slope, value, grid[i], grid[i + 1]))
        finite = values[np.isfinite(values)]
        if finite.size:
            low = finite.min()
            near = np.flatnonzero(values <= low + NEAR_FLOAT_MINIMUM * max(1.0, abs(low)))
            candidates += [float(grid[i]) for i in near]
    return _decide(expression, derivative, exact, sorted(set(candidates)), grid[1] - grid[0])


def _floats(function, grid: np.ndarray) -> np.ndarray:
    try:
        result = np.asarray(function(grid))
    except (ZeroDivisionError, ValueError, TypeError, OverflowError):
        return np.full(grid.shape, np.nan)
    if np.iscomplexobj(result):
        result = np.where(result.imag == 0, result.real, np.nan)
    try:
        return np.broadcast_to(result.astype(float), grid.shape)
    except (TypeError, ValueError, OverflowError):
        return np.full(grid.shape, np.nan)


def _root(exact_slope, value, low: float, high: float) -> float:
    try:
        with mpmath.workdps(DIGITS):
            root = float(mpmath.findroot(exact_slope, (low, high), solver="anderson"))
    except (ValueError, ZeroDivisionError, TypeError, OverflowError):
        root = None  # a cusp or pole, not a root: keep the better bracket end
    if root is None or not low <= root <= high:
        root = _golden_minimum(value, low, high)
    return root


def _decide(expression, derivative, exact: _Exact, candidates: list[float],
            step: float) -> BinaryView:
    with mpmath.workdps(DIGITS):
        scored = [(c, exact(c)) for c in candidates]
        complex_at = [c for c, v in scored if v is None]
        if complex_at:
            return BinaryView(expression, derivative, None, None, None, reason=(
                f"L(p) is not real at p = {complex_at[0]:.4g} (a complex-valued loss)"))
        finite = [v for _, v in scored if v != mpmath.inf]
        if not finite:
            return BinaryView(expression, derivative, None, None, None,
                              reason="L(p) is not finite anywhere it was evaluated")
        best = min(finite)
        if best == -mpmath.inf:
            places = [c for c, v in scored if v == best]
        else:
            tolerance = TIE_TOLERANCE * max(1, abs(best))
            places = [c for c, v in scored if v != mpmath.inf and v - best <= tolerance]
        runs = _runs(places, step, exact, best, scored)
        minimum = float(best) if abs(best) < mpmath.mpf("1e308") else \
            (float("-inf") if best < 0 else float("inf"))
    location = runs[0][0]
    interior = 0.0 < location < 1.0
    return BinaryView(expression, derivative, location, minimum, interior, tuple(runs))


def _runs(places: list[float], step: float, exact: _Exact, best,
          scored) -> list[tuple[float, float]]:
    """Group minimal places closer than two grid steps; a group is flat if its slope is 0.

    A flat group's edges are sharpened by bisection; any other group is the one
    place in it where ``L`` is smallest (``(p − 1)⁴`` is 1e-36 at ``1 − 1e-9``,
    a tie at 1e-30 but no plateau).
    """
    runs: list[list[float]] = []
    for place in places:
        if runs and place - runs[-1][-1] <= 2 * step:
            runs[-1].append(place)
        else:
            runs.append([place])
    value_of = dict(scored)
    result = []
    for run in runs:
        start, end = run[0], run[-1]
        if end - start > step and _flat(exact, start, end, best):
            start = start if start == 0.0 else _edge(exact, best, start - step, start)
            end = end if end == 1.0 else _edge(exact, best, end + step, end)
        else:
            start = end = min(run, key=lambda place: value_of[place])
        result.append((float(start), float(end)))
    return result


def _flat(exact: _Exact, start: float, end: float, best) -> bool:
    """Whether ``L`` is constant on ``[start, end]``: its slope ~0 at three inner points."""
    tolerance = FLAT_SLOPE * max(1, abs(best))
    width = end - start
    for fraction in (0.25, 0.5, 0.75):
        middle = start + fraction * width
        left, right = exact(middle - width / 8), exact(middle + width / 8)
        if left is None or right is None or not (mpmath.isfinite(left)
                                                  and mpmath.isfinite(right)):
            return False
        if abs(right - left) / (width / 4) > tolerance:
            return False
    return True


def _edge(exact: _Exact, best, outside: float, inside: float) -> float:
    """Bisect between a non-minimal and a minimal point for the edge of a flat region."""
    outside, inside = max(0.0, min(1.0, outside)), inside
    tolerance = TIE_TOLERANCE * max(1, abs(best))
    for _ in range(60):
        middle = (outside + inside) / 2
        value = exact(middle)
        if value is not None and value != mpmath.inf and value - best <= tolerance:
            inside = middle
        else:
            outside = middle
    return inside
